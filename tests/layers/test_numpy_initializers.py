"""The NumPy-drawn initializers: Keras' distributions, seeded by ``keras.utils.set_random_seed``, and saved with
the model."""

import keras
import numpy as np
import pytest

from multifield.layers import RecurrentAttentionEncoder
from multifield.layers.numpy_initializers import GlorotUniform, Orthogonal, RandomUniform, Zeros


def test_glorot_uniform_stays_within_its_limit_and_fills_it():
    keras.utils.set_random_seed(0)
    kernel = GlorotUniform()((300, 100), dtype="float32")
    limit = np.sqrt(6 / 400)
    assert kernel.dtype == np.float32 and kernel.shape == (300, 100)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit
    assert abs(float(kernel.mean())) < 0.01 and abs(float(kernel.var()) - limit**2 / 3) < 0.05 * limit**2 / 3


@pytest.mark.parametrize("shape", [(48, 144), (144, 48), (32, 32)])
def test_orthogonal_rows_or_columns_are_orthonormal(shape):
    matrix = Orthogonal(seed=3)(shape, dtype="float32").astype(np.float64)
    gram = matrix.T @ matrix if shape[0] >= shape[1] else matrix @ matrix.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-5)


def test_uniform_and_zeros():
    values = RandomUniform(-0.05, 0.05, seed=1)((1000, 8))
    assert values.min() >= -0.05 and values.max() <= 0.05 and values.std() > 0.02
    assert not Zeros()((4, 3), dtype="float32").any()


def test_the_same_seed_draws_the_same_weights_and_another_seed_others():
    def draw(seed):
        keras.utils.set_random_seed(seed)
        return GlorotUniform()((20, 10)), Orthogonal()((10, 30))

    first, again, other = draw(7), draw(7), draw(8)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)
    np.testing.assert_array_equal(GlorotUniform(seed=5)((6, 6)), GlorotUniform(seed=5)((6, 6)))


def test_a_bidirectional_encoders_two_directions_start_from_different_weights():
    keras.utils.set_random_seed(0)
    encoder = RecurrentAttentionEncoder(units=8, cell="gru")
    encoder.build((None, None, 5))
    forward, backward = encoder.recurrent_layers[0].forward_layer, encoder.recurrent_layers[0].backward_layer
    assert not np.allclose(keras.ops.convert_to_numpy(forward.cell.kernel), keras.ops.convert_to_numpy(backward.cell.kernel))


def test_a_model_built_with_them_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(50, 6, mask_zero=True, embeddings_initializer=RandomUniform())(inputs)
    pooled = RecurrentAttentionEncoder(units=4, cell="lstm")(embedded)
    outputs = keras.layers.Dense(3, kernel_initializer=GlorotUniform(), bias_initializer=Zeros())(pooled)
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    ids = np.array([[3, 4, 5, 0], [7, 0, 0, 0]], dtype="int32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(ids)), keras.ops.convert_to_numpy(model(ids)), atol=1e-6)
    assert isinstance(loaded.layers[-1].kernel_initializer, GlorotUniform)
