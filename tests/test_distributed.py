"""Data-parallel training: 2 forced CPU devices in one process, and 2 processes joined on 127.0.0.1, each
reach the validation micro-F1 of one device (within noise) on a small slice; only process 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from multifield.training.distribution import DataParallelPlan

EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
# Different device counts see the records in different batches: on 300 movies and 2 epochs the
# validation micro-F1 of equal set-ups moves by a few points from seed to seed.
NOISE = 0.08


def _environment(**extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KERAS_DISTRIBUTION_")}
    env.pop("XLA_FLAGS", None)
    return {**env, "COLUMNS": "200", "KERAS_BACKEND": "jax", **extra}


def _train_command(config, files, out, *extra) -> list[str]:
    return [
        EXECUTABLE, "train", str(config), "--train", str(files["train"]), "--valid", str(files["valid"]),
        "--out", str(out), "--epochs", "2", *extra,
    ]


def _micro_f1(out: Path) -> float:
    return json.loads((out / "metrics.json").read_text())["validation"]["micro_f1"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, movie_files, small_config_path) -> float:
    out = tmp_path_factory.mktemp("one") / "model"
    result = subprocess.run(
        _train_command(small_config_path, movie_files, out), check=False, capture_output=True, text=True, timeout=400, env=_environment()
    )
    assert result.returncode == 0, result.stderr
    return _micro_f1(out)


def test_plan_rounds_the_batch_to_the_devices():
    plan = DataParallelPlan(devices=4, processes=2, process_index=1, local_devices=2)
    assert plan.global_batch_size(30) == 32 and plan.global_batch_size(64) == 64
    assert not plan.is_chief
    assert "4 devices in 2 processes" in plan.describe()


@pytest.mark.slow
def test_two_forced_cpu_devices_match_one_device(tmp_path, movie_files, small_config_path, one_device):
    out = tmp_path / "model"
    result = subprocess.run(
        _train_command(small_config_path, movie_files, out, "--distribute", "data-parallel"),
        check=False, capture_output=True, text=True, timeout=400,
        env=_environment(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )
    assert result.returncode == 0, result.stderr
    assert "data-parallel over 2 devices in 1 process" in result.stderr
    assert abs(_micro_f1(out) - one_device) <= NOISE, (_micro_f1(out), one_device)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["in-memory", "streaming"])
def test_two_processes_on_loopback_match_one_device(tmp_path, movie_files, small_config_path, one_device, stream):
    out = tmp_path / "model"
    port = _free_port()
    flags = ["--distribute", "data-parallel", "--coordinator-address", f"127.0.0.1:{port}", "--num-processes", "2"]
    flags += ["--stream"] if stream else ["--in-memory"]
    processes = [
        subprocess.Popen(
            _train_command(small_config_path, movie_files, out, *flags, "--process-id", str(index)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
        )
        for index in (0, 1)
    ]
    logs = []
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=500)
            logs.append(stderr)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log
    assert "data-parallel over 2 devices in 2 processes (this is process 0)" in logs[0]
    assert "process 1 done; process 0 writes the bundle" in logs[1]
    # Both replicas end with the same validation score; the chief alone wrote the bundle.
    scores = [line for log in logs for line in log.splitlines() if line.startswith("best epoch")]
    assert len(scores) == 2 and scores[0] == scores[1], scores
    assert abs(_micro_f1(out) - one_device) <= NOISE, (_micro_f1(out), one_device)
