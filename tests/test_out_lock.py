"""One writer per --out: a second training run is refused while another process holds OUT.lock, and a lock
left by a killed run is taken over with a note."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import run_cli

from multifield.errors import MultifieldError
from multifield.training.out_lock import OutLocked, lock_path, out_lock

HOLDER = textwrap.dedent(
    """
    import sys, time
    from multifield.training.out_lock import out_lock
    with out_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of ``tmp_path / "model"`` until the test kills it."""
    out = tmp_path / "model"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout.readline().strip() == "held"
    yield out, process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def _train(config, files, out, check_exit):
    return run_cli("train", config, "--train", files["train"], "--valid", files["valid"], "--out", out, "--epochs", "1",
                   check_exit=check_exit)


def test_a_second_train_on_the_same_out_is_refused_in_one_line(holder, small_config_path, movie_files):
    out, process = holder
    result = _train(small_config_path, movie_files, out, check_exit=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert str(lock_path(out)) in lines[0] and f"pid {process.pid}" in lines[0] and socket.gethostname() in lines[0]
    assert not out.exists()  # nothing written
    assert json.loads(lock_path(out).read_text())["pid"] == process.pid  # the holder's lock untouched


def test_a_lock_left_by_a_killed_run_is_taken_over_and_removed_at_the_end(holder, small_config_path, movie_files):
    out, process = holder
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert json.loads(lock_path(out).read_text())["pid"] == process.pid  # left behind by the killed holder
    result = _train(small_config_path, movie_files, out, check_exit=0)
    assert "taken over" in result.output and f"pid {process.pid}" in result.output and "no longer running" in result.output
    assert (out / "manifest.json").exists()  # the run wrote its bundle
    assert not lock_path(out).exists()


def test_the_lock_is_exclusive_within_one_process_and_free_after_release(tmp_path):
    out = tmp_path / "model"
    with out_lock(out) as path:
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(OutLocked, match="another training run"):
            with out_lock(out):
                pass
    assert not path.exists()
    notes = []
    with out_lock(out, announce=notes.append):  # taken again, with no note: nothing was left behind
        pass
    assert notes == []


def test_a_lock_that_cannot_be_created_is_a_user_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(MultifieldError, match="cannot lock --out"):
        with out_lock(blocked / "model"):
            pass
