"""``MultiFieldClassifier``: the scikit-learn-style facade. ``fit`` hands off to the training engine
(``multifield.training``), ``predict*`` to a ``Predictor`` (``multifield.inference``), ``save`` to the bundle."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from multifield.bundle import RUNTIMES, Bundle, load_bundle, onnx_bytes, save_bundle
from multifield.config import Config, config_from_dict, load_config
from multifield.data.io import Table, as_table
from multifield.errors import MultifieldError
from multifield.inference import Predictor
from multifield.metrics import evaluate
from multifield.onnx_session import OnnxCall


def resolve_config(config) -> Config:
    """A ``Config`` from a Config, a dict of the TOML's tables or a path to a TOML file."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise MultifieldError(f"config must be a Config, a dict or a path to a TOML file, got {type(config).__name__}")


def check_is_fitted(classifier: MultiFieldClassifier) -> None:
    """A ``MultifieldError`` unless ``classifier`` was fitted or loaded (as scikit-learn's ``check_is_fitted``)."""
    if getattr(classifier, "encoder_", None) is None:
        raise MultifieldError("this classifier is not fitted yet: call fit() or multifield.load()")


class MultiFieldClassifier:
    """Multi-label classifier over several text fields, with recurrent attention on the long ones.

    Follows scikit-learn's conventions: ``__init__`` only stores the config; ``fit`` returns ``self``;
    fitted state ends in ``_`` (``labels_``, ``thresholds_``, ``model_``); ``predict_proba`` gives scores.
    ``runtime`` says what computes them: ``"onnx"`` (ONNX Runtime on the model written as an ONNX graph, as the
    saved bundle's ``model.onnx``) or ``"keras"``.

    Example:

    >>> clf = MultiFieldClassifier("configs/movies.toml").fit("train.jsonl")   # doctest: +SKIP
    >>> clf.predict([{"id": "1", "plot": "A detective hunts a killer.", "title": "Night"}])  # doctest: +SKIP
    [['Crime', 'Thriller']]
    """

    def __init__(self, config=None, runtime: str = "onnx"):
        self.config = config
        self.runtime = runtime

    @property
    def model_(self):
        """The Keras model. A classifier loaded for ONNX Runtime reads it from its bundle on first use (saving,
        the Keras runtime), so that predicting never imports Keras."""
        if getattr(self, "_model", None) is None and getattr(self, "source_", None) is not None:
            self._model = load_bundle(self.source_, runtime="keras").model  # checked against the manifest again
        return getattr(self, "_model", None)

    @model_.setter
    def model_(self, model) -> None:
        self._model = model
        self.graph_ = None  # the graph of another model's weights

    # -- fitting ---------------------------------------------------------------------------------------
    def fit(
        self, train, valid=None, epochs: int | None = None, verbose: bool = True, console=None, callbacks=None,
        stream: bool | None = None, checkpoint=None, resume: bool = False,
    ):
        """Train on ``train`` (a path, DataFrame or list of dicts); validate on ``valid`` or on a stable
        hash split of ``train``. ``epochs`` trains exactly that many epochs, without early stopping.
        ``callbacks`` (Keras callbacks) run after the validation monitor, so their epoch logs hold
        ``val_micro_f1``; setting ``model.stop_training`` ends training early. ``stream`` reads a
        training file anew each epoch, chunk by chunk, instead of holding it in memory (None: files
        above 256 MB stream); the validation records are held in memory either way. ``checkpoint`` (a
        path, or a ``multifield.training.checkpoint.Checkpoint``) saves the training state after every
        epoch; ``resume`` continues from it."""
        # The training stack (Keras, JAX) is imported here, not with the module: a classifier loaded to predict
        # on ONNX Runtime never needs it.
        from multifield.training.checkpoint import Checkpoint
        from multifield.training.datasets import prepare
        from multifield.training.engine import train as train_model

        config = self.config_ = resolve_config(self.config)
        data = prepare(config, train, valid, stream)
        self.encoder_ = data.encoder
        if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint(checkpoint, resume=resume)
        trained = train_model(config, data, epochs, console, verbose, callbacks, checkpoint)
        self.model_ = trained.model
        self.graph_ = trained.graph  # written from the final weights by training, which predicted with it
        self.source_ = None
        self.onnx_call_ = None
        self.thresholds_ = trained.thresholds
        self.metrics_ = trained.metrics
        self.history_ = trained.history
        self.artifacts_ = trained.artifacts
        self.validation_table_ = data.valid_table  # the records the thresholds were tuned on, for the report
        return self

    # -- predicting ------------------------------------------------------------------------------------
    @property
    def labels_(self) -> list[str]:
        check_is_fitted(self)
        return self.encoder_.labels.labels

    def predictor(self) -> Predictor:
        """The ``Predictor`` of the fitted model (scores, label sets and attention in length buckets)."""
        check_is_fitted(self)
        if self.runtime not in RUNTIMES:
            raise MultifieldError(f"runtime must be one of {', '.join(RUNTIMES)}; got {self.runtime!r}")
        if self.runtime == "keras":
            return Predictor(self.config_, self.encoder_, self.model_, self.thresholds_)
        if getattr(self, "onnx_call_", None) is None:  # one session for the fitted model, made on first use
            self.onnx_call_ = OnnxCall(self.graph())
        return Predictor.on_onnx(self.config_, self.encoder_, self.thresholds_, self.onnx_call_)

    def predict_proba(self, data) -> np.ndarray:
        """``(records, labels)`` probabilities, columns in the order of ``labels_``."""
        predictor = self.predictor()
        return predictor.scores(self.encoder_.encode_inputs(as_table(data)))

    def predict(self, data) -> list[list[str]]:
        """The predicted label set of each record (per-label thresholds tuned on validation)."""
        predictor = self.predictor()
        return self.encoder_.labels.decode(predictor.decide(self.predict_proba(data)))

    def predict_records(self, data, attention: bool = False) -> list[dict]:
        """One ``{"id", "labels", "scores"[, "attention"]}`` dict per record, in input order."""
        return self.predictor().records(data, attention)

    def predict_chunks(self, tables: Iterable[Table], attention: bool = False) -> Iterator[tuple[Table, list[dict]]]:
        """``(table, predict_records(table))`` for each table of ``tables`` (the chunks of a file), in order."""
        return self.predictor().chunks(tables, attention)

    def evaluate(self, data) -> dict:
        """Metrics of the predicted label sets against the records' true labels."""
        predictor = self.predictor()
        table = as_table(data)
        y_true, unknown = self.encoder_.encode_labels(table)
        scores = predictor.scores(self.encoder_.encode_inputs(table))
        metrics = evaluate(y_true, predictor.decide(scores), scores, self.labels_)
        metrics["unknown_labels"] = dict(unknown)
        return metrics

    # -- persistence -----------------------------------------------------------------------------------
    def graph(self) -> bytes:
        """The fitted model as a serialized ONNX graph (``model.onnx``): the one training or the bundle gave,
        else written from the Keras model's weights (and kept)."""
        check_is_fitted(self)
        if getattr(self, "graph_", None) is None:
            self.graph_ = onnx_bytes(self.model_, self.config_)
        return self.graph_

    def bundle(self) -> Bundle:
        """The fitted model as a ``Bundle`` (what ``save`` writes)."""
        check_is_fitted(self)
        return Bundle(
            self.config_,
            self.encoder_,
            self.model_,
            self.thresholds_,
            getattr(self, "metrics_", {}),
            getattr(self, "history_", {}),
            getattr(self, "artifacts_", {}),
            graph=self.graph(),
        )

    def save(self, directory, overwrite: bool = False) -> Path:
        return save_bundle(self.bundle(), directory, overwrite=overwrite)


def load(directory, runtime: str = "onnx") -> MultiFieldClassifier:
    """Load a saved bundle as a fitted ``MultiFieldClassifier`` predicting on ``runtime``."""
    bundle = load_bundle(directory, runtime=runtime)
    classifier = MultiFieldClassifier(bundle.config, runtime=runtime)
    classifier.config_ = bundle.config
    classifier.encoder_ = bundle.encoder
    classifier.model_ = bundle.model  # None on ONNX Runtime: read from ``source_`` when first needed
    classifier.graph_ = bundle.graph  # checked against the manifest, as model.keras is
    classifier.source_ = Path(directory)
    classifier.onnx_call_ = OnnxCall(bundle.graph) if bundle.graph and runtime == "onnx" else None
    classifier.thresholds_ = bundle.thresholds
    classifier.metrics_ = bundle.metrics
    classifier.history_ = bundle.history
    return classifier


__all__ = ["MultiFieldClassifier", "as_table", "check_is_fitted", "load", "resolve_config"]
