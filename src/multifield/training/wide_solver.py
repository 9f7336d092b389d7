"""The wide (linear) part fitted by logistic regression instead of by gradient steps: one-vs-rest logistic
regression (scikit-learn's liblinear, balanced class weights, C chosen on validation micro-F1) on exactly the
features the wide layers compute, a field's L2-normalised TF-IDF vector, written into those layers' weights and
the intercepts of the model's ``LogitBlend``.

The wide part is then the TF-IDF + logistic regression model that is the usual baseline of text classification.
The deep part is trained on its own, and ``choose_blend`` weighs its logits against the regression's on the
validation records: a weight of 0 keeps the regression alone.
"""

from __future__ import annotations

import time
import warnings

import keras
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from multifield.config import Config
from multifield.data.batches import predict_in_buckets, sort_field
from multifield.inference import PREDICT_BATCH_SIZE, keras_call
from multifield.thresholds import best_global_threshold

C_GRID = (1.0, 4.0, 16.0)
# Weights of the deep logits tried against the regression's (0: the regression alone).
BLEND_SCALES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5)


def tfidf_fields(config: Config) -> list[str]:
    return [name for name, field in config.fields.items() if field.wide and field.wide_pooling == "tfidf"]


def supported(config: Config) -> str | None:
    """Why the logistic solver cannot fit this config's wide part (None when it can)."""
    wide = [name for name, field in config.fields.items() if field.wide]
    if not wide:
        return "no field is wide"
    other = [name for name in wide if config.fields[name].wide_pooling != "tfidf"]
    if other:
        return f"the wide part of {', '.join(other)} is not pooled by tfidf"
    return None


def wide_features(model: keras.Model, inputs: dict[str, np.ndarray], names: list[str]) -> sp.csr_matrix:
    """What the wide layers of ``model`` compute from token ids, as a sparse matrix, field after field: for each
    token, its count times its idf, over the square root of the row's sum of count times idf squared; with
    ``sublinear_tf``, (1 + ln count) times its idf, over the row's L2 norm (``multifield.layers.IdfPooling``)."""
    blocks = []
    for name in names:
        pooling = model.get_layer(f"{name}_wide_pooling")
        idf = np.asarray(keras.ops.convert_to_numpy(pooling.idf), dtype=np.float64)
        ids = np.asarray(inputs[name])
        rows = np.repeat(np.arange(len(ids)), ids.shape[1])
        columns = ids.ravel()
        kept = columns != 0
        counts = sp.csr_matrix((np.ones(kept.sum()), (rows[kept], columns[kept])), shape=(len(ids), len(idf)))
        counts.sum_duplicates()
        if pooling.sublinear_tf:
            weighted = counts.copy()
            weighted.data = 1.0 + np.log(weighted.data)
            weighted = weighted.multiply(idf[None, :]).tocsr()
            norm = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        else:
            weighted = counts.multiply(idf[None, :]).tocsr()
            norm = np.sqrt(np.asarray(counts.multiply(idf[None, :] ** 2).sum(axis=1)).ravel())
        blocks.append(sp.diags(1.0 / np.maximum(norm, 1e-12)) @ weighted)
    return sp.hstack(blocks).tocsr()


def _fit(features: sp.csr_matrix, labels: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients ``(features, labels)`` and intercepts ``(labels,)`` of one-vs-rest logistic regression.
    A label with no positive (or no negative) training record gets a constant model."""
    coefficients = np.zeros((features.shape[1], labels.shape[1]))
    intercepts = np.zeros(labels.shape[1])
    varied = np.flatnonzero((labels.min(axis=0) == 0) & (labels.max(axis=0) == 1))
    if len(varied):
        regression = LogisticRegression(solver="liblinear", C=c, class_weight="balanced", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # liblinear's iteration cap: its answer is still used
            fitted = OneVsRestClassifier(regression).fit(features, labels[:, varied])
        coefficients[:, varied] = np.vstack([estimator.coef_[0] for estimator in fitted.estimators_]).T
        intercepts[varied] = [estimator.intercept_[0] for estimator in fitted.estimators_]
    constant = np.setdiff1d(np.arange(labels.shape[1]), varied)
    intercepts[constant] = np.where(labels[:, constant].max(axis=0) > 0, 10.0, -10.0) if len(labels) else -10.0
    return coefficients, intercepts


def fit_wide_part(model: keras.Model, config: Config, x_train, y_train, x_valid, y_valid, console=None) -> dict:
    """Fit the wide layers of ``model`` (a full model of ``config``, its deep logits still zero) by logistic
    regression on the training records, C chosen on validation micro-F1; the trials, as a history."""
    names = tfidf_fields(config)
    started = time.perf_counter()
    train_features = wide_features(model, x_train, names)
    valid_features = wide_features(model, x_valid, names)
    labels = np.asarray(y_train).astype(np.int64)  # int8 labels make liblinear's one-vs-rest fit nothing useful
    best, trials = None, []
    for c in C_GRID:
        coefficients, intercepts = _fit(train_features, labels, c)
        scores = 1.0 / (1.0 + np.exp(-(valid_features @ coefficients + intercepts)))
        _, micro_f1 = best_global_threshold(y_valid, scores.astype(np.float32), config.training.min_labels)
        trials.append({"C": c, "val_micro_f1": round(float(micro_f1), 4)})
        if best is None or micro_f1 > best[0]:
            best = (micro_f1, c, coefficients, intercepts)
    micro_f1, c, coefficients, intercepts = best
    _set_weights(model, names, coefficients, intercepts)
    seconds = round(time.perf_counter() - started, 1)
    if console is not None:
        console.print(
            f"wide part: logistic regression on TF-IDF of {', '.join(names)}, C {c:g} (chosen on validation: "
            + ", ".join(f"C {t['C']:g} {t['val_micro_f1']:.4f}" for t in trials)
            + f"), {seconds} s"
        )
    return {"solver": "logistic", "C": c, "val_micro_f1": [round(float(micro_f1), 4)], "trials": trials, "seconds": seconds}


def _set_weights(model: keras.Model, names: list[str], coefficients: np.ndarray, intercepts: np.ndarray) -> None:
    start = 0
    for name in names:
        layer = model.get_layer(f"{name}_wide")
        rows = layer.get_weights()[0].shape[0]
        layer.set_weights([coefficients[start : start + rows].astype(np.float32)])
        start += rows
    model.get_layer("logits").intercept.assign(intercepts.astype(np.float32))


def choose_blend(model: keras.Model, config: Config, x_valid, y_valid, console=None, logits: dict | None = None) -> dict:
    """Set the weight of the deep logits in the model's ``LogitBlend`` to the one of ``BLEND_SCALES`` with the best
    validation micro-F1 (the smallest on a tie); the trials. ``logits``: the ``wide_logits`` and ``deep_logits``
    the blend adds on ``x_valid``, when they were computed already (on ONNX Runtime); else Keras computes them."""
    blend = model.get_layer("logits")
    if logits is None:
        wide, deep = blend.input
        parts = keras.Model(model.input, {"wide_logits": wide, "deep_logits": deep})
        logits = predict_in_buckets(keras_call(parts), x_valid, PREDICT_BATCH_SIZE, sort_field(config))
    base = np.asarray(logits["wide_logits"], dtype=np.float64) + np.asarray(keras.ops.convert_to_numpy(blend.intercept))
    trials = []
    for scale in BLEND_SCALES:
        scores = 1.0 / (1.0 + np.exp(-(base + scale * np.asarray(logits["deep_logits"], dtype=np.float64))))
        _, micro_f1 = best_global_threshold(y_valid, scores.astype(np.float32), config.training.min_labels)
        trials.append({"scale": scale, "val_micro_f1": round(float(micro_f1), 4)})
    best = max(trials, key=lambda trial: (trial["val_micro_f1"], -trial["scale"]))
    blend.scale.assign(best["scale"])
    if console is not None:
        console.print(
            f"deep logits weighed {best['scale']:g} against the regression's (validation micro-F1 {best['val_micro_f1']:.4f}; "
            f"regression alone {trials[0]['val_micro_f1']:.4f})"
        )
    return {"scale": best["scale"], "trials": trials}


__all__ = ["BLEND_SCALES", "C_GRID", "choose_blend", "fit_wide_part", "supported", "tfidf_fields", "wide_features"]
