"""FieldDropout: blanks a whole input field of some records during training."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="multifield")
class FieldDropout(keras.layers.Layer):
    """Sets every token id of a record's field to padding (0) with probability `rate`, in training only.

    A model trained this way learns not to lean on one field alone, so that records whose field is
    missing at prediction time (an empty list of keywords, no review) are still classified well. The
    blanked row is all padding, which masked encoders turn into a zero vector, exactly as for a record
    whose field is really empty.

    Args:
        rate: Float in [0, 1), the probability of blanking a record's field.
        seed: Optional integer seed for the random draws.

    Call arguments:
        inputs: Integer token ids, `(batch, time)`, 0 meaning padding.
        training: Python boolean; the layer does nothing unless it is true.

    Input shape: `(batch, time)`. Output shape: the same, same dtype.

    Example:

    >>> ids = keras.ops.convert_to_tensor([[4, 5, 0], [6, 0, 0]])
    >>> FieldDropout(0.5)(ids, training=False).shape
    (2, 3)

    Reference:
        Field dropout is the "modality dropout" of Neverova et al. 2015, ModDrop: adaptive multi-modal
        gesture recognition, applied to the text fields of a record.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"`rate` must be in [0, 1); received rate={rate!r}.")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = keras.random.uniform((ops.shape(inputs)[0], 1), seed=self.seed_generator) >= self.rate
        return ops.where(keep, inputs, ops.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
