import typing

import keras
import numpy as np
import pytest

from multifield.config import ATTENTION_ENCODERS, ENCODER_KINDS, FieldConfig, config_from_dict, encoder_name
from multifield.model import ENCODERS, EncoderKind, attention_output, build_model, register_encoder, scores_model

CONFIG = {
    "labels": {"field": "genres"},
    "fields": {
        "plot": {"encoder": "rnn_attention", "embedding_dim": 8, "units": 4, "field_dropout": 0.5},
        "actors": {"kind": "items", "encoder": "pooled", "embedding_dim": 4, "wide": True, "wide_pooling": "sqrtn"},
    },
    "training": {"hidden_units": 8, "wide_solver": "adam"},
}


def test_outputs_and_empty_fields_give_no_nan():
    config = config_from_dict(CONFIG)
    model = build_model(config, {"plot": 30, "actors": 10}, num_labels=3)
    inputs = {
        "plot": np.array([[5, 6, 7, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int32),
        "actors": np.array([[0, 0], [3, 0]], dtype=np.int32),
    }
    outputs = model(inputs)
    scores = np.asarray(outputs["scores"])
    weights = np.asarray(outputs[attention_output("plot")])
    assert scores.shape == (2, 3) and np.isfinite(scores).all()
    np.testing.assert_allclose(weights[0, :3].sum(), 1.0, rtol=1e-5)
    assert (weights[0, 3:] == 0).all() and (weights[1] == 0).all()
    np.testing.assert_allclose(np.asarray(scores_model(model)(inputs)), scores, rtol=1e-6)


def test_padding_does_not_change_the_scores():
    config = config_from_dict(CONFIG)
    model = scores_model(build_model(config, {"plot": 30, "actors": 10}, num_labels=3))
    short = {"plot": np.array([[5, 6, 7]], dtype=np.int32), "actors": np.array([[3]], dtype=np.int32)}
    padded = {"plot": np.array([[5, 6, 7, 0, 0, 0, 0]], dtype=np.int32), "actors": np.array([[3, 0, 0]], dtype=np.int32)}
    np.testing.assert_allclose(np.asarray(model(short)), np.asarray(model(padded)), rtol=1e-5, atol=1e-6)


def test_dropout_is_wired_into_the_graph():
    config = config_from_dict({**CONFIG, "training": {"hidden_units": 8, "dropout": 0.5}})
    model = scores_model(build_model(config, {"plot": 30, "actors": 10}, num_labels=3))
    # With a wide part the deep logits start at zero; give them weights so that dropout shows.
    kernel, bias = model.get_layer("deep_logits").get_weights()
    model.get_layer("deep_logits").set_weights([np.random.default_rng(0).normal(size=kernel.shape), bias])
    inputs = {"plot": np.array([[5, 6, 7]] * 4, dtype=np.int32), "actors": np.array([[3]] * 4, dtype=np.int32)}
    assert not np.allclose(np.asarray(model(inputs, training=True)), np.asarray(model(inputs, training=True)))
    np.testing.assert_allclose(np.asarray(model(inputs)), np.asarray(model(inputs)))
    names = [layer.name for layer in model.layers]
    assert "features_dropout" in names and "hidden_dropout" in names


def test_wide_part_alone_and_zero_deep_start():
    from multifield.model import set_wide_trainable, wide_scores_model

    config = config_from_dict(CONFIG)
    model = build_model(config, {"plot": 30, "actors": 10}, num_labels=3)
    wide = wide_scores_model(model)
    inputs = {"plot": np.array([[5, 6, 7]], dtype=np.int32), "actors": np.array([[3, 4]], dtype=np.int32)}
    table = np.random.default_rng(1).normal(size=(10, 3)).astype("float32")
    model.get_layer("actors_wide").set_weights([table])
    # sqrtn pooling of rows 3 and 4 of the table; the deep part adds zero at the start.
    expected = 1 / (1 + np.exp(-(table[3] + table[4]) / np.sqrt(2)))
    np.testing.assert_allclose(np.asarray(wide(inputs))[0], expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(scores_model(model)(inputs))[0], expected, rtol=1e-5)
    set_wide_trainable(model, False)
    assert not model.get_layer("actors_wide").trainable and model.get_layer("plot_embedding").trainable


def test_positive_weights_and_weighted_loss():
    import keras

    from multifield.training.losses import make_loss, positive_weights

    y = np.array([[1, 0], [1, 0], [1, 1], [0, 0]], dtype=np.float32)
    np.testing.assert_allclose(positive_weights(y.sum(axis=0), len(y), "balanced"), [1.0, 3.0])
    np.testing.assert_allclose(positive_weights(y.sum(axis=0), len(y), "sqrt"), [1.0, np.sqrt(3.0)], rtol=1e-6)
    assert positive_weights(y.sum(axis=0), len(y), "none") is None
    predictions = np.full_like(y, 0.3)
    plain = np.asarray(keras.losses.binary_crossentropy(y, predictions))
    unweighted = np.asarray(make_loss(0.0, np.ones(2, dtype=np.float32))(y, predictions))
    np.testing.assert_allclose(unweighted, plain, rtol=1e-5)
    weighted = np.asarray(make_loss(0.0, np.array([1.0, 3.0], dtype=np.float32))(y, predictions))
    # Only row 2 has a positive of label 1: its loss grows by (3 - 1) * -log(0.3) / 2 labels.
    np.testing.assert_allclose(weighted - plain, [0, 0, -np.log(0.3), 0], rtol=1e-5, atol=1e-6)


def test_deep_loss_weight_trains_on_the_deep_parts_own_scores_too():
    import keras

    from multifield.model import training_model, wide_scores_model
    from multifield.training.losses import make_loss

    config = config_from_dict(CONFIG)
    model = build_model(config, {"plot": 30, "actors": 10}, num_labels=3)
    kernel, bias = model.get_layer("deep_logits").get_weights()
    model.get_layer("deep_logits").set_weights([np.random.default_rng(0).normal(size=kernel.shape), bias])
    model.get_layer("actors_wide").set_weights([np.random.default_rng(1).normal(size=(10, 3)).astype("float32")])
    inputs = {"plot": np.array([[5, 6, 7], [8, 0, 0]], dtype=np.int32), "actors": np.array([[3, 4], [0, 0]], dtype=np.int32)}
    assert training_model(model, 0.0).output.shape[-1] == 3
    both = np.asarray(training_model(model, 1.0)(inputs))
    scores, wide = np.asarray(scores_model(model)(inputs)), np.asarray(wide_scores_model(model)(inputs))
    assert both.shape == (2, 6)
    np.testing.assert_allclose(both[:, :3], scores, rtol=1e-6)
    # The deep part's own scores: the full logits less the wide part's.
    def logit(p):
        return np.log(p / (1 - p))

    np.testing.assert_allclose(logit(both[:, 3:]), logit(scores) - logit(wide), rtol=1e-4, atol=1e-4)
    y = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32)

    def bce(p):
        return np.asarray(keras.losses.binary_crossentropy(y, p)).mean()

    loss = make_loss(0.0, None, 0.5)
    np.testing.assert_allclose(np.mean(loss(y, both)), bce(both[:, :3]) + 0.5 * bce(both[:, 3:]), rtol=1e-5)
    np.testing.assert_allclose(np.mean(loss(y, scores)), bce(scores), rtol=1e-5)
    # Without a wide part the deep part is the whole model: nothing to add.
    deep_only = {**CONFIG, "fields": {"plot": {**CONFIG["fields"]["plot"], "wide": False}}}
    assert training_model(build_model(config_from_dict(deep_only), {"plot": 30}, num_labels=3), 1.0).output.shape[-1] == 3


def test_attention_encoder_explains_without_recurrence_and_round_trips(tmp_path):
    import keras

    config = config_from_dict(
        {
            "labels": {"field": "genres"},
            "fields": {
                "plot": {"encoder": "rnn_attention", "embedding_dim": 8, "units": 4},
                "tagline": {"encoder": "attention", "embedding_dim": 6, "attention_units": 5},
            },
            "training": {"hidden_units": 8},
        }
    )
    assert config.attention_fields() == ["plot", "tagline"]
    model = build_model(config, {"plot": 30, "tagline": 20}, num_labels=3)
    assert not any(isinstance(layer, keras.layers.RNN) for layer in model.get_layer("tagline_encoder")._flatten_layers())
    inputs = {
        "plot": np.array([[5, 6, 7, 0], [4, 0, 0, 0]], dtype=np.int32),
        "tagline": np.array([[3, 9, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int32),
    }
    outputs = model(inputs)
    weights = np.asarray(outputs[attention_output("tagline")])
    assert weights.shape == (2, 5) and np.isfinite(np.asarray(outputs["scores"])).all()
    np.testing.assert_allclose(weights[0, :2].sum(), 1.0, rtol=1e-5)
    assert (weights[0, 2:] == 0).all() and (weights[1] == 0).all()  # padding and an empty tagline weigh exactly 0
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for key, value in outputs.items():
        np.testing.assert_allclose(np.asarray(loaded(inputs)[key]), np.asarray(value), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("wide_solver", ["logistic", "adam"])
def test_a_label_wise_field_adds_its_own_logits_and_round_trips(tmp_path, wide_solver):
    """The label-wise encoder's logits are added to the dense head's into ``deep_logits``; its attention is one row
    per record (padding and an empty field exactly 0), and a saved model gives the same outputs."""
    from multifield.model import deep_scores_model

    fields = {**CONFIG["fields"], "plot": {**CONFIG["fields"]["plot"], "label_attention": True, "wide": True}}
    config = config_from_dict({**CONFIG, "fields": fields, "training": {"hidden_units": 0, "wide_solver": wide_solver}})
    model = build_model(config, {"plot": 30, "actors": 10}, num_labels=4)
    assert model.get_layer("plot_encoder").label_attention.queries.shape == (8, 4)
    assert type(model.get_layer("deep_logits")).__name__ == "Add" and model.get_layer("field_logits").units == 4
    inputs = {
        "plot": np.array([[5, 6, 7, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int32),
        "actors": np.array([[0, 0], [3, 0]], dtype=np.int32),
    }
    outputs = model(inputs)
    weights = np.asarray(outputs[attention_output("plot")])
    assert weights.shape == (2, 5)
    np.testing.assert_allclose(weights[0, :3].sum(), 1.0, rtol=1e-5)
    assert (weights[0, 3:] == 0).all() and (weights[1] == 0).all()
    # An empty plot leaves its label-wise part at its biases: the deep logits are the head's plus those biases.
    parts = keras.Model(model.input, [model.get_layer(name).output for name in ("field_logits", "deep_logits")])(inputs)
    bias = np.asarray(model.get_layer("plot_encoder").label_attention.bias)
    np.testing.assert_allclose(np.asarray(parts[1])[1], np.asarray(parts[0])[1] + bias, rtol=1e-5, atol=1e-6)
    assert np.isfinite(np.asarray(deep_scores_model(model)(inputs))).all()
    # Corrections of a wide part trained first start at zero, the label-wise part's too.
    readout = np.asarray(model.get_layer("plot_encoder").label_attention.readout)
    assert bool((readout == 0).all()) is (wide_solver == "adam")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for key, value in outputs.items():
        np.testing.assert_allclose(np.asarray(loaded(inputs)[key]), np.asarray(value), rtol=1e-6, atol=1e-7)


def test_only_label_wise_fields_make_the_deep_logits_alone():
    config = config_from_dict(
        {"labels": {"field": "genres"}, "fields": {"plot": {**CONFIG["fields"]["plot"], "label_attention": True}}}
    )
    model = build_model(config, {"plot": 30}, num_labels=3)
    assert "field_logits" not in {layer.name for layer in model.layers}
    scores = np.asarray(model({"plot": np.array([[5, 6, 0]], dtype=np.int32)})["scores"])
    assert scores.shape == (1, 3) and np.isfinite(scores).all()


def test_fields_are_blanked_independently():
    import keras

    config = config_from_dict(
        {
            "labels": {"field": "genres"},
            "fields": {
                "plot": {"encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.1},
                "actors": {"kind": "items", "encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.3},
                "title": {"encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.3},
            },
        }
    )
    model = build_model(config, {"plot": 10, "actors": 10, "title": 10}, num_labels=2)
    names = ("plot", "actors", "title")
    probe = keras.Model(model.inputs, [model.get_layer(f"{name}_field_dropout").output for name in names])
    ones = {name: np.ones((4000, 1), dtype=np.int32) for name in names}
    blanked = {name: np.asarray(out)[:, 0] == 0 for name, out in zip(names, probe(ones, training=True))}
    for name, rate in (("plot", 0.1), ("actors", 0.3), ("title", 0.3)):
        assert abs(blanked[name].mean() - rate) < 0.04
    # Independent draws: two fields of one rate are blanked together about 0.3 x 0.3 of the time, not 0.3,
    # and a blanked plot does not mean blanked actors.
    assert abs((blanked["actors"] & blanked["title"]).mean() - 0.09) < 0.03
    assert abs(blanked["actors"][blanked["plot"]].mean() - 0.3) < 0.08


def test_a_field_dropout_group_blanks_its_fields_together():
    import keras

    group = {"field_dropout_group": "metadata"}
    config = config_from_dict(
        {
            "labels": {"field": "genres"},
            "fields": {
                "plot": {"encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.1},
                "actors": {"kind": "items", "encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.3, **group},
                "features": {"kind": "items", "encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.3, **group},
                "tagline": {"encoder": "pooled", "embedding_dim": 4, "field_dropout": 0.2, **group},
            },
        }
    )
    names = ("plot", "actors", "features", "tagline")
    model = build_model(config, {name: 10 for name in names}, num_labels=2)
    probe = keras.Model(model.inputs, [model.get_layer(f"{name}_field_dropout").output for name in names])
    ones = {name: np.ones((4000, 1), dtype=np.int32) for name in names}
    blanked = {name: np.asarray(out)[:, 0] == 0 for name, out in zip(names, probe(ones, training=True))}
    np.testing.assert_array_equal(blanked["actors"], blanked["features"])  # one draw, one rate: always together
    assert not (blanked["tagline"] & ~blanked["actors"]).any()  # the lower rate only with the higher one
    assert abs(blanked["tagline"].mean() - 0.2) < 0.04 and abs(blanked["actors"].mean() - 0.3) < 0.04
    assert abs(blanked["actors"][blanked["plot"]].mean() - 0.3) < 0.08  # the plot is not in the group


# -- the encoder registry -------------------------------------------------------------------------------
class RecordingTrial:
    """Stands in for an Optuna trial: draws each categorical's first choice, and records the names drawn."""

    number = 0

    def __init__(self):
        self.names = []

    def suggest_categorical(self, name, choices):
        self.names.append(name)
        return choices[0]


def test_the_registry_covers_every_encoder_a_config_accepts():
    union = typing.get_args(typing.get_args(FieldConfig)[0])
    assert {encoder_name(field_config) for field_config in union} == set(ENCODER_KINDS) == set(ENCODERS)
    assert set(ATTENTION_ENCODERS) < set(ENCODERS)


@pytest.mark.parametrize("kind_name", sorted(ENCODERS))
def test_a_kind_has_its_config_builder_and_search_space_in_one_entry(kind_name):
    kind = ENCODERS[kind_name]
    assert isinstance(kind, EncoderKind) and encoder_name(kind.config) == kind_name
    field = kind.config()
    layer = kind.build(field, name="text_encoder")
    assert isinstance(layer, keras.layers.Layer) and layer.name == "text_encoder"
    tokens = np.random.default_rng(0).normal(size=(2, 3, field.embedding_dim)).astype("float32")
    mask = np.array([[True, True, False], [False, False, False]])
    if kind_name in ATTENTION_ENCODERS:
        context, weights = layer(tokens, mask=mask, return_attention_scores=True)
        np.testing.assert_allclose(np.asarray(weights)[0].sum(), 1.0, rtol=1e-5)
    else:
        context = layer(tokens, mask=mask)
    assert context.shape[0] == 2 and np.isfinite(np.asarray(context)).all()
    # Each setting searched is a key of the kind's config, drawn under the name of that key.
    trial = RecordingTrial()
    updates = kind.search_space(trial, "text", field)
    assert trial.names == [f"fields.text.{key}" for key in updates]
    assert set(updates) <= set(kind.config.model_fields)
    assert kind.config(**updates).encoder == kind_name


def test_a_kind_is_registered_once_and_only_with_a_config_class_of_the_union():
    class Loose(EncoderKind):
        config = type("LooseFieldConfig", (), {})

    with pytest.raises(ValueError, match="FIELD_CONFIGS"):
        register_encoder(Loose)

    class Again(EncoderKind):
        config = ENCODERS["pooled"].config

    with pytest.raises(ValueError, match="already registered"):
        register_encoder(Again)
    assert type(ENCODERS["pooled"]).__name__ != "Again"


def test_build_model_takes_each_encoder_from_the_registry(monkeypatch):
    built = []
    pooled = ENCODERS["pooled"]

    class Recording(type(pooled)):
        def build(self, field, name):
            built.append(name)
            return super().build(field, name)

    monkeypatch.setitem(ENCODERS, "pooled", Recording())
    model = build_model(config_from_dict(CONFIG), {"plot": 30, "actors": 10}, num_labels=3)
    assert built == ["actors_encoder"] and model.get_layer("actors_encoder") is not None
