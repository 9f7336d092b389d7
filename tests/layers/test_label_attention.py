"""Tests of LabelAttention: the layer contract, the formula against NumPy, exact zeros on padding, an all-padding
row without NaN, the weights mixed into one row per record, and the label-wise RecurrentAttentionEncoder."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_checks import gradients, right_padded, run_layer_test

from multifield.layers import LabelAttention, RecurrentAttentionEncoder
from multifield.layers.label_attention import mixed_label_attention


def test_layer_contract_returning_weights(tmp_path):
    layer, _ = run_layer_test(
        LabelAttention,
        {"labels": 5, "dropout": 0.2, "seed": 3},
        input_shape=(3, 4, 6),
        expected_output_shape=[(3, 5), (3, 5, 4)],
        expected_symbolic_shape=[(None, 5), (None, 5, None)],
        expected_num_trainable_weights=3,  # queries, read-out vectors, biases
        expected_num_seed_generators=1,
        call_kwargs={"return_attention_scores": True},
        tmp_path=tmp_path,
    )
    assert layer.queries.shape == (6, 5) and layer.readout.shape == (5, 6)


def test_equals_the_formula_in_numpy():
    inputs, mask = right_padded(batch=3, time=5, features=4, lengths=[5, 3, 1])
    layer = LabelAttention(3, bias_initializer="random_normal")
    logits, weights = (ops.convert_to_numpy(x) for x in layer(inputs, mask=mask, return_attention_scores=True))
    queries, readout, bias = (ops.convert_to_numpy(w) for w in (layer.queries, layer.readout, layer.bias))
    for row in range(3):
        steps = inputs[row][mask[row]]
        for label in range(3):
            scores = steps @ queries[:, label]
            expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
            np.testing.assert_allclose(weights[row, label, mask[row]], expected, rtol=1e-5)
            np.testing.assert_allclose(logits[row, label], readout[label] @ (expected @ steps) + bias[label], rtol=1e-5, atol=1e-6)


def test_padding_gets_exactly_zero_weight_whatever_it_holds():
    inputs, mask = right_padded(batch=2, time=6, features=4, lengths=[4, 2])
    layer = LabelAttention(7)
    logits, weights = (ops.convert_to_numpy(x) for x in layer(inputs, mask=mask, return_attention_scores=True))
    noisy = inputs.copy()
    noisy[~mask] = np.nan
    noisy_logits, noisy_weights = (ops.convert_to_numpy(x) for x in layer(noisy, mask=mask, return_attention_scores=True))
    assert (weights.transpose(0, 2, 1)[~mask] == 0).all()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(noisy_weights, weights)
    np.testing.assert_array_equal(noisy_logits, logits)


def test_an_all_padding_row_gives_the_bias_and_finite_gradients():
    inputs, mask = right_padded(batch=2, time=3, features=4, lengths=[3, 0])
    layer = LabelAttention(4, bias_initializer="ones")
    logits, weights = (ops.convert_to_numpy(x) for x in layer(inputs, mask=mask, return_attention_scores=True))
    assert (weights[1] == 0).all()
    np.testing.assert_array_equal(logits[1], np.ones(4, dtype="float32"))
    mixed = ops.convert_to_numpy(mixed_label_attention(logits, weights))
    assert (mixed[1] == 0).all() and np.isfinite(mixed).all()
    if keras.backend.backend() not in ("jax", "torch"):
        pytest.skip("gradients are checked on JAX and PyTorch")
    masked_inputs = keras.layers.Masking(0.0)
    model_layer = keras.Sequential([keras.Input((3, 4)), masked_inputs, LabelAttention(4)])
    input_gradient, weight_gradients = gradients(model_layer, inputs)
    assert np.isfinite(input_gradient).all() and all(np.isfinite(g).all() for g in weight_gradients)


def test_mixed_weights_are_one_row_that_sums_to_one_and_leans_to_the_top_label():
    weights = np.array([[[0.7, 0.3, 0.0], [0.0, 0.2, 0.8]]], dtype="float32")  # (batch 1, labels 2, time 3)
    mixed = ops.convert_to_numpy(mixed_label_attention(np.array([[4.0, -4.0]], dtype="float32"), weights))
    assert mixed.shape == (1, 3)
    np.testing.assert_allclose(mixed.sum(), 1.0, rtol=1e-6)
    assert mixed[0, 2] == pytest.approx(0.8 / (1 + np.exp(8.0)), rel=1e-4)  # the low-scored label speaks little
    assert mixed[0, 0] > 0.69


def test_label_wise_encoder_returns_logits_and_one_weight_row(tmp_path):
    layer, _ = run_layer_test(
        RecurrentAttentionEncoder,
        {"units": 3, "cell": "gru", "labels": 4, "label_dropout": 0.1},
        input_shape=(3, 5, 2),
        expected_output_shape=[(3, 4), (3, 5)],
        expected_symbolic_shape=[(None, 4), (None, None)],
        expected_num_trainable_weights=9,  # forward + backward GRU (3 each) + label attention (3)
        expected_num_seed_generators=3,  # two GRUs and the label dropout
        call_kwargs={"return_attention_scores": True},
        tmp_path=tmp_path,
    )
    assert layer.attention_pooling is None
    inputs, mask = right_padded(batch=3, time=5, features=2, lengths=[5, 2, 0])
    logits, weights = (ops.convert_to_numpy(x) for x in layer(inputs, mask=mask, return_attention_scores=True))
    assert (weights[~mask] == 0).all() and np.isfinite(logits).all()
    np.testing.assert_allclose(weights[:2].sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"labels": 0}, "`labels` must be a positive integer"), ({"labels": 3, "dropout": 1.0}, "`dropout` must be a float")],
)
def test_bad_arguments_are_refused_with_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LabelAttention(**kwargs)
