"""The served model runs on ONNX Runtime, with nothing to compile, or on Keras with its fixed shapes
(``multifield serve --runtime keras``), and both answer alike."""

import pytest

from multifield.server import ServerSettings
from multifield.server.serving_model import ServingModel


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_both_runtimes_serve_the_same_predictions(trained_bundle, movie_files, monkeypatch, runtime):
    from multifield.data.io import read_table
    from multifield.inference import Predictor

    records = read_table(movie_files["test"]).records[:20]
    monkeypatch.setenv("MULTIFIELD_RUNTIME", runtime)
    served = ServingModel(trained_bundle, ServerSettings(batch_sizes=(1, 8)))
    assert served.predictor.runtime == runtime
    assert (served.shapes() == []) == (runtime == "onnx")  # ONNX Runtime compiles no shape
    assert not served.ready and served.status == "warming_up"
    served.warm_up()
    assert served.ready
    expected = Predictor.load(trained_bundle, runtime="keras").records(records, attention=True)
    answered = served.predict(records, attention=True)
    assert [row["labels"] for row in answered] == [row["labels"] for row in expected]
    for got, want in zip(answered, expected):
        assert got["scores"] == pytest.approx(want["scores"], abs=2e-6)
        assert [word for word, _ in got["attention"]["plot"]] == [word for word, _ in want["attention"]["plot"]]


def test_on_onnx_runtime_the_largest_batch_runs_before_the_server_is_ready(trained_bundle, monkeypatch):
    monkeypatch.setenv("MULTIFIELD_RUNTIME", "onnx")
    served = ServingModel(trained_bundle, ServerSettings(batch_sizes=(1, 8, 64)))
    call, shapes = served.predictor.call, []

    def recording(batch):
        shapes.append({name: ids.shape for name, ids in batch.items()})
        return call(batch)

    served.predictor.call = recording
    served.warm_up()
    assert served.ready
    # The memory arena is sized by a batch of the largest size at every field's full width, before any request.
    assert {name: (64, field.max_tokens) for name, field in served.config.fields.items()} in shapes
