"""The training engine: each ensemble member trained in its stages (the wide part alone first, then the deep
part on top of it), the members joined, the thresholds tuned on validation, and the validation metrics,
attention check and learning curves of the result.

``train(config, data)`` takes records already made ready (``multifield.training.datasets.prepare``) and
returns a ``TrainedModel``; ``fit_stage`` is the one place that calls Keras' ``model.fit``. Training predicts
(validation, blend, thresholds, attention check) on ONNX Runtime (``multifield.training.graph_scoring``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np
from rich.console import Console

from multifield.config import Config
from multifield.data.batches import sort_field, trims_sort_field
from multifield.data.vectors import embedding_matrices
from multifield.explain.attention_check import attention_check, describe
from multifield.metrics import evaluate
from multifield.model import (
    blends_logits,
    build_model,
    ensemble_model,
    set_wide_trainable,
    training_model,
    wide_scores_model,
)
from multifield.plots import learning_curves_png
from multifield.thresholds import choose_shrinkage, tune_thresholds
from multifield.training.callbacks import EpochCheckpoint, NanGuard, RichProgress, ValidationMonitor, close_progress
from multifield.training.checkpoint import Checkpoint, open_checkpoint
from multifield.training.datasets import TrainingSet
from multifield.training.distribution import current_plan, training_batches
from multifield.training.graph_scoring import GraphScoring
from multifield.training.losses import make_loss, positive_weights
from multifield.training.optim import make_optimizer
from multifield.training.wide_solver import choose_blend, fit_wide_part, supported


@dataclass
class TrainedModel:
    """What training produced: the model and its thresholds, and what was learned about it on the way; ``graph``,
    the model's ONNX graph (``model.onnx``) written from its final weights, when training predicted with it."""

    model: keras.Model
    thresholds: np.ndarray
    metrics: dict
    history: dict
    artifacts: dict[str, bytes] = field(default_factory=dict)
    graph: bytes | None = None


@dataclass
class _Run:
    """The settings every member and stage of one run shares."""

    config: Config
    data: TrainingSet
    epochs: int | None
    console: Console
    verbose: bool
    callbacks: list
    checkpoint: Checkpoint | None
    matrices: dict
    frequencies: dict
    scoring: GraphScoring


def train(
    config: Config,
    data: TrainingSet,
    epochs: int | None = None,
    console: Console | None = None,
    verbose: bool = True,
    callbacks: list | None = None,
    checkpoint: Checkpoint | None = None,
) -> TrainedModel:
    """Train ``training.ensemble`` members on ``data`` and tune the thresholds on its validation records.

    ``epochs`` trains exactly that many epochs, without early stopping; ``callbacks`` (Keras callbacks) run
    after the validation monitor, so that their epoch logs hold ``val_micro_f1``; a ``checkpoint`` saves the
    training state after every epoch and, when it was opened to resume, continues from it."""
    console = console or Console(stderr=True, quiet=not verbose)
    _say_notes(data, console)
    if checkpoint is not None:
        checkpoint = open_checkpoint(
            checkpoint, checkpoint.resume, config, epochs, data.encoder, data.train, data.x_valid, data.y_valid, console
        )
    tfidf = [name for name, field_config in config.fields.items() if field_config.wide and field_config.wide_pooling == "tfidf"]
    run = _Run(
        config, data, epochs, console, verbose, list(callbacks or []), checkpoint,
        embedding_matrices(config, data.encoder, console), data.train.document_frequencies(tfidf) if tfidf else {},
        GraphScoring(config, console),
    )
    members, histories, best_epochs = [], [], []
    for member in range(config.training.ensemble):
        if config.training.ensemble > 1:
            console.print(f"ensemble member {member + 1} of {config.training.ensemble}")
        full_model, history, best_epoch = _train_member(run, member)
        members.append(full_model)
        histories.append(history)
        best_epochs.append(best_epoch)
    model = members[0] if len(members) == 1 else ensemble_model(members, config)
    trained = _finish(run, model, histories, best_epochs)
    console.print(
        f"best epoch {', '.join(map(str, best_epochs))}: validation micro-F1 {trained.metrics['validation']['micro_f1']:.4f}, "
        f"macro-F1 {trained.metrics['validation']['macro_f1']:.4f} with tuned thresholds"
    )
    return trained


def _say_notes(data: TrainingSet, console: Console) -> None:
    if data.unknown_valid_labels:
        console.print(f"[yellow]note:[/] validation labels never seen in training are ignored: {data.unknown_valid_labels}")
    rare = data.rare_labels()
    if rare:
        console.print(f"[yellow]note:[/] labels with fewer than 3 training records: {', '.join(rare)}")
    console.print(data.summary())


def _finish(run: _Run, model, histories: list[dict], best_epochs: list[int]) -> TrainedModel:
    """Thresholds tuned on validation, the validation metrics, the attention check and the learning curves.
    ``model`` is final (best weights restored, blend chosen): the graph its predictor runs is the bundle's."""
    config, data, training = run.config, run.data, run.config.training
    predictor = run.scoring.predictor(model, data.encoder, np.zeros(len(data.encoder.labels.labels), dtype=np.float32))
    valid_scores = predictor.scores(data.x_valid)
    shrinkage = training.threshold_shrinkage
    if shrinkage == "auto":
        shrinkage = choose_shrinkage(
            data.y_valid, valid_scores, training.thresholds, min_labels=training.min_labels, objective=training.threshold_objective
        )
        run.console.print(f"threshold shrinkage {shrinkage:g} (chosen on validation)")
    thresholds = tune_thresholds(
        data.y_valid, valid_scores, training.thresholds, min_labels=training.min_labels, shrinkage=float(shrinkage),
        objective=training.threshold_objective,
    )
    predictor = predictor.with_thresholds(thresholds)
    validation = evaluate(data.y_valid, predictor.decide(valid_scores), valid_scores, data.encoder.labels.labels)
    metrics = {
        "validation": validation,
        "best_epoch": best_epochs[0],
        "best_epochs": best_epochs,
        "epochs_run": sum(len(history.get("loss", [])) for history in histories),
        "train_seconds": round(time.perf_counter() - data.started, 2),
        "train_records": len(data.train),
        "validation_records": len(data.valid_table),
        "threshold_shrinkage": float(shrinkage),
    }
    if config.attention_fields():
        metrics["attention_check"] = attention_check(predictor, data.x_valid)
        for line in describe(metrics["attention_check"]):
            run.console.print(f"attention check on validation, {line}", highlight=False)
    metrics.update(run.scoring.metrics())
    history = dict(histories[0], **({"members": histories} if len(histories) > 1 else {}))
    artifacts = {"learning_curves.png": learning_curves_png(histories)}
    return TrainedModel(model, thresholds, metrics, history, artifacts, graph=run.scoring.graph)


def _train_member(run: _Run, member: int) -> tuple[keras.Model, dict, int]:
    """Train one model (seed ``training.seed + member``); its full model, history and best epoch."""
    config, data, training = run.config, run.data, run.config.training
    seed = training.seed + member
    keras.utils.set_random_seed(seed)
    # In-memory records or a streamed file; under data-parallel training, this process's shard.
    batches = training_batches(data.train, training.batch_size, sort_field(config), seed, trims_sort_field(config))
    full_model = build_model(
        config,
        {name: tok.vocabulary_size for name, tok in data.encoder.tokenizers.items()},
        len(data.encoder.labels.labels),
        run.matrices,
        name_suffix=f"_{member + 1}" if training.ensemble > 1 else "",
        document_frequencies=run.frequencies,
    )
    finished = run.checkpoint.finished_member(member, full_model) if run.checkpoint is not None else None
    if finished is not None:  # resumed: this member was done before the interruption
        return full_model, *finished
    # One loss for both stages: the wide stage's predictions are the scores alone.
    loss = make_loss(
        training.label_smoothing,
        positive_weights(*data.train.label_totals(), training.positive_weight),
        training.deep_loss_weight,
    )
    wide_history = _train_wide_stage(run, member, full_model, loss, seed)
    model = training_model(full_model, training.deep_loss_weight)
    model.compile(optimizer=make_optimizer(training, len(batches)), loss=loss)
    total_epochs = run.epochs or training.max_epochs
    # Validation predicts with the full model, or with the deep part alone when it is trained alone (on Keras:
    # ``model``), from a graph of the weights of the epoch.
    validated, output = (model, "deep_scores") if blends_logits(full_model) else (full_model, "scores")
    monitor = ValidationMonitor(
        lambda: run.scoring.scores(full_model, data.x_valid, output, keras_model=validated),
        data.y_valid,
        patience=None if run.epochs else training.patience,
        min_labels=training.min_labels,
    )
    callbacks = [monitor] + ([RichProgress(total_epochs, len(batches), run.console)] if run.verbose else [])
    callbacks += run.callbacks
    fit_stage(model, batches, total_epochs, callbacks, monitor, run.checkpoint, member, "deep", full_model, wide_history is not None)
    history = dict(monitor.history, **({"wide_stage": wide_history} if wide_history is not None else {}))
    if blends_logits(full_model):  # after the best weights are back (the monitor's on_train_end)
        logits = None  # on Keras, choose_blend computes them
        if run.scoring.runtime == "onnx":
            logits = run.scoring.outputs(full_model, data.x_valid, ("wide_logits", "deep_logits"))
        history["blend"] = choose_blend(full_model, config, data.x_valid, data.y_valid, run.console, logits)
    if run.checkpoint is not None:
        run.checkpoint.member_done(member, full_model, history, monitor.best_epoch + 1)
    return full_model, history, monitor.best_epoch + 1


def _train_wide_stage(run: _Run, member: int, full_model, loss, seed: int) -> dict | None:
    """Fit the linear (wide) part alone, then freeze it, so that the deep part learns a correction of it and
    the network never knows less than the linear model. Its history; None without a wide part."""
    config, data, training = run.config, run.data, run.config.training
    if training.wide_epochs <= 0 or wide_scores_model(full_model) is None:
        return None
    if training.wide_solver == "logistic":
        reason = supported(config) or ("the training records are streamed" if data.train.arrays() is None else None)
        reason = reason or ("training is distributed" if current_plan() is not None else None)
        if reason is None:
            inputs, labels = data.train.arrays()
            history = fit_wide_part(full_model, config, inputs, labels, data.x_valid, data.y_valid, run.console)
            set_wide_trainable(full_model, False)
            run.console.print("deep part on its own, then blended with the regression on validation")
            return history
        run.console.print(f'[yellow]note:[/] wide_solver = "logistic" is not used ({reason}); the wide part is trained with adam')
    return _train_wide_with_adam(run, member, full_model, loss, seed)


def _train_wide_with_adam(run: _Run, member: int, full_model, loss, seed: int) -> dict:
    data, training = run.data, run.config.training
    wide_model = wide_scores_model(full_model)
    wide_model.compile(optimizer=keras.optimizers.Adam(training.wide_learning_rate), loss=loss)
    monitor = ValidationMonitor(
        lambda: run.scoring.scores(full_model, data.x_valid, "wide_scores", keras_model=wide_model),
        data.y_valid,
        patience=None if run.epochs else 2,
        min_labels=training.min_labels,
    )
    epochs = min(run.epochs, training.wide_epochs) if run.epochs else training.wide_epochs
    # The linear part costs nothing per token: its batches keep every field at full width, one shape to
    # compile instead of one per bucket width.
    batches = training_batches(data.train, training.batch_size, None, seed)
    run.console.print("wide part first")
    callbacks = [monitor] + ([RichProgress(epochs, len(batches), run.console)] if run.verbose else [])
    fit_stage(wide_model, batches, epochs, callbacks, monitor, run.checkpoint, member, "wide", full_model, True)
    set_wide_trainable(full_model, False)
    run.console.print("deep part on top of it")
    return monitor.history


def fit_stage(
    model,
    batches,
    epochs: int,
    callbacks: list,
    monitor: ValidationMonitor,
    checkpoint: Checkpoint | None = None,
    member: int = 0,
    stage: str = "deep",
    full_model=None,
    staged: bool = False,
) -> None:
    """``model.fit(batches)`` for one stage of one member, with the NaN guard; with a ``checkpoint``, a
    checkpoint after every epoch, and resumed where the checkpoint left off (a stage finished before the
    crash only gets its monitor back). ``callbacks`` must hold ``monitor``; the checkpoint is saved
    right after it, so that later callbacks see a saved epoch."""
    callbacks = list(callbacks)
    initial_epoch = 0
    if checkpoint is not None:
        done, initial_epoch = checkpoint.resume_stage(member, stage, epochs, model, full_model, batches, monitor)
        if done:
            return
        saver = EpochCheckpoint(checkpoint, member, stage, full_model, batches, monitor, restore=initial_epoch > 0)
        callbacks.insert(callbacks.index(monitor) + 1, saver)
    guard = NanGuard(stage if staged else None, checkpoint)
    try:
        # shuffle=False: the batches shuffle themselves, from a generator the checkpoint saves (keras would
        # shuffle their order again with Python's global `random`, which a resumed run cannot replay).
        model.fit(batches, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0, callbacks=[guard] + callbacks)
    except BaseException:
        close_progress(callbacks)
        raise
    if checkpoint is not None:
        checkpoint.stage_done(member, stage, monitor)


__all__ = ["TrainedModel", "fit_stage", "train"]
