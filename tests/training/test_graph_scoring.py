"""Training predicts on ONNX Runtime: the validation scores of every part are Keras', the bundle's model.onnx is the
graph training wrote from the final weights, and a config without a graph trains on Keras to the same result."""

import io
import tomllib

import keras
import numpy as np
import pytest
from movie_data import SMALL_CONFIG
from rich.console import Console

import multifield.bundle
import multifield.classifier
from multifield import MultiFieldClassifier
from multifield.bundle import load_bundle
from multifield.config import config_from_dict
from multifield.data.io import as_table
from multifield.inference import Predictor, model_scores
from multifield.model import build_model, deep_scores_model, wide_scores_model
from multifield.onnx_graph import onnx_graph
from multifield.training.datasets import prepare
from multifield.training.graph_scoring import GraphScoring
from multifield.training.losses import validation_loss


def small_config(**training):
    tables = tomllib.loads(SMALL_CONFIG)
    tables["training"].update(training)
    return config_from_dict(tables)


def random_weights(model, seed: int = 0) -> None:
    """Random weights everywhere but the idf of the wide parts (training starts the deep logits at zero)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.name.endswith("_wide_pooling"):
            layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])


@pytest.mark.parametrize("solver", ["adam", "logistic"])
def test_scores_on_onnx_runtime_are_the_keras_scores(movie_files, solver):
    config = small_config(wide_solver=solver)
    data = prepare(config, movie_files["train"], movie_files["valid"])
    vocabulary = {name: tokenizer.vocabulary_size for name, tokenizer in data.encoder.tokenizers.items()}
    frequencies = data.train.document_frequencies(list(config.fields))  # every field's wide part is pooled by tfidf
    model = build_model(config, vocabulary, len(data.encoder.labels.labels), document_frequencies=frequencies)
    random_weights(model)
    inputs = data.train.arrays()[0]  # 300 records: two batches of unlike widths
    scoring = GraphScoring(config)
    assert scoring.runtime == "onnx"
    expected = {"scores": model_scores(model, inputs, config), "deep_scores": model_scores(deep_scores_model(model), inputs, config),
                "wide_scores": model_scores(wide_scores_model(model), inputs, config)}
    for output, scores in expected.items():
        actual = scoring.scores(model, inputs, output)
        assert actual.shape == scores.shape == (300, len(data.encoder.labels.labels)) and actual.dtype == np.float32
        np.testing.assert_allclose(actual, scores, atol=1e-5, rtol=0, err_msg=output)
    assert scoring.graph is None  # part graphs are not the model's
    predictor = scoring.predictor(model, data.encoder, np.full(len(data.encoder.labels.labels), 0.5))
    assert predictor.runtime == "onnx" and scoring.graph == onnx_graph(model, config).SerializeToString()
    keras_outputs = Predictor(config, data.encoder, model, predictor.thresholds).outputs(inputs)
    onnx_outputs = predictor.outputs(inputs)
    for key in ("scores", "plot_attention", "reviews_attention"):
        width = onnx_outputs[key].shape[-1]  # batches cut to their longest record: no wider than Keras' padding
        np.testing.assert_allclose(onnx_outputs[key], keras_outputs[key][..., :width], atol=1e-5, rtol=0, err_msg=key)
    assert scoring.seconds > 0
    assert scoring.metrics() == {"validation_runtime": "onnx", "graph_seconds": round(scoring.seconds, 2)}


def test_the_validation_loss_is_keras_binary_crossentropy():
    rng = np.random.default_rng(0)
    labels = (rng.random((50, 7)) < 0.3).astype(np.int8)
    scores = rng.random((50, 7)).astype(np.float32)
    scores[0, :3] = [0.0, 1.0, 1e-9]  # clipped as Keras clips them
    expected = float(np.mean(keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(labels, scores))))
    assert validation_loss(labels, scores) == pytest.approx(expected, rel=1e-6)


def fit(config, files):
    console = Console(file=io.StringIO(), width=200)
    classifier = MultiFieldClassifier(config).fit(files["train"], files["valid"], epochs=2, console=console)
    return classifier, console.file.getvalue()


@pytest.fixture(scope="module", params=["adam", "logistic"])
def trained_on_onnx(request, movie_files):
    """The small config (its wide part by Adam, or solved and blended) trained 2 epochs, and what it printed."""
    return fit(small_config(wide_solver=request.param), movie_files)


def test_the_bundle_graph_is_the_one_training_wrote_from_the_final_weights(trained_on_onnx, movie_files, tmp_path, monkeypatch):
    classifier, _ = trained_on_onnx
    assert classifier.metrics_["validation_runtime"] == "onnx" and classifier.metrics_["graph_seconds"] > 0
    assert len(classifier.history_["val_loss"]) == 2

    def written_again(*args):
        raise AssertionError("the graph was written again")

    monkeypatch.setattr(multifield.bundle, "onnx_bytes", written_again)
    monkeypatch.setattr(multifield.classifier, "onnx_bytes", written_again)
    classifier.predict_proba(movie_files["test"])  # the estimator's own session runs the training graph too
    classifier.save(tmp_path / "bundle")
    monkeypatch.undo()
    saved = load_bundle(tmp_path / "bundle", runtime="keras")
    # Written afresh from the saved weights (best epoch, chosen blend), the graph is the same, byte for byte.
    assert saved.graph == onnx_graph(saved.model, saved.config).SerializeToString()
    test = saved.encoder.encode_inputs(as_table(movie_files["test"]))
    onnx_scores = Predictor.load(tmp_path / "bundle", runtime="onnx").scores(test)
    keras_scores = Predictor.load(tmp_path / "bundle", runtime="keras").scores(test)
    np.testing.assert_allclose(onnx_scores, keras_scores, atol=1e-5, rtol=0)


def test_a_config_without_a_graph_trains_on_keras_to_the_same_model(trained_on_onnx, movie_files, monkeypatch):
    on_onnx, said_onnx = trained_on_onnx
    # As if the graph had no attention encoder: the small config's tagline could then not be written.
    monkeypatch.setattr("multifield.onnx_graph.GRAPH_ENCODERS", ("rnn_attention", "pooled"))
    on_keras, said_keras = fit(on_onnx.config_, movie_files)
    assert "note: training predicts with Keras: the ONNX graph has no encoder of the kind of reviews (attention)" in said_keras
    assert "predicts with Keras" not in said_onnx
    assert on_keras.metrics_["validation_runtime"] == "keras" and on_keras.graph_ is None
    # The same training, validated, blended and tuned on either runtime's scores (equal to float noise).
    stages = [(on_keras.history_, on_onnx.history_)]
    if on_onnx.config_.training.wide_solver == "adam":  # the wide part's own stage, validated on its own scores
        stages.append((on_keras.history_["wide_stage"], on_onnx.history_["wide_stage"]))
    for keras_history, onnx_history in stages:
        for key in ("val_micro_f1", "val_threshold", "val_loss"):
            np.testing.assert_allclose(keras_history[key], onnx_history[key], atol=1e-5, err_msg=key)
    assert on_keras.history_.get("blend") == on_onnx.history_.get("blend")
    np.testing.assert_allclose(on_keras.thresholds_, on_onnx.thresholds_, atol=1e-6)
    for key in ("micro_f1", "macro_f1"):
        assert on_keras.metrics_["validation"][key] == pytest.approx(on_onnx.metrics_["validation"][key], abs=1e-6)
    assert on_keras.metrics_["attention_check"].keys() == on_onnx.metrics_["attention_check"].keys() == {"plot", "reviews"}
