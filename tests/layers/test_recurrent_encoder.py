"""Tests of RecurrentAttentionEncoder: the layer contract, the mask through the RNNs, equality with the hand-written
stack, an explain model rebuilt from a loaded `.keras` file, errors."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_checks import right_padded, run_layer_test

from multifield.layers import AttentionPooling, RecurrentAttentionEncoder


def numpy_outputs(layer, inputs, **kwargs):
    return [ops.convert_to_numpy(output) for output in keras.tree.flatten(layer(inputs, **kwargs))]


def test_layer_contract_bidirectional_lstm(tmp_path):
    layer, _ = run_layer_test(
        RecurrentAttentionEncoder,
        {"units": 3, "attention_units": 4},
        input_shape=(3, 4, 3),
        expected_output_shape=(3, 6),
        # forward + backward LSTM (kernel, recurrent kernel, bias each) + attention (kernel, bias, context vector)
        expected_num_trainable_weights=9,
        expected_num_seed_generators=2,  # Keras' LSTM has one even without dropout
        tmp_path=tmp_path,
    )
    assert layer.attention_pooling.kernel.shape == (6, 4)


def test_layer_contract_two_layer_gru_with_heads_returning_weights(tmp_path):
    layer, _ = run_layer_test(
        RecurrentAttentionEncoder,
        {"units": 3, "cell": "gru", "bidirectional": False, "num_layers": 2, "heads": 2, "diversity_penalty": 0.1},
        input_shape=(3, 4, 3),
        expected_output_shape=[(3, 6), (3, 2, 4)],
        expected_symbolic_shape=[(None, 6), (None, 2, None)],
        expected_num_trainable_weights=9,  # 2 GRUs x 3 + attention 3
        expected_num_seed_generators=2,
        call_kwargs={"return_attention_scores": True},
        tmp_path=tmp_path,
    )
    # The attention's diversity loss is the encoder's loss.
    inputs, mask = right_padded(batch=3, time=4, features=3)
    layer(inputs, mask=mask)
    assert len(layer.losses) == 1 and float(ops.convert_to_numpy(layer.losses[0])) > 0


def test_keeps_the_cudnn_compatible_defaults():
    layer = RecurrentAttentionEncoder(units=4, cell="gru", num_layers=2, dropout=0.1)
    for recurrent in layer.recurrent_layers:
        cell = recurrent.forward_layer.cell
        assert recurrent.forward_layer.return_sequences and not recurrent.forward_layer.unroll
        assert cell.activation is keras.activations.tanh and cell.recurrent_activation is keras.activations.sigmoid
        assert cell.use_bias and cell.recurrent_dropout == 0 and cell.reset_after
        assert cell.dropout == 0.1


def test_equals_the_hand_written_stack():
    inputs, mask = right_padded(batch=3, time=4, features=3, lengths=[4, 2, 1])
    # Non-zero padding: with zero inputs and fresh biases an LSTM's state stays exactly zero, which would hide an
    # unmasked backward pass.
    inputs[~mask] = 5.0
    encoder = RecurrentAttentionEncoder(units=3)
    context, weights = numpy_outputs(encoder, inputs, mask=mask, return_attention_scores=True)

    recurrent = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))
    pooling = AttentionPooling()
    recurrent.build((None, None, 3))
    pooling.build((None, None, 6))
    recurrent.set_weights(encoder.recurrent_layers[0].get_weights())
    pooling.set_weights(encoder.attention_pooling.get_weights())
    sequences = recurrent(inputs, mask=mask)
    want_context, want_weights = numpy_outputs(pooling, sequences, mask=mask, return_attention_scores=True)

    np.testing.assert_allclose(context, want_context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights, want_weights, rtol=1e-5, atol=1e-6)
    assert (weights[~mask] == 0.0).all()


def test_embedding_mask_reaches_the_attention_and_padding_changes_nothing():
    token_ids = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(30, 4, mask_zero=True)(token_ids)
    context, weights = RecurrentAttentionEncoder(units=3, cell="gru")(embedded, return_attention_scores=True)
    model = keras.Model(token_ids, [context, weights])
    ids = np.array([[3, 5, 7, 0], [9, 2, 0, 0], [0, 0, 0, 0]])

    got_context, got_weights = model.predict(ids, verbose=0)
    longer_context, longer_weights = model.predict(np.pad(ids, ((0, 0), (0, 3))), verbose=0)

    assert (got_weights[ids == 0] == 0.0).all() and (longer_weights[:, 4:] == 0.0).all()
    np.testing.assert_allclose(got_weights[:2].sum(axis=-1), 1.0, rtol=1e-6)
    assert (got_context[2] == 0.0).all()  # an empty field
    np.testing.assert_allclose(longer_context, got_context, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(longer_weights[:, :4], got_weights, rtol=1e-5, atol=1e-6)


def test_dropout_only_in_training_and_mixed_precision():
    inputs, mask = right_padded(batch=3, time=4, features=3)
    encoder = RecurrentAttentionEncoder(units=3, dropout=0.5, attention_dropout=0.5, seed=1, dtype="mixed_float16")
    inference = numpy_outputs(encoder, inputs, mask=mask, return_attention_scores=True)
    again = numpy_outputs(encoder, inputs, mask=mask, return_attention_scores=True)
    np.testing.assert_array_equal(again[0], inference[0])
    training = numpy_outputs(encoder, inputs, mask=mask, training=True, return_attention_scores=True)
    assert not np.allclose(training[0], inference[0])
    assert inference[0].dtype == np.float16 and inference[1].dtype == np.float32
    np.testing.assert_allclose(inference[1].sum(axis=-1), 1.0, rtol=1e-6)


def test_explain_model_rebuilt_from_a_loaded_file_outputs_the_weights(tmp_path):
    # The production model outputs only scores. Two ways to get the weights back after loading it:
    # - plot: the encoder was called with return_attention_scores=True and only the context used; after loading,
    #   `layer.output` is (context, weights) and the weights tensor is already in the graph;
    # - title: called plainly; a second call of the same layer with return_attention_scores=True cannot go in a
    #   model (Keras 3.15 checks a node's outputs against the count of the layer's *first* call, and says
    #   "Output ... is not connected to inputs"), so a copy of the layer under a new name reads the same tensor.
    plot_ids = keras.Input(shape=(None,), dtype="int32", name="plot")
    title_ids = keras.Input(shape=(None,), dtype="int32", name="title")
    plot, _ = RecurrentAttentionEncoder(units=3, name="plot_encoder")(
        keras.layers.Embedding(30, 4, mask_zero=True)(plot_ids), return_attention_scores=True
    )
    title = AttentionPooling(name="title_attention")(keras.layers.Embedding(30, 4, mask_zero=True)(title_ids))
    scores = keras.layers.Dense(2, activation="sigmoid")(keras.layers.Concatenate()([plot, title]))
    keras.Model([plot_ids, title_ids], scores).save(tmp_path / "model.keras")

    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    plot_weights = loaded.get_layer("plot_encoder").output[1]
    title_layer = loaded.get_layer("title_attention")
    # Called without keyword arguments, Keras records the mask it passed as a second input: [sequences, mask].
    node_inputs = title_layer.input
    title_sequences = node_inputs[0] if isinstance(node_inputs, list) else node_inputs
    title_copy = AttentionPooling.from_config({**title_layer.get_config(), "name": "title_attention_explain"})
    # The sequences tensor still carries the Embedding's mask: the copy picks it up.
    _, title_weights = title_copy(title_sequences, return_attention_scores=True)
    title_copy.set_weights(title_layer.get_weights())
    explain = keras.Model(loaded.inputs, [loaded.output, plot_weights, title_weights])

    plot_batch = np.array([[3, 4, 5, 0], [0, 0, 0, 0]])
    title_batch = np.array([[7, 0], [8, 9]])
    got_scores, got_plot_weights, got_title_weights = explain.predict([plot_batch, title_batch], verbose=0)

    np.testing.assert_allclose(got_scores, loaded.predict([plot_batch, title_batch], verbose=0), rtol=1e-6)
    assert (got_plot_weights[plot_batch == 0] == 0.0).all() and (got_title_weights[title_batch == 0] == 0.0).all()
    np.testing.assert_allclose(got_plot_weights[0].sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got_title_weights.sum(axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cell": "rnn"}, r"cell='rnn'"),
        ({"units": 0}, "units=0"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"heads": 0}, "heads=0"),
        ({"attention_units": -2}, "attention_units=-2"),
        ({"attention_dropout": 1.5}, r"attention_dropout=1\.5"),
        ({"recurrent_dropout": -0.1}, r"recurrent_dropout=-0\.1"),
    ],
)
def test_bad_arguments_are_refused_with_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecurrentAttentionEncoder(**kwargs)


def test_cell_name_is_case_insensitive():
    assert RecurrentAttentionEncoder(cell="GRU").cell == "gru"


def test_two_dimensional_input_is_refused():
    with pytest.raises(ValueError, match=r"RecurrentAttentionEncoder expects .*2 dimensions"):
        RecurrentAttentionEncoder(units=2)(keras.Input(shape=(8,)))
