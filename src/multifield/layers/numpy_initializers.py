"""Weight initializers drawn by NumPy: the distributions of Keras' ``glorot_uniform``, ``orthogonal``, ``uniform``
and ``zeros``, without a compiled function per weight shape.

On JAX, each Keras initializer is a jitted function compiled once for every shape it fills: 0.15-0.3 s each on a
laptop CPU, seconds for a model whose weights are all of different shapes, paid before the first training step.
NumPy draws the same distributions in microseconds. With no ``seed``, they draw from NumPy's global generator,
which ``keras.utils.set_random_seed`` seeds: a model built after it is the same model every time.

>>> import keras
>>> keras.utils.set_random_seed(0)
>>> kernel = GlorotUniform()((64, 32), dtype="float32")
>>> kernel.dtype, bool(abs(kernel).max() <= (6 / (64 + 32)) ** 0.5)
(dtype('float32'), True)
"""

from __future__ import annotations

import math

import keras
import numpy as np


def _random(seed: int | None):
    """NumPy's global generator (seeded by ``keras.utils.set_random_seed``), or a generator of its own for ``seed``."""
    return np.random if seed is None else np.random.RandomState(seed)


def _numpy_dtype(dtype) -> np.dtype:
    return np.dtype(keras.backend.standardize_dtype(dtype or keras.config.floatx()))


def _fans(shape) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of ``shape``, as Keras counts them."""
    shape = tuple(int(size) for size in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class _NumpyInitializer(keras.initializers.Initializer):
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="multifield")
class GlorotUniform(_NumpyInitializer):
    """Uniform in ``[-limit, limit]``, ``limit = sqrt(6 / (fan_in + fan_out))`` (Glorot and Bengio, 2010)."""

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape)
        limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
        return _random(self.seed).uniform(-limit, limit, size=tuple(shape)).astype(_numpy_dtype(dtype))


@keras.saving.register_keras_serializable(package="multifield")
class RandomUniform(_NumpyInitializer):
    """Uniform in ``[minval, maxval]``; Keras' ``"uniform"`` (an embedding's default) is ``[-0.05, 0.05]``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return _random(self.seed).uniform(self.minval, self.maxval, size=tuple(shape)).astype(_numpy_dtype(dtype))

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@keras.saving.register_keras_serializable(package="multifield")
class Orthogonal(_NumpyInitializer):
    """An orthogonal matrix (the Q of a Gaussian matrix's QR decomposition, signs fixed), as Keras draws a
    recurrent kernel (Saxe et al., 2014)."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(size) for size in shape)
        rows, columns = math.prod(shape[:-1]), shape[-1]
        gaussian = _random(self.seed).standard_normal((max(rows, columns), min(rows, columns)))
        q, r = np.linalg.qr(gaussian)
        q = q * np.sign(np.diag(r))
        if rows < columns:
            q = q.T
        return q.reshape(shape).astype(_numpy_dtype(dtype))


@keras.saving.register_keras_serializable(package="multifield")
class Zeros(keras.initializers.Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(tuple(shape), dtype=_numpy_dtype(dtype))

    def get_config(self):
        return {}


def attention_pooling_initializers() -> dict:
    """``AttentionPooling``'s default initializers (``glorot_uniform``, ``zeros``, ``glorot_uniform``), drawn by NumPy."""
    return {"kernel_initializer": GlorotUniform(), "bias_initializer": Zeros(), "context_initializer": GlorotUniform()}


def label_attention_initializers() -> dict:
    """``LabelAttention``'s initializers, drawn by NumPy."""
    return {"query_initializer": GlorotUniform(), "readout_initializer": GlorotUniform(), "bias_initializer": Zeros()}


def recurrent_initializers() -> dict:
    """A Keras GRU's or LSTM's default initializers (``glorot_uniform``, ``orthogonal``, ``zeros``), drawn by NumPy."""
    return {"kernel_initializer": GlorotUniform(), "recurrent_initializer": Orthogonal(), "bias_initializer": Zeros()}


__all__ = ["GlorotUniform", "Orthogonal", "RandomUniform", "Zeros", "attention_pooling_initializers", "recurrent_initializers"]
