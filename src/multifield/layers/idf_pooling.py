"""Pooling of a bag of tokens weighted by inverse document frequency: a linear model over TF-IDF, as a layer."""

import keras
import numpy as np
from keras import ops

from multifield.layers.argument_checks import is_integer


@keras.saving.register_keras_serializable(package="multifield")
class IdfPooling(keras.layers.Layer):
    """Sum of per-token vectors, each weighted by its token's inverse document frequency, divided by the
    Euclidean norm of those weights.

    Over the rows of an `Embedding(vocabulary_size, labels)`, it computes what a linear model computes over
    a field's TF-IDF vector: frequent words ("the", "a") weigh little, rare ones much. The weights are fixed
    (not trained): set them from the training records with `set_document_frequencies`, or they load with
    the model. By default each occurrence of a token adds its idf and the row is divided by the square root of
    the sum of those idfs squared, one per occurrence: scikit-learn's L2-normalised vector where no token
    repeats, and where one does, a norm that grows with the count `c` as `sqrt(c)` rather than `c`.

    With `sublinear_tf=True` a token that occurs `c` times in a row counts `1 + ln(c)` times, not `c` times
    (scikit-learn's `sublinear_tf`), and the vector is L2-normalised as scikit-learn does: a word repeated
    through a long text then weighs less against the other words. Counting the repeats compares every pair
    of a row's tokens, so its cost grows with the square of the row's length.

    Args:
        vocabulary_size: Positive integer, the number of token ids (id 0 is padding).
        sublinear_tf: Boolean, whether a token's count in a row is dampened to `1 + ln(count)`. Defaults to
            `False`: each occurrence weighs its idf, over the square root of the row's sum of squared idfs.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Float tensor of shape `(batch, time, features)`: the vectors of the tokens.
        token_ids: Integer tensor of shape `(batch, time)`, the ids of those tokens; 0 is padding.

    Output shape:
        `(batch, features)`.

    Masking:
        Padding (id 0) has a weight of exactly 0. A row of padding alone gives zeros, never NaN.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from multifield.layers import IdfPooling
    >>> ids = keras.Input(shape=(None,), dtype="int32")
    >>> pooling = IdfPooling(10)
    >>> pooled = pooling(keras.layers.Embedding(10, 3)(ids), ids)
    >>> pooling.set_document_frequencies(np.array([0, 5, 1, 1, 0, 0, 0, 0, 0, 0]), documents=5)
    >>> keras.Model(ids, pooled).predict(np.array([[1, 2, 0], [0, 0, 0]]), verbose=0).shape
    (2, 3)
    """

    def __init__(self, vocabulary_size, sublinear_tf=False, **kwargs):
        super().__init__(**kwargs)
        if not (is_integer(vocabulary_size) and vocabulary_size > 0):
            raise ValueError(f"`vocabulary_size` must be a positive integer. Received: vocabulary_size={vocabulary_size!r}")
        if not isinstance(sublinear_tf, bool):
            raise ValueError(f"`sublinear_tf` must be a boolean. Received: sublinear_tf={sublinear_tf!r}")
        self.vocabulary_size = int(vocabulary_size)
        self.sublinear_tf = sublinear_tf
        self.idf = self.add_weight(
            shape=(self.vocabulary_size,), initializer="ones", trainable=False, name="idf", dtype="float32"
        )

    def set_document_frequencies(self, counts, documents: int) -> None:
        """Weights from ``counts`` (for each id, the number of training records holding it) out of
        ``documents`` records: ``ln((1 + documents) / (1 + count)) + 1``, scikit-learn's smoothed idf;
        padding (id 0) gets 0."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.vocabulary_size,):
            raise ValueError(f"expected {self.vocabulary_size} counts, got an array of shape {counts.shape}")
        idf = np.log((1.0 + documents) / (1.0 + counts)) + 1.0
        idf[0] = 0.0
        self.idf.assign(idf.astype(np.float32))

    def call(self, inputs, token_ids):
        weights = ops.take(self.idf, ops.cast(token_ids, "int32"), axis=0)
        weights = ops.where(ops.not_equal(token_ids, 0), weights, 0.0)  # padding weighs exactly nothing
        if self.sublinear_tf:
            # Each position holds its token's count in the row; the token's weight, (1 + ln count) * idf,
            # is shared out among its positions, and the norm is that of the row's vector of token weights.
            same = ops.equal(ops.expand_dims(token_ids, -1), ops.expand_dims(token_ids, -2))
            counts = ops.sum(ops.cast(same, "float32"), axis=-1)
            token_weights = (1.0 + ops.log(counts)) * weights
            norm = ops.sqrt(ops.sum(ops.square(token_weights) / counts, axis=-1, keepdims=True))
            weights = token_weights / counts
        else:
            norm = ops.sqrt(ops.sum(ops.square(weights), axis=-1, keepdims=True))
        weights = weights / ops.maximum(norm, 1e-12)
        return ops.sum(ops.cast(inputs, "float32") * weights[..., None], axis=-2)

    def compute_mask(self, inputs, token_ids=None, mask=None):
        return None

    def compute_output_shape(self, inputs_shape, token_ids_shape=None):
        return (inputs_shape[0], inputs_shape[-1])

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "sublinear_tf": self.sublinear_tf}
