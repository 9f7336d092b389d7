"""The wide part fitted by logistic regression: its features are what the wide layers compute, the model it
leaves is the regression, and the deep stage keeps it unless it beats it on validation."""

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from multifield.config import config_from_dict
from multifield.model import build_model
from multifield.training.callbacks import ValidationMonitor
from multifield.training.wide_solver import C_GRID, fit_wide_part, supported, wide_features

VOCABULARY = 12
CONFIG = {
    "labels": {"field": "genres"},
    "fields": {
        "text": {"encoder": "pooled", "embedding_dim": 4, "max_tokens": 6, "wide": True, "wide_pooling": "tfidf"},
        "tags": {"kind": "items", "encoder": "pooled", "embedding_dim": 4, "wide": True, "wide_pooling": "tfidf"},
    },
    "training": {"hidden_units": 0, "wide_solver": "logistic"},
}


def model_of(config, labels: int = 3):
    rng = np.random.default_rng(0)
    frequencies = {name: (rng.integers(1, 50, size=VOCABULARY), 60) for name in config.fields}
    return build_model(config, {name: VOCABULARY for name in config.fields}, labels, document_frequencies=frequencies)


def toy_records(rows: int, seed: int):
    """Token 2 of ``text`` means label 0, token 3 of ``tags`` label 1; label 2 is never on."""
    rng = np.random.default_rng(seed)
    text = rng.integers(4, VOCABULARY, size=(rows, 6)).astype(np.int32)
    tags = rng.integers(4, VOCABULARY, size=(rows, 3)).astype(np.int32)
    labels = np.zeros((rows, 3), dtype=np.float32)
    labels[:, 0] = rng.random(rows) < 0.4
    labels[:, 1] = rng.random(rows) < 0.3
    text[labels[:, 0] == 1, 0] = 2
    tags[labels[:, 1] == 1, 1] = 3
    text[:5, 3:] = 0  # right padding
    tags[5:8] = 0  # an empty field
    return {"text": text, "tags": tags}, labels


def test_features_are_what_the_wide_layers_compute():
    config = config_from_dict(CONFIG)
    model = model_of(config)
    rng = np.random.default_rng(1)
    weights = {name: rng.normal(size=(VOCABULARY, 3)).astype(np.float32) for name in config.fields}
    for name, matrix in weights.items():
        model.get_layer(f"{name}_wide").set_weights([matrix])
    inputs = {
        "text": np.array([[5, 5, 7, 0, 0, 0], [0, 0, 0, 0, 0, 0], [2, 3, 4, 5, 6, 7]], dtype=np.int32),  # a repeat, nothing
        "tags": np.array([[3, 0, 0], [4, 4, 4], [0, 0, 0]], dtype=np.int32),
    }
    pooled = keras.Model(model.input, [model.get_layer(f"{name}_wide_pooling").output for name in config.fields])(inputs)
    expected = sum(np.asarray(part) for part in pooled)
    features = wide_features(model, inputs, list(config.fields))
    assert features.shape == (3, 2 * VOCABULARY)
    np.testing.assert_allclose(features @ np.vstack([weights["text"], weights["tags"]]), expected, rtol=1e-5, atol=1e-6)


def test_the_fitted_model_is_the_logistic_regression_chosen_on_validation():
    config = config_from_dict(CONFIG)
    model = model_of(config)
    x_train, y_train = toy_records(300, seed=2)
    x_valid, y_valid = toy_records(100, seed=3)
    history = fit_wide_part(model, config, x_train, y_train, x_valid, y_valid)
    assert history["solver"] == "logistic" and history["C"] in C_GRID
    assert [trial["C"] for trial in history["trials"]] == list(C_GRID)
    assert history["val_micro_f1"] == [max(trial["val_micro_f1"] for trial in history["trials"])]

    scores = np.asarray(model(x_valid)["scores"])
    features = {name: wide_features(model, data, list(config.fields)) for name, data in (("train", x_train), ("valid", x_valid))}
    regression = LogisticRegression(solver="liblinear", C=history["C"], class_weight="balanced", random_state=0)
    reference = OneVsRestClassifier(regression).fit(features["train"], y_train[:, :2].astype(int))
    np.testing.assert_allclose(scores[:, :2], reference.predict_proba(features["valid"]), rtol=1e-4, atol=1e-5)
    assert scores[:, 2].max() < 1e-3  # a label with no positive training record stays off
    assert ((scores[:, :2] >= 0.5) == (y_valid[:, :2] == 1)).mean() > 0.95


def test_only_tfidf_wide_parts_are_solved():
    assert supported(config_from_dict(CONFIG)) is None
    other = {**CONFIG, "fields": {**CONFIG["fields"], "tags": {**CONFIG["fields"]["tags"], "wide_pooling": "sqrtn"}}}
    assert "tags" in supported(config_from_dict(other))
    no_wide = {**CONFIG, "fields": {"text": {"encoder": "pooled", "embedding_dim": 4}}}
    assert supported(config_from_dict(no_wide)) == "no field is wide"


def test_the_monitor_keeps_the_starting_weights_unless_an_epoch_beats_them():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy")
    start = [w.copy() for w in model.get_weights()]
    y_valid = np.array([[1.0], [0.0], [1.0], [0.0]])
    calls = []

    def validation_scores():  # perfect before training, wrong after every epoch
        calls.append(len(calls))
        return y_valid.astype(np.float32) if len(calls) == 1 else 1.0 - y_valid.astype(np.float32)

    monitor = ValidationMonitor(validation_scores, y_valid, patience=None, keep_start=True)
    x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    model.fit(x, (x[:, :1] > 0).astype(np.float32), epochs=3, verbose=0, callbacks=[monitor])
    assert monitor.best_epoch == -1 and len(calls) == 4
    for got, want in zip(model.get_weights(), start):
        np.testing.assert_array_equal(got, want)
