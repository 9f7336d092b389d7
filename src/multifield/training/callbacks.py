"""The callbacks of a training stage: validation micro-F1 with early stopping and the best weights kept, a
rich progress display, a guard that stops on a NaN loss, and the checkpoint saved after every epoch."""

from __future__ import annotations

import math
import time

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from multifield.errors import TrainingError
from multifield.thresholds import best_global_threshold
from multifield.training.checkpoint import Checkpoint
from multifield.training.losses import validation_loss
from multifield.training.optim import current_learning_rate


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
        logs["val_loss"] = validation_loss(self.y_valid, scores)
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
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.console = console or Console(stderr=True)
        self.progress = None
        self.task = None

    def on_train_begin(self, logs=None):
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


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a ``Checkpoint`` at the end of every epoch (after the validation monitor) and, when resuming,
    puts back the optimizer's variables and the batch order once ``fit`` has built them."""

    def __init__(self, checkpoint: Checkpoint, member: int, stage: str, full_model, batches, monitor, restore: bool):
        super().__init__()
        self.checkpoint, self.member, self.stage = checkpoint, member, stage
        self.full_model, self.batches, self.monitor = full_model, batches, monitor
        self.restore = restore

    def on_train_begin(self, logs=None):
        if not self.restore:
            return
        self.checkpoint.restore_optimizer(self.model.optimizer)
        # fit() has just reshuffled the batches (keras resets the data at its start): put back the saved order.
        self.checkpoint.restore_batches(self.batches)
        self.restore = False

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.save(
            self.member, self.stage, epoch, self.model.stop_training, self.model, self.full_model, self.batches, self.monitor
        )


class NanGuard(keras.callbacks.Callback):
    """Stops training with a ``TrainingError`` naming the epoch and batch when the loss is NaN or infinite."""

    def __init__(self, stage: str | None = None, checkpoint: Checkpoint | None = None):
        super().__init__()
        self.stage, self.checkpoint = stage, checkpoint
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        if math.isfinite(loss):
            return
        self.model.stop_training = True
        stage = f" of the {self.stage} stage" if self.stage else ""
        kept = f"; {self.checkpoint.describe()}" if self.checkpoint is not None else ""
        raise TrainingError(
            f"the training loss became {loss} in epoch {self.epoch + 1}{stage}, batch {batch + 1}; training stopped{kept}. "
            "Try a lower training.learning_rate or a training.clipnorm"
        )


def close_progress(callbacks: list) -> None:
    """Keras skips ``on_train_end`` when fit raises: stop any live progress display among ``callbacks``."""
    for callback in callbacks:
        if isinstance(callback, RichProgress):
            callback.on_train_end()


__all__ = ["EpochCheckpoint", "NanGuard", "RichProgress", "ValidationMonitor", "close_progress"]
