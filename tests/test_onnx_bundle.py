"""The bundle's model.onnx: written by training, hashed and checked, added to older bundles by `export`, and run by
predict (without importing Keras or JAX), explain, the estimator and the server with the Keras model's results."""

import json
import shutil
import subprocess
import sys

import numpy as np
import orjson
import pytest
from cli_helpers import run_cli

import multifield
from multifield.bundle import load_bundle
from multifield.errors import BundleError, ConfigError
from multifield.inference import Predictor


@pytest.fixture
def copied_bundle(trained_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(trained_bundle, copy)
    return copy


def read_jsonl(path):
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_training_writes_the_graph_and_the_manifest_hashes_both_model_files(trained_bundle):
    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.keras", "model.onnx"}
    bundle = load_bundle(trained_bundle, runtime="onnx")
    assert bundle.model is None and bundle.graph == (trained_bundle / "model.onnx").read_bytes()


def test_predict_on_onnx_imports_neither_keras_nor_jax_and_gives_the_keras_label_sets(trained_bundle, movie_files, tmp_path):
    outputs = {runtime: tmp_path / f"{runtime}.jsonl" for runtime in ("onnx", "keras")}
    code = (
        "import sys\n"
        "from multifield.cli import app\n"
        "app(sys.argv[1:], standalone_mode=False)\n"
        "print('keras' in sys.modules, 'jax' in sys.modules)\n"
    )
    for runtime, output in outputs.items():
        args = ["predict", trained_bundle, "--input", movie_files["test"], "--output", output, "--runtime", runtime]
        result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        imported = result.stdout.split()
        assert imported == (["False", "False"] if runtime == "onnx" else ["True", "True"])
    onnx_rows, keras_rows = read_jsonl(outputs["onnx"]), read_jsonl(outputs["keras"])
    assert len(onnx_rows) == len(keras_rows) == 100
    for onnx_row, keras_row in zip(onnx_rows, keras_rows):
        assert onnx_row["id"] == keras_row["id"] and onnx_row["labels"] == keras_row["labels"]
        for label, score in keras_row["scores"].items():
            assert abs(onnx_row["scores"][label] - score) <= 2e-6  # written rounded to 6 decimals


def test_attention_records_agree_between_runtimes(trained_bundle, movie_files):
    onnx_rows = Predictor.load(trained_bundle, runtime="onnx").records(movie_files["test"], attention=True)
    keras_rows = Predictor.load(trained_bundle, runtime="keras").records(movie_files["test"], attention=True)
    for onnx_row, keras_row in zip(onnx_rows, keras_rows):
        assert set(onnx_row["attention"]) == set(keras_row["attention"]) == {"plot", "reviews"}
        for name, pairs in keras_row["attention"].items():
            assert [word for word, _ in onnx_row["attention"][name]] == [word for word, _ in pairs]
            np.testing.assert_allclose([w for _, w in onnx_row["attention"][name]], [w for _, w in pairs], atol=2e-6)


def test_the_estimator_predicts_on_either_runtime(trained_bundle, movie_files):
    on_onnx, on_keras = multifield.load(trained_bundle), multifield.load(trained_bundle, runtime="keras")
    assert on_onnx.predictor().runtime == "onnx" and on_keras.predictor().runtime == "keras"
    np.testing.assert_allclose(on_onnx.predict_proba(movie_files["test"]), on_keras.predict_proba(movie_files["test"]), atol=1e-5)
    assert on_onnx.predict(movie_files["test"]) == on_keras.predict(movie_files["test"])
    on_onnx.runtime = "tensorflow"
    with pytest.raises(multifield.errors.MultifieldError, match="runtime must be one of onnx, keras"):
        on_onnx.predict(movie_files["test"])


def test_the_estimator_loaded_for_onnx_imports_no_keras_until_it_saves(trained_bundle, movie_files, tmp_path):
    code = (
        "import sys\n"
        "import multifield\n"
        "classifier = multifield.load(sys.argv[1])\n"
        "labels = classifier.predict(sys.argv[2])\n"
        "print('keras' in sys.modules, 'jax' in sys.modules)\n"
        "classifier.save(sys.argv[3])\n"
        "print('keras' in sys.modules, multifield.load(sys.argv[3]).predict(sys.argv[2]) == labels)\n"
    )
    args = [trained_bundle, movie_files["test"], tmp_path / "saved"]
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True", "True"]


def test_a_changed_or_missing_model_file_is_refused(copied_bundle, trained_bundle):
    graph = bytearray((copied_bundle / "model.onnx").read_bytes())
    graph[len(graph) // 2] ^= 0xFF  # one flipped byte in a weight: still a loadable graph
    (copied_bundle / "model.onnx").write_bytes(bytes(graph))
    for runtime in ("onnx", "keras"):  # the bundle is one whole: a changed file is refused whichever one is run
        with pytest.raises(BundleError, match=r"model.onnx: changed since the bundle was written"):
            load_bundle(copied_bundle, runtime=runtime)
    shutil.copy(trained_bundle / "model.onnx", copied_bundle / "model.onnx")
    keras_file = copied_bundle / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes() + b"\0")
    for runtime in ("onnx", "keras"):
        with pytest.raises(BundleError, match=r"model.keras: changed since the bundle was written"):
            load_bundle(copied_bundle, runtime=runtime)
    shutil.copy(trained_bundle / "model.keras", keras_file)
    (copied_bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model.onnx: missing from the bundle"):
        load_bundle(copied_bundle, runtime="onnx")


def older_bundle(directory):
    """The bundle as written before bundles carried a graph: no model.onnx, no hashes in the manifest."""
    (directory / "model.onnx").unlink()
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["files"], manifest["onnx_opset"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_an_unlisted_graph_is_refused(copied_bundle, trained_bundle):
    older_bundle(copied_bundle)
    shutil.copy(trained_bundle / "model.onnx", copied_bundle / "model.onnx")
    with pytest.raises(BundleError, match="model.onnx: not listed in"):
        load_bundle(copied_bundle, runtime="onnx")


def test_export_adds_the_graph_to_an_older_bundle(copied_bundle, movie_files, tmp_path):
    older_bundle(copied_bundle)
    result = run_cli("predict", copied_bundle, "--input", movie_files["test"], "--output", tmp_path / "keras.jsonl")
    assert "has no model.onnx: predicting with Keras" in result.output and "multifield export" in result.output
    keras_version = json.loads((copied_bundle / "manifest.json").read_text())["keras_version"]
    run_cli("export", copied_bundle)
    manifest = json.loads((copied_bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.keras", "model.onnx"} and manifest["keras_version"] == keras_version
    result = run_cli("predict", copied_bundle, "--input", movie_files["test"], "--output", tmp_path / "onnx.jsonl")
    assert "has no model.onnx" not in result.output
    assert [row["labels"] for row in read_jsonl(tmp_path / "onnx.jsonl")] == [row["labels"] for row in read_jsonl(tmp_path / "keras.jsonl")]


def test_explain_runs_on_onnx(trained_bundle, movie_files, tmp_path):
    run_cli("explain", trained_bundle, "--input", movie_files["test"], "--out", tmp_path / "report.html", "--limit", 3, "--threads", 1)
    assert "<html" in (tmp_path / "report.html").read_text(encoding="utf-8").lower()


def test_a_bad_runtime_or_thread_count_is_one_line(trained_bundle, movie_files, tmp_path, monkeypatch):
    result = run_cli("predict", trained_bundle, "--input", movie_files["test"], "--output", tmp_path / "x.jsonl", "--runtime", "tf", check_exit=2)
    assert "runtime must be one of onnx, keras; got 'tf'" in result.output
    monkeypatch.setenv("MULTIFIELD_THREADS", "many")
    with pytest.raises(ConfigError, match="MULTIFIELD_THREADS must be a whole number"):
        Predictor.load(trained_bundle)
    monkeypatch.setenv("MULTIFIELD_THREADS", "1")
    assert len(Predictor.load(trained_bundle).records(movie_files["test"])) == 100
