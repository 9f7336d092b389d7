"""The training loss: binary cross-entropy with label smoothing, positive weights per label and the deep
part's own term."""

from __future__ import annotations

import keras
import numpy as np


def positive_weights(positives: np.ndarray, records: int, mode: str) -> np.ndarray | None:
    """Per-label weights of positive examples (from each label's positive count among ``records``): none,
    negatives/positives, or its square root."""
    if mode == "none":
        return None
    positives = np.maximum(positives, 1.0)
    ratio = (records - positives) / positives
    return np.maximum(np.sqrt(ratio) if mode == "sqrt" else ratio, 1.0).astype(np.float32)


def validation_loss(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary cross-entropy of ``scores`` against 0/1 labels, averaged over labels and records, as Keras'
    ``binary_crossentropy`` computes it (scores clipped to [1e-7, 1 - 1e-7]), in NumPy: the validation loss of an
    epoch, whatever runtime computed the scores."""
    y_true = np.asarray(y_true, dtype=np.float64)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return float(-(y_true * np.log(scores) + (1.0 - y_true) * np.log(1.0 - scores)).mean())


def make_loss(label_smoothing: float, weights: np.ndarray | None, deep_loss_weight: float = 0.0):
    """Binary cross-entropy; with ``weights``, each label's positive term is scaled by its weight.

    Predictions of twice the labels' width (``multifield.model.training_model``) are the scores, then the
    deep part's own scores: their loss is added, times ``deep_loss_weight``."""
    loss = _binary_crossentropy(label_smoothing, weights)

    def loss_with_deep_part(y_true, y_pred):
        labels = y_true.shape[-1]
        if y_pred.shape[-1] == labels:
            return loss(y_true, y_pred)
        return loss(y_true, y_pred[:, :labels]) + deep_loss_weight * loss(y_true, y_pred[:, labels:])

    return loss_with_deep_part if deep_loss_weight > 0 else loss


def _binary_crossentropy(label_smoothing: float, weights: np.ndarray | None):
    if weights is None:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    weights = keras.ops.convert_to_tensor(weights)

    def weighted_binary_crossentropy(y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        if label_smoothing:
            y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
        y_pred = keras.ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        terms = weights * y_true * keras.ops.log(y_pred) + (1.0 - y_true) * keras.ops.log(1.0 - y_pred)
        return -keras.ops.mean(terms, axis=-1)

    return weighted_binary_crossentropy


__all__ = ["make_loss", "positive_weights", "validation_loss"]
