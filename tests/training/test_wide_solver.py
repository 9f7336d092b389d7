"""The wide part fitted by logistic regression: its features are what the wide layers compute, the wide part it
leaves is the regression, and the deep logits are weighed against it on validation."""

import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from multifield.config import config_from_dict
from multifield.model import blends_logits, build_model, training_model
from multifield.training.wide_solver import BLEND_SCALES, C_GRID, choose_blend, fit_wide_part, supported, wide_features

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


@pytest.mark.parametrize("wide_tf", ["sublinear", "raw"])
def test_features_are_what_the_wide_layers_compute(wide_tf):
    config = config_from_dict({**CONFIG, "fields": {name: {**field, "wide_tf": wide_tf} for name, field in CONFIG["fields"].items()}})
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
    model.get_layer("logits").scale.assign(0.0)  # the regression alone
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
    no_wide = {**CONFIG, "fields": {"text": {"encoder": "pooled", "embedding_dim": 4, "wide": False}}}
    assert supported(config_from_dict(no_wide)) == "no field is wide"


def test_the_deep_part_trains_alone_and_its_weight_is_chosen_on_validation():
    config = config_from_dict(CONFIG)
    model = model_of(config)
    assert blends_logits(model)
    deep_only = training_model(model, deep_loss_weight=1.0)
    assert deep_only.output.shape[-1] == 3 and not any(layer.name.endswith("_wide") for layer in deep_only.layers)
    x_train, y_train = toy_records(300, seed=2)
    x_valid, y_valid = toy_records(100, seed=3)
    fit_wide_part(model, config, x_train, y_train, x_valid, y_valid)
    choice = choose_blend(model, config, x_valid, y_valid)
    assert [trial["scale"] for trial in choice["trials"]] == list(BLEND_SCALES)
    best = max(trial["val_micro_f1"] for trial in choice["trials"])
    assert choice["scale"] == min(trial["scale"] for trial in choice["trials"] if trial["val_micro_f1"] == best)
    assert float(model.get_layer("logits").scale.numpy()) == choice["scale"]


def test_without_the_logistic_solver_the_logits_are_added():
    adam = {**CONFIG, "training": {"hidden_units": 0, "wide_solver": "adam"}}
    assert not blends_logits(model_of(config_from_dict(adam)))
