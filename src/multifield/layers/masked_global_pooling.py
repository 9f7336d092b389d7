"""Global max / mean pooling over the time axis that honours the Keras mask and gives zeros for empty rows."""

import keras
from keras import ops

_MODES = ("max", "mean", "max_mean", "sum", "sqrtn")


@keras.saving.register_keras_serializable(package="multifield")
class MaskedGlobalPooling(keras.layers.Layer):
    """Global max, mean or max-and-mean pooling over the unmasked time steps.

    Reduces a sequence `(batch, time, features)` to one vector per row, reading only the unmasked steps. Keras'
    `GlobalMaxPooling1D` ignores the mask and pools over the padding too; this layer does not. It suits short
    fields such as a list of actors or keywords, where attention buys little.

    Args:
        mode: `"max"` (the feature-wise maximum over the steps), `"mean"` (the feature-wise mean), `"max_mean"`
            (both, concatenated: maximum first), `"sum"`, or `"sqrtn"` (the sum divided by the square root of the
            number of steps, as TensorFlow's `embedding_lookup_sparse` combiner: a bag of words whose weight
            neither vanishes in long texts, as with the mean, nor grows with their length, as with the sum).
            Defaults to `"max"`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, features)`.
        mask: Optional boolean tensor of shape `(batch, time)`, `True` for the steps to read. Without it, the mask
            that Keras attached to `inputs` (for example by `Embedding(mask_zero=True)`) is used; without either,
            every step is read.

    Input shape:
        `(batch, time, features)`; `time` may be `None`.

    Output shape:
        `(batch, features)`, or `(batch, 2 * features)` for `"max_mean"`.

    Masking:
        Masked steps never reach the result. A row whose steps are all masked (an empty field) gives exactly zeros,
        never NaN or `-inf`. The mean is accumulated in `float32` under mixed precision. The layer consumes the
        mask: its output carries none.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from multifield.layers import MaskedGlobalPooling
    >>> token_ids = keras.Input(shape=(None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(1000, 8, mask_zero=True)(token_ids)
    >>> pooled = MaskedGlobalPooling(mode="max_mean")(embedded)
    >>> model = keras.Model(token_ids, pooled)
    >>> model.predict(np.array([[4, 2, 0], [0, 0, 0]]), verbose=0).shape
    (2, 16)

    Reference:
        - [Collobert et al., 2011. Natural Language Processing (Almost) from Scratch](
            https://jmlr.org/papers/v12/collobert11a.html) (max pooling over time)
    """

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {list(_MODES)}. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True

    def build(self, input_shape):
        _check_shape(input_shape)

    def call(self, inputs, mask=None):
        _check_shape(inputs.shape)
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        mask = ops.expand_dims(ops.cast(mask, "bool"), -1)  # (batch, time, 1)
        has_steps = ops.any(mask, axis=1)  # (batch, 1)
        pooled = []
        if self.mode in ("max", "max_mean"):
            # Fill the padding with the row's lowest value: no dtype-dependent "-inf", and no -inf for empty rows.
            lowest = ops.stop_gradient(ops.min(inputs, axis=1, keepdims=True))
            maximum = ops.max(ops.where(mask, inputs, lowest), axis=1)
            pooled.append(ops.where(has_steps, maximum, ops.zeros_like(maximum)))
        if self.mode in ("mean", "max_mean", "sum", "sqrtn"):
            mask_float = ops.cast(mask, "float32")
            total = ops.sum(ops.where(mask, ops.cast(inputs, "float32"), 0.0), axis=1)
            count = ops.maximum(ops.sum(mask_float, axis=1), 1.0)
            divisor = {"sum": 1.0, "sqrtn": ops.sqrt(count)}.get(self.mode, count)
            pooled.append(ops.cast(total / divisor, inputs.dtype))
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        features = _check_shape(input_shape)
        return (input_shape[0], features * (2 if self.mode == "max_mean" else 1))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _check_shape(shape):
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(
            f"MaskedGlobalPooling expects a sequence of shape (batch, time, features). Received: input shape {shape} "
            f"with {len(shape)} dimensions."
        )
    if shape[-1] is None:
        raise ValueError(
            f"MaskedGlobalPooling needs the number of features to be known. Received: input shape {shape}."
        )
    return shape[-1]
