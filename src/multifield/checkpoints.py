"""Crash-safe training: the whole state of a run saved after every epoch, so that a run killed at any
instant continues with ``multifield train --resume``; and a guard that stops training on a NaN loss.

The checkpoint of ``--out runs/movies`` is one file beside it, ``runs/movies.checkpoint.npz``: every
variable of the model (weights and the random-seed states of its dropout layers), the optimizer's
variables (moments, step count, hence the learning-rate schedule), the shuffling generator's state and
the next epoch's batch order, the epoch and stage (wide or deep) reached, the validation monitor's
history, best score, best epoch, best weights and early-stopping state, and the finished ensemble
members. It is written to a temporary file, flushed to disk and renamed over the previous one, so a
crash leaves either the old or the new checkpoint, never half of one. ``--out`` itself only ever holds
a finished bundle (written atomically by ``multifield.bundle``); the checkpoint is removed once the bundle
and its report are written.

The tokenizers and the label vocabulary are not stored: they are fitted again on the same training
records, which gives the same ones; a fingerprint of the config, ``--epochs`` and the encoded arrays
makes sure a resumed run trains on exactly what the interrupted one did.

A test hook: ``MULTIFIELD_TEST_KILL_IN_CHECKPOINT=N`` makes the process kill itself (SIGKILL) halfway
through writing its N-th checkpoint (``tests/test_faults.py``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import signal
from pathlib import Path

import keras
import numpy as np

from multifield.errors import CheckpointError, MultifieldError, TrainingError
from multifield.files import atomic_writer, leftover_temporaries

FORMAT_VERSION = 1
STAGES = ("wide", "deep")
KILL_HOOK = "MULTIFIELD_TEST_KILL_IN_CHECKPOINT"


def checkpoint_path(out: str | os.PathLike) -> Path:
    """Where the checkpoint of a run writing its bundle to ``out`` lives: a file beside ``out``."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = out.resolve()
    return out.with_name(out.name + ".checkpoint.npz")


def check_out(out: Path, resume: bool, overwrite: bool) -> str | None:
    """Refuse to train into an ``out`` that holds something, unless resuming or overwriting; a note to print."""
    checkpoint = checkpoint_path(out)
    if out.exists() and not out.is_dir():
        raise MultifieldError(f"{out}: exists and is not a directory")
    full = out.is_dir() and any(out.iterdir())
    if resume:
        if checkpoint.exists():
            return f"resuming from {checkpoint}"
        if full and not overwrite:
            raise MultifieldError(
                f"{out}: holds a finished bundle and there is no checkpoint ({checkpoint.name}) to resume; "
                "pass --overwrite to train again"
            )
        return f"no checkpoint {checkpoint} to resume; training from the start"
    if full and not overwrite:
        raise MultifieldError(f"{out}: exists and is not empty; pass --overwrite to replace it")
    if checkpoint.exists() and not overwrite:
        raise MultifieldError(
            f"{checkpoint}: an interrupted run left this checkpoint; pass --resume to continue it or --overwrite to start over"
        )
    return None


def fingerprint(config, epochs: int | None, encoder, *arrays) -> str:
    """A digest of what a run trains on: its config, ``--epochs``, vocabularies, labels and encoded
    records (a streamed training file: its path, size and record count)."""
    digest = hashlib.sha256(json.dumps(config.to_toml_dict(), sort_keys=True, default=str).encode())
    digest.update(repr(epochs).encode())
    digest.update(json.dumps(encoder.labels.labels).encode())
    for name, tokenizer in sorted(encoder.tokenizers.items()):
        digest.update(name.encode() + tokenizer.to_json().encode())
    for array in arrays:
        if hasattr(array, "path") and hasattr(array, "count"):  # a StreamSource
            digest.update(f"{Path(array.path).resolve()}{Path(array.path).stat().st_size}{array.count}".encode())
            continue
        for name, value in sorted(array.items()) if isinstance(array, dict) else [("", array)]:
            value = np.ascontiguousarray(value)
            digest.update(f"{name}{value.dtype}{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def open_checkpoint(checkpoint, resume: bool, config, epochs, encoder, *arrays, console=None) -> Checkpoint:
    """A ``Checkpoint`` (from a path) started for this run: loaded when resuming, else cleared."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(checkpoint, resume=resume)
    if checkpoint.start(fingerprint(config, epochs, encoder, *arrays)) and console is not None:
        stage, epoch = checkpoint.saved_epoch
        where = f"{stage} stage, " if stage == "wide" else ""
        members = f"member {checkpoint.state['position']['member'] + 1}, " if config.training.ensemble > 1 else ""
        console.print(f"resuming after {members}{where}epoch {epoch + 1} from {checkpoint.path}")
    return checkpoint


def _data_state(batches) -> tuple[dict, list[np.ndarray]]:
    """What decides the coming batches: the shuffling generator and the batch order (in-memory batches),
    or the epoch count (streamed batches, which seed each epoch's shuffle with it)."""
    if hasattr(batches, "rng") and hasattr(batches, "batches"):
        return {"rng": batches.rng.bit_generator.state}, list(batches.batches)
    if hasattr(batches, "epoch"):
        return {"epoch": batches.epoch}, []
    return {}, []


def _restore_data_state(batches, state: dict, order: list[np.ndarray]) -> None:
    if "rng" in state:
        batches.rng.bit_generator.state = state["rng"]
        batches.batches = order
    if "epoch" in state:
        batches.epoch = state["epoch"]


def _numpy(variables) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(variable.value)) for variable in variables]


def _assign(variables, arrays: list[np.ndarray], what: str, path: Path) -> None:
    variables = list(variables)
    if len(variables) != len(arrays) or any(tuple(v.shape) != a.shape for v, a in zip(variables, arrays)):
        raise CheckpointError(f"{path}: its {what} do not fit this model; train without --resume to start over")
    for variable, array in zip(variables, arrays):
        variable.assign(array)


def _monitor_state(monitor, with_weights: bool) -> tuple[dict, list[np.ndarray]]:
    state = {"history": monitor.history, "best_score": monitor.best_score, "best_epoch": monitor.best_epoch}
    weights = list(monitor.best_weights) if with_weights and monitor.best_weights is not None else []
    state["best_weights"] = len(weights) if with_weights and monitor.best_weights is not None else None
    return state, weights


def _restore_monitor(monitor, state: dict, weights: list[np.ndarray] | None) -> None:
    monitor.history = copy.deepcopy(state["history"])
    monitor.best_score, monitor.best_epoch = float(state["best_score"]), int(state["best_epoch"])
    monitor.best_weights = weights


class Checkpoint:
    """The training state of one run in one ``.npz`` file, replaced atomically after every epoch.

    ``resume=True`` continues from the file if there is one; otherwise an old file is replaced. Used by
    ``MultiFieldClassifier.fit(..., checkpoint=path, resume=...)`` through ``fit_stage``.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False, write: bool = True):
        self.path = Path(path)
        self.resume = resume
        self.write = write  # False: read only (the other processes of a data-parallel run)
        self.fingerprint: str | None = None
        self.state: dict | None = None  # the loaded state, when resuming
        self.arrays: dict[str, np.ndarray] = {}
        self.members: dict[int, dict] = {}  # finished ensemble members: {"history", "best_epoch", "variables"}
        self.stages: dict[tuple[int, str], dict] = {}  # finished stages of a member: the monitor's state
        self.writes = 0
        self.saved_epoch: tuple[str, int] | None = None

    # -- starting ------------------------------------------------------------------------------------
    def start(self, fingerprint: str) -> bool:
        """Load the checkpoint when resuming (True) or clear the way for a new run (False)."""
        self.fingerprint = fingerprint
        if self.write:
            for stale in leftover_temporaries(self.path):
                stale.unlink(missing_ok=True)  # a write cut short by a crash: never a checkpoint
        if not self.resume or not self.path.exists():
            if self.write:
                self.path.unlink(missing_ok=True)
            return False
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                self.arrays = {name: archive[name] for name in archive.files}
            state = json.loads(bytes(self.arrays.pop("state.json")).decode("utf-8"))
        except Exception as error:  # numpy and zipfile raise many types for a damaged file
            raise CheckpointError(
                f"{self.path}: not a readable checkpoint ({type(error).__name__}: {error}); delete it to start over"
            ) from None
        if state.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{self.path}: checkpoint format {state.get('format_version')} is not supported")
        if state.get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"{self.path}: made by a run with another config, other training data or another --epochs; "
                "resume with the same ones, or train with --overwrite to start over"
            )
        try:
            for member, summary in state["members"].items():
                self.members[int(member)] = dict(summary, variables=self._list(f"member{member}"))
            for stage, summary in state["stages"].items():
                self.stages[(state["position"]["member"], stage)] = summary
            self.saved_epoch = (state["position"]["stage"], state["position"]["epoch"])
            STAGES.index(self.saved_epoch[0])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{self.path}: not a readable checkpoint (no {error}); delete it to start over") from None
        self.state = state
        return True

    def _list(self, prefix: str) -> list[np.ndarray]:
        count = sum(1 for name in self.arrays if name.startswith(prefix + "/"))
        return [self.arrays[f"{prefix}/{index}"] for index in range(count)]

    def _relation(self, member: int, stage: str) -> str:
        """Where (member, stage) stands against the checkpoint: "done", "current" or "ahead"."""
        if self.state is None:
            return "ahead"
        position = self.state["position"]
        here, there = (member, STAGES.index(stage)), (position["member"], STAGES.index(position["stage"]))
        return "done" if here < there else "current" if here == there else "ahead"

    # -- ensemble members ----------------------------------------------------------------------------
    def finished_member(self, member: int, full_model) -> tuple[dict, int] | None:
        """For a member finished before the crash: its variables put back, its history and best epoch."""
        summary = self.members.get(member)
        if summary is None:
            return None
        _assign(full_model.variables, summary["variables"], "variables", self.path)
        return copy.deepcopy(summary["history"]), int(summary["best_epoch"])

    def member_done(self, member: int, full_model, history: dict, best_epoch: int) -> None:
        self.members[member] = {"history": history, "best_epoch": best_epoch, "variables": _numpy(full_model.variables)}

    # -- writing -------------------------------------------------------------------------------------
    def save(self, member: int, stage: str, epoch: int, stopped: bool, model, full_model, batches, monitor) -> None:
        """Write the state after ``epoch`` (0-based) of ``stage``: to a temporary file, then renamed."""
        if not self.write:
            return
        monitor_state, best_weights = _monitor_state(monitor, with_weights=True)
        state = {
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "position": {"member": member, "stage": stage, "epoch": epoch, "stopped": bool(stopped)},
            "monitor": monitor_state,
            "stages": {s: summary for (m, s), summary in self.stages.items() if m == member},
            "members": {str(m): {"history": s["history"], "best_epoch": s["best_epoch"]} for m, s in self.members.items()},
            "data": _data_state(batches)[0],
        }
        arrays = {"state.json": np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)}
        for prefix, values in (
            ("model", _numpy(full_model.variables)),
            ("optimizer", _numpy(model.optimizer.variables)),
            ("best", best_weights),
            ("batches", _data_state(batches)[1]),
            *((f"member{m}", summary["variables"]) for m, summary in self.members.items()),
        ):
            arrays.update({f"{prefix}/{index}": np.asarray(value) for index, value in enumerate(values)})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self._write(buffer.getvalue())
        self.saved_epoch = (stage, epoch)

    def _write(self, content: bytes) -> None:
        self.writes += 1
        kill = os.environ.get(KILL_HOOK) == str(self.writes)
        with atomic_writer(self.path) as handle:
            if kill:  # the test hook: die with half a file written, as a power cut or kill -9 would
                handle.write(content[: len(content) // 2])
                handle.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            handle.write(content)

    def remove(self) -> None:
        """Delete the checkpoint once the bundle it led to is written."""
        if self.write:
            self.path.unlink(missing_ok=True)

    def describe(self) -> str:
        if self.saved_epoch is None:
            return "no checkpoint was written"
        stage, epoch = self.saved_epoch
        return f"the checkpoint of {stage + ' stage ' if stage == 'wide' else ''}epoch {epoch + 1} is kept in {self.path}"


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
        checkpoint = self.checkpoint
        _assign(self.model.optimizer.variables, checkpoint._list("optimizer"), "optimizer variables", checkpoint.path)
        # fit() has just reshuffled the batches (keras resets the data at its start): put back the saved order.
        _restore_data_state(self.batches, checkpoint.state["data"], checkpoint._list("batches"))
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


def fit_stage(
    model,
    batches,
    epochs: int,
    callbacks: list,
    monitor,
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
        relation = checkpoint._relation(member, stage)
        if relation == "done":
            _restore_monitor(monitor, checkpoint.stages[(member, stage)], None)
            return
        current = relation == "current"
        if current:
            position = checkpoint.state["position"]
            _assign(full_model.variables, checkpoint._list("model"), "variables", checkpoint.path)
            best = checkpoint._list("best") if checkpoint.state["monitor"]["best_weights"] is not None else None
            _restore_monitor(monitor, checkpoint.state["monitor"], best)
            initial_epoch = position["epoch"] + 1
            if position["stopped"] or initial_epoch >= epochs:  # the stage had ended: only finish it
                # The next stage goes on with the same batches, whose shuffling state must be as it was.
                _restore_data_state(batches, checkpoint.state["data"], checkpoint._list("batches"))
                monitor.set_model(model)
                monitor.on_train_end()
                checkpoint.stages[(member, stage)] = _monitor_state(monitor, with_weights=False)[0]
                return
        saver = EpochCheckpoint(checkpoint, member, stage, full_model, batches, monitor, restore=current)
        callbacks.insert(callbacks.index(monitor) + 1, saver)
    guard = NanGuard(stage if staged else None, checkpoint)
    try:
        # shuffle=False: the batches shuffle themselves, from a generator the checkpoint saves (keras would
        # shuffle their order again with Python's global `random`, which a resumed run cannot replay).
        model.fit(
            batches, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0, callbacks=[guard] + callbacks
        )
    except BaseException:
        from multifield.training import RichProgress

        for callback in callbacks:  # keras skips on_train_end on an error: close the live progress display
            if isinstance(callback, RichProgress):
                callback.on_train_end()
        raise
    if checkpoint is not None:
        checkpoint.stages[(member, stage)] = _monitor_state(monitor, with_weights=False)[0]


__all__ = [
    "Checkpoint",
    "EpochCheckpoint",
    "NanGuard",
    "check_out",
    "checkpoint_path",
    "fingerprint",
    "fit_stage",
    "open_checkpoint",
]
