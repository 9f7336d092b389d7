"""Tests of AttentionPooling: the layer contract, a hand-worked example, masks, properties, heads, precision, errors."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops
from layer_checks import gradients, right_padded, run_layer_test

from multifield.layers import AttentionPooling

FEW_EXAMPLES = settings(max_examples=25, deadline=None)


def numpy_outputs(layer, inputs, **kwargs):
    return [ops.convert_to_numpy(output) for output in keras.tree.flatten(layer(inputs, **kwargs))]


# --- the layer contract -------------------------------------------------------------------------------------------


def test_layer_contract_one_head(tmp_path):
    run_layer_test(
        AttentionPooling,
        {"units": 5},
        input_shape=(3, 4, 3),
        expected_output_shape=(3, 3),
        expected_num_trainable_weights=3,
        tmp_path=tmp_path,
    )


def test_layer_contract_heads_dropout_and_weights_output(tmp_path):
    layer, model = run_layer_test(
        AttentionPooling,
        {
            "heads": 2,
            "diversity_penalty": 0.1,
            "dropout": 0.2,
            "use_bias": False,
            "kernel_regularizer": "l2",
            "context_initializer": keras.initializers.RandomNormal(stddev=0.5, seed=1),
            "seed": 3,
        },
        input_shape=(3, 4, 3),
        expected_output_shape=[(3, 6), (3, 2, 4)],
        expected_symbolic_shape=[(None, 6), (None, 2, None)],
        expected_num_trainable_weights=2,
        expected_num_seed_generators=1,  # the attention dropout's
        call_kwargs={"return_attention_scores": True},
        tmp_path=tmp_path,
    )
    assert layer.units is None and layer.kernel.shape == (3, 3)
    assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)


def test_any_length_and_no_weight_depends_on_time():
    layer = AttentionPooling(units=3)
    token_ids = keras.Input(shape=(None,), dtype="int32")
    context = layer(keras.layers.Embedding(20, 4, mask_zero=True)(token_ids))
    model = keras.Model(token_ids, context)
    assert [tuple(weight.shape) for weight in layer.weights] == [(4, 3), (3,), (3, 1)]
    short = model.predict(np.array([[1, 2, 0]]), verbose=0)
    long = model.predict(np.array([[1, 2, 0, 0, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(short, long, rtol=1e-6)


# --- a 2-step example worked on paper ----------------------------------------------------------------------------


def test_hand_computed_two_steps_and_padding():
    # features = 2, units = 1: W = [[1], [0]], b = [0], v = [[2 ln 3]], so score_t = 2 ln 3 · tanh(h_t[0]).
    # h_1 = [ln(3)/2, 4]: tanh(ln(3)/2) = (e^{ln 3} - 1) / (e^{ln 3} + 1) = (3 - 1) / (3 + 1) = 1/2, score_1 = ln 3.
    # h_2 = [0, 8]:       tanh(0) = 0, score_2 = 0.
    # softmax: e^{ln 3} / (e^{ln 3} + e^0) = 3 / 4 and 1 / 4.
    # context = 3/4 · [ln(3)/2, 4] + 1/4 · [0, 8] = [3 ln(3) / 8, 3 + 2] = [0.41198..., 5].
    # A third step of huge values is padding: its weight must be exactly 0 and the result unchanged.
    layer = AttentionPooling(units=1)
    layer.build((None, None, 2))
    layer.set_weights([np.array([[1.0], [0.0]]), np.array([0.0]), np.array([[2 * math.log(3)]])])
    inputs = np.array([[[math.log(3) / 2, 4.0], [0.0, 8.0], [1e4, -1e4]]], dtype="float32")
    mask = np.array([[True, True, False]])

    context, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)

    np.testing.assert_allclose(weights, [[0.75, 0.25, 0.0]], rtol=1e-6)
    assert weights[0, 2] == 0.0
    np.testing.assert_allclose(context, [[3 * math.log(3) / 8, 5.0]], rtol=1e-6)
    without_padding = numpy_outputs(layer, inputs[:, :2], return_attention_scores=True)
    np.testing.assert_allclose(without_padding[0], context, rtol=1e-6)


def test_extreme_scores_give_a_one_hot_not_nan():
    # v = 1000: step 0 scores 1000 · tanh(-5) ≈ -1000, step 1 ≈ +1000, the (zeroed) padding 1000 · tanh(0) = 0.
    # Unmasked, the padding would be 1000 above the lowest step; exp must never see such a difference.
    layer = AttentionPooling(units=1)
    layer.build((None, None, 1))
    layer.set_weights([np.array([[1.0]]), np.array([0.0]), np.array([[1000.0]])])
    inputs = np.array([[[-5.0], [5.0], [0.0]], [[-5.0], [0.0], [0.0]]], dtype="float32")
    mask = np.array([[True, True, False], [True, False, False]])
    context, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    np.testing.assert_array_equal(weights, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(context, [[5.0], [-5.0]])


# --- masks ---------------------------------------------------------------------------------------------------------


def test_explicit_mask_gives_padding_exactly_zero_weight():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 1])
    context, weights = numpy_outputs(AttentionPooling(), inputs, mask=mask, return_attention_scores=True)
    assert (weights[~mask] == 0.0).all()
    assert (weights[mask] > 0.0).all()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    assert context.shape == (3, 3)


def test_int_and_float_masks_are_read_as_booleans():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 0])
    layer = AttentionPooling()
    expected = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    for other in (mask.astype("int32"), mask.astype("float32")):
        for got, want in zip(numpy_outputs(layer, inputs, mask=other, return_attention_scores=True), expected):
            np.testing.assert_array_equal(got, want)


def test_padding_values_never_matter_even_nan():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[2, 3, 0])
    garbage = inputs.copy()
    garbage[0, 2] = np.nan
    garbage[0, 3] = np.inf
    garbage[1, 3] = 1e6
    garbage[2] = -1e6
    layer = AttentionPooling()
    clean = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    dirty = numpy_outputs(layer, garbage, mask=mask, return_attention_scores=True)
    for got, want in zip(dirty, clean):
        np.testing.assert_array_equal(got, want)


def test_all_padding_row_gives_zeros_and_finite_gradients():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 0, 2])
    inputs[1] = 7.0  # the empty row's padding holds values
    layer = AttentionPooling(heads=2, diversity_penalty=0.5)
    context, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    assert np.isfinite(context).all() and np.isfinite(weights).all()
    assert (context[1] == 0.0).all()
    assert (weights[1] == 0.0).all()
    input_gradient, weight_gradients = gradients(layer, inputs, mask=mask, return_attention_scores=True)
    assert np.isfinite(input_gradient).all()
    assert all(np.isfinite(gradient).all() for gradient in weight_gradients)
    assert (input_gradient[~mask] == 0.0).all()  # padding gets no gradient
    assert any(np.abs(gradient).sum() > 0 for gradient in weight_gradients)


def test_every_row_empty_gives_zeros_and_finite_gradients():
    inputs = np.ones((3, 4, 3), dtype="float32")
    mask = np.zeros((3, 4), dtype=bool)
    layer = AttentionPooling()
    context, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    assert (context == 0.0).all() and (weights == 0.0).all()
    input_gradient, weight_gradients = gradients(layer, inputs, mask=mask)
    assert np.isfinite(input_gradient).all()
    assert all(np.isfinite(gradient).all() for gradient in weight_gradients)


def test_embedding_mask_is_picked_up_in_a_functional_model_returning_weights():
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedding = keras.layers.Embedding(30, 4, mask_zero=True)
    pooling = AttentionPooling()
    context, weights = pooling(embedding(token_ids), return_attention_scores=True)
    model = keras.Model(token_ids, [context, weights])
    assert tuple(weights.shape) == (None, None)
    ids = np.array([[3, 5, 7, 0, 0], [9, 0, 0, 0, 0], [0, 0, 0, 0, 0]])

    got_context, got_weights = model.predict(ids, verbose=0)

    assert (got_weights[ids == 0] == 0.0).all()
    np.testing.assert_allclose(got_weights[:2].sum(axis=-1), 1.0, rtol=1e-6)
    assert (got_context[2] == 0.0).all()
    want_context, want_weights = numpy_outputs(pooling, embedding(ids), mask=ids != 0, return_attention_scores=True)
    np.testing.assert_allclose(got_context, want_context, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_weights, want_weights, rtol=1e-5, atol=1e-7)


def test_bidirectional_lstm_mask_is_picked_up():
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(30, 4, mask_zero=True)(token_ids)
    sequences = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(embedded)
    context, weights = AttentionPooling()(sequences, return_attention_scores=True)
    model = keras.Model(token_ids, [context, weights])
    ids = np.array([[3, 5, 7, 0], [9, 0, 0, 0]])

    got_context, got_weights = model.predict(ids, verbose=0)

    assert (got_weights[ids == 0] == 0.0).all()
    np.testing.assert_allclose(got_weights.sum(axis=-1), 1.0, rtol=1e-6)
    # More padding changes nothing: the mask reached the attention through the RNN.
    longer = np.pad(ids, ((0, 0), (0, 3)))
    longer_context, longer_weights = model.predict(longer, verbose=0)
    np.testing.assert_allclose(longer_context, got_context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(longer_weights[:, :4], got_weights, rtol=1e-5, atol=1e-6)


def test_explicit_mask_overrides_the_propagated_one():
    inputs, _ = right_padded(batch=1, time=4, features=3, lengths=[4])
    layer = AttentionPooling()
    sequence = keras.Input(shape=(None, 3))
    explicit = keras.Input(shape=(None,), dtype="bool")
    _, weights = layer(keras.layers.Masking(0.0)(sequence), mask=explicit, return_attention_scores=True)
    model = keras.Model([sequence, explicit], weights)
    got = model.predict([inputs, np.array([[True, False, True, False]])], verbose=0)
    assert got[0, 1] == 0.0 and got[0, 3] == 0.0 and got[0, 0] > 0.0


# --- properties ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pooling():
    layer = AttentionPooling(units=4)
    layer.build((None, None, 3))
    return layer


# Few distinct shapes (the masks vary freely): on JAX every new shape compiles every operation once.
sequences = st.tuples(
    st.just(3),  # batch
    st.sampled_from([2, 4]),  # time
    st.integers(0, 2**31 - 1),  # seed of the values
).flatmap(
    lambda shape: st.tuples(
        st.just(shape),
        st.lists(st.integers(0, shape[1]), min_size=shape[0], max_size=shape[0]),  # lengths
    )
)


def random_sequences(shape, lengths):
    batch, time, seed = shape
    values = np.random.default_rng(seed).normal(scale=2.0, size=(batch, time, 3)).astype("float32")
    mask = np.arange(time)[None, :] < np.asarray(lengths)[:, None]
    return values, mask


@FEW_EXAMPLES
@given(sequences, st.sampled_from([2, 4]), st.integers(0, 2**31 - 1))
def test_appending_padding_changes_nothing(pooling, sequence, extra, padding_seed):
    values, mask = random_sequences(*sequence)
    padding = np.random.default_rng(padding_seed).normal(size=(values.shape[0], extra, 3)).astype("float32")
    padded_values = np.concatenate([values, padding], axis=1)
    padded_mask = np.concatenate([mask, np.zeros((values.shape[0], extra), dtype=bool)], axis=1)

    context, weights = numpy_outputs(pooling, values, mask=mask, return_attention_scores=True)
    padded_context, padded_weights = numpy_outputs(
        pooling, padded_values, mask=padded_mask, return_attention_scores=True
    )

    np.testing.assert_allclose(padded_context, context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded_weights[:, : values.shape[1]], weights, rtol=1e-5, atol=1e-7)
    assert (padded_weights[:, values.shape[1] :] == 0.0).all()


@FEW_EXAMPLES
@given(sequences)
def test_weights_are_a_distribution_over_the_unmasked_steps(pooling, sequence):
    values, mask = random_sequences(*sequence)
    context, weights = numpy_outputs(pooling, values, mask=mask, return_attention_scores=True)
    assert (weights >= 0.0).all()
    assert (weights[~mask] == 0.0).all()
    non_empty = mask.any(axis=-1)
    np.testing.assert_allclose(weights[non_empty].sum(axis=-1), 1.0, rtol=1e-6)
    assert (weights[~non_empty] == 0.0).all() and (context[~non_empty] == 0.0).all()
    # The context is the weighted sum of the unmasked steps.
    np.testing.assert_allclose(context, np.einsum("bt,btf->bf", weights, values * mask[..., None]), atol=1e-5)


@FEW_EXAMPLES
@given(sequences, st.randoms(use_true_random=False))
def test_permuting_the_steps_permutes_the_weights(pooling, sequence, random):
    values, mask = random_sequences(*sequence)
    permuted_values = values.copy()
    permutations = []
    for row, length in enumerate(mask.sum(axis=-1)):
        order = list(range(length))
        random.shuffle(order)
        permuted_values[row, :length] = values[row, order]
        permutations.append(order)

    context, weights = numpy_outputs(pooling, values, mask=mask, return_attention_scores=True)
    permuted_context, permuted_weights = numpy_outputs(
        pooling, permuted_values, mask=mask, return_attention_scores=True
    )

    for row, order in enumerate(permutations):
        np.testing.assert_allclose(permuted_weights[row, : len(order)], weights[row, order], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(permuted_context, context, rtol=1e-5, atol=1e-6)


# --- heads ---------------------------------------------------------------------------------------------------------


def test_heads_shapes_sums_and_concatenation_order():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 1])
    layer = AttentionPooling(heads=3)
    context, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    assert context.shape == (3, 9) and weights.shape == (3, 3, 4)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    assert (weights[1, :, 2:] == 0.0).all()
    for head in range(3):
        np.testing.assert_allclose(
            context[:, 3 * head : 3 * (head + 1)], np.einsum("bt,btf->bf", weights[:, head], inputs), atol=1e-5
        )


def test_diversity_penalty_value_and_sign():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 0])
    layer = AttentionPooling(heads=2, diversity_penalty=0.5)
    layer.build((None, None, 3))
    kernel, bias, context_vector = layer.get_weights()
    context_vector[:, 1] = context_vector[:, 0]  # both heads agree
    layer.set_weights([kernel, bias, context_vector])

    _, weights = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)

    assert len(layer.losses) == 1
    penalty = float(ops.convert_to_numpy(layer.losses[0]))
    gram = weights @ weights.transpose(0, 2, 1)
    identity = np.eye(2)[None] * mask.any(axis=-1)[:, None, None]  # the empty row contributes 0
    expected = 0.5 * np.mean(np.sum((gram - identity) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(penalty, expected, rtol=1e-5)
    assert penalty > 0.1

    numpy_outputs(layer, inputs, mask=mask)  # a second call replaces the loss, does not add to it
    assert len(layer.losses) == 1


def test_diversity_penalty_is_near_zero_when_heads_attend_to_different_steps():
    # Head 0 scores step 0 high, head 1 scores step 1 high, by a wide margin: A ≈ I, so ||A Aᵀ - I||² ≈ 0.
    layer = AttentionPooling(units=1, heads=2, diversity_penalty=1.0)
    layer.build((None, None, 1))
    layer.set_weights([np.array([[1.0]]), np.array([0.0]), np.array([[40.0, -40.0]])])
    inputs = np.array([[[3.0], [-3.0]]], dtype="float32")
    numpy_outputs(layer, inputs)
    assert float(ops.convert_to_numpy(layer.losses[0])) < 1e-6


def test_no_loss_without_penalty_or_with_one_head():
    inputs, _ = right_padded(batch=3, time=4, features=3)
    for kwargs in ({"heads": 2}, {"heads": 1, "diversity_penalty": 1.0}):
        layer = AttentionPooling(**kwargs)
        numpy_outputs(layer, inputs)
        assert layer.losses == []


def test_diversity_penalty_is_part_of_the_training_loss():
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 4, mask_zero=True)(token_ids)
    context = AttentionPooling(heads=2, diversity_penalty=100.0)(embedded)
    model = keras.Model(token_ids, keras.layers.Dense(1, kernel_initializer="zeros")(context))
    model.compile(optimizer="sgd", loss="mse")
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    loss = model.evaluate(ids, np.zeros((2, 1)), verbose=0)
    assert loss > 1.0  # the Dense output is 0, so all of it is the penalty
    history = model.fit(ids, np.zeros((2, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# --- precision and dropout -----------------------------------------------------------------------------------------


def test_mixed_float16_layer_computes_softmax_in_float32():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 3, 1])
    reference = AttentionPooling()
    reference.build((None, None, 3))
    mixed = AttentionPooling(dtype="mixed_float16")
    mixed.build((None, None, 3))
    mixed.set_weights(reference.get_weights())
    assert mixed.compute_dtype == "float16" and mixed.kernel.dtype == "float32"

    context, weights = mixed(inputs, mask=mask, return_attention_scores=True)
    assert keras.backend.standardize_dtype(context.dtype) == "float16"
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    context, weights = ops.convert_to_numpy(context), ops.convert_to_numpy(weights)
    want_context, want_weights = numpy_outputs(reference, inputs, mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-6)
    assert (weights[~mask] == 0.0).all()
    np.testing.assert_allclose(weights, want_weights, atol=5e-3)
    np.testing.assert_allclose(context.astype("float32"), want_context, atol=1e-2)


def test_global_mixed_precision_policy_in_a_model(float32_policy):
    keras.config.set_dtype_policy("mixed_float16")
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 4, mask_zero=True)(token_ids)
    context, weights = AttentionPooling(heads=2)(embedded, return_attention_scores=True)
    model = keras.Model(token_ids, [context, weights])
    assert context.dtype == "float16" and weights.dtype == "float32"
    got_context, got_weights = model.predict(np.array([[1, 2, 0], [0, 0, 0]]), verbose=0)
    assert np.isfinite(got_context).all() and (got_context[1] == 0).all()
    np.testing.assert_allclose(got_weights[0].sum(axis=-1), 1.0, rtol=1e-6)


def test_dropout_only_in_training():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 4, 3])
    layer = AttentionPooling(dropout=0.5, seed=7)
    inference = numpy_outputs(layer, inputs, mask=mask, training=False, return_attention_scores=True)
    again = numpy_outputs(layer, inputs, mask=mask, return_attention_scores=True)
    for got, want in zip(again, inference):
        np.testing.assert_array_equal(got, want)

    context, weights = numpy_outputs(layer, inputs, mask=mask, training=True, return_attention_scores=True)

    assert not np.allclose(context, inference[0])
    np.testing.assert_array_equal(weights, inference[1])  # the weights returned are the ones before dropout


# --- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heads": 0}, "heads=0"),
        ({"heads": 1.5}, "heads=1.5"),
        ({"units": 0}, "units=0"),
        ({"dropout": 1.0}, r"dropout=1\.0"),
        ({"diversity_penalty": -1}, "diversity_penalty=-1"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionPooling(**kwargs)


def test_two_dimensional_input_is_refused():
    with pytest.raises(ValueError, match=r"\(batch, time, features\).*2 dimensions"):
        AttentionPooling()(keras.Input(shape=(8,)))
    with pytest.raises(ValueError, match=r"2 dimensions"):
        AttentionPooling()(np.zeros((2, 8), dtype="float32"))
