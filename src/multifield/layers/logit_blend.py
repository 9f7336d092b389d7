"""LogitBlend: the logits of a linear model and of a deep model, added with a weight chosen after training."""

import keras
from keras import ops

from multifield.layers.argument_checks import is_integer


@keras.saving.register_keras_serializable(package="multifield")
class LogitBlend(keras.layers.Layer):
    """``wide + intercept + scale * deep``: a linear model's logits, its intercepts, and a deep model's logits
    weighed by one number.

    The intercepts and the scale are weights that training does not change: they are set once the two models are
    fitted (the intercepts by the linear model's solver, the scale chosen on validation data) and saved with the
    model. A scale of 0 is the linear model alone; 1 adds the two models' log-odds.

    Args:
        units: Positive integer, the number of logits (labels).
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A list of two float tensors of shape `(batch, units)`: the linear model's logits (without
            intercepts), then the deep model's.

    Output shape: `(batch, units)`.

    Example:

    >>> blend = LogitBlend(2)
    >>> _ = blend.scale.assign(0.5)
    >>> keras.ops.convert_to_numpy(blend([keras.ops.ones((1, 2)), keras.ops.ones((1, 2))])).tolist()
    [[1.5, 1.5]]
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if not (is_integer(units) and units > 0):
            raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
        self.units = int(units)
        self.intercept = self.add_weight(shape=(self.units,), initializer="zeros", trainable=False, name="intercept")
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="scale")

    def call(self, inputs):
        wide, deep = inputs
        return (
            ops.cast(wide, "float32")
            + ops.cast(self.intercept, "float32")
            + ops.cast(self.scale, "float32") * ops.cast(deep, "float32")
        )

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "units": self.units}
