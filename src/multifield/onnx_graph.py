"""Writes a trained Keras model of a config as an ONNX graph, from its weights: the same int32 id matrices in,
the same ``scores`` and ``<field>_attention`` outputs, so that ONNX Runtime predicts without Keras or JAX.

Keras' own ONNX export cannot write a bidirectional recurrent layer on JAX; this builder writes each part with
ONNX's own operators instead: ``GRU``/``LSTM`` with per-record ``sequence_lens`` (the count of non-zero ids of a
right-padded row), the additive attention with its mask, label-wise attention, masked pooling, the wide parts (TF-IDF included),
``LogitBlend`` and the dense head. Dropouts and field dropout are identities at prediction time. An ensemble's
members are written side by side and their outputs averaged, as ``multifield.model.ensemble_model`` does.

Training asks for other outputs too (``outputs=``): the logits of the wide and the deep part, and each part's own
scores, which its validation predicts; the graph then holds only the nodes those outputs need.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from multifield.config import ATTENTION_ENCODERS, Config, attention_output
from multifield.errors import GraphError

__all__ = ["GRAPH_ENCODERS", "ONNX_OPSET", "PART_OUTPUTS", "onnx_graph", "unwritable"]

#: The operator set the graph is written in (ONNX Runtime 1.20+ runs it).
ONNX_OPSET = 17

#: The encoder kinds this module writes.
GRAPH_ENCODERS = ("rnn_attention", "attention", "pooled")

#: Outputs a graph can have besides the model's own: the deep part's logits (before any wide part is added) and
#: the wide part's (all wide fields summed, without the blend's intercepts), and the sigmoid of each alone, as
#: ``multifield.model.deep_scores_model`` and ``wide_scores_model`` compute them.
PART_OUTPUTS = ("deep_logits", "wide_logits", "deep_scores", "wide_scores")

# Keras' LSTM kernels hold the gates as (input, forget, cell, output); ONNX's as (input, output, forget, cell).
_LSTM_GATES = (0, 3, 1, 2)


class _Graph:
    """Nodes and constants of a graph under construction; every name it makes is unique."""

    def __init__(self):
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, value, hint: str = "const", dtype=np.float32) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attributes):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def reduce(self, op_type: str, tensor: str, axis: int, keepdims: int = 1) -> str:
        if op_type == "ReduceSum":  # opset 13+: axes are an input
            return self.op(op_type, [tensor, self.constant([axis], dtype=np.int64)], keepdims=keepdims)
        return self.op(op_type, [tensor], axes=[axis], keepdims=keepdims)


class _Field:
    """The tensors of one field's ids that its parts share: the ids, their mask and the row lengths (the count of
    non-zero ids: rows are right-padded)."""

    def __init__(self, graph: _Graph, name: str):
        self.ids = name
        self.mask = graph.op("Not", [graph.op("Equal", [name, graph.constant(0, dtype=np.int32)])], hint=f"{name}_mask")
        self.mask_float = graph.op("Cast", [self.mask], to=TensorProto.FLOAT)
        self.mask3 = graph.op("Unsqueeze", [self.mask, graph.constant([2], dtype=np.int64)])  # (batch, time, 1)
        self.lengths = graph.reduce("ReduceSum", graph.op("Cast", [self.mask], to=TensorProto.INT32), axis=1, keepdims=0)


def unwritable(config: Config) -> str | None:
    """Why the models of ``config`` cannot be written as an ONNX graph (None when they can)."""
    unknown = [f"{name} ({field.encoder})" for name, field in config.fields.items() if field.encoder not in GRAPH_ENCODERS]
    if unknown:
        return f"the ONNX graph has no encoder of the kind of {', '.join(unknown)}"
    return None


def onnx_graph(model, config: Config, outputs: tuple[str, ...] | None = None) -> onnx.ModelProto:
    """The ONNX graph of ``model`` (a full model of ``config``, or an ensemble of them), with its weights.

    Inputs: one int32 ``(batch, length)`` matrix per field, named after it, 0 for padding, both dimensions free.
    Outputs: ``scores`` ``(batch, labels)`` and, for each attention field, ``<field>_attention``
    ``(batch, [heads,] length)``, as the Keras model's; or those named in ``outputs``, which may also name
    ``PART_OUTPUTS`` (``(batch, labels)``; the wide ones only where the model has a wide part).
    Raises ``GraphError`` for a config with an encoder kind it does not write (``unwritable``).
    """
    import keras  # only training and ``multifield export`` write graphs; predicting needs none of this module

    reason = unwritable(config)
    if reason is not None:
        raise GraphError(reason)
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
    graph = _Graph()
    fields = {name: _Field(graph, name) for name in config.fields}
    member_outputs = [_member_outputs(graph, member, config, fields, parts=outputs is not None) for member in members]
    names = list(outputs) if outputs is not None else [key for key in member_outputs[0] if key not in PART_OUTPUTS]
    missing = [key for key in names if key not in member_outputs[0]]
    if missing:
        raise GraphError(f"the model has no output {', '.join(missing)} (it has {', '.join(member_outputs[0])})")
    results = {}
    for key in names:
        parts = [output[key] for output in member_outputs]
        results[key] = parts[0] if len(parts) == 1 else graph.op("Mean", parts)
    graph_outputs = []
    for key in names:
        graph.nodes.append(helper.make_node("Identity", [results[key]], [key]))
        graph_outputs.append(helper.make_tensor_value_info(key, TensorProto.FLOAT, _output_shape(model, key)))
    # Only a graph of chosen outputs is pruned: the model's own graph stays as it always was written.
    nodes, initializers = (graph.nodes, graph.initializers) if outputs is None else _needed(graph, names)
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", f"{name}_length"]) for name in config.fields]
    onnx_model = helper.make_model(
        helper.make_graph(nodes, model.name, inputs, graph_outputs, initializers),
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        producer_name="multifield",
    )
    onnx_model.ir_version = 8  # what ONNX Runtime 1.20+ reads
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _needed(graph: _Graph, outputs: list[str]) -> tuple[list, list]:
    """The nodes and constants that ``outputs`` are computed from (the nodes were added in the order they run)."""
    needed, nodes = set(outputs), []
    for node in reversed(graph.nodes):
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    return nodes[::-1], [constant for constant in graph.initializers if constant.name in needed]


def _output_shape(model, key: str) -> list:
    """The Keras output's shape, its free dimensions named: ``batch``, and the field's length for attention."""
    if not key.endswith("_attention"):  # the scores, or logits or scores of one part: one column per label
        return ["batch", model.output["scores"].shape[-1]]
    shape = list(model.output[key].shape)
    return ["batch", *shape[1:-1], f"{key.removesuffix('_attention')}_length"]


def _member_outputs(graph: _Graph, model, config: Config, fields: dict[str, _Field], parts: bool = False) -> dict[str, str]:
    """The model's outputs (``scores``, the attention weights); with ``parts``, also ``PART_OUTPUTS``."""
    layers = {layer.name: layer for layer in model.layers}
    contexts, label_logits, wide_parts, attention = [], [], [], {}
    for name, field in config.fields.items():
        tokens = graph.op("Gather", [graph.constant(_weights(layers[f"{name}_embedding"])[0]), name], hint=f"{name}_tokens")
        encoder = layers[f"{name}_encoder"]
        if field.encoder in ATTENTION_ENCODERS:
            sequences = _recurrent(graph, encoder, tokens, fields[name]) if field.encoder == "rnn_attention" else tokens
            if getattr(encoder, "label_attention", None) is not None:
                logits, attention[attention_output(name)] = _label_attention(graph, encoder.label_attention, sequences, fields[name])
                label_logits.append(logits)
            else:
                pooling = encoder.attention_pooling if field.encoder == "rnn_attention" else encoder
                context, attention[attention_output(name)] = _attention(graph, pooling, sequences, fields[name])
                contexts.append(context)
        else:
            contexts.append(_masked_pooling(graph, field.pooling, tokens, fields[name]))
        if field.wide:
            wide_parts.append(_wide(graph, layers, name, field.wide_pooling, fields[name]))
    logits = _deep_logits(graph, layers, contexts, label_logits)
    part_logits = {"deep_logits": logits}
    if wide_parts:
        wide = part_logits["wide_logits"] = wide_parts[0]
        for part in wide_parts[1:]:
            wide = part_logits["wide_logits"] = graph.op("Add", [wide, part])
        if "logits" in layers and type(layers["logits"]).__name__ == "LogitBlend":
            intercept, scale = (np.asarray(weight, dtype=np.float32) for weight in _weights(layers["logits"]))
            deep = graph.op("Mul", [logits, graph.constant(scale)])
            logits = graph.op("Add", [graph.op("Add", [wide, graph.constant(intercept)]), deep])
        else:
            logits = graph.op("Add", [logits, wide])
    outputs = {"scores": graph.op("Sigmoid", [logits], hint="scores"), **attention}
    if not parts:  # the model's own graph: no node more than it needs
        return outputs
    for key, tensor in part_logits.items():
        scores = key.replace("_logits", "_scores")
        outputs.update({key: tensor, scores: graph.op("Sigmoid", [tensor], hint=scores)})
    return outputs


def _weights(layer) -> list[np.ndarray]:
    return [np.asarray(weight, dtype=np.float32) for weight in layer.get_weights()]


def _deep_logits(graph: _Graph, layers: dict, contexts: list[str], label_logits: list[str]) -> str:
    """The dense head over the fields' contexts (if any), plus the label-wise encoders' logits."""
    parts = list(label_logits)
    if contexts:
        features = contexts[0] if len(contexts) == 1 else graph.op("Concat", contexts, axis=1)
        if "hidden" in layers:
            features = graph.op("Relu", [_dense(graph, layers["hidden"], features)])
        parts.insert(0, _dense(graph, layers["field_logits" if label_logits else "deep_logits"], features))
    logits = parts[0]
    for part in parts[1:]:
        logits = graph.op("Add", [logits, part])
    return logits


def _dense(graph: _Graph, layer, features: str) -> str:
    kernel, bias = _weights(layer)
    return graph.op("Gemm", [features, graph.constant(kernel), graph.constant(bias)], hint=layer.name)


# -- recurrent layers ------------------------------------------------------------------------------------------
def _recurrent(graph: _Graph, encoder, tokens: str, field: _Field) -> str:
    """The encoder's (bidirectional) GRU/LSTM stack: ``(batch, time, features)`` → ``(batch, time, units * dirs)``."""
    sequences = tokens
    for layer in encoder.recurrent_layers:
        directions = [layer.forward_layer, layer.backward_layer] if encoder.bidirectional else [layer]
        weights = [_onnx_rnn_weights(encoder.cell, *_weights(direction)) for direction in directions]
        kernel, recurrent_kernel, bias = (graph.constant(np.stack(part)) for part in zip(*weights))
        time_major = graph.op("Transpose", [sequences], perm=[1, 0, 2])
        op_type = "GRU" if encoder.cell == "gru" else "LSTM"
        attributes = {"linear_before_reset": 1} if op_type == "GRU" else {}
        outputs = graph.op(
            op_type,
            [time_major, kernel, recurrent_kernel, bias, field.lengths],
            hint=op_type.lower(),
            outputs=1,
            hidden_size=encoder.units,
            direction="bidirectional" if encoder.bidirectional else "forward",
            **attributes,
        )
        # (time, directions, batch, units) → (batch, time, directions * units): forward then backward, as Keras'.
        batch_major = graph.op("Transpose", [outputs], perm=[2, 0, 1, 3])
        sequences = graph.op("Reshape", [batch_major, graph.constant([0, 0, -1], dtype=np.int64)])
    return sequences


def _onnx_rnn_weights(cell: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray):
    """One direction's Keras weights as ONNX's ``W``, ``R``, ``B`` (gates first, biases of inputs then state).

    A Keras GRU (``reset_after=True``) keeps the gates as (update, reset, candidate) and two biases, the ONNX
    ``GRU`` with ``linear_before_reset=1`` computes the same; an LSTM's gates are reordered (``_LSTM_GATES``)."""
    if cell == "gru":
        return kernel.T, recurrent_kernel.T, np.concatenate([bias[0], bias[1]])
    units = recurrent_kernel.shape[0]

    def reorder(matrix):
        return np.concatenate([matrix[..., gate * units : (gate + 1) * units] for gate in _LSTM_GATES], axis=-1)

    return reorder(kernel).T, reorder(recurrent_kernel).T, np.concatenate([reorder(bias), np.zeros_like(bias)])


# -- attention and pooling -------------------------------------------------------------------------------------
def _attention(graph: _Graph, layer, sequences: str, field: _Field) -> tuple[str, str]:
    """``AttentionPooling``: the context ``(batch, heads * features)`` and the weights, masked as the layer's."""
    sequences = graph.op("Where", [field.mask3, sequences, graph.constant(0.0)])
    hidden = graph.op("MatMul", [sequences, graph.constant(np.asarray(layer.kernel.numpy()))])
    if layer.use_bias:
        hidden = graph.op("Add", [hidden, graph.constant(np.asarray(layer.bias.numpy()))])
    scores = graph.op("MatMul", [graph.op("Tanh", [hidden]), graph.constant(np.asarray(layer.context_vector.numpy()))])
    scores = graph.op("Transpose", [scores], perm=[0, 2, 1])  # (batch, heads, time)
    weights = _masked_softmax(graph, scores, field)
    context = graph.op("MatMul", [weights, sequences])  # (batch, heads, features)
    context = graph.op("Reshape", [context, graph.constant([0, -1], dtype=np.int64)])
    if layer.heads == 1:
        weights = graph.op("Squeeze", [weights, graph.constant([1], dtype=np.int64)])
    return context, weights


def _masked_softmax(graph: _Graph, scores: str, field: _Field) -> str:
    """The layers' masked softmax of ``(batch, rows, time)`` scores over time: the maximum over the unmasked
    steps, exactly 0 for padding, 0 for an empty row."""
    mask = graph.op("Unsqueeze", [field.mask, graph.constant([1], dtype=np.int64)])  # (batch, 1, time)
    lowest = graph.reduce("ReduceMin", scores, axis=2)
    maximum = graph.reduce("ReduceMax", graph.op("Where", [mask, scores, lowest]), axis=2)
    shifted = graph.op("Where", [mask, graph.op("Sub", [scores, maximum]), graph.constant(0.0)])
    exponentials = graph.op("Mul", [graph.op("Exp", [shifted]), graph.op("Cast", [mask], to=TensorProto.FLOAT)])
    total = graph.reduce("ReduceSum", exponentials, axis=2)
    positive = graph.op("Greater", [total, graph.constant(0.0)])
    return graph.op("Div", [exponentials, graph.op("Where", [positive, total, graph.constant(1.0)])])


def _label_attention(graph: _Graph, layer, sequences: str, field: _Field) -> tuple[str, str]:
    """``LabelAttention``: the logits ``(batch, labels)``, and its weights mixed by the softmax of the logits
    (``mixed_label_attention``) ``(batch, time)``."""
    sequences = graph.op("Where", [field.mask3, sequences, graph.constant(0.0)])
    queries, readout, bias = _weights(layer)
    scores = graph.op("Transpose", [graph.op("MatMul", [sequences, graph.constant(queries)])], perm=[0, 2, 1])
    weights = _masked_softmax(graph, scores, field)  # (batch, labels, time)
    readouts = graph.op("Transpose", [graph.op("MatMul", [sequences, graph.constant(readout.T)])], perm=[0, 2, 1])
    logits = graph.op("Add", [graph.reduce("ReduceSum", graph.op("Mul", [weights, readouts]), axis=2, keepdims=0), graph.constant(bias)])
    shares = graph.op("Unsqueeze", [graph.op("Softmax", [logits], axis=1), graph.constant([1], dtype=np.int64)])
    mixed = graph.op("MatMul", [shares, weights])  # (batch, 1, time)
    return logits, graph.op("Squeeze", [mixed, graph.constant([1], dtype=np.int64)])


def _masked_pooling(graph: _Graph, mode: str, tokens: str, field: _Field) -> str:
    """``MaskedGlobalPooling``: max, mean, sum, sqrtn or max_mean over the unmasked steps; an empty row gives 0."""
    pooled = []
    if mode in ("max", "max_mean"):
        lowest = graph.reduce("ReduceMin", tokens, axis=1)
        maximum = graph.reduce("ReduceMax", graph.op("Where", [field.mask3, tokens, lowest]), axis=1, keepdims=0)
        has_steps = graph.reduce("ReduceMax", field.mask_float, axis=1)  # (batch, 1): 1 if the row has a token
        pooled.append(graph.op("Mul", [maximum, has_steps]))
    if mode in ("mean", "max_mean", "sum", "sqrtn"):
        total = graph.reduce("ReduceSum", graph.op("Where", [field.mask3, tokens, graph.constant(0.0)]), axis=1, keepdims=0)
        count = graph.op("Max", [graph.reduce("ReduceSum", field.mask_float, axis=1), graph.constant(1.0)])
        divisor = {"sum": None, "sqrtn": graph.op("Sqrt", [count])}.get(mode, count)
        pooled.append(total if divisor is None else graph.op("Div", [total, divisor]))
    return pooled[0] if len(pooled) == 1 else graph.op("Concat", pooled, axis=1)


def _sublinear_tf(graph: _Graph, idf: str, field: _Field) -> tuple[str, str]:
    """``IdfPooling(sublinear_tf=True)``: each position's share of its token's weight, ``(1 + ln count) * idf``
    over the token's count in the row, and each position's share of the squared norm."""
    same = graph.op("Equal", [graph.op("Unsqueeze", [field.ids, graph.constant([2], dtype=np.int64)]),
                              graph.op("Unsqueeze", [field.ids, graph.constant([1], dtype=np.int64)])])
    counts = graph.reduce("ReduceSum", graph.op("Cast", [same], to=TensorProto.FLOAT), axis=2, keepdims=0)
    token_weights = graph.op("Mul", [graph.op("Add", [graph.constant(1.0), graph.op("Log", [counts])]), idf])
    squares = graph.op("Div", [graph.op("Mul", [token_weights, token_weights]), counts])
    return graph.op("Div", [token_weights, counts]), squares


def _wide(graph: _Graph, layers: dict, name: str, pooling: str, field: _Field) -> str:
    """A wide part's logits: one weight per (token, label), pooled over the tokens (TF-IDF: ``IdfPooling``)."""
    tokens = graph.op("Gather", [graph.constant(_weights(layers[f"{name}_wide"])[0]), name], hint=f"{name}_wide")
    if pooling != "tfidf":
        return _masked_pooling(graph, pooling, tokens, field)
    idf_pooling = layers[f"{name}_wide_pooling"]
    idf = graph.op("Gather", [graph.constant(_weights(idf_pooling)[0]), name])
    idf = graph.op("Mul", [idf, field.mask_float])  # padding weighs exactly nothing
    if idf_pooling.sublinear_tf:
        idf, squares = _sublinear_tf(graph, idf, field)
    else:
        squares = graph.op("Mul", [idf, idf])
    norm = graph.op("Sqrt", [graph.reduce("ReduceSum", squares, axis=1)])
    idf = graph.op("Div", [idf, graph.op("Max", [norm, graph.constant(1e-12)])])
    weighted = graph.op("Mul", [tokens, graph.op("Unsqueeze", [idf, graph.constant([2], dtype=np.int64)])])
    return graph.reduce("ReduceSum", weighted, axis=1, keepdims=0)
