"""The softmax over the unmasked time steps that the attention layers share."""

from keras import ops

__all__ = ["masked_softmax"]


def masked_softmax(scores, mask, time_axis=-1):
    """A softmax over the unmasked time steps of float32 ``scores`` ``(batch, heads, time)`` (or ``(batch, time,
    heads)`` with ``time_axis=1``), ``mask`` boolean ``(batch, time)`` or None: masked steps get exactly 0, and a
    row with no unmasked step gets all zeros, never NaN."""
    if mask is None:
        return ops.softmax(scores, axis=time_axis)
    mask = ops.expand_dims(mask, 1 if time_axis == -1 else -1)
    # Fill the padding with the row's lowest score so that the maximum is the maximum over the unmasked steps,
    # without a dtype-dependent "-inf" constant (an all-padding row then has a finite maximum too).
    lowest = ops.stop_gradient(ops.min(scores, axis=time_axis, keepdims=True))
    maximum = ops.stop_gradient(ops.max(ops.where(mask, scores, lowest), axis=time_axis, keepdims=True))
    shifted = ops.where(mask, scores - maximum, ops.zeros_like(scores))
    exponentials = ops.exp(shifted) * ops.cast(mask, scores.dtype)
    total = ops.sum(exponentials, axis=time_axis, keepdims=True)
    # A row with an unmasked step has total >= 1 (its maximum gives exp(0)); an all-padding row has total == 0.
    return exponentials / ops.where(total > 0, total, ops.ones_like(total))
