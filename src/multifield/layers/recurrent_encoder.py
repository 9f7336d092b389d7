"""One layer for the usual text-classification stack: (bidirectional) LSTM or GRU layers followed by attention
pooling, with the mask carried all the way through."""

import keras

from multifield.layers.argument_checks import check_sequence_shape, is_integer
from multifield.layers.attention_pooling import AttentionPooling
from multifield.layers.label_attention import LabelAttention, mixed_label_attention
from multifield.layers.numpy_initializers import (
    attention_pooling_initializers,
    label_attention_initializers,
    recurrent_initializers,
)

_CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def runs_only_needed_steps(cell: str, dropout: float = 0.0, recurrent_dropout: float = 0.0) -> bool:
    """Whether the encoder's recurrent layers run only the steps that hold a token of some record of the batch
    (``multifield.layers.gru_steps``: a GRU without dropout, on JAX), so that a batch padded to any width costs
    the same and compiles once; otherwise Keras' layers run every step of the padded width."""
    return keras.backend.backend() == "jax" and cell == "gru" and dropout == 0 and recurrent_dropout == 0


@keras.saving.register_keras_serializable(package="multifield")
class RecurrentAttentionEncoder(keras.layers.Layer):
    """Stack of (bidirectional) LSTM or GRU layers followed by `AttentionPooling`.

    Reads a sequence `(batch, time, features)` (usually the output of an `Embedding` with `mask_zero=True`) with
    `num_layers` recurrent layers that each return their whole sequence, then pools the last one's outputs into one
    vector with additive attention. It is the same as writing the stack by hand, in one serialisable layer.

    On JAX, a GRU without dropout runs its steps in `multifield.layers.gru_steps`, with the same weights and the
    same results: only as many steps as the batch's longest record, whatever the padded width, so one compiled
    function serves every width.

    The recurrent layers keep the Keras defaults that let the LSTM/GRU use the fused cuDNN kernel on a GPU
    (`tanh`/`sigmoid` activations, `use_bias=True`, `unroll=False`, `reset_after=True` for the GRU, and
    `recurrent_dropout=0`); a `recurrent_dropout > 0` works but falls back to the slower generic kernel. The fused
    kernels need right padding (`keras.utils.pad_sequences(..., padding="post")`); with left padding the masked
    computation is still correct but slower.

    Args:
        units: Positive integer, size of each recurrent layer (per direction). Defaults to `64`.
        cell: `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        bidirectional: Boolean, whether each recurrent layer reads the sequence both ways and concatenates the two
            outputs. Defaults to `True`.
        num_layers: Positive integer, number of stacked recurrent layers. Defaults to `1`.
        attention_units: Positive integer or `None`, hidden size of the attention's scoring network; `None` uses the
            recurrent output size. Defaults to `None`.
        heads: Positive integer, number of attention heads. Defaults to `1`.
        diversity_penalty: Non-negative float, the attention's head diversity penalty (see `AttentionPooling`).
            Defaults to `0.0`.
        attention_dropout: Float in `[0, 1)`, dropout on the attention weights during training. Defaults to `0.0`.
        dropout: Float in `[0, 1)`, dropout on the inputs of each recurrent layer during training (the `dropout`
            argument of the Keras LSTM/GRU). Defaults to `0.0`.
        recurrent_dropout: Float in `[0, 1)`, dropout on the recurrent state during training. Defaults to `0.0`.
        labels: Optional positive integer. With it, the recurrent outputs are read by `LabelAttention` (one query
            per label) instead of `AttentionPooling`, and the layer returns one logit per label; `attention_units`,
            `heads`, `diversity_penalty` and `attention_dropout` are then unused. Defaults to `None`.
        label_dropout: Float in `[0, 1)`, with `labels`: dropout on the recurrent outputs before the label-wise
            attention, during training. Defaults to `0.0`.
        seed: Optional integer, seed of the dropouts.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, features)`.
        mask: Optional boolean tensor of shape `(batch, time)`, `True` for the steps to read. Without it, the mask
            that Keras attached to `inputs` (for example by `Embedding(mask_zero=True)`) is used.
        training: Boolean, whether the call is in training mode (applies the dropouts).
        return_attention_scores: Boolean. If `True`, returns `(context, weights)` instead of `context`; the weights
            are the attention's, before dropout, in `float32`. With `labels`, the weights are the labels' own
            weights mixed by the softmax of their logits (`mixed_label_attention`): one row per record.

    Input shape:
        `(batch, time, features)`; `time` may be `None`.

    Output shape:
        `context`: `(batch, units * directions * heads)`, where `directions` is 2 when `bidirectional` else 1; with
        `labels`, the logits `(batch, labels)`.
        `weights` (with `return_attention_scores=True`): `(batch, time)`, or `(batch, heads, time)` with `heads > 1`.

    Masking:
        The mask is passed to every recurrent layer (masked steps do not update their state) and to the attention,
        which gives masked steps a weight of exactly `0.0`. An all-padding row (an empty field) gives all-zero
        weights and a zero context. The layer consumes the mask: its output carries none.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from multifield.layers import RecurrentAttentionEncoder
    >>> token_ids = keras.Input(shape=(None,), dtype="int32")
    >>> embedded = keras.layers.Embedding(1000, 16, mask_zero=True)(token_ids)
    >>> context, weights = RecurrentAttentionEncoder(units=8, cell="gru")(
    ...     embedded, return_attention_scores=True)
    >>> model = keras.Model(token_ids, [context, weights])
    >>> context, weights = model.predict(np.array([[5, 7, 9, 0, 0]]), verbose=0)
    >>> context.shape, weights.shape
    ((1, 16), (1, 5))

    Reference:
        - [Yang et al., 2016. Hierarchical Attention Networks for Document Classification](
            https://aclanthology.org/N16-1174/)
        - [Lin et al., 2017. A Structured Self-attentive Sentence Embedding](https://arxiv.org/abs/1703.03130)
    """

    def __init__(
        self,
        units=64,
        cell="lstm",
        bidirectional=True,
        num_layers=1,
        attention_units=None,
        heads=1,
        diversity_penalty=0.0,
        attention_dropout=0.0,
        dropout=0.0,
        recurrent_dropout=0.0,
        labels=None,
        label_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (is_integer(units) and units > 0):
            raise ValueError(f"`units` must be a positive integer, such as 64. Received: units={units!r}")
        if not isinstance(cell, str) or cell.lower() not in _CELLS:
            raise ValueError(f"`cell` must be one of {sorted(_CELLS)}. Received: cell={cell!r}")
        if not (is_integer(num_layers) and num_layers > 0):
            raise ValueError(f"`num_layers` must be a positive integer. Received: num_layers={num_layers!r}")
        if attention_units is not None and not (is_integer(attention_units) and attention_units > 0):
            raise ValueError(
                f"`attention_units` must be a positive integer or None (None uses the recurrent output size). "
                f"Received: attention_units={attention_units!r}"
            )
        for name, value in (
            ("dropout", dropout),
            ("recurrent_dropout", recurrent_dropout),
            ("attention_dropout", attention_dropout),
            ("label_dropout", label_dropout),
        ):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
        self.units = int(units)
        self.cell = cell.lower()
        self.bidirectional = bool(bidirectional)
        self.num_layers = int(num_layers)
        self.attention_units = attention_units
        self.heads = heads
        self.diversity_penalty = diversity_penalty
        self.attention_dropout = attention_dropout
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.labels = None if labels is None else int(labels)
        self.label_dropout = float(label_dropout)
        self.seed = seed

        self.recurrent_layers = []
        for index in range(self.num_layers):
            recurrent = self._recurrent(index, f"{self.cell}_{index}")
            if self.bidirectional:
                # The backward layer is built here rather than by Bidirectional, which would serialize the
                # forward layer a second time: inside Keras' object-sharing scope (while a model file loads)
                # that second config gets a shared-object id, and an id reused by Python for another object
                # could hand back the wrong layer ("forward and backward layer should have different
                # go_backwards"), now and then.
                recurrent = keras.layers.Bidirectional(
                    recurrent,
                    backward_layer=self._recurrent(index, f"backward_{self.cell}_{index}", go_backwards=True),
                    dtype=self.dtype_policy,
                    name=f"bidirectional_{self.cell}_{index}",
                )
            self.recurrent_layers.append(recurrent)
        # The pooling validates its own arguments (`heads`, `diversity_penalty`; `labels`), which keep their names.
        self.attention_pooling, self.label_attention = None, None
        if labels is None:
            self.attention_pooling = self._attention_pooling()
        else:
            self.label_attention = LabelAttention(
                labels, dropout=label_dropout, seed=seed, dtype=self.dtype_policy, name="label_attention",
                **label_attention_initializers(),
            )
        self.supports_masking = True

    def _attention_pooling(self):
        return AttentionPooling(
            units=self.attention_units,
            heads=self.heads,
            diversity_penalty=self.diversity_penalty,
            dropout=self.attention_dropout,
            seed=self.seed,
            dtype=self.dtype_policy,
            name="attention_pooling",
            **attention_pooling_initializers(),
        )

    def _recurrent(self, index, name, go_backwards=False):
        return _CELLS[self.cell](
            self.units,
            return_sequences=True,
            go_backwards=go_backwards,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            seed=None if self.seed is None else self.seed + index,
            dtype=self.dtype_policy,
            name=name,
            **recurrent_initializers(),
        )

    @property
    def output_size(self):
        return self.units * (2 if self.bidirectional else 1)

    def build(self, input_shape):
        check_sequence_shape(self, input_shape)
        shape = tuple(input_shape)
        for recurrent in self.recurrent_layers:
            recurrent.build(shape)
            shape = (*shape[:-1], self.output_size)
        (self.attention_pooling if self.label_attention is None else self.label_attention).build(shape)

    def call(self, inputs, mask=None, training=None, return_attention_scores=False):
        check_sequence_shape(self, inputs.shape)
        sequences = inputs
        if runs_only_needed_steps(self.cell, self.dropout, self.recurrent_dropout):
            from multifield.layers.gru_steps import gru_sequences

            steps_mask = keras.ops.ones(inputs.shape[:2], dtype="bool") if mask is None else keras.ops.cast(mask, "bool")
            for recurrent in self.recurrent_layers:
                layers = (recurrent.forward_layer, recurrent.backward_layer) if self.bidirectional else (recurrent,)
                weights = [[keras.ops.cast(w, self.compute_dtype) for w in layer.cell.weights] for layer in layers]
                sequences = gru_sequences(keras.ops.cast(sequences, self.compute_dtype), steps_mask, *weights)
        else:
            for recurrent in self.recurrent_layers:
                sequences = recurrent(sequences, mask=mask, training=training)
        if self.label_attention is not None:
            logits, weights = self.label_attention(sequences, mask=mask, training=training, return_attention_scores=True)
            return (logits, mixed_label_attention(logits, weights)) if return_attention_scores else logits
        return self.attention_pooling(
            sequences, mask=mask, training=training, return_attention_scores=return_attention_scores
        )

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        check_sequence_shape(self, input_shape)
        if self.label_attention is not None:
            return (input_shape[0], self.labels)
        return (input_shape[0], self.output_size * self.attention_pooling.heads)

    def compute_output_spec(self, inputs, mask=None, training=None, return_attention_scores=False):
        if self.label_attention is not None:
            logits = keras.KerasTensor((inputs.shape[0], self.labels), dtype=self.compute_dtype)
            weights = keras.KerasTensor(inputs.shape[:2], dtype="float32")
            return (logits, weights) if return_attention_scores else logits
        sequences = keras.KerasTensor((*inputs.shape[:-1], self.output_size), dtype=self.compute_dtype)
        return self.attention_pooling.compute_output_spec(
            sequences, return_attention_scores=return_attention_scores
        )

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
            "num_layers": self.num_layers,
            "attention_units": self.attention_units,
            "heads": self.heads,
            "diversity_penalty": self.diversity_penalty,
            "attention_dropout": self.attention_dropout,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "labels": self.labels,
            "label_dropout": self.label_dropout,
            "seed": self.seed,
        }
