"""``Predictor``: the scores and attention weights of a trained model, computed in length buckets, and the
predictions made of them. ``multifield predict``, ``explain``, the attention check, the estimator's
``predict*`` and the server all go through it.

A predictor needs a way to call the model on one batch of id matrices (``call``): ONNX Runtime on the
bundle's ``model.onnx`` (``runtime="onnx"``, the default where the bundle has one), or Keras'
``predict_on_batch``; the server's Keras path passes one that only uses a few fixed shapes. On the ONNX path
neither Keras nor JAX is imported.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from multifield.bundle import Bundle, load_bundle
from multifield.config import Config, attention_output
from multifield.data.batches import predict_in_buckets, sort_field
from multifield.data.encoding import RecordEncoder, checked_tables, field_values, record_ids
from multifield.data.io import Table, as_table, with_bad_rows, write_jsonl
from multifield.data.prefetch import prefetched
from multifield.onnx_session import OnnxCall
from multifield.thresholds import decide

PREDICT_BATCH_SIZE = 512
#: Records in one ONNX Runtime call: sorted batches of 256 cut to their longest record ran fastest (the recurrent
#: layer's state stays in cache), measured on the movie plots.
ONNX_BATCH_SIZE = 256
BatchCall = Callable[[dict[str, np.ndarray]], "dict[str, np.ndarray] | np.ndarray"]


def keras_call(model) -> BatchCall:
    """One batch through a Keras model (``predict_on_batch``), its outputs as NumPy arrays."""

    def call(batch: dict[str, np.ndarray]):
        outputs = model.predict_on_batch(batch)
        if isinstance(outputs, dict):
            return {key: np.asarray(value) for key, value in outputs.items()}
        return np.asarray(outputs)

    return call


def scores_of(outputs) -> np.ndarray:
    """The ``(records, labels)`` scores among a model's outputs (a full model's dict, or a scores model's array)."""
    return np.asarray(outputs["scores"] if isinstance(outputs, dict) else outputs, dtype=np.float32)


def model_scores(model, inputs: dict[str, np.ndarray], config: Config, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
    """The scores of any Keras model of a config (the full model, or the wide part alone) on id matrices."""
    return scores_of(predict_in_buckets(keras_call(model), inputs, batch_size, sort_field(config)))


class EncodedRecords(NamedTuple):
    """Records made ready for the model: their ids, their coerced field values and their id matrices."""

    ids: list
    values: dict[str, list]
    inputs: dict[str, np.ndarray]


@dataclass
class PredictedFile:
    """What ``Predictor.predict_file`` wrote: how many lines, and the bad records it left out (``skip_bad_rows``)."""

    count: int
    skipped: list = field(default_factory=list)
    line_kind: str = "line"


class Predictor:
    """Scores, label sets and attention weights of a trained model.

    Args:
        config: the run's config.
        encoder: the fitted tokenizers and label vocabulary.
        model: the full Keras model (scores and attention weights out); None with a ``call`` that needs none.
        thresholds: one decision threshold per label.
        call: calls the model on one batch of id matrices (default: ``keras_call(model)``).
        batch_size: the most records in one call.
        fixed_shapes: whether ``call`` compiles a function per input shape (Keras on XLA), so that batches come
            in a few shapes only; ONNX Runtime compiles nothing, and each batch is cut to its longest record.

    Example:

    >>> predictor = Predictor.load("runs/movies")  # doctest: +SKIP
    >>> predictor.records([{"id": "1", "plot": "A detective hunts a killer."}])[0]["labels"]  # doctest: +SKIP
    ['Crime', 'Thriller']
    """

    def __init__(
        self,
        config: Config,
        encoder: RecordEncoder,
        model,
        thresholds: np.ndarray,
        call: BatchCall | None = None,
        batch_size: int = PREDICT_BATCH_SIZE,
        fixed_shapes: bool = True,
    ):
        self.config = config
        self.encoder = encoder
        self.model = model
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.call = call or keras_call(model)
        self.batch_size = batch_size
        self.fixed_shapes = fixed_shapes
        self.sort_by = sort_field(config)

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int | None = None, spinning: bool | None = None, **options) -> Predictor:
        """The predictor of a loaded bundle: on ONNX Runtime when it was loaded without its Keras model (``threads``
        and ``spinning``: see ``multifield.onnx_session.OnnxCall``), else on Keras."""
        if bundle.model is None and "call" not in options:
            call = OnnxCall(bundle.graph, threads, spinning)
            return cls.on_onnx(bundle.config, bundle.encoder, bundle.thresholds, call, **options)
        return cls(bundle.config, bundle.encoder, bundle.model, bundle.thresholds, **options)

    @classmethod
    def on_onnx(cls, config: Config, encoder: RecordEncoder, thresholds: np.ndarray, call: BatchCall, **options) -> Predictor:
        """A predictor whose ``call`` runs ONNX Runtime (``multifield.onnx_session.OnnxCall``): nothing compiles, so
        sorted batches of ``ONNX_BATCH_SIZE`` records are each cut to their longest record."""
        options = {"fixed_shapes": False, "batch_size": ONNX_BATCH_SIZE, **options}
        return cls(config, encoder, None, thresholds, call=call, **options)

    @classmethod
    def load(cls, directory: str | os.PathLike, runtime: str = "onnx", **options) -> Predictor:
        """The predictor of a saved bundle (loaded safely: see ``multifield.bundle``), on ``runtime``: ``"onnx"``
        (ONNX Runtime, or Keras for a bundle without ``model.onnx``) or ``"keras"``."""
        return cls.from_bundle(load_bundle(Path(directory), runtime=runtime), **options)

    def with_thresholds(self, thresholds: np.ndarray) -> Predictor:
        """The same model, runtime and batches, deciding with ``thresholds`` (training scores the validation
        records before it tunes them)."""
        predictor = copy.copy(self)
        predictor.thresholds = np.asarray(thresholds, dtype=np.float32)
        return predictor

    @property
    def runtime(self) -> str:
        """``"keras"`` when the predictor calls a Keras model, else ``"onnx"``."""
        return "onnx" if self.model is None else "keras"

    @property
    def labels(self) -> list[str]:
        return self.encoder.labels.labels

    # -- arrays ----------------------------------------------------------------------------------------
    def outputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs on id matrices: ``"scores"`` and each attention field's weights, in input order."""
        return predict_in_buckets(self.call, inputs, self.batch_size, self.sort_by, self.fixed_shapes)

    def scores(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return scores_of(self.outputs(inputs))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """0/1 label indicators of scores (per-label thresholds, ``training.min_labels``)."""
        return decide(scores, self.thresholds, self.config.training.min_labels)

    def encode(self, data) -> EncodedRecords:
        table = as_table(data)
        values = field_values(self.config, table)
        ids = record_ids(self.config, table, check=False)
        return EncodedRecords(ids, values, self.encoder.encode_values(values))

    # -- records ---------------------------------------------------------------------------------------
    def records(self, data, attention: bool = False) -> list[dict]:
        """One ``{"id", "labels", "scores"[, "attention"]}`` dict per record, in input order."""
        return self.records_of(self.encode(data), attention)

    def records_of(self, encoded: EncodedRecords, attention: bool = False) -> list[dict]:
        ids, values, inputs = encoded
        if not ids:
            return []
        outputs = self.outputs(inputs)
        scores = scores_of(outputs)
        predicted = self.decide(scores)
        labels = self.labels
        rounded = np.round(scores.astype(np.float64), 6).tolist()  # Python floats, whole batch at once
        results = []
        for row, record_id in enumerate(ids):
            result = {
                "id": record_id,
                "labels": [labels[j] for j in np.flatnonzero(predicted[row])],
                "scores": dict(zip(labels, rounded[row])),
            }
            if attention:
                result["attention"] = {
                    name: self.field_attention(name, values[name][row], np.asarray(outputs[attention_output(name)][row]))
                    for name in self.config.attention_fields()
                }
            results.append(result)
        return results

    def field_attention(self, name: str, value, weights: np.ndarray) -> list:
        """``[[word, weight], ...]`` of one field of one record (a list of them per head with several heads)."""
        ids, words = self.encoder.tokenizers[name].encode_with_words(value)
        if weights.ndim == 2:  # several heads: one list per head
            return [[[word, round(float(w), 6)] for word, w in zip(words, head[: len(ids)])] for head in weights]
        return [[word, round(float(w), 6)] for word, w in zip(words, weights[: len(ids)])]

    def chunks(self, tables: Iterable[Table], attention: bool = False) -> Iterator[tuple[Table, list[dict]]]:
        """``(table, records(table))`` for each table of ``tables`` (the chunks of a file), in order.

        The next chunk is read, checked and tokenized in a background thread while the model predicts
        the current one."""
        for table, encoded in prefetched((table, self.encode(table)) for table in tables):
            yield table, self.records_of(encoded, attention)

    def predict_file(
        self, input_path, output_path, attention: bool = False, chunk_records: int = 8192, skip_bad_rows: bool = False
    ) -> PredictedFile:
        """Write one prediction line per input record, in order, reading, checking and predicting chunk by
        chunk (memory does not grow with the file); the output appears (renamed from a temporary file) only
        when every record is written. A bad record fails the run with its file, line and field, or with
        ``skip_bad_rows`` gets an ``{"id", "line", "error"}`` line in its place."""
        result = PredictedFile(0)

        def rows():
            # With skip_bad_rows even a file of bad records only gets its lines: one per input record.
            chunks = checked_tables(
                input_path, self.config, skip_bad_rows=skip_bad_rows, chunk_records=chunk_records, require_some=not skip_bad_rows
            )
            for chunk, predictions in self.chunks(chunks, attention=attention):
                result.skipped.extend(chunk.skipped)
                result.line_kind = chunk.line_kind
                yield from with_bad_rows(chunk, predictions)

        result.count = write_jsonl(output_path, rows())
        return result


__all__ = ["ONNX_BATCH_SIZE", "EncodedRecords", "PredictedFile", "Predictor", "keras_call", "model_scores", "scores_of"]
