"""``MultiFieldClassifier``: the scikit-learn-style estimator that trains, predicts, explains and saves."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from multifield.config import Config, config_from_dict, load_config
from multifield.data.encoding import RecordEncoder, field_values, record_ids
from multifield.data.io import Table, read_table
from multifield.data.split import split_by_hash
from multifield.errors import DataError, MultifieldError
from multifield.thresholds import choose_shrinkage, decide, tune_thresholds

PREDICT_BATCH_SIZE = 512


class _EncodedRecords(NamedTuple):
    """Records made ready for the model: their ids, their coerced field values and their id matrices."""

    ids: list
    values: dict[str, list]
    inputs: dict[str, np.ndarray]


def as_table(data: Any, name: str = "<records>") -> Table:
    """A file path, a pandas DataFrame, a list of record dicts or a Table, as a Table."""
    if isinstance(data, Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read_table(data)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        records = data.to_dict(orient="records")
        return Table("<DataFrame>", records, list(range(1, len(records) + 1)), "row")
    if isinstance(data, (list, tuple)) and all(isinstance(record, dict) for record in data):
        return Table(name, list(data), list(range(1, len(data) + 1)), "record")
    raise MultifieldError(f"expected a file path, a DataFrame or a list of dicts, got {type(data).__name__}")


def _document_frequencies(config: Config, encoder: RecordEncoder, x_train) -> dict[str, tuple[np.ndarray, int]]:
    """For the fields whose wide part is pooled by tfidf: how many training records hold each token id."""
    from multifield.data.encoding import document_frequencies
    from multifield.data.stream import StreamSource

    names = [name for name, field in config.fields.items() if field.wide and field.wide_pooling == "tfidf"]
    if not names:
        return {}
    if isinstance(x_train, StreamSource):  # a training file read from disk, chunk by chunk
        return x_train.document_frequencies(names)
    return {
        name: (document_frequencies(x_train[name], encoder.tokenizers[name].vocabulary_size), len(x_train[name]))
        for name in names
    }


def _resolve_config(config) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise MultifieldError(f"config must be a Config, a dict or a path to a TOML file, got {type(config).__name__}")


class MultiFieldClassifier:
    """Multi-label classifier over several text fields, with recurrent attention on the long ones.

    Follows scikit-learn's conventions: ``__init__`` only stores the config; ``fit`` returns ``self``;
    fitted state ends in ``_`` (``labels_``, ``thresholds_``, ``model_``); ``predict_proba`` gives scores.

    Example:

    >>> clf = MultiFieldClassifier("configs/movies.toml").fit("train.jsonl")   # doctest: +SKIP
    >>> clf.predict([{"id": "1", "plot": "A detective hunts a killer.", "title": "Night"}])  # doctest: +SKIP
    [['Crime', 'Thriller']]
    """

    def __init__(self, config=None):
        self.config = config

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
        path, or a ``multifield.checkpoints.Checkpoint``) saves the training state after every epoch;
        ``resume`` continues from it (see ``multifield.checkpoints``)."""
        import keras

        from multifield.data.vectors import embedding_matrices
        from multifield.distribution import label_totals
        from multifield.model import ensemble_model
        from multifield.training import learning_curves_png

        config = self.config_ = _resolve_config(self.config)
        training = config.training
        console = console or _console(verbose)
        if _streams(train, stream):
            # The training file is read anew each epoch; x_train and y_train are its StreamSource.
            from multifield.data.stream import fit_streaming
            from multifield.distribution import current_plan

            plan = current_plan()
            started = time.perf_counter()
            train_table, valid_table = fit_streaming(config, train, valid is None, plan.processes if plan else 1)
            if valid is not None:
                valid_table = as_table(valid, "<valid>")
                _check_unique(record_ids(config, valid_table), valid_table)
            keras.utils.set_random_seed(training.seed)
            encoder = self.encoder_ = train_table.encoder
            x_train = y_train = train_table
        else:
            train_table = as_table(train, "<train>")
            train_ids = record_ids(config, train_table)
            _check_unique(train_ids, train_table)
            if valid is None:
                train_index, valid_index = split_by_hash(train_ids, training.validation_fraction)
                if not train_index or not valid_index:
                    raise DataError(
                        f"too few records to split off a validation part ({len(train_ids)} records); give --valid",
                        train_table.path,
                    )
                train_table, valid_table = train_table.subset(train_index), train_table.subset(valid_index)
            else:
                valid_table = as_table(valid, "<valid>")
                _check_unique(record_ids(config, valid_table), valid_table)

            keras.utils.set_random_seed(training.seed)
            started = time.perf_counter()
            encoder = self.encoder_ = RecordEncoder.fit(config, train_table)
            x_train = encoder.encode_inputs(train_table)
            y_train, _ = encoder.encode_labels(train_table)
        x_valid = encoder.encode_inputs(valid_table)
        y_valid, unknown = encoder.encode_labels(valid_table)
        if unknown:
            console.print(f"[yellow]note:[/] validation labels never seen in training are ignored: {dict(unknown)}")
        rare = [label for label, count in zip(encoder.labels.labels, label_totals(y_train)[0]) if count < 3]
        if rare:
            console.print(f"[yellow]note:[/] labels with fewer than 3 training records: {', '.join(rare)}")
        console.print(
            f"{len(train_table)} training and {len(valid_table)} validation records, {len(encoder.labels.labels)} labels; "
            + ", ".join(f"{name}: {tok.vocabulary_size} tokens" for name, tok in encoder.tokenizers.items())
        )

        if checkpoint is not None:
            from multifield.checkpoints import open_checkpoint

            checkpoint = open_checkpoint(
                checkpoint, resume, config, epochs, encoder, x_train, y_train, x_valid, y_valid, console=console
            )
        matrices = embedding_matrices(config, encoder, console)
        frequencies = _document_frequencies(config, encoder, x_train)
        members, histories, best_epochs = [], [], []
        for member in range(training.ensemble):
            if training.ensemble > 1:
                console.print(f"ensemble member {member + 1} of {training.ensemble}")
            full_model, history, best_epoch = self._train_member(
                member, x_train, y_train, x_valid, y_valid, matrices, frequencies, epochs, verbose, console, callbacks,
                checkpoint,
            )
            members.append(full_model)
            histories.append(history)
            best_epochs.append(best_epoch)
        self.model_ = members[0] if len(members) == 1 else ensemble_model(members, config)
        valid_scores = self._scores(x_valid)
        shrinkage = training.threshold_shrinkage
        if shrinkage == "auto":
            shrinkage = choose_shrinkage(y_valid, valid_scores, training.thresholds, min_labels=training.min_labels)
            console.print(f"threshold shrinkage {shrinkage:g} (chosen on validation)")
        self.thresholds_ = tune_thresholds(
            y_valid, valid_scores, training.thresholds, min_labels=training.min_labels, shrinkage=float(shrinkage)
        )
        from multifield.metrics import evaluate

        validation = evaluate(
            y_valid, decide(valid_scores, self.thresholds_, training.min_labels), valid_scores, encoder.labels.labels
        )
        self.history_ = dict(histories[0], **({"members": histories} if len(histories) > 1 else {}))
        self.metrics_ = {
            "validation": validation,
            "best_epoch": best_epochs[0],
            "best_epochs": best_epochs,
            "epochs_run": sum(len(history.get("loss", [])) for history in histories),
            "train_seconds": round(time.perf_counter() - started, 2),
            "train_records": len(train_table),
            "validation_records": len(valid_table),
            "threshold_shrinkage": float(shrinkage),
        }
        if config.attention_fields():
            from multifield.attention_check import attention_check, describe

            self.metrics_["attention_check"] = attention_check(self, x_valid)
            for line in describe(self.metrics_["attention_check"]):
                console.print(f"attention check on validation, {line}", highlight=False)
        self.artifacts_ = {"learning_curves.png": learning_curves_png(histories)}
        console.print(
            f"best epoch {', '.join(map(str, best_epochs))}: validation micro-F1 {validation['micro_f1']:.4f}, "
            f"macro-F1 {validation['macro_f1']:.4f} with tuned thresholds"
        )
        return self

    def _train_member(
        self, member, x_train, y_train, x_valid, y_valid, matrices, frequencies, epochs, verbose, console,
        extra_callbacks=None, checkpoint=None,
    ):
        """Train one model (seed ``training.seed + member``); its full model, history and best epoch."""
        import keras

        from multifield.checkpoints import fit_stage

        from multifield.distribution import training_batches
        from multifield.model import build_model, set_wide_trainable, training_model, wide_scores_model
        from multifield.training import RichProgress, ValidationMonitor, make_loss, make_optimizer, positive_weights

        config, training = self.config_, self.config_.training
        seed = training.seed + member
        keras.utils.set_random_seed(seed)
        # In-memory arrays or a StreamSource; under data-parallel training, this process's shard.
        batches = training_batches(x_train, y_train, training.batch_size, sort_field(config), seed)
        steps_per_epoch = len(batches)
        full_model = build_model(
            config,
            {name: tok.vocabulary_size for name, tok in self.encoder_.tokenizers.items()},
            len(self.encoder_.labels.labels),
            matrices,
            name_suffix=f"_{member + 1}" if training.ensemble > 1 else "",
            document_frequencies=frequencies,
        )
        finished = checkpoint.finished_member(member, full_model) if checkpoint is not None else None
        if finished is not None:  # resumed: this member was done before the interruption
            return full_model, *finished
        # One loss for both stages: the wide stage's predictions are the scores alone.
        loss = make_loss(
            training.label_smoothing, positive_weights(y_train, training.positive_weight), training.deep_loss_weight
        )
        wide_model = wide_scores_model(full_model) if training.wide_epochs > 0 else None
        if wide_model is not None:
            # Wide first: the linear model is fitted alone, then frozen, so that the deep part learns a
            # correction of it and the network never knows less than the linear model.
            wide_model.compile(optimizer=keras.optimizers.Adam(training.wide_learning_rate), loss=loss)
            wide_monitor = ValidationMonitor(
                lambda: self._scores(x_valid, wide_model),
                y_valid,
                patience=None if epochs else 2,
                min_labels=training.min_labels,
            )
            wide_epochs = min(epochs, training.wide_epochs) if epochs else training.wide_epochs
            # The linear part costs nothing per token: its batches keep every field at full width, one
            # shape to compile instead of one per bucket width.
            wide_batches = training_batches(x_train, y_train, training.batch_size, None, seed)
            console.print("wide part first")
            wide_callbacks = [wide_monitor] + ([RichProgress(wide_epochs, len(wide_batches), console)] if verbose else [])
            fit_stage(
                wide_model, wide_batches, wide_epochs, wide_callbacks, wide_monitor, checkpoint, member, "wide", full_model, True
            )
            set_wide_trainable(full_model, False)
            console.print("deep part on top of it")
        model = training_model(full_model, training.deep_loss_weight)
        model.compile(optimizer=make_optimizer(training, steps_per_epoch), loss=loss)
        total_epochs = epochs or training.max_epochs
        # Validation predicts with the full model, as predict, explain and the attention check do: the
        # functions compiled for the validation records serve them all.
        monitor = ValidationMonitor(
            lambda: self._scores(x_valid, full_model),
            y_valid,
            patience=None if epochs else training.patience,
            min_labels=training.min_labels,
        )
        callbacks = [monitor] + ([RichProgress(total_epochs, steps_per_epoch, console)] if verbose else [])
        callbacks += list(extra_callbacks or [])
        fit_stage(model, batches, total_epochs, callbacks, monitor, checkpoint, member, "deep", full_model, wide_model is not None)
        history = dict(monitor.history, **({"wide_stage": wide_monitor.history} if wide_model is not None else {}))
        if checkpoint is not None:
            checkpoint.member_done(member, full_model, history, monitor.best_epoch + 1)
        return full_model, history, monitor.best_epoch + 1

    # -- predicting ------------------------------------------------------------------------------------
    @property
    def labels_(self) -> list[str]:
        self._check_fitted()
        return self.encoder_.labels.labels

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise MultifieldError("this classifier is not fitted yet: call fit() or multifield.load()")

    def _scores(self, inputs: dict[str, np.ndarray], model=None) -> np.ndarray:
        """The scores of ``model`` (the full model by default, whose other outputs are the attention weights)."""
        outputs = self._predict(self.model_ if model is None else model, inputs)
        return np.asarray(outputs["scores"] if isinstance(outputs, dict) else outputs, dtype=np.float32)

    def _predict(self, model, inputs: dict[str, np.ndarray]):
        from multifield.data.batches import predict_in_buckets

        return predict_in_buckets(
            lambda batch: _to_numpy(model.predict_on_batch(batch)), inputs, PREDICT_BATCH_SIZE, sort_field(self.config_)
        )

    def predict_proba(self, data) -> np.ndarray:
        """``(records, labels)`` probabilities, columns in the order of ``labels_``."""
        self._check_fitted()
        return self._scores(self.encoder_.encode_inputs(as_table(data)))

    def predict(self, data) -> list[list[str]]:
        """The predicted label set of each record (per-label thresholds tuned on validation)."""
        scores = self.predict_proba(data)
        return self.encoder_.labels.decode(decide(scores, self.thresholds_, self.config_.training.min_labels))

    def predict_records(self, data, attention: bool = False) -> list[dict]:
        """One ``{"id", "labels", "scores"[, "attention"]}`` dict per record, in input order."""
        self._check_fitted()
        return self._records_of(self._encoded(as_table(data)), attention)

    def predict_chunks(self, tables: Iterable[Table], attention: bool = False) -> Iterator[tuple[Table, list[dict]]]:
        """``(table, predict_records(table))`` for each table of ``tables`` (the chunks of a file), in order.

        The next chunk is read, checked and tokenized in a background thread while the model predicts
        the current one."""
        from multifield.data.prefetch import prefetched

        self._check_fitted()
        for table, encoded in prefetched((table, self._encoded(table)) for table in tables):
            yield table, self._records_of(encoded, attention)

    def _encoded(self, table: Table) -> _EncodedRecords:
        values = field_values(self.config_, table)
        ids = record_ids(self.config_, table, check=False)
        return _EncodedRecords(ids, values, self.encoder_.encode_values(values))

    def _records_of(self, encoded: _EncodedRecords, attention: bool) -> list[dict]:
        ids, values, inputs = encoded
        if not ids:
            return []
        if attention:
            from multifield.model import attention_output

            outputs = self._predict(self.model_, inputs)
            scores = np.asarray(outputs["scores"], dtype=np.float32)
        else:
            scores = self._scores(inputs)
        predicted = decide(scores, self.thresholds_, self.config_.training.min_labels)
        labels = self.encoder_.labels.labels
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
                    name: self._field_attention(name, values[name][row], np.asarray(outputs[attention_output(name)][row]))
                    for name in self.config_.attention_fields()
                }
            results.append(result)
        return results

    def _field_attention(self, name: str, value, weights: np.ndarray):
        ids, words = self.encoder_.tokenizers[name].encode_with_words(value)
        if weights.ndim == 2:  # several heads: one list per head
            return [[[word, round(float(w), 6)] for word, w in zip(words, head[: len(ids)])] for head in weights]
        return [[word, round(float(w), 6)] for word, w in zip(words, weights[: len(ids)])]

    def evaluate(self, data) -> dict:
        """Metrics of the predicted label sets against the records' true labels."""
        from multifield.metrics import evaluate

        self._check_fitted()
        table = as_table(data)
        y_true, unknown = self.encoder_.encode_labels(table)
        scores = self.predict_proba(table)
        predicted = decide(scores, self.thresholds_, self.config_.training.min_labels)
        metrics = evaluate(y_true, predicted, scores, self.labels_)
        metrics["unknown_labels"] = dict(unknown)
        return metrics

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, directory, overwrite: bool = False) -> Path:
        from multifield.bundle import Bundle, save_bundle

        self._check_fitted()
        bundle = Bundle(
            self.config_,
            self.encoder_,
            self.model_,
            self.thresholds_,
            getattr(self, "metrics_", {}),
            getattr(self, "history_", {}),
            getattr(self, "artifacts_", {}),
        )
        return save_bundle(bundle, directory, overwrite=overwrite)


def load(directory) -> MultiFieldClassifier:
    """Load a saved bundle as a fitted ``MultiFieldClassifier``."""
    from multifield.bundle import load_bundle

    bundle = load_bundle(directory)
    classifier = MultiFieldClassifier(bundle.config)
    classifier.config_ = bundle.config
    classifier.encoder_ = bundle.encoder
    classifier.model_ = bundle.model
    classifier.thresholds_ = bundle.thresholds
    classifier.metrics_ = bundle.metrics
    classifier.history_ = bundle.history
    return classifier


def sort_field(config: Config) -> str | None:
    """The attention field with the most tokens: batches are grouped by its length (``None`` when
    ``training.length_buckets`` is off: batches in random order, every field padded to its max_tokens)."""
    fields = config.attention_fields() if config.training.length_buckets else []
    return max(fields, key=lambda name: config.fields[name].max_tokens) if fields else None


def _to_numpy(value):
    if isinstance(value, dict):
        return {key: np.asarray(item) for key, item in value.items()}
    return np.asarray(value)


def _check_unique(ids: list, table: Table) -> None:
    seen: dict = {}
    for index, record_id in enumerate(ids):
        if record_id in seen:
            raise DataError(
                f"duplicate id {record_id!r} (first seen on {table.line_kind} {table.where(seen[record_id])})",
                table.path,
                table.where(index),
            )
        seen[record_id] = index


def _streams(train, stream: bool | None) -> bool:
    if not isinstance(train, (str, os.PathLike)):
        return False
    from multifield.data.stream import should_stream

    return should_stream(train, stream)


def _console(verbose: bool):
    from rich.console import Console

    return Console(stderr=True, quiet=not verbose)


__all__ = ["MultiFieldClassifier", "as_table", "load"]
