"""Whether a model's attention explains its predictions: a deletion test.

For each attention field, on the records whose field holds ``min_tokens`` tokens or more and that get at least
one label: remove the field's ``k`` most attended tokens, or ``k`` tokens at random, and measure how far the
scores of the labels predicted on the unchanged record fall (mean over the records, and over each record's
predicted labels). Attention that explains the model makes the first fall clearly larger than the second;
attention that only looks busy does not.

>>> check = attention_check(Predictor.load("runs/movies"), valid_records)  # doctest: +SKIP
>>> check["plot"]  # doctest: +SKIP
{'top': 0.0216, 'random': 0.0036, 'records': 1021, 'k': 3}
"""

from __future__ import annotations

import numpy as np

from multifield.config import attention_output
from multifield.data.io import as_table
from multifield.inference import Predictor


def without_positions(ids: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``ids`` (``(records, time)``, right-padded with 0) with the positions marked in ``removed`` taken out,
    the tokens after them moved left and the row right-padded again."""
    keep = (ids != 0) & ~removed
    order = np.argsort(~keep, axis=1, kind="stable")  # kept tokens first, in their order
    return np.take_along_axis(np.where(keep, ids, 0), order, axis=1)


def attention_check(predictor: Predictor, data, k: int = 3, min_tokens: int = 10, seed: int = 0) -> dict[str, dict]:
    """The deletion test of each attention field of a model (its ``Predictor``; a fitted estimator's is
    ``classifier.predictor()``) on ``data`` (records, a path, a DataFrame, or a dict of id matrices from
    ``predictor.encoder.encode_inputs``).

    Returns ``{field: {"top", "random", "records", "k"}}``: the mean score fall when the ``k`` most
    attended tokens are removed, when ``k`` random ones are, and the number of records measured. A field
    with no record long enough is left out."""
    inputs = data if isinstance(data, dict) else predictor.encoder.encode_inputs(as_table(data))
    outputs = predictor.outputs(inputs)
    scores = np.asarray(outputs["scores"], dtype=np.float64)
    predicted = predictor.decide(scores.astype(np.float32)).astype(bool)
    rng = np.random.default_rng(seed)
    results = {}
    for name in predictor.config.attention_fields():
        weights = np.asarray(outputs[attention_output(name)], dtype=np.float64)
        if weights.ndim == 3:  # several heads: how much the record's context draws on each token, all heads
            weights = weights.mean(axis=1)
        ids = inputs[name]
        width = ids.shape[1]
        if weights.shape[-1] < width:  # batches were cut to their longest record
            weights = np.pad(weights, [(0, 0), (0, width - weights.shape[-1])])
        lengths = (ids != 0).sum(axis=1)
        rows = np.flatnonzero((lengths >= max(min_tokens, k + 1)) & predicted.any(axis=1))
        if not len(rows):
            continue
        positions = np.arange(width)
        # Padding never ranks among the most attended: its weight is 0, and it sorts last.
        ranked = np.argsort(-np.where(positions < lengths[rows, None], weights[rows, :width], -1.0), axis=1, kind="stable")
        top = np.zeros((len(rows), width), dtype=bool)
        np.put_along_axis(top, ranked[:, :k], True, axis=1)
        random = np.zeros((len(rows), width), dtype=bool)
        for row, length in enumerate(lengths[rows]):
            random[row, rng.choice(length, k, replace=False)] = True
        measured = {field: values[rows] for field, values in inputs.items()}
        falls = {}
        for variant, removed in (("top", top), ("random", random)):
            variant_scores = predictor.scores({**measured, name: without_positions(ids[rows], removed)}).astype(np.float64)
            fall = np.where(predicted[rows], scores[rows] - variant_scores, 0.0).sum(axis=1) / predicted[rows].sum(axis=1)
            falls[variant] = round(float(fall.mean()), 4)
        results[name] = {**falls, "records": len(rows), "k": k}
    return results


def describe(check: dict[str, dict]) -> list[str]:
    """One sentence per field of an ``attention_check`` result."""
    return [
        f"{name}: removing its {result['k']} most attended words lowers the predicted labels' scores by "
        f"{result['top']:.4f} on average ({result['k']} random words: {result['random']:.4f}; {result['records']:,} records)"
        for name, result in check.items()
    ]


__all__ = ["attention_check", "describe", "without_positions"]
