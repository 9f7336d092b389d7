"""The README's own examples run as written: the layers in a user's five-input model, and the bundle's
``model.onnx`` run from another program."""

import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def readme_example(marker: str = "AttentionPooling()") -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return next(block for block in blocks if marker in block)


def test_readme_model_trains_saves_and_shows_attention(tmp_path):
    import keras

    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    model = namespace["model"]
    rng = np.random.default_rng(0)
    lengths = {"actors": 5, "features": 5, "reviews": 12, "title": 6, "plot": 30}
    x = {name: rng.integers(1, 20_000, size=(16, length)).astype("int32") for name, length in lengths.items()}
    x["plot"][:, 20:] = 0  # right padding
    y = rng.integers(0, 2, size=(16, 20)).astype("float32")
    model.fit(x, {"genres": y}, epochs=1, verbose=0)
    outputs = model.predict(x, verbose=0)
    weights = outputs["plot_attention"]
    assert weights.shape == (16, 30)
    assert (weights[:, 20:] == 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0)["genres"], outputs["genres"], rtol=1e-5, atol=1e-6)
    # Any length: the same model reads longer plots than it was trained on.
    longer = {**x, "plot": np.pad(x["plot"], ((0, 0), (0, 50)))}
    np.testing.assert_allclose(model.predict(longer, verbose=0)["genres"], outputs["genres"], rtol=1e-4, atol=1e-6)


def test_readme_runs_the_bundles_graph_with_onnx_runtime_and_the_vocabularies(trained_bundle):
    import ast
    import subprocess
    import sys

    from multifield.inference import Predictor

    example = readme_example("onnxruntime.InferenceSession")
    assert len([line for line in example.splitlines() if line.strip()]) <= 10
    code = example.replace('"runs/movies"', repr(str(trained_bundle)))
    assert code != example
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    printed = ast.literal_eval(result.stdout.strip())
    record = ast.literal_eval(re.search(r"\"runs/movies\", (\{.*\})", example).group(1))
    predictor = Predictor.load(trained_bundle)
    scores = predictor.scores(predictor.encode([{"id": "1", **record}]).inputs)[0]
    expected = {label: round(float(p), 3) for label, p, t in zip(predictor.labels, scores, predictor.thresholds) if p >= t}
    assert printed == expected
