"""Label-wise attention: one attention query per label over a masked sequence, each label's logit read from what
its own query attended to; for texts with many labels, where one pooled vector has to serve them all."""

import keras
from keras import ops

from multifield.layers.argument_checks import check_sequence_shape, is_integer
from multifield.layers.masked_softmax import masked_softmax

__all__ = ["LabelAttention", "mixed_label_attention"]


@keras.saving.register_keras_serializable(package="multifield")
class LabelAttention(keras.layers.Layer):
    """Label-wise attention over the time axis, returning one logit per label.

    Every label `l` has a query vector `u_l` and a read-out vector `r_l`. The label's weights over the unmasked
    steps `h_t` of a row are a softmax of `u_l · h_t`, and its logit is the read-out of what it attended to:

    ```
    weights_l = softmax(u_l · h_t) over the unmasked steps
    logit_l   = r_l · Σ_t weights_l,t h_t  +  b_l
    ```

    No weight depends on the number of time steps, so one layer reads sequences of any length. With hundreds of
    labels, each label finds its own evidence in a long text, where a single attention pooling must serve them all.

    Args:
        labels: Positive integer, number of labels (one query, one read-out vector and one bias each).
        dropout: Float in `[0, 1)`, dropout on the input steps during training. Defaults to `0.0`.
        query_initializer: Initializer of the queries `u`, shape `(features, labels)`. Defaults to
            `"glorot_uniform"`.
        readout_initializer: Initializer of the read-out vectors `r`, shape `(labels, features)`. Defaults to
            `"glorot_uniform"`.
        bias_initializer: Initializer of the biases `b`. Defaults to `"zeros"`.
        seed: Optional integer, seed of the dropout.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, features)`.
        mask: Optional boolean tensor of shape `(batch, time)`, `True` for the steps to read. Without it, the mask
            Keras attached to `inputs` is used; without either, every step is read.
        training: Boolean, whether the call is in training mode (applies `dropout`).
        return_attention_scores: Boolean. If `True`, returns `(logits, weights)`, the weights `(batch, labels,
            time)` in `float32`.

    Output shape:
        `logits`: `(batch, labels)`. `weights`: `(batch, labels, time)`.

    Masking:
        Masked steps get a weight of exactly `0.0` from every label, whatever the padding holds. A row whose steps
        are all masked gets all-zero weights and the bias as its logits, never NaN. The layer consumes the mask.
        Scores and softmax are computed in `float32`.

    Reference:
        - [Mullenbach et al., 2018. Explainable Prediction of Medical Codes from Clinical Text](
            https://aclanthology.org/N18-1100/) (CAML)
        - [Xiao et al., 2019. Label-Specific Document Representation for Multi-Label Text Classification](
            https://aclanthology.org/D19-1044/)
    """

    def __init__(
        self,
        labels,
        dropout=0.0,
        query_initializer="glorot_uniform",
        readout_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not (is_integer(labels) and labels > 0):
            raise ValueError(f"`labels` must be a positive integer, the number of labels. Received: labels={labels!r}")
        if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
            raise ValueError(f"`dropout` must be a float in [0, 1). Received: dropout={dropout!r}")
        self.labels = int(labels)
        self.dropout = float(dropout)
        self.query_initializer = keras.initializers.get(query_initializer)
        self.readout_initializer = keras.initializers.get(readout_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = seed
        if self.dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        features = check_sequence_shape(self, input_shape)
        self.queries = self.add_weight(name="queries", shape=(features, self.labels), initializer=self.query_initializer)
        self.readout = self.add_weight(name="readout", shape=(self.labels, features), initializer=self.readout_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.labels,), initializer=self.bias_initializer)

    def call(self, inputs, mask=None, training=None, return_attention_scores=False):
        check_sequence_shape(self, inputs.shape)
        if mask is not None:
            mask = ops.cast(mask, "bool")
            inputs = ops.where(ops.expand_dims(mask, -1), inputs, ops.zeros_like(inputs))
        if training and self.dropout > 0:
            inputs = keras.random.dropout(inputs, self.dropout, seed=self.seed_generator)
        steps = ops.cast(inputs, "float32")
        # Queries and read-out vectors in one projection of every step: (batch, time, 2 * labels).
        kernel = ops.concatenate([ops.cast(self.queries, "float32"), ops.transpose(ops.cast(self.readout, "float32"))], axis=1)
        if mask is not None and keras.backend.backend() == "jax":
            # Only the steps that some record of the batch holds (``multifield.layers.gru_steps``): a batch padded
            # to any width costs what its longest record costs.
            from multifield.layers.gru_steps import steps_matmul

            projected = steps_matmul(steps, mask, kernel)
        else:
            projected = ops.matmul(steps, kernel)
        scores, readouts = projected[..., : self.labels], projected[..., self.labels :]
        weights = masked_softmax(scores, mask, time_axis=1)  # (batch, time, labels)
        # r_l · Σ_t w_tl h_t = Σ_t w_tl (r_l · h_t): each step's read-out, summed with its label's weights.
        logits = ops.sum(weights * readouts, axis=1) + ops.cast(self.bias, "float32")
        logits = ops.cast(logits, self.compute_dtype)
        return (logits, ops.transpose(weights, (0, 2, 1))) if return_attention_scores else logits

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        check_sequence_shape(self, input_shape)
        return (input_shape[0], self.labels)

    def compute_output_spec(self, inputs, mask=None, training=None, return_attention_scores=False):
        logits = keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)
        if not return_attention_scores:
            return logits
        return logits, keras.KerasTensor((inputs.shape[0], self.labels, inputs.shape[1]), dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "labels": self.labels,
            "dropout": self.dropout,
            "query_initializer": keras.initializers.serialize(self.query_initializer),
            "readout_initializer": keras.initializers.serialize(self.readout_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }


def mixed_label_attention(logits, weights):
    """One attention row per record from label-wise weights: each label's `(batch, labels, time)` weights, weighed
    by the softmax of the labels' logits `(batch, labels)`, so that the labels the text scores highest speak for
    it. A row still sums to 1 over its unmasked steps (0 for an all-padding row) and padding gets exactly 0."""
    shares = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    return ops.einsum("bl,blt->bt", shares, weights)
