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
import os
import signal
from pathlib import Path

import keras
import numpy as np

from multifield.data.in_memory import update_digest
from multifield.errors import CheckpointError, MultifieldError
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


def fingerprint(config, epochs: int | None, encoder, train_data, x_valid: dict, y_valid) -> str:
    """A digest of what a run trains on: its config, ``--epochs``, vocabularies, labels, training data
    (``train_data.update_digest``: encoded records, or a streamed file's path, size and record count) and
    encoded validation records."""
    digest = hashlib.sha256(json.dumps(config.to_toml_dict(), sort_keys=True, default=str).encode())
    digest.update(repr(epochs).encode())
    digest.update(json.dumps(encoder.labels.labels).encode())
    for name, tokenizer in sorted(encoder.tokenizers.items()):
        digest.update(name.encode() + tokenizer.to_json().encode())
    train_data.update_digest(digest)
    update_digest(digest, x_valid)
    update_digest(digest, y_valid)
    return digest.hexdigest()


def open_checkpoint(checkpoint, resume: bool, config, epochs, encoder, train_data, x_valid, y_valid, console=None) -> Checkpoint:
    """A ``Checkpoint`` (from a path) started for this run: loaded when resuming, else cleared."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint(checkpoint, resume=resume)
    if checkpoint.start(fingerprint(config, epochs, encoder, train_data, x_valid, y_valid)) and console is not None:
        stage, epoch = checkpoint.saved_epoch
        where = f"{stage} stage, " if stage == "wide" else ""
        members = f"member {checkpoint.state['position']['member'] + 1}, " if config.training.ensemble > 1 else ""
        console.print(f"resuming after {members}{where}epoch {epoch + 1} from {checkpoint.path}")
    return checkpoint


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
    ``multifield.training.engine`` (``fit_stage``) and saved by ``multifield.training.callbacks.EpochCheckpoint``.
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
                self.members[int(member)] = dict(summary, variables=self.arrays_of(f"member{member}"))
            for stage, summary in state["stages"].items():
                self.stages[(state["position"]["member"], stage)] = summary
            self.saved_epoch = (state["position"]["stage"], state["position"]["epoch"])
            STAGES.index(self.saved_epoch[0])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{self.path}: not a readable checkpoint (no {error}); delete it to start over") from None
        self.state = state
        return True

    def arrays_of(self, prefix: str) -> list[np.ndarray]:
        """The saved arrays under ``prefix`` (``model``, ``optimizer``, ``best``, ``batches``, ``member<N>``), in order."""
        count = sum(1 for name in self.arrays if name.startswith(prefix + "/"))
        return [self.arrays[f"{prefix}/{index}"] for index in range(count)]

    def relation(self, member: int, stage: str) -> str:
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

    # -- resuming a stage ----------------------------------------------------------------------------
    def resume_stage(self, member: int, stage: str, epochs: int, model, full_model, batches, monitor) -> tuple[bool, int]:
        """Where a stage starts: ``(done, initial_epoch)``. A stage finished before the crash only gets its
        monitor back (done); the stage the checkpoint was written in gets the model's variables and the
        monitor's state and goes on after the saved epoch (done, if that epoch had ended it)."""
        relation = self.relation(member, stage)
        if relation == "done":
            _restore_monitor(monitor, self.stages[(member, stage)], None)
            return True, 0
        if relation == "ahead":
            return False, 0
        position = self.state["position"]
        _assign(full_model.variables, self.arrays_of("model"), "variables", self.path)
        best = self.arrays_of("best") if self.state["monitor"]["best_weights"] is not None else None
        _restore_monitor(monitor, self.state["monitor"], best)
        initial_epoch = position["epoch"] + 1
        if position["stopped"] or initial_epoch >= epochs:  # the stage had ended: only finish it
            # The next stage goes on with the same batches, whose shuffling state must be as it was.
            self.restore_batches(batches)
            monitor.set_model(model)
            monitor.on_train_end()
            self.stage_done(member, stage, monitor)
            return True, initial_epoch
        return False, initial_epoch

    def restore_batches(self, batches) -> None:
        """Put back the saved batch order (and shuffling state) of the training batches."""
        batches.restore_state(self.state["data"], self.arrays_of("batches"))

    def restore_optimizer(self, optimizer) -> None:
        _assign(optimizer.variables, self.arrays_of("optimizer"), "optimizer variables", self.path)

    def stage_done(self, member: int, stage: str, monitor) -> None:
        """Remember a finished stage's monitor state (saved with the next checkpoint)."""
        self.stages[(member, stage)] = _monitor_state(monitor, with_weights=False)[0]

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
            "data": batches.state()[0],
        }
        arrays = {"state.json": np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)}
        for prefix, values in (
            ("model", _numpy(full_model.variables)),
            ("optimizer", _numpy(model.optimizer.variables)),
            ("best", best_weights),
            ("batches", batches.state()[1]),
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


__all__ = ["KILL_HOOK", "Checkpoint", "check_out", "checkpoint_path", "fingerprint", "open_checkpoint"]
