"""The pieces of a training run: optimizer and learning-rate schedule, validation micro-F1 with early
stopping and best weights restored, a rich progress display, and the learning-curve plot."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from multifield.config import TrainingConfig
from multifield.thresholds import best_global_threshold


def learning_rate_schedule(training: TrainingConfig, steps_per_epoch: int):
    schedule = training.schedule
    if schedule.kind == "constant":
        return training.learning_rate
    if schedule.kind == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate,
            decay_steps=max(1, round(schedule.decay_epochs * steps_per_epoch)),
            decay_rate=schedule.decay_rate,
        )
    warmup_steps = round(schedule.warmup_epochs * steps_per_epoch)
    total_steps = max(1, training.max_epochs * steps_per_epoch - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=total_steps,
            alpha=schedule.alpha,
            warmup_target=training.learning_rate,
            warmup_steps=warmup_steps,
        )
    return keras.optimizers.schedules.CosineDecay(training.learning_rate, decay_steps=total_steps, alpha=schedule.alpha)


def make_optimizer(training: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    learning_rate = learning_rate_schedule(training, steps_per_epoch)
    common = {"learning_rate": learning_rate, "clipnorm": training.clipnorm}
    if training.weight_decay > 0:
        common["weight_decay"] = training.weight_decay
    if training.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    if training.optimizer == "adamw":
        common.setdefault("weight_decay", 0.004)
        return keras.optimizers.AdamW(**common)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(momentum=training.momentum, nesterov=True, **common)
    return keras.optimizers.RMSprop(momentum=training.momentum, **common)


def positive_weights(y_train: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-label weights of positive examples: none, negatives/positives, or its square root."""
    if mode == "none":
        return None
    from multifield.distribution import label_totals

    positives, records = label_totals(y_train)  # a label matrix, or a streamed file's counts
    positives = np.maximum(positives, 1.0)
    ratio = (records - positives) / positives
    return np.maximum(np.sqrt(ratio) if mode == "sqrt" else ratio, 1.0).astype(np.float32)


def make_loss(label_smoothing: float, weights: np.ndarray | None, deep_loss_weight: float = 0.0):
    """Binary cross-entropy; with ``weights``, each label's positive term is scaled by its weight.

    Predictions of twice the labels' width (``multifield.model.training_model``) are the scores, then the
    deep part's own scores: their loss is added, times ``deep_loss_weight``."""
    loss = _binary_crossentropy(label_smoothing, weights)

    def loss_with_deep_part(y_true, y_pred):
        labels = y_true.shape[-1]
        if y_pred.shape[-1] == labels:
            return loss(y_true, y_pred)
        return loss(y_true, y_pred[:, :labels]) + deep_loss_weight * loss(y_true, y_pred[:, labels:])

    return loss_with_deep_part if deep_loss_weight > 0 else loss


def _binary_crossentropy(label_smoothing: float, weights: np.ndarray | None):
    if weights is None:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    weights = keras.ops.convert_to_tensor(weights)

    def weighted_binary_crossentropy(y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        if label_smoothing:
            y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
        y_pred = keras.ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        terms = weights * y_true * keras.ops.log(y_pred) + (1.0 - y_true) * keras.ops.log(1.0 - y_pred)
        return -keras.ops.mean(terms, axis=-1)

    return weighted_binary_crossentropy


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class ValidationMonitor(keras.callbacks.Callback):
    """After each epoch (``validation_scores()`` giving the model's scores on the validation records):
    validation micro-F1 (at its best single threshold) and the learning rate go into
    the logs; the best weights are kept; training stops after ``patience`` epochs without improvement."""

    def __init__(self, validation_scores, y_valid, patience: int | None, min_labels: int = 0):
        super().__init__()
        self.validation_scores, self.y_valid = validation_scores, y_valid
        self.patience = patience
        self.min_labels = min_labels
        self.history: dict[str, list[float]] = {}
        self.best_score = -math.inf
        self.best_epoch = -1
        self.best_weights = None
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        scores = self.validation_scores()
        threshold, micro_f1 = best_global_threshold(self.y_valid, scores, self.min_labels)
        logs["val_micro_f1"] = micro_f1
        logs["val_threshold"] = threshold
        logs["val_loss"] = float(keras.ops.convert_to_numpy(keras.losses.binary_crossentropy(self.y_valid, scores)).mean())
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        logs["seconds"] = time.perf_counter() - self._epoch_started
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        if micro_f1 > self.best_score:
            self.best_score, self.best_epoch = micro_f1, epoch
            self.best_weights = self.model.get_weights()
        elif self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class RichProgress(keras.callbacks.Callback):
    """A progress bar per epoch, and one line per finished epoch with loss, validation micro-F1 and rate."""

    def __init__(self, epochs: int, steps_per_epoch: int, console=None):
        super().__init__()
        from rich.console import Console

        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.console = console or Console(stderr=True)
        self.progress = None
        self.task = None

    def on_train_begin(self, logs=None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self.task = self.progress.add_task("train", total=self.steps_per_epoch, epoch=f"{epoch + 1}/{self.epochs}", loss=0.0)

    def on_train_batch_end(self, batch, logs=None):
        self.progress.update(self.task, advance=1, loss=float((logs or {}).get("loss", 0.0)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.progress.remove_task(self.task)
        self.console.print(
            f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs.get('loss', float('nan')):.4f}"
            f"  val_loss {logs.get('val_loss', float('nan')):.4f}"
            f"  val micro-F1 {logs.get('val_micro_f1', float('nan')):.4f}"
            f"  lr {logs.get('learning_rate', float('nan')):.2e}  {logs.get('seconds', 0.0):.1f}s"
        )

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.stop()


def learning_curves_png(histories: list[dict[str, list[float]]]) -> bytes:
    """Loss, validation micro-F1 and learning rate per epoch (one line per ensemble member), as a PNG."""
    from multifield.plots import figure_png, pyplot

    figure, axes = pyplot().subplots(1, 3, figsize=(13, 3.6))
    for member, history in enumerate(histories):
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        suffix = f" ({member + 1})" if len(histories) > 1 else ""
        for key, label, style in (("loss", "train", "-"), ("val_loss", "validation", "--")):
            if key in history:
                axes[0].plot(epochs, history[key], style, marker="o", label=label + suffix)
        if "val_micro_f1" in history:
            axes[1].plot(epochs, history["val_micro_f1"], marker="o", label=f"member {member + 1}")
        if "learning_rate" in history:
            axes[2].plot(epochs, history["learning_rate"], marker="o")
    axes[0].set(title="binary cross-entropy", xlabel="epoch")
    axes[0].legend(fontsize="small")
    axes[1].set(title="validation micro-F1", xlabel="epoch")
    axes[2].set(title="learning rate", xlabel="epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure)
