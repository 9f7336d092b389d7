"""Crash-safe training: kill -9 at random points and during a checkpoint write, then --resume; a NaN loss
stops with a one-line error naming the epoch and batch; the checkpoint rules of --out, --resume, --overwrite."""

import json
import os
import random
import signal
import subprocess
import time
import tomllib

import numpy as np
import pytest
from cli_helpers import EXECUTABLE, run_cli
from movie_data import bundled_movies, write_jsonl

from multifield.errors import CheckpointError, MultifieldError, TrainingError
from multifield.training.checkpoint import KILL_HOOK, Checkpoint, check_out, checkpoint_path

# Small enough that a run takes seconds: one attention field (one padded width), one wide items field.
TINY_CONFIG = """
name = "tiny"
[labels]
field = "genres"
[fields.plot]
kind = "text"
encoder = "rnn_attention"
max_tokens = 16
min_count = 1
embedding_dim = 8
units = 4
[fields.features]
kind = "items"
encoder = "pooled"
max_tokens = 4
min_count = 1
embedding_dim = 4
wide = true
field_dropout = 0.2
[training]
wide_solver = "adam"
batch_size = 32
max_epochs = 4
patience = 10
wide_epochs = 2
hidden_units = 8
seed = 3
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tiny.toml").write_text(TINY_CONFIG, encoding="utf-8")
    records = bundled_movies(200)
    write_jsonl(folder / "train.jsonl", records[:160])
    write_jsonl(folder / "valid.jsonl", records[160:])
    return folder


def _train_command(tiny, out, *extra):
    return [EXECUTABLE, "train", tiny / "tiny.toml", "--train", tiny / "train.jsonl", "--valid", tiny / "valid.jsonl",
            "--out", out, *extra]


def _environment(tiny, **extra):
    # A shared XLA compilation cache: only the first run pays for compiling.
    return {**os.environ, "COLUMNS": "200", "JAX_COMPILATION_CACHE_DIR": str(tiny / "xla-cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **extra}


def _run(tiny, out, *extra, **env):
    return subprocess.run(list(map(str, _train_command(tiny, out, *extra))), check=False, capture_output=True, text=True,
                          timeout=300, env=_environment(tiny, **env))


def _position(path):
    """The (stage, epoch) a checkpoint file holds; fails if the file is not a whole, readable checkpoint."""
    with np.load(path, allow_pickle=False) as archive:
        state = json.loads(bytes(archive["state.json"]).decode())
    return state["position"]["stage"], state["position"]["epoch"]


@pytest.mark.slow
def test_kill_9_anywhere_then_resume_ends_with_the_bundle_of_an_uninterrupted_run(tiny, tmp_path):
    baseline = tmp_path / "baseline"
    result = _run(tiny, baseline)
    assert result.returncode == 0, result.stderr
    assert not checkpoint_path(baseline).exists()  # removed once the bundle is written

    out = tmp_path / "model"
    checkpoint = checkpoint_path(out)
    # 1. Killed halfway through writing its third checkpoint (the first of the deep stage).
    killed = _run(tiny, out, **{KILL_HOOK: "3"})
    assert killed.returncode == -signal.SIGKILL
    assert _position(checkpoint) == ("wide", 1)  # the last whole checkpoint (the wide stage's end), untouched
    assert list(tmp_path.glob(f".{checkpoint.name}.*.tmp"))  # the half-written one, never renamed into place
    assert not out.exists()
    refused = _run(tiny, out)  # without --resume, the interrupted run's checkpoint is not silently replaced
    assert refused.returncode == 2 and "--resume" in refused.stderr

    # 2. Resumed, then killed at a random instant once it has written a new checkpoint.
    seed = random.randrange(1000)
    process = subprocess.Popen(list(map(str, _train_command(tiny, out, "--resume"))), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=_environment(tiny))
    before = checkpoint.stat().st_mtime_ns
    deadline = time.monotonic() + 240
    while process.poll() is None and checkpoint.exists() and checkpoint.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "no new checkpoint"
        time.sleep(0.02)
    delay = random.Random(seed).uniform(0.0, 0.4)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    # It finished before the kill (a fast machine), or was killed on its way out, once its bundle and report
    # were written and its checkpoint removed: either way there is nothing to resume.
    finished_first = process.returncode == 0 or (not checkpoint.exists() and (out / "report.html").exists())
    if not finished_first:
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
        position = _position(checkpoint)
        print(f"killed {delay:.2f}s after a checkpoint (random seed {seed}); resuming after {position}")
        assert position != ("wide", 1), f"random seed {seed}"

        # 3. Resumed, and killed during its own first checkpoint write (unless no epoch was left to train).
        killed = _run(tiny, out, "--resume", **{KILL_HOOK: "1"})
        if killed.returncode != 0:
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            assert _position(checkpoint) == position

            # 4. Resumed to the end.
            finished = _run(tiny, out, "--resume")
            assert finished.returncode == 0, finished.stderr
            assert "resuming after" in finished.stderr
    assert not checkpoint.exists() and not list(tmp_path.glob(f".{checkpoint.name}.*.tmp"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # no staging directory left

    # The same kind of bundle, and in fact the same training: losses and thresholds equal to the last bit.
    for name in ("history.json", "thresholds.json", "labels.json"):
        assert _untimed(json.loads((out / name).read_text())) == _untimed(json.loads((baseline / name).read_text())), name
    predictions = tmp_path / "predictions.jsonl"
    run_cli("predict", out, "--input", tiny / "valid.jsonl", "--output", predictions)
    assert len(predictions.read_text().splitlines()) == 40


def _untimed(value):
    if isinstance(value, dict):
        return {key: _untimed(item) for key, item in value.items() if key != "seconds"}
    return value


def _tiny_config():
    from multifield.config import config_from_dict

    return config_from_dict(tomllib.loads(TINY_CONFIG))


def test_a_nan_loss_stops_training_naming_epoch_and_batch_and_keeps_the_last_checkpoint(tiny, tmp_path):
    import keras

    from multifield import MultiFieldClassifier

    class PoisonAfterFirstEpoch(keras.callbacks.Callback):
        """Turns weights to NaN after the deep stage's first epoch, once its checkpoint is written."""

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                variable = self.model.trainable_variables[0]
                variable.assign(np.full(variable.shape, np.nan, dtype="float32"))

    path = tmp_path / "run.checkpoint.npz"
    records = bundled_movies(120)
    config = _tiny_config()
    config.training.wide_epochs = 1
    config.training.max_epochs = 3
    with pytest.raises(TrainingError) as error:
        MultiFieldClassifier(config).fit(records[:90], records[90:], verbose=False, checkpoint=path,
                                         callbacks=[PoisonAfterFirstEpoch()])
    message = str(error.value)
    assert "loss became nan in epoch 2 of the deep stage, batch 1" in message
    assert "epoch 1 is kept in" in message and str(path) in message and "\n" not in message
    assert _position(path) == ("deep", 0)  # the last good epoch; the poisoned one was never saved


def test_nan_loss_on_the_command_line_is_one_line_with_exit_code_2(tiny, tmp_path, monkeypatch):
    import keras

    import multifield.training.engine

    def nan_loss(*args):
        return lambda y_true, y_pred: keras.ops.mean(y_pred, axis=-1) * float("nan")

    monkeypatch.setattr(multifield.training.engine, "make_loss", nan_loss)
    out = tmp_path / "model"
    result = run_cli("train", tiny / "tiny.toml", "--train", tiny / "train.jsonl", "--valid", tiny / "valid.jsonl",
                     "--out", out, check_exit=2)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "loss became nan in epoch 1 of the wide stage, batch 1" in errors[0]
    assert "Traceback" not in result.output and not out.exists()


def test_out_checkpoint_and_overwrite_rules(tmp_path):
    out = tmp_path / "model"
    assert check_out(out, resume=False, overwrite=False) is None
    assert "training from the start" in check_out(out, resume=True, overwrite=False)
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    with pytest.raises(MultifieldError, match="not empty; pass --overwrite"):
        check_out(out, resume=False, overwrite=False)
    with pytest.raises(MultifieldError, match="no checkpoint .* to resume; pass --overwrite"):
        check_out(out, resume=True, overwrite=False)
    checkpoint_path(out).write_bytes(b"x")
    assert "resuming from" in check_out(out, resume=True, overwrite=False)
    (out / "manifest.json").unlink()
    with pytest.raises(MultifieldError, match="pass --resume to continue it or --overwrite"):
        check_out(out, resume=False, overwrite=False)
    assert check_out(out, resume=False, overwrite=True) is None
    assert checkpoint_path(tmp_path / "runs" / "movies") == tmp_path / "runs" / "movies.checkpoint.npz"


def test_a_damaged_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "run.checkpoint.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="run.checkpoint.npz: not a readable checkpoint"):
        Checkpoint(path, resume=True).start("abc")
    state = {"format_version": 1, "fingerprint": "other", "position": {}, "members": {}, "stages": {}}
    with open(path, "wb") as handle:
        np.savez(handle, **{"state.json": np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)})
    with pytest.raises(CheckpointError, match="another config, other training data or another --epochs"):
        Checkpoint(path, resume=True).start("abc")
    assert not Checkpoint(path, resume=False).start("abc") and not path.exists()  # a new run clears it
