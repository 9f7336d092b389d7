"""Checks shared by the layer tests: a small `run_layer_test` (shapes, weights, masking flag, config and `.keras`
round trips) and a backend-dispatching gradient helper; `keras.src.testing` is private, so we keep our own."""

import inspect
import json

import keras
import numpy as np
import pytest
from keras import ops


def right_padded(batch, time, features, lengths=None, seed=0):
    """Random float sequences, right-padded with zeros after `lengths[i]` steps, and their boolean mask."""
    rng = np.random.default_rng(seed)
    if lengths is None:
        lengths = [max(time - i, 0) for i in range(batch)]
    inputs = rng.normal(size=(batch, time, features)).astype("float32")
    mask = np.arange(time)[None, :] < np.asarray(lengths)[:, None]
    inputs[~mask] = 0.0
    return inputs, mask


def run_layer_test(
    layer_class,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights,
    tmp_path,
    expected_num_non_trainable_weights=0,
    expected_num_seed_generators=0,
    expected_symbolic_shape=None,
    call_kwargs=None,
    lengths=None,
    supports_masking=True,
):
    """Runs the checks every layer of the package must pass; returns the layer and the model built around it.

    Shapes are lists of shapes where the layer returns several outputs. `expected_symbolic_shape` is the shape of
    the outputs of a call on `keras.Input(shape=(None, features))` (default: `expected_output_shape` with the batch
    size `None`). The inputs are right-padded with zeros; the model puts a `Masking(0.0)` in front of the layer, so
    its outputs must equal an eager call with the explicit mask (that proves the propagated mask is read).
    """
    call_kwargs = call_kwargs or {}
    expected_shapes = expected_output_shape if isinstance(expected_output_shape, list) else [expected_output_shape]
    if expected_symbolic_shape is None:
        symbolic_expected = [(None, *shape[1:]) for shape in expected_shapes]
    elif isinstance(expected_symbolic_shape, list):
        symbolic_expected = expected_symbolic_shape
    else:
        symbolic_expected = [expected_symbolic_shape]

    # Registration and config round trip.
    layer = layer_class(**init_kwargs)
    assert layer.supports_masking is supports_masking
    assert keras.saving.get_registered_name(layer_class) == f"multifield>{layer_class.__name__}"
    config = layer.get_config()
    json.dumps(config)  # plain JSON, no objects
    arguments = set(inspect.signature(layer_class.__init__).parameters) - {"self", "kwargs"}
    assert arguments <= set(config), f"get_config() misses {sorted(arguments - set(config))}"
    for name in arguments:
        assert hasattr(layer, name), f"{layer_class.__name__} does not keep its argument {name!r}"
    assert layer_class.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_class and revived.get_config() == config

    # Eager call with an explicit mask.
    inputs, mask = right_padded(*input_shape, lengths=lengths)
    eager = layer(inputs, mask=mask, **call_kwargs)
    eager = [ops.convert_to_numpy(output) for output in keras.tree.flatten(eager)]
    assert [output.shape for output in eager] == [tuple(shape) for shape in expected_shapes]
    for output in eager:
        assert np.isfinite(output).all()
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    seed_states = [variable for variable in layer.non_trainable_variables if "seed_generator" in variable.path]
    assert len(seed_states) == expected_num_seed_generators
    assert layer.compute_mask(inputs, mask) is None

    # Symbolic call: the output shapes with an unknown batch and time, the mask picked up from `Masking`.
    sequence = keras.Input(shape=(None, input_shape[-1]))
    outputs = layer(keras.layers.Masking(0.0)(sequence), **call_kwargs)
    symbolic_shapes = [tuple(output.shape) for output in keras.tree.flatten(outputs)]
    assert symbolic_shapes == [tuple(shape) for shape in symbolic_expected]
    model = keras.Model(sequence, outputs)
    predicted = [np.asarray(output) for output in keras.tree.flatten(model.predict(inputs, verbose=0))]
    for got, want in zip(predicted, eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # `.keras` round trip in safe mode.
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert any(type(loaded_layer) is layer_class for loaded_layer in loaded.layers)
    reloaded = [np.asarray(output) for output in keras.tree.flatten(loaded.predict(inputs, verbose=0))]
    for got, want in zip(reloaded, predicted, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    return layer, model


def gradients(layer, inputs, **call_kwargs):
    """Gradients of sum(output²) over every output, as numpy: (d/d inputs, [d/d each trainable weight]).

    Runs on JAX (`jax.grad` over `stateless_call`) and PyTorch (autograd); skips on another backend.
    """
    backend = keras.backend.backend()
    inputs = np.asarray(inputs, dtype="float32")
    if not layer.built:
        layer(inputs, **call_kwargs)

    def loss_of(outputs):
        return sum(ops.sum(ops.square(ops.cast(output, "float32"))) for output in keras.tree.flatten(outputs))

    if backend == "jax":
        import jax

        trainable = [variable.value for variable in layer.trainable_variables]
        non_trainable = [variable.value for variable in layer.non_trainable_variables]

        def loss_function(values, weights):
            outputs, _ = layer.stateless_call(weights, non_trainable, values, **call_kwargs)
            return loss_of(outputs)

        input_gradient, weight_gradients = jax.jit(jax.grad(loss_function, argnums=(0, 1)))(
            jax.numpy.asarray(inputs), trainable
        )
        return np.asarray(input_gradient), [np.asarray(gradient) for gradient in weight_gradients]
    if backend == "torch":
        import torch

        for variable in layer.trainable_variables:
            variable.value.grad = None
        values = torch.tensor(inputs, requires_grad=True)
        loss_of(layer(values, **call_kwargs)).backward()
        weight_gradients = [variable.value.grad for variable in layer.trainable_variables]
        assert all(gradient is not None for gradient in weight_gradients)
        return values.grad.numpy(), [gradient.numpy() for gradient in weight_gradients]
    pytest.skip(f"no gradient helper for the {backend!r} backend")
