"""The masked GRU recurrence on JAX, run for as many time steps as the batch has, not as many as its width.

Keras' GRU runs a ``lax.scan`` over every step of its input, so each padded width is a new shape for XLA to
compile, and a batch padded to the longest record pays for every padding step. ``gru_steps`` loops with a
bound read from the mask at run time instead: one compiled function serves a batch of any length up to its
width, and skips the steps after the last one that any record has. Its gradient is written out (a
``jax.custom_vjp``), since JAX cannot differentiate a loop of dynamic length; the forward pass keeps the gates
of each step for it.

The computation is Keras' ``GRU`` with ``reset_after=True`` (the default), ``tanh`` and ``sigmoid``, no dropout:
for a masked step the state is carried over and the output is zero, as in a Keras ``Bidirectional`` layer (a
Keras GRU on its own repeats its last output there instead). Everything stays batch-major: the loops read and
write one time step of each array; a time-major copy for them would cost more than the loop, in the layout
XLA then gives the attention's product.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def steps_to_run(mask: jax.Array) -> jax.Array:
    """The number of leading time steps that hold a token of some record: steps after it are padding for all.
    ``mask`` is ``(batch, time)``."""
    any_step = jnp.any(mask, axis=0)
    return jnp.where(jnp.any(any_step), mask.shape[1] - jnp.argmax(any_step[::-1]), 0)


def _gates(x, h, kernel, recurrent_kernel, bias):
    units = h.shape[-1]
    projected = x @ kernel + bias[0]
    inner = h @ recurrent_kernel + bias[1]
    z = jax.nn.sigmoid(projected[:, :units] + inner[:, :units])
    r = jax.nn.sigmoid(projected[:, units : 2 * units] + inner[:, units : 2 * units])
    inner_h = inner[:, 2 * units :]
    candidate = jnp.tanh(projected[:, 2 * units :] + r * inner_h)
    return z, r, inner_h, candidate


def _order(reverse: bool, count, index):
    """The time step of the ``index``-th iteration of a loop over ``count`` steps."""
    return count - 1 - index if reverse else index


def _at(array, t):
    return jax.lax.dynamic_index_in_dim(array, t, axis=1, keepdims=False)


def _set(array, t, value):
    return jax.lax.dynamic_update_index_in_dim(array, value, t, axis=1)


def _forward(sequences, mask, kernel, recurrent_kernel, bias, reverse):
    batch, time, _ = sequences.shape
    units = recurrent_kernel.shape[0]
    count = steps_to_run(mask)

    def step(index, carry):
        h, outputs, previous, z_all, r_all, inner_all, candidate_all = carry
        t = _order(reverse, count, index)
        z, r, inner_h, candidate = _gates(_at(sequences, t), h, kernel, recurrent_kernel, bias)
        new = z * h + (1 - z) * candidate
        keep = _at(mask, t)[:, None]
        return (
            jnp.where(keep, new, h),
            _set(outputs, t, jnp.where(keep, new, 0)),
            _set(previous, t, h),
            _set(z_all, t, z),
            _set(r_all, t, r),
            _set(inner_all, t, inner_h),
            _set(candidate_all, t, candidate),
        )

    start = tuple(jnp.zeros(shape, sequences.dtype) for shape in [(batch, units)] + [(batch, time, units)] * 6)
    _, outputs, *saved = jax.lax.fori_loop(0, count, step, start)
    return outputs, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_steps(sequences, mask, kernel, recurrent_kernel, bias, reverse=False):
    """Outputs ``(batch, time, units)`` of a GRU over ``sequences`` ``(batch, time, features)`` under ``mask``
    ``(batch, time)``, with a Keras GRU cell's weights: ``kernel`` ``(features, 3 * units)`` and
    ``recurrent_kernel`` ``(units, 3 * units)`` (gates in Keras' order: update, reset, candidate), ``bias``
    ``(2, 3 * units)`` (input and recurrent biases); ``reverse`` reads the steps from the last to the first
    (Keras' ``go_backwards``, with the outputs back in input order)."""
    return _forward(sequences, mask, kernel, recurrent_kernel, bias, reverse)[0]


def _gru_steps_forward(sequences, mask, kernel, recurrent_kernel, bias, reverse):
    outputs, saved = _forward(sequences, mask, kernel, recurrent_kernel, bias, reverse)
    return outputs, (sequences, mask, kernel, recurrent_kernel, saved)


def _gru_steps_backward(reverse, residuals, output_gradient):
    sequences, mask, kernel, recurrent_kernel, (previous, z_all, r_all, inner_all, candidate_all) = residuals
    count = steps_to_run(mask)

    def step(index, carry):
        dh, d_sequences, d_kernel, d_recurrent, d_bias = carry
        t = _order(not reverse, count, index)  # the forward loop's steps, last first
        keep = _at(mask, t)[:, None]
        g = dh + jnp.where(keep, _at(output_gradient, t), 0)
        h, z, r, inner_h, candidate = (_at(saved, t) for saved in (previous, z_all, r_all, inner_all, candidate_all))
        d_candidate = g * (1 - z) * (1 - candidate * candidate)
        d_z = g * (h - candidate) * z * (1 - z)
        d_r = d_candidate * inner_h * r * (1 - r)
        d_projected = jnp.where(keep, jnp.concatenate([d_z, d_r, d_candidate], axis=-1), 0)
        d_inner = jnp.where(keep, jnp.concatenate([d_z, d_r, d_candidate * r], axis=-1), 0)
        return (
            jnp.where(keep, g * z + d_inner @ recurrent_kernel.T, g),
            _set(d_sequences, t, d_projected @ kernel.T),
            d_kernel + _at(sequences, t).T @ d_projected,
            d_recurrent + h.T @ d_inner,
            d_bias + jnp.stack([d_projected.sum(axis=0), d_inner.sum(axis=0)]),
        )

    start = (
        jnp.zeros_like(previous[:, 0]),
        jnp.zeros_like(sequences),
        jnp.zeros_like(kernel),
        jnp.zeros_like(recurrent_kernel),
        jnp.zeros((2, recurrent_kernel.shape[1]), recurrent_kernel.dtype),
    )
    _, d_sequences, d_kernel, d_recurrent, d_bias = jax.lax.fori_loop(0, count, step, start)
    return d_sequences, None, d_kernel, d_recurrent, d_bias


gru_steps.defvjp(_gru_steps_forward, _gru_steps_backward)


def gru_sequences(sequences, mask, forward_weights, backward_weights=None):
    """A Keras ``GRU(units, return_sequences=True)`` over ``sequences`` ``(batch, time, features)`` under ``mask``
    ``(batch, time)``: ``(batch, time, units)``; with ``backward_weights``, a ``Bidirectional`` one: ``(batch,
    time, 2 * units)``, forward outputs then backward ones. Each direction's weights are the Keras cell's
    ``(kernel, recurrent_kernel, bias)``, ``bias`` of shape ``(2, 3 * units)``."""
    directions = [(forward_weights, False)] + ([(backward_weights, True)] if backward_weights is not None else [])
    outputs = [gru_steps(sequences, mask, *weights, reverse) for weights, reverse in directions]
    return jnp.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]


@jax.custom_vjp
def steps_matmul(inputs, mask, kernel):
    """``inputs @ kernel`` for ``inputs`` ``(batch, time, features)``, computed only for the steps that hold a token
    of some record (``mask`` ``(batch, time)``); the later steps, padding for every record, are zero. For a
    layer that projects every step of a padded batch (the attention's scoring network), whose cost would
    otherwise grow with the padded width."""
    return _steps_matmul(inputs, mask, kernel)


def _steps_matmul(inputs, mask, kernel):
    batch, time, _ = inputs.shape

    def step(t, outputs):
        return _set(outputs, t, _at(inputs, t) @ kernel)

    start = jnp.zeros((batch, time, kernel.shape[1]), jnp.result_type(inputs, kernel))
    return jax.lax.fori_loop(0, steps_to_run(mask), step, start)


def _steps_matmul_forward(inputs, mask, kernel):
    return _steps_matmul(inputs, mask, kernel), (inputs, mask, kernel)


def _steps_matmul_backward(residuals, output_gradient):
    inputs, mask, kernel = residuals

    def step(t, carry):
        d_inputs, d_kernel = carry
        g = _at(output_gradient, t)
        return _set(d_inputs, t, g @ kernel.T), d_kernel + _at(inputs, t).T @ g

    start = (jnp.zeros_like(inputs), jnp.zeros_like(kernel))
    d_inputs, d_kernel = jax.lax.fori_loop(0, steps_to_run(mask), step, start)
    return d_inputs, None, d_kernel


steps_matmul.defvjp(_steps_matmul_forward, _steps_matmul_backward)
