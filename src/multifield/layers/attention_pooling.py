"""Additive attention pooling: reduces a masked sequence `(batch, time, features)` to one vector per row and can
return the weights it gave each time step, for showing what a text classifier read."""

import keras
from keras import ops

from multifield.layers.argument_checks import check_sequence_shape, is_integer
from multifield.layers.masked_softmax import masked_softmax


@keras.saving.register_keras_serializable(package="multifield")
class AttentionPooling(keras.layers.Layer):
    """Additive (feed-forward) attention pooling over the time axis.

    Scores every time step `h_t` of a sequence with a small feed-forward network, turns the scores into weights with a
    softmax over the unmasked steps and returns the weighted sum of the steps:

    ```
    score_t = v · tanh(W h_t + b)
    weights = softmax(score) over the unmasked steps
    context = Σ_t weights_t · h_t
    ```

    No weight depends on the number of time steps (`W` has shape `(features, units)`, `b` `(units,)` and the context
    vector `v` `(units, heads)`), so one layer reads sequences of any length, and the length may differ from one call
    to the next. With `heads > 1` there are `heads` context vectors (one column of `v` each) that each make their own
    weights and their own context; the contexts are concatenated, head 0 first.

    Args:
        units: Positive integer or `None`, size of the hidden layer of the scoring network. `None` (the default)
            uses the number of input features.
        heads: Positive integer, number of attention heads (Lin et al. 2017). Defaults to `1`.
        diversity_penalty: Non-negative float. With `heads > 1`, adds
            `diversity_penalty * mean_over_batch(||A Aᵀ - I||_F²)` to the layer's losses, where `A` is the
            `(heads, time)` matrix of a row's attention weights; it pushes the heads to attend to different steps.
            Ignored with one head. Defaults to `0.0`.
        dropout: Float in `[0, 1)`, fraction of the attention weights to drop during training (the kept weights are
            scaled by `1 / (1 - dropout)`). Defaults to `0.0`.
        use_bias: Boolean, whether the scoring network adds the bias `b`. Defaults to `True`.
        kernel_initializer: Initializer of `W`. Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer of `b`. Defaults to `"zeros"`.
        context_initializer: Initializer of the context vector(s) `v`. Defaults to `"glorot_uniform"`.
        kernel_regularizer: Optional regularizer of `W`.
        context_regularizer: Optional regularizer of `v`.
        seed: Optional integer, seed of the attention dropout.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, features)`.
        mask: Optional boolean tensor of shape `(batch, time)`, `True` for the steps to read. Without it, the mask
            that Keras attached to `inputs` (by `Embedding(mask_zero=True)`, `Masking` or an RNN with
            `return_sequences=True` that received a mask) is used; without either, every step is read.
        training: Boolean, whether the call is in training mode (applies `dropout`).
        return_attention_scores: Boolean. If `True`, returns `(context, weights)` instead of `context`. The weights
            are those before dropout, in `float32`.

    Input shape:
        `(batch, time, features)`; `time` may be `None`.

    Output shape:
        `context`: `(batch, features)`, or `(batch, heads * features)` with `heads > 1`.
        `weights` (with `return_attention_scores=True`): `(batch, time)`, or `(batch, heads, time)` with `heads > 1`.

    Masking:
        Masked steps get a weight of exactly `0.0` and padding contributes nothing to the context, whatever values
        it holds. A row whose steps are all masked (an empty text field) gets all-zero weights and a zero context,
        never NaN, and finite gradients. Under the diversity penalty such a row's `A` is all zeros and it
        contributes `0` (its identity term is dropped too), so empty fields neither add to the loss nor get gradients
        from it. The layer consumes the mask: its output carries none.

        Scores and the softmax are computed in `float32`, also under a `"mixed_float16"` or `"mixed_bfloat16"`
        policy; the weighted sum runs in the layer's compute dtype.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from multifield.layers import AttentionPooling
    >>> token_ids = keras.Input(shape=(None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(1000, 16, mask_zero=True)(token_ids)
    >>> sequences = keras.layers.Bidirectional(
    ...     keras.layers.LSTM(8, return_sequences=True))(embedded)
    >>> context, weights = AttentionPooling()(sequences, return_attention_scores=True)
    >>> model = keras.Model(token_ids, [context, weights])
    >>> context, weights = model.predict(np.array([[5, 7, 9, 0, 0]]), verbose=0)
    >>> context.shape, weights.shape
    ((1, 16), (1, 5))
    >>> bool((weights[0, 3:] == 0).all())
    True

    Reference:
        - [Raffel & Ellis, 2015. Feed-Forward Networks with Attention Can Solve Some Long-Term Memory Problems](
            https://arxiv.org/abs/1512.08756)
        - [Yang et al., 2016. Hierarchical Attention Networks for Document Classification](
            https://aclanthology.org/N16-1174/)
        - [Lin et al., 2017. A Structured Self-attentive Sentence Embedding](https://arxiv.org/abs/1703.03130)
    """

    def __init__(
        self,
        units=None,
        heads=1,
        diversity_penalty=0.0,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        context_initializer="glorot_uniform",
        kernel_regularizer=None,
        context_regularizer=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if units is not None and not (is_integer(units) and units > 0):
            raise ValueError(
                f"`units` must be a positive integer or None (None uses the number of input features). "
                f"Received: units={units!r}"
            )
        if not (is_integer(heads) and heads > 0):
            raise ValueError(f"`heads` must be a positive integer, such as 1 or 4. Received: heads={heads!r}")
        if not (isinstance(diversity_penalty, (int, float)) and diversity_penalty >= 0):
            raise ValueError(
                f"`diversity_penalty` must be a float >= 0 (0 turns it off). "
                f"Received: diversity_penalty={diversity_penalty!r}"
            )
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.units = None if units is None else int(units)
        self.heads = int(heads)
        self.diversity_penalty = float(diversity_penalty)
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.context_initializer = keras.initializers.get(context_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.context_regularizer = keras.regularizers.get(context_regularizer)
        self.seed = seed
        if self.dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        features = check_sequence_shape(self, input_shape)
        units = self.units if self.units is not None else features
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(units,), initializer=self.bias_initializer)
        else:
            self.bias = None
        self.context_vector = self.add_weight(
            name="context_vector",
            shape=(units, self.heads),
            initializer=self.context_initializer,
            regularizer=self.context_regularizer,
        )

    def call(self, inputs, mask=None, training=None, return_attention_scores=False):
        check_sequence_shape(self, inputs.shape)
        if mask is not None:
            mask = ops.cast(mask, "bool")
            # Zero the padding first: whatever it holds (even NaN) then cannot reach the scores or the context.
            inputs = ops.where(ops.expand_dims(mask, -1), inputs, ops.zeros_like(inputs))

        if mask is not None and keras.backend.backend() == "jax":
            # Only the steps that some record of the batch holds: one compiled function serves a batch padded
            # to any width, at the cost of its records' length (``multifield.layers.gru_steps``).
            from multifield.layers.gru_steps import steps_matmul

            hidden = steps_matmul(inputs, mask, ops.cast(self.kernel, inputs.dtype))
        else:
            hidden = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            hidden = hidden + self.bias
        hidden = ops.cast(ops.tanh(hidden), "float32")
        attention_scores = ops.matmul(hidden, ops.cast(self.context_vector, "float32"))
        attention_scores = ops.transpose(attention_scores, (0, 2, 1))  # (batch, heads, time)

        attention_weights = masked_softmax(attention_scores, mask)

        if self.diversity_penalty > 0 and self.heads > 1:
            self.add_loss(self.diversity_penalty * _diversity_penalty(attention_weights, mask))

        pooling_weights = attention_weights
        if training and self.dropout > 0:
            pooling_weights = keras.random.dropout(pooling_weights, self.dropout, seed=self.seed_generator)
        context = ops.matmul(ops.cast(pooling_weights, inputs.dtype), inputs)  # (batch, heads, features)
        context = ops.reshape(context, (-1, self.heads * inputs.shape[-1]))

        if not return_attention_scores:
            return context
        if self.heads == 1:
            attention_weights = ops.squeeze(attention_weights, axis=1)
        return context, attention_weights

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        features = check_sequence_shape(self, input_shape)
        return (input_shape[0], self.heads * features)

    def compute_output_spec(self, inputs, mask=None, training=None, return_attention_scores=False):
        context = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return context
        batch, time = inputs.shape[0], inputs.shape[1]
        weights_shape = (batch, time) if self.heads == 1 else (batch, self.heads, time)
        return context, keras.KerasTensor(weights_shape, dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "heads": self.heads,
            "diversity_penalty": self.diversity_penalty,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "context_initializer": keras.initializers.serialize(self.context_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "context_regularizer": keras.regularizers.serialize(self.context_regularizer),
            "seed": self.seed,
        }


def _diversity_penalty(weights, mask):
    # weights: float32 (batch, heads, time). ||A Aᵀ - I||_F² per row, averaged over the batch.
    heads = weights.shape[1]
    gram = ops.matmul(weights, ops.transpose(weights, (0, 2, 1)))
    identity = ops.expand_dims(ops.eye(heads, dtype=weights.dtype), 0)
    if mask is not None:
        # An all-padding row has A = 0; drop its identity term so that it contributes 0 instead of a constant.
        has_steps = ops.cast(ops.any(mask, axis=-1), weights.dtype)
        identity = identity * ops.reshape(has_steps, (-1, 1, 1))
    return ops.mean(ops.sum(ops.square(gram - identity), axis=(1, 2)))
