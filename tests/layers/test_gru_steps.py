"""Tests of the GRU that runs only the steps its batch holds (`multifield.layers.gru_steps`, JAX): the same outputs
and gradients as Keras' GRU layers under any mask, no step after the batch's longest record, and the encoder and
the training batches that use it."""

import keras
import numpy as np
import pytest
from layer_checks import right_padded

from multifield.config import config_from_dict
from multifield.data.batches import trims_sort_field
from multifield.data.bucketed_batches import BucketedBatches
from multifield.layers import RecurrentAttentionEncoder, recurrent_encoder

if keras.backend.backend() != "jax":
    pytest.skip("gru_steps is the JAX backend's", allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from multifield.layers.gru_steps import gru_sequences, steps_matmul, steps_to_run  # noqa: E402


def keras_gru(units, features, bidirectional):
    layer = keras.layers.GRU(units, return_sequences=True)
    if bidirectional:
        backward = keras.layers.GRU(units, return_sequences=True, go_backwards=True)
        layer = keras.layers.Bidirectional(layer, backward_layer=backward)
    layer.build((None, None, features))
    for weight in layer.trainable_weights:  # non-zero biases, so that a zero state would not hide a bug
        weight.assign(np.random.default_rng(weight.shape[-1]).normal(size=weight.shape).astype("float32") * 0.5)
    return layer


def weights_of(layer, bidirectional):
    layers = (layer.forward_layer, layer.backward_layer) if bidirectional else (layer,)
    return [[jnp.asarray(weight.value) for weight in each.cell.weights] for each in layers]


def cases():
    inputs, mask = right_padded(batch=5, time=9, features=4, lengths=[9, 3, 0, 6, 1])
    yield "right-padded, one row empty", inputs, mask
    inputs = inputs.copy()
    inputs[~mask] = 3.0  # whatever the padding holds
    yield "padding that is not zero", inputs, mask
    left = mask[:, ::-1].copy()
    yield "left-padded", np.where(left[..., None], inputs, 0.0).astype("float32"), left
    holes = mask.copy()
    holes[0, 2] = holes[3, 1] = False
    yield "masked steps inside a record", inputs, holes


@pytest.mark.parametrize("bidirectional", [True, False])
def test_same_outputs_and_gradients_as_keras(bidirectional):
    layer = keras_gru(3, 4, bidirectional)
    ntv = [v.value for v in layer.non_trainable_variables]
    order = np.arange(1, 1 + (6 if bidirectional else 3), dtype="float32")  # weights the outputs unequally

    # A Keras GRU outside Bidirectional repeats its last output at a masked step, where ours gives zero (as
    # Bidirectional does); the steps read are the same.
    def keras_loss(tv, x, m):
        return jnp.sum(layer.stateless_call(tv, ntv, x, mask=m)[0] ** 2 * order * m[..., None])

    def our_loss(weights, x, m):
        return jnp.sum(gru_sequences(x, m, *weights) ** 2 * order * m[..., None])

    for case, inputs, mask in cases():
        tv = [v.value for v in layer.trainable_variables]
        weights = weights_of(layer, bidirectional)
        want = np.asarray(layer(inputs, mask=mask))
        got = np.asarray(jax.jit(gru_sequences)(inputs, mask, *weights))
        np.testing.assert_allclose(got[mask], want[mask], rtol=1e-6, atol=1e-6, err_msg=case)
        assert (got[~mask] == 0.0).all(), case
        if bidirectional:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=case)
        (want_weights, want_inputs) = jax.grad(keras_loss, argnums=(0, 1))(tv, inputs, mask)
        (got_weights, got_inputs) = jax.jit(jax.grad(our_loss, argnums=(0, 1)))(weights, inputs, mask)
        for got_grad, want_grad in zip(jax.tree.leaves(got_weights), want_weights):
            np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-5, err_msg=case)
        np.testing.assert_allclose(got_inputs, want_inputs, rtol=1e-4, atol=1e-5, err_msg=case)


def test_steps_after_the_longest_record_do_not_run():
    inputs, mask = right_padded(batch=3, time=12, features=4, lengths=[5, 2, 0])
    assert int(steps_to_run(jnp.asarray(mask))) == 5
    assert int(steps_to_run(jnp.zeros((3, 7), bool))) == 0
    layer = keras_gru(3, 4, True)
    weights = weights_of(layer, True)
    poisoned = inputs.copy()
    poisoned[:, 5:] = np.nan  # a step that ran would carry NaN into the outputs or the gradients
    loss = jax.jit(jax.value_and_grad(lambda w, x: jnp.sum(gru_sequences(x, mask, *w) ** 2), argnums=(0, 1)))
    value, (weight_grads, input_grads) = loss(weights, poisoned)
    want_value, (want_weight_grads, _) = loss(weights, inputs)
    assert np.isfinite(value) and value == pytest.approx(float(want_value), rel=1e-6)
    for got, want in zip(jax.tree.leaves(weight_grads), jax.tree.leaves(want_weight_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert (np.asarray(input_grads)[:, 5:] == 0.0).all()
    # An all-padding batch: zero outputs, zero gradients, no NaN.
    empty = np.zeros_like(inputs)
    none = np.zeros_like(mask)
    outputs = gru_sequences(empty, none, *weights)
    grads = jax.grad(lambda w: jnp.sum(gru_sequences(empty, none, *w) ** 2))(weights)
    assert (np.asarray(outputs) == 0.0).all()
    assert all((np.asarray(g) == 0.0).all() for g in jax.tree.leaves(grads))


def test_steps_matmul_projects_the_steps_some_record_holds():
    inputs, mask = right_padded(batch=3, time=8, features=4, lengths=[2, 5, 0])
    inputs[:, 2:5] += 1.0  # held by the second record only; zero in the others' padding would hide nothing
    kernel = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    got = np.asarray(jax.jit(steps_matmul)(inputs, mask, kernel))
    np.testing.assert_allclose(got[:, :5], inputs[:, :5] @ kernel, rtol=1e-5, atol=1e-6)
    assert (got[:, 5:] == 0.0).all()
    target = np.random.default_rng(2).normal(size=got.shape).astype("float32")

    def loss(function):
        return lambda x, k: jnp.sum((function(x, k) - target)[:, :5] ** 2)

    want = jax.grad(loss(lambda x, k: x @ k), argnums=(0, 1))(inputs, kernel)
    grads = jax.grad(loss(lambda x, k: steps_matmul(x, mask, k)), argnums=(0, 1))(inputs, kernel)
    for got_grad, want_grad in zip(grads, want):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_encoder_gives_what_keras_layers_give(monkeypatch, bidirectional):
    inputs, mask = right_padded(batch=4, time=7, features=3, lengths=[7, 2, 0, 4])
    encoder = RecurrentAttentionEncoder(units=3, cell="gru", bidirectional=bidirectional, num_layers=2)
    context, weights = encoder(inputs, mask=mask, return_attention_scores=True)
    monkeypatch.setattr(recurrent_encoder, "runs_only_needed_steps", lambda *args: False)
    want_context, want_weights = encoder(inputs, mask=mask, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(context), np.asarray(want_context), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(want_weights), rtol=1e-5, atol=1e-6)
    assert (np.asarray(weights)[~mask] == 0.0).all()


def test_only_a_gru_without_dropout_runs_the_needed_steps():
    assert recurrent_encoder.runs_only_needed_steps("gru")
    assert not recurrent_encoder.runs_only_needed_steps("lstm")
    assert not recurrent_encoder.runs_only_needed_steps("gru", dropout=0.1)
    assert not recurrent_encoder.runs_only_needed_steps("gru", recurrent_dropout=0.1)


def _config(**plot):
    return config_from_dict({
        "labels": {"field": "genres"},
        "fields": {"plot": {"kind": "text", "encoder": "rnn_attention", "max_tokens": 64, **plot}},
    })


def test_training_batches_keep_the_full_width_for_such_a_gru():
    assert not trims_sort_field(_config(cell="gru"))
    assert trims_sort_field(_config(cell="lstm"))
    assert trims_sort_field(_config(cell="gru", recurrent_input_dropout=0.2))
    ids = np.zeros((40, 64), dtype=np.int32)
    for row in range(40):
        ids[row, : row % 9 + 1] = row + 1
    labels = np.zeros((40, 2), dtype=np.float32)
    full = BucketedBatches({"plot": ids}, labels, 8, "plot", trim=False)
    trimmed = BucketedBatches({"plot": ids}, labels, 8, "plot")
    assert {full[i][0]["plot"].shape[1] for i in range(len(full))} == {64}
    assert {trimmed[i][0]["plot"].shape[1] for i in range(len(trimmed))} == {16}  # the width step of 64 tokens
