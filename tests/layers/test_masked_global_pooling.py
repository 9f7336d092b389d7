"""Tests of MaskedGlobalPooling: the layer contract, pooling by hand, empty rows, errors."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_checks import gradients, right_padded, run_layer_test

from multifield.layers import MaskedGlobalPooling


@pytest.mark.parametrize(("mode", "width"), [("max", 3), ("mean", 3), ("max_mean", 6)])
def test_layer_contract(mode, width, tmp_path):
    run_layer_test(
        MaskedGlobalPooling,
        {"mode": mode},
        input_shape=(3, 4, 3),
        lengths=[4, 2, 0],
        expected_output_shape=(3, width),
        expected_num_trainable_weights=0,
        tmp_path=tmp_path,
    )


def test_pools_only_the_unmasked_steps():
    # Row 0: steps [1, -2], [3, -4] and padding [9, 9]: max [3, -2], mean [2, -3].
    # Row 1: every step is padding: zeros.
    inputs = np.array([[[1.0, -2.0], [3.0, -4.0], [9.0, 9.0]], [[5.0, 5.0], [-6.0, 6.0], [7.0, 7.0]]], "float32")
    mask = np.array([[True, True, False], [False, False, False]])
    pooled = ops.convert_to_numpy(MaskedGlobalPooling("max_mean")(inputs, mask=mask))
    np.testing.assert_array_equal(pooled, [[3.0, -2.0, 2.0, -3.0], [0.0, 0.0, 0.0, 0.0]])


def test_negative_values_are_not_lost_to_padding():
    # A zero-filled max (what a plain max over zero padding gives) would return 0 here.
    inputs = np.array([[[-5.0], [-3.0], [0.0]]], "float32")
    mask = np.array([[True, True, False]])
    assert ops.convert_to_numpy(MaskedGlobalPooling("max")(inputs, mask=mask))[0, 0] == -3.0


def test_without_a_mask_every_step_counts():
    inputs, _ = right_padded(batch=3, time=4, features=3)
    pooled = ops.convert_to_numpy(MaskedGlobalPooling("max_mean")(inputs))
    np.testing.assert_allclose(pooled, np.concatenate([inputs.max(axis=1), inputs.mean(axis=1)], -1), rtol=1e-6)


def test_embedding_mask_is_used_and_empty_fields_give_zeros():
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedding = keras.layers.Embedding(10, 3, mask_zero=True)
    model = keras.Model(token_ids, MaskedGlobalPooling("max_mean")(embedding(token_ids)))
    ids = np.array([[1, 2, 0, 0], [0, 0, 0, 0]])
    pooled = model.predict(ids, verbose=0)
    table = ops.convert_to_numpy(embedding.embeddings)
    np.testing.assert_allclose(pooled[0], np.concatenate([table[[1, 2]].max(0), table[[1, 2]].mean(0)]), rtol=1e-6)
    assert (pooled[1] == 0.0).all()


@pytest.mark.parametrize("mode", ["max", "mean", "max_mean", "sum", "sqrtn"])
def test_empty_rows_have_finite_gradients(mode):
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 0])
    input_gradient, _ = gradients(MaskedGlobalPooling(mode), inputs, mask=mask)
    assert np.isfinite(input_gradient).all()
    assert (input_gradient[~mask] == 0.0).all()


def test_sum_and_sqrtn_by_hand():
    inputs = np.array([[[1.0], [2.0], [6.0], [100.0]], [[5.0], [5.0], [5.0], [5.0]]], "float32")
    mask = np.array([[True, True, True, False], [False, False, False, False]])
    total = ops.convert_to_numpy(MaskedGlobalPooling("sum")(inputs, mask=mask))
    scaled = ops.convert_to_numpy(MaskedGlobalPooling("sqrtn")(inputs, mask=mask))
    np.testing.assert_allclose(total[:, 0], [9.0, 0.0])
    np.testing.assert_allclose(scaled[:, 0], [9.0 / np.sqrt(3.0), 0.0], rtol=1e-6)


def test_mixed_precision_mean_of_a_long_sequence_does_not_overflow():
    # 2000 steps of 60: the float16 sum (120,000) would overflow to inf; the mean is accumulated in float32.
    inputs = np.full((1, 2000, 1), 60.0, "float32")
    pooled = MaskedGlobalPooling("mean", dtype="mixed_float16")(inputs)
    assert keras.backend.standardize_dtype(pooled.dtype) == "float16"
    assert ops.convert_to_numpy(pooled)[0, 0] == 60.0


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match=r"\['max', 'mean', 'max_mean', 'sum', 'sqrtn'\]. Received: mode='median'"):
        MaskedGlobalPooling("median")


def test_two_dimensional_input_is_refused():
    with pytest.raises(ValueError, match="2 dimensions"):
        MaskedGlobalPooling()(keras.Input(shape=(8,)))
