"""The predictions of a training run (validation scores after every epoch, the logits the blend is chosen on,
the scores the thresholds are tuned on, the attention check) made by ONNX Runtime on an ONNX graph written
from the model's current weights, instead of by Keras.

Keras on XLA compiles a predict function for every batch shape it meets, and the validation records come in
many: on an empty compilation cache, that cost seconds of every run. Writing the graph and opening its session
takes a fraction of a second, and nothing compiles. The graph of the final model is the bundle's ``model.onnx``,
so that saving does not write it again. A config whose models have no graph (``multifield.onnx_graph.unwritable``)
predicts with Keras, as before.
"""

from __future__ import annotations

import time

import numpy as np

from multifield.config import Config
from multifield.data.batches import predict_in_buckets, sort_field
from multifield.data.encoding import RecordEncoder
from multifield.inference import ONNX_BATCH_SIZE, BatchCall, Predictor, model_scores
from multifield.onnx_graph import onnx_graph, unwritable
from multifield.onnx_session import OnnxCall


class GraphScoring:
    """Outputs of the Keras models of a config on id matrices, computed by ONNX Runtime on a graph written
    from their current weights, in the batches of ``Predictor.on_onnx`` (sorted, ``ONNX_BATCH_SIZE`` records,
    each cut to its longest record).

    Args:
        config: the run's config.
        console: where the note goes that Keras predicts instead, when the config's models have no graph.

    Attributes:
        runtime: ``"onnx"``, or ``"keras"`` for a config whose models have no graph.
        seconds: the time spent writing graphs and opening their sessions.
        graph: the serialized graph of the last ``predictor``'s model (None before, or on Keras).

    Example:

    >>> scoring = GraphScoring(config)  # doctest: +SKIP
    >>> scoring.scores(full_model, data.x_valid).shape  # doctest: +SKIP
    (1128, 20)
    """

    def __init__(self, config: Config, console=None):
        self.config = config
        self.reason = unwritable(config)
        self.seconds = 0.0
        self.graph: bytes | None = None
        if self.reason is not None and console is not None:
            console.print(f"[yellow]note:[/] training predicts with Keras: {self.reason}", highlight=False)

    @property
    def runtime(self) -> str:
        return "onnx" if self.reason is None else "keras"

    def _written(self, model, outputs: tuple[str, ...] | None) -> tuple[bytes, BatchCall]:
        started = time.perf_counter()
        graph = onnx_graph(model, self.config, outputs).SerializeToString()
        call = OnnxCall(graph)
        self.seconds += time.perf_counter() - started
        return graph, call

    def outputs(self, model, inputs: dict[str, np.ndarray], outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        """``outputs`` of ``model`` (a full model of the config; outputs as ``multifield.onnx_graph.onnx_graph``
        takes them) on ``inputs``, in input order. Only on ONNX Runtime (``runtime == "onnx"``)."""
        _, call = self._written(model, outputs)
        return predict_in_buckets(call, inputs, ONNX_BATCH_SIZE, sort_field(self.config), fixed_shapes=False)

    def scores(self, model, inputs: dict[str, np.ndarray], output: str = "scores", keras_model=None) -> np.ndarray:
        """The ``(records, labels)`` scores ``output`` of ``model`` (a full model: ``scores``, or one part's
        ``deep_scores`` or ``wide_scores``) on ``inputs``; on Keras, those of ``keras_model`` (the Keras model
        that computes them; default ``model``)."""
        if self.reason is not None:
            return model_scores(keras_model if keras_model is not None else model, inputs, self.config)
        return np.asarray(self.outputs(model, inputs, (output,))[output], dtype=np.float32)

    def predictor(self, model, encoder: RecordEncoder, thresholds: np.ndarray) -> Predictor:
        """A ``Predictor`` of ``model`` (final: its weights change no more) on ONNX Runtime, whose graph is
        kept in ``graph``; on Keras, of the Keras model."""
        if self.reason is not None:
            return Predictor(self.config, encoder, model, thresholds)
        self.graph, call = self._written(model, None)
        return Predictor.on_onnx(self.config, encoder, thresholds, call)

    def metrics(self) -> dict:
        """What the run's metrics record of it: the runtime that predicted, and the seconds its graphs took."""
        return {"validation_runtime": self.runtime, "graph_seconds": round(self.seconds, 2)}


__all__ = ["GraphScoring"]
