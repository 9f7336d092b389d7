"""The masked GRU recurrence on JAX, run for as many time steps as the batch has, not as many as its width.

Keras' GRU runs a ``lax.scan`` over every step of its input, so each padded width is a new shape for XLA to
compile, and a batch padded to the longest record pays for every padding step. ``gru_steps`` loops with a
bound read from the mask at run time instead: one compiled function serves a batch of any length up to its
width, and skips the steps after the last one that any record has. Its gradient is written out (a
``jax.custom_vjp``), since JAX cannot differentiate a loop of dynamic length; the forward pass keeps the gates
of each step for it.

The computation is Keras' ``GRU`` with ``reset_after=True`` (the default), ``tanh`` and ``sigmoid``, no dropout:
for a masked step the state is carried over and the output is zero, as in a Keras ``Bidirectional`` layer (a
Keras GRU on its own repeats its last output there instead).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def steps_to_run(mask: jax.Array) -> jax.Array:
    """The number of leading time steps that hold a token of some record: steps after it are padding for all.
    ``mask`` is ``(time, batch)``."""
    any_row = jnp.any(mask, axis=1)
    return jnp.where(jnp.any(any_row), mask.shape[0] - jnp.argmax(any_row[::-1]), 0)


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


def _forward(sequences, mask, kernel, recurrent_kernel, bias, reverse):
    time, batch, _ = sequences.shape
    units = recurrent_kernel.shape[0]
    count = steps_to_run(mask)

    def step(index, carry):
        h, outputs, previous, z_all, r_all, inner_all, candidate_all = carry
        t = _order(reverse, count, index)
        z, r, inner_h, candidate = _gates(sequences[t], h, kernel, recurrent_kernel, bias)
        new = z * h + (1 - z) * candidate
        keep = mask[t][:, None]
        return (
            jnp.where(keep, new, h),
            outputs.at[t].set(jnp.where(keep, new, 0)),
            previous.at[t].set(h),
            z_all.at[t].set(z),
            r_all.at[t].set(r),
            inner_all.at[t].set(inner_h),
            candidate_all.at[t].set(candidate),
        )

    start = tuple(jnp.zeros(shape, sequences.dtype) for shape in [(batch, units)] + [(time, batch, units)] * 6)
    _, outputs, *saved = jax.lax.fori_loop(0, count, step, start)
    return outputs, saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_steps(sequences, mask, kernel, recurrent_kernel, bias, reverse=False):
    """Outputs ``(time, batch, units)`` of a GRU over ``sequences`` ``(time, batch, features)`` under ``mask``
    ``(time, batch)``, with a Keras GRU cell's weights: ``kernel`` ``(features, 3 * units)`` and
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
        keep = mask[t][:, None]
        g = dh + jnp.where(keep, output_gradient[t], 0)
        h, z, r, inner_h, candidate = previous[t], z_all[t], r_all[t], inner_all[t], candidate_all[t]
        d_candidate = g * (1 - z) * (1 - candidate * candidate)
        d_z = g * (h - candidate) * z * (1 - z)
        d_r = d_candidate * inner_h * r * (1 - r)
        d_projected = jnp.where(keep, jnp.concatenate([d_z, d_r, d_candidate], axis=-1), 0)
        d_inner = jnp.where(keep, jnp.concatenate([d_z, d_r, d_candidate * r], axis=-1), 0)
        return (
            jnp.where(keep, g * z + d_inner @ recurrent_kernel.T, g),
            d_sequences.at[t].set(d_projected @ kernel.T),
            d_kernel + sequences[t].T @ d_projected,
            d_recurrent + h.T @ d_inner,
            d_bias + jnp.stack([d_projected.sum(axis=0), d_inner.sum(axis=0)]),
        )

    start = (
        jnp.zeros_like(previous[0]),
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
    time_major = jnp.swapaxes(sequences, 0, 1)
    mask = jnp.swapaxes(mask, 0, 1)
    directions = [(forward_weights, False)] + ([(backward_weights, True)] if backward_weights is not None else [])
    outputs = [gru_steps(time_major, mask, *weights, reverse) for weights, reverse in directions]
    return jnp.swapaxes(jnp.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0], 0, 1)
