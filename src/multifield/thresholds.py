"""Decision thresholds: tuned per label on validation scores, and applied to turn scores into label sets."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


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


def best_global_threshold(y_true: np.ndarray, scores: np.ndarray, min_labels: int = 0) -> tuple[float, float]:
    """The one threshold that maximises micro-F1, and that F1."""
    best = (0.5, -1.0)
    for threshold in GRID:
        score = f1_score(y_true, decide(scores, threshold, min_labels), average="micro", zero_division=0)
        if score > best[1]:
            best = (float(threshold), float(score))
    return best


def tune_thresholds(
    y_true: np.ndarray,
    scores: np.ndarray,
    mode: str = "per_label",
    min_support: int = 5,
    min_labels: int = 0,
    shrinkage: float = 0.0,
) -> np.ndarray:
    """One threshold per label.

    ``global``: the threshold that maximises micro-F1 for every label. ``per_label``: each label's own
    F1-maximising threshold, starting from the global one; labels with fewer than ``min_support``
    validation positives keep the global threshold, since a few examples would over-fit it.
    ``shrinkage`` (0 to 1) moves each per-label threshold that part of the way back to the global one:
    a label's best threshold on a small validation set is noisy, and half-way keeps most of its gain
    in macro-F1 without losing micro-F1 to the noise.
    """
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
    global_threshold, _ = best_global_threshold(y_true, scores, min_labels)
    thresholds = np.full(scores.shape[1], global_threshold, dtype=np.float32)
    if mode == "global":
        return thresholds
    if mode != "per_label":
        raise ValueError(f"mode must be 'per_label' or 'global', got {mode!r}")
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
    return (1.0 - shrinkage) * thresholds + shrinkage * global_threshold
