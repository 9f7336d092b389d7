"""The ONNX graph of a model computes what the Keras model computes: scores and attention weights to 1e-5, for
every encoder kind, with empty fields, all-padding rows and rows longer than ``max_tokens``."""

import keras
import numpy as np
import onnxruntime
import pytest

from multifield.config import config_from_dict
from multifield.errors import GraphError
from multifield.model import attention_output, build_model, deep_scores_model, ensemble_model, wide_scores_model
from multifield.onnx_graph import PART_OUTPUTS, onnx_graph, unwritable

VOCABULARY = 40
LABELS = 5


def field(encoder, **settings):
    return {"encoder": encoder, "embedding_dim": 6, "max_tokens": 8, **settings}


CASES = {
    "bigru": {"plot": field("rnn_attention", cell="gru", units=5)},
    "bilstm": {"plot": field("rnn_attention", cell="lstm", units=5)},
    "gru_one_way_two_layers": {"plot": field("rnn_attention", cell="gru", units=4, bidirectional=False, num_layers=2)},
    "bilstm_two_layers_three_heads": {"plot": field("rnn_attention", cell="lstm", units=3, num_layers=2, heads=3)},
    "attention": {"plot": field("attention", attention_units=7)},
    "attention_two_heads": {"plot": field("attention", heads=2)},
    "pooled_max": {"title": field("pooled", pooling="max")},
    "pooled_mean": {"title": field("pooled", pooling="mean")},
    "items_max_mean": {"actors": field("pooled", kind="items", pooling="max_mean")},
    "wide_tfidf": {"plot": field("attention", wide=True, wide_pooling="tfidf")},
    "wide_tfidf_sublinear_tf": {"plot": field("attention", wide=True, wide_pooling="tfidf", wide_tf="sublinear")},
    "wide_mean_sum_sqrtn": {
        "plot": field("rnn_attention", cell="gru", units=4, wide=True, wide_pooling="mean"),
        "title": field("pooled", wide=True, wide_pooling="sum"),
        "actors": field("pooled", kind="items", wide=True, wide_pooling="sqrtn", field_dropout=0.3),
    },
    "label_attention_alone": {"plot": field("rnn_attention", cell="gru", units=4, label_attention=True)},
    "label_attention_lstm_beside_other_fields": {
        "plot": field("rnn_attention", cell="lstm", units=3, label_attention=True, wide=True, wide_pooling="tfidf"),
        "title": field("attention"),
        "actors": field("pooled", kind="items"),
    },
    "all_kinds_no_hidden": {
        "plot": field("rnn_attention", cell="gru", units=4, wide=True, wide_pooling="tfidf"),
        "reviews": field("attention", heads=2),
        "actors": field("pooled", kind="items", embedding_dropout=0.2),
        "title": field("pooled", pooling="max"),
    },
}


def random_model(fields: dict, training: dict | None = None, seed: int = 0, name_suffix: str = ""):
    """A model of these fields with random weights (not the zero starts of training) and random idf weights."""
    config = config_from_dict({"labels": {"field": "genres"}, "fields": fields, "training": training or {"hidden_units": 6}})
    rng = np.random.default_rng(seed)
    frequencies = {name: (rng.integers(0, 30, VOCABULARY), 30) for name in fields}
    model = build_model(config, dict.fromkeys(fields, VOCABULARY), LABELS, document_frequencies=frequencies, name_suffix=name_suffix)
    for layer in model.layers:
        if not layer.name.endswith("_wide_pooling"):
            layer.set_weights([rng.normal(scale=0.7, size=w.shape).astype(np.float32) for w in layer.get_weights()])
    return config, model


def id_matrices(config, rng, width: int | None = None) -> dict[str, np.ndarray]:
    """Right-padded ids: a full row, a row of padding (an empty field), a row longer than max_tokens, short rows."""
    inputs = {}
    for name, settings in config.fields.items():
        columns = width or settings.max_tokens + 5
        lengths = [min(settings.max_tokens, columns), 0, columns, 1, *rng.integers(0, columns + 1, 4)]
        rows = np.zeros((len(lengths), columns), dtype=np.int32)
        for row, length in enumerate(lengths):
            rows[row, :length] = rng.integers(1, VOCABULARY, length)
        inputs[name] = rows
    return inputs


def assert_same_outputs(model, config, inputs):
    session = onnxruntime.InferenceSession(onnx_graph(model, config).SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    expected = {key: np.asarray(value) for key, value in model(inputs).items()}
    actual = dict(zip(names, session.run(None, inputs)))
    assert sorted(names) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape, key
        assert np.isfinite(actual[key]).all(), key
        np.testing.assert_allclose(actual[key], value, atol=1e-5, rtol=0, err_msg=key)
    return actual


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnx_runtime_computes_what_keras_computes(case):
    config, model = random_model(CASES[case])
    actual = assert_same_outputs(model, config, id_matrices(config, np.random.default_rng(1)))
    for name in config.attention_fields():
        assert (actual[attention_output(name)][1] == 0).all(), "an empty field has no attention"


def test_attention_over_padding_is_exactly_zero_and_sums_to_one():
    config, model = random_model(CASES["bigru"])
    inputs = id_matrices(config, np.random.default_rng(2))
    weights = assert_same_outputs(model, config, inputs)[attention_output("plot")]
    padding = inputs["plot"] == 0
    assert (weights[padding] == 0).all()
    sums = weights.sum(axis=-1)
    np.testing.assert_allclose(sums[~padding.all(axis=1)], 1.0, rtol=1e-5)


def test_one_graph_for_any_batch_size_and_width():
    config, model = random_model(CASES["all_kinds_no_hidden"])
    session = onnxruntime.InferenceSession(onnx_graph(model, config).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for width in (1, 3, 20):
        inputs = id_matrices(config, rng, width=width)
        scores = session.run(["scores"], inputs)[0]
        np.testing.assert_allclose(scores, np.asarray(model(inputs)["scores"]), atol=1e-5, rtol=0)


def test_a_blend_of_a_solved_wide_part_and_a_deep_part():
    fields = {"plot": field("rnn_attention", cell="gru", units=4, wide=True, wide_pooling="tfidf"), "title": field("pooled")}
    config, model = random_model(fields, {"hidden_units": 6, "wide_solver": "logistic"})
    assert type(model.get_layer("logits")).__name__ == "LogitBlend"
    model.get_layer("logits").scale.assign(0.3)  # the random draw may be negative; a chosen scale is in [0, 1]
    assert_same_outputs(model, config, id_matrices(config, np.random.default_rng(4)))


def test_a_blend_of_a_solved_wide_part_and_a_label_wise_deep_part():
    fields = {"plot": field("rnn_attention", cell="gru", units=4, wide=True, label_attention=True), "title": field("pooled", wide=True)}
    config, model = random_model(fields, {"hidden_units": 0, "wide_solver": "logistic"})
    model.get_layer("logits").scale.assign(0.6)
    weights = assert_same_outputs(model, config, id_matrices(config, np.random.default_rng(4)))["plot_attention"]
    assert weights.ndim == 2  # the labels' weights mixed into one row per record


def test_an_ensemble_averages_its_members():
    fields = {"plot": field("rnn_attention", cell="lstm", units=4, heads=2), "actors": field("pooled", kind="items", wide=True)}
    members = [random_model(fields, seed=seed, name_suffix=f"_{seed}") for seed in (5, 6)]
    config = members[0][0]
    model = ensemble_model([member for _, member in members], config)
    assert_same_outputs(model, config, id_matrices(config, np.random.default_rng(7)))



@pytest.mark.parametrize("training", [{"hidden_units": 6}, {"hidden_units": 0, "wide_solver": "logistic"}])
def test_the_parts_outputs_are_what_the_keras_parts_compute(training):
    """Training validates the deep part and the wide part alone, and blends their logits, on such graphs."""
    config, model = random_model(CASES["wide_mean_sum_sqrtn"], training)
    inputs = id_matrices(config, np.random.default_rng(8))
    graph = onnx_graph(model, config, PART_OUTPUTS)
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == list(PART_OUTPUTS)
    actual = dict(zip(PART_OUTPUTS, session.run(None, inputs)))
    logits = keras.Model(model.input, {key: model.get_layer(key).output for key in ("deep_logits", "wide_logits")})(inputs)
    expected = {"deep_scores": deep_scores_model(model)(inputs), "wide_scores": wide_scores_model(model)(inputs), **logits}
    for key in PART_OUTPUTS:
        assert actual[key].shape == (len(inputs["plot"]), LABELS), key
        np.testing.assert_allclose(actual[key], np.asarray(expected[key]), atol=1e-5, rtol=0, err_msg=key)


def test_a_graph_of_chosen_outputs_holds_only_what_they_need():
    config, model = random_model(CASES["all_kinds_no_hidden"])
    whole = onnx_graph(model, config)
    wide = onnx_graph(model, config, ("wide_scores",))
    assert [output.name for output in whole.graph.output] == ["scores", "plot_attention", "reviews_attention"]
    assert {node.op_type for node in whole.graph.node} >= {"GRU", "Gemm"}
    assert not {node.op_type for node in wide.graph.node} & {"GRU", "Gemm", "MatMul"}  # the wide part has no recurrence, no head
    assert len(wide.SerializeToString()) < len(whole.SerializeToString()) / 2


def test_a_model_without_that_output_or_an_encoder_the_graph_lacks_is_refused(monkeypatch):
    config, model = random_model({"plot": field("attention", wide=False)})
    with pytest.raises(GraphError, match="no output wide_scores"):
        onnx_graph(model, config, ("wide_scores",))
    assert unwritable(config) is None
    monkeypatch.setattr("multifield.onnx_graph.GRAPH_ENCODERS", ("pooled", "rnn_attention"))
    assert unwritable(config) == "the ONNX graph has no encoder of the kind of plot (attention)"
    with pytest.raises(GraphError, match=r"plot \(attention\)"):
        onnx_graph(model, config)
