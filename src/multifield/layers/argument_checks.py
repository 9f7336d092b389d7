"""Checks of layer arguments and input shapes shared by the layers, with messages that say how to fix them."""


def is_integer(value) -> bool:
    """True for an int that is not a bool (``True`` is not a size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_sequence_shape(layer, shape):
    """The feature size of a ``(batch, time, features)`` input shape; a ValueError that says what to feed otherwise."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(
            f"{layer.__class__.__name__} expects a sequence of shape (batch, time, features). "
            f"Received: input shape {shape} with {len(shape)} dimensions. Feed it the output of an Embedding or of an "
            f"RNN with return_sequences=True."
        )
    if shape[-1] is None:
        raise ValueError(
            f"{layer.__class__.__name__} needs the number of features (the last dimension) to be known. "
            f"Received: input shape {shape}."
        )
    return shape[-1]


__all__ = ["check_sequence_shape", "is_integer"]
