"""The persistent compilation cache of the command line: where it goes, and how it is turned off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from multifield.compilation_cache import cache_dir


def _enable_in_subprocess(env: dict, jax_first: bool = True) -> str:
    code = (
        f"{'import jax; ' if jax_first else ''}import multifield\n"
        "from multifield.compilation_cache import enable_compilation_cache\n"
        "folder = enable_compilation_cache()\n"
        "import jax\n"
        "print(folder, jax.config.jax_compilation_cache_dir)\n"
    )
    env = {key: value for key, value in env.items() if not key.startswith("JAX_")}  # set by an earlier command
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MULTIFIELD_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("MULTIFIELD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "multifield" / "xla"


@pytest.mark.parametrize("jax_first", [True, False], ids=["jax imported before", "jax imported after"])
def test_enabled_cache_is_created_and_given_to_jax(tmp_path, jax_first):
    import os

    env = dict(os.environ, KERAS_BACKEND="jax", MULTIFIELD_CACHE_DIR=str(tmp_path / "xla"))
    env.pop("MULTIFIELD_COMPILATION_CACHE", None)
    folder, configured = _enable_in_subprocess(env, jax_first)
    assert folder == configured == str(tmp_path / "xla")
    assert (tmp_path / "xla").is_dir()


@pytest.mark.parametrize("off", ["0", "off"])
def test_cache_can_be_turned_off(tmp_path, off):
    import os

    env = dict(os.environ, KERAS_BACKEND="jax", MULTIFIELD_CACHE_DIR=str(tmp_path / "xla"), MULTIFIELD_COMPILATION_CACHE=off)
    folder, configured = _enable_in_subprocess(env)
    assert folder == "None" and configured == "None"
    assert not (tmp_path / "xla").exists()
