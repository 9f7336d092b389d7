"""Decision thresholds: tuned per label on validation scores, and applied to turn scores into label sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)

#: The shrinkages that ``threshold_shrinkage = "auto"`` chooses from.
SHRINKAGE_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Fewer validation records than this are not split in two to choose the shrinkage (it stays 0).
MIN_SPLIT_RECORDS = 20

#: What thresholds are tuned to maximise: micro-F1, or the mean of micro-F1 and macro-F1.
OBJECTIVES = ("micro", "micro_macro")


def decide(scores: np.ndarray, thresholds: np.ndarray | float, min_labels: int = 0) -> np.ndarray:
    """0/1 predictions: a label is on when its score reaches its threshold; rows with fewer than
    ``min_labels`` labels on get their best-scored labels instead."""
    predicted = (scores >= np.asarray(thresholds, dtype=scores.dtype)).astype(np.int8)
    if min_labels > 0 and scores.shape[1] > 0:
        short = predicted.sum(axis=1) < min_labels
        if short.any():
            k = min(min_labels, scores.shape[1])
            top = np.argsort(-scores[short], axis=1)[:, :k]
            rows = np.flatnonzero(short)[:, None]
            predicted[rows, top] = 1
    return predicted


def micro_f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """Micro-F1 of a 0/1 prediction matrix: 2·TP / (predicted + true), 0 when both are empty."""
    truth = np.asarray(y_true) != 0
    predicted = np.asarray(predicted) != 0
    denominator = int(predicted.sum()) + int(truth.sum())
    return 2.0 * int((predicted & truth).sum()) / denominator if denominator else 0.0


def macro_f1(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the labels that have a positive in ``y_true`` (0 when none has)."""
    truth = np.asarray(y_true) != 0
    predicted = np.asarray(predicted) != 0
    present = truth.any(axis=0)
    if not present.any():
        return 0.0
    true_positive = (predicted & truth).sum(axis=0)
    return float((2.0 * true_positive / np.maximum(predicted.sum(axis=0) + truth.sum(axis=0), 1))[present].mean())


def objective_value(y_true: np.ndarray, predicted: np.ndarray, objective: str = "micro") -> float:
    """What thresholds are tuned to maximise: ``"micro"`` micro-F1, ``"micro_macro"`` the mean of micro-F1 and
    macro-F1 (``macro_f1``), which also counts the rare labels that micro-F1 alone lets a threshold leave out."""
    _check_objective(objective)
    micro = micro_f1(y_true, predicted)
    return micro if objective == "micro" else (micro + macro_f1(y_true, predicted)) / 2.0


def best_global_threshold(
    y_true: np.ndarray, scores: np.ndarray, min_labels: int = 0, objective: str = "micro"
) -> tuple[float, float]:
    """The one threshold that maximises ``objective`` (``objective_value``), and that value (the lowest such
    threshold on ties)."""
    best = (0.5, -1.0)
    for threshold in GRID:
        score = objective_value(y_true, decide(scores, threshold, min_labels), objective)
        if score > best[1]:
            best = (float(threshold), float(score))
    return best


def per_label_thresholds(
    y_true: np.ndarray, scores: np.ndarray, global_threshold: float, min_support: int = 5
) -> np.ndarray:
    """Each label's own F1-maximising threshold (float32); labels with fewer than ``min_support`` positives
    keep ``global_threshold``, and among equally good thresholds the one nearest it is taken."""
    thresholds = np.full(scores.shape[1], global_threshold, dtype=np.float32)
    for label in range(scores.shape[1]):
        truth = y_true[:, label].astype(bool)
        if truth.sum() < min_support:
            continue
        column = scores[:, label][:, None]
        predicted = column >= GRID[None, :]
        true_positive = (predicted & truth[:, None]).sum(axis=0)
        f1 = 2 * true_positive / np.maximum(predicted.sum(axis=0) + truth.sum(), 1)
        best = f1.max()
        # Among equally good thresholds, take the one nearest the global threshold.
        candidates = GRID[f1 >= best - 1e-12]
        thresholds[label] = candidates[np.argmin(np.abs(candidates - global_threshold))]
    return thresholds


def shrink(thresholds: np.ndarray, global_threshold: float, shrinkage: float) -> np.ndarray:
    """Per-label thresholds moved ``shrinkage`` (0 to 1) of the way back to the global one."""
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    return (1.0 - shrinkage) * thresholds + shrinkage * global_threshold


def _check_mode(mode: str) -> None:
    if mode not in ("per_label", "global"):
        raise ValueError(f"mode must be 'per_label' or 'global', got {mode!r}")


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(map(repr, OBJECTIVES))}, got {objective!r}")


def tune_thresholds(
    y_true: np.ndarray,
    scores: np.ndarray,
    mode: str = "per_label",
    min_support: int = 5,
    min_labels: int = 0,
    shrinkage: float = 0.0,
    objective: str = "micro",
) -> np.ndarray:
    """One threshold per label.

    ``global``: the threshold that maximises ``objective`` (micro-F1, or the mean of micro- and macro-F1) for
    every label. ``per_label``: each label's own F1-maximising threshold, starting from the global one; labels
    with fewer than ``min_support`` validation positives keep the global threshold, since a few examples would
    over-fit it.
    ``shrinkage`` (0 to 1) moves each per-label threshold that part of the way back to the global one:
    a label's best threshold on a small validation set is noisy, and half-way keeps most of its gain
    in macro-F1 without losing micro-F1 to the noise (``choose_shrinkage`` picks it on validation).
    """
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    global_threshold, _ = best_global_threshold(y_true, scores, min_labels, objective)
    if mode == "global":
        return np.full(scores.shape[1], global_threshold, dtype=np.float32)
    _check_mode(mode)
    own = per_label_thresholds(y_true, scores, global_threshold, min_support)
    return shrink(own, global_threshold, shrinkage)


def choose_shrinkage(
    y_true: np.ndarray,
    scores: np.ndarray,
    mode: str = "per_label",
    min_support: int = 5,
    min_labels: int = 0,
    grid: Sequence[float] = SHRINKAGE_GRID,
    repeats: int = 20,
    seed: int = 0,
    objective: str = "micro",
) -> float:
    """The shrinkage of ``grid`` whose thresholds generalise best, judged on the validation records alone.

    Repeated split-half: each repeat shuffles the records (a fixed-seed generator), tunes the global and
    per-label thresholds on one half exactly as ``tune_thresholds`` does, and scores each shrinkage's
    thresholds by ``objective`` on the other half, both ways round. The shrinkage with the best mean value
    wins; ties go to the smaller one. ``global`` mode, and fewer than ``MIN_SPLIT_RECORDS`` records,
    give 0.0 (there is nothing to shrink, or too little to split).
    """
    _check_mode(mode)
    _check_objective(objective)
    grid = [float(value) for value in grid]
    if not grid or any(not 0.0 <= value <= 1.0 for value in grid):
        raise ValueError(f"grid must be shrinkages in [0, 1], got {grid!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    if mode == "global" or len(scores) < MIN_SPLIT_RECORDS:
        return 0.0
    rng = np.random.default_rng(seed)
    totals = np.zeros(len(grid))
    for _ in range(repeats):
        order = rng.permutation(len(scores))
        halves = (order[: len(order) // 2], order[len(order) // 2 :])
        for fit, held_out in (halves, halves[::-1]):
            global_threshold, _ = best_global_threshold(y_true[fit], scores[fit], min_labels, objective)
            own = per_label_thresholds(y_true[fit], scores[fit], global_threshold, min_support)
            for index, shrinkage in enumerate(grid):
                thresholds = shrink(own, global_threshold, shrinkage)
                predicted = decide(scores[held_out], thresholds, min_labels)
                totals[index] += objective_value(y_true[held_out], predicted, objective)
    means = totals / (2 * repeats)
    tied = [value for value, mean in zip(grid, means) if mean >= means.max() - 1e-12]
    return min(tied)
