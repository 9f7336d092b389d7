"""LogitBlend: wide + intercept + scale * deep, with the intercepts and the scale saved as weights."""

import keras
import numpy as np
import pytest
from keras import ops

from multifield.layers import LogitBlend


def _model(units=3):
    wide, deep = keras.Input((units,)), keras.Input((units,))
    blend = LogitBlend(units, name="logits")
    return keras.Model([wide, deep], blend([wide, deep])), blend


def test_adds_the_intercepts_and_weighs_the_deep_logits():
    model, blend = _model()
    blend.intercept.assign(np.array([0.5, -1.0, 2.0], "float32"))
    blend.scale.assign(0.25)
    wide = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], "float32")
    deep = np.array([[4.0, -4.0, 8.0], [1.0, 1.0, 1.0]], "float32")
    np.testing.assert_allclose(model.predict([wide, deep], verbose=0), [[2.5, 0.0, 7.0], [0.75, -0.75, 2.25]], rtol=1e-6)


def test_nothing_in_it_is_trained_and_a_new_layer_adds_the_logits():
    model, blend = _model()
    assert blend.trainable_weights == [] and len(blend.non_trainable_weights) == 2
    ones = np.ones((1, 3), "float32")
    np.testing.assert_allclose(model.predict([ones, 2 * ones], verbose=0), 3 * ones)


def test_keras_file_round_trip_keeps_the_weights(tmp_path):
    model, blend = _model()
    blend.intercept.assign(np.array([1.0, 2.0, 3.0], "float32"))
    blend.scale.assign(0.4)
    model.save(tmp_path / "blend.keras")
    loaded = keras.saving.load_model(tmp_path / "blend.keras", safe_mode=True)
    inputs = [np.random.default_rng(0).normal(size=(4, 3)).astype("float32") for _ in range(2)]
    np.testing.assert_array_equal(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0))
    assert float(ops.convert_to_numpy(loaded.get_layer("logits").scale)) == pytest.approx(0.4)
    assert LogitBlend.from_config(blend.get_config()).units == 3


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="positive integer"):
        LogitBlend(0)
    with pytest.raises(ValueError, match="positive integer"):
        LogitBlend(True)
