"""The package itself: the backend default, the version, the public API."""

import os
import subprocess
import sys

import pytest

PROBE = "import os, multifield, keras; print(os.environ['KERAS_BACKEND'], keras.backend.backend())"


def run_probe(env_backend):
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    if env_backend is not None:
        env["KERAS_BACKEND"] = env_backend
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)


def test_jax_is_the_default_backend():
    result = run_probe(None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["jax", "jax"]


def test_a_backend_the_user_chose_is_kept():
    pytest.importorskip("torch")
    result = run_probe("torch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch", "torch"]


def test_public_api():
    import multifield

    assert multifield.__version__.count(".") == 2
    assert callable(multifield.load)
    assert multifield.MultiFieldClassifier.__name__ == "MultiFieldClassifier"
    with pytest.raises(AttributeError):
        multifield.not_a_thing  # noqa: B018
