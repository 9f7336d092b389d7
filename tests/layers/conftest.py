"""Makes the package importable from a plain checkout and selects the Keras backend (JAX unless KERAS_BACKEND says
otherwise) before any test module imports Keras."""

import importlib.util
import pathlib
import sys

if importlib.util.find_spec("multifield") is None:
    # Not installed (no `pip install -e .` yet): read it from the src layout.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "src"))

import keras  # noqa: E402
import pytest  # noqa: E402

import multifield  # noqa: E402,F401  (sets KERAS_BACKEND=jax where the user set none)


@pytest.fixture
def float32_policy():
    """Restores the global dtype policy after a test that changes it."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)
