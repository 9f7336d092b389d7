"""Shared fixtures: small slices of the bundled movies, a small config, and one model trained per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
# Compiled functions of the commands the tests run go to a folder of this session, not to ~/.cache.
if "MULTIFIELD_CACHE_DIR" not in os.environ:
    _cache_dir = tempfile.mkdtemp(prefix="multifield-xla-")
    os.environ["MULTIFIELD_CACHE_DIR"] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)

import pytest
from movie_data import SMALL_CONFIG, bundled_movies, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def movie_files(tmp_path_factory) -> dict[str, Path]:
    """300 training, 100 validation and 100 test movies from the bundled data, as JSONL files."""
    folder = tmp_path_factory.mktemp("movies")
    records = bundled_movies(500)
    return {
        "train": write_jsonl(folder / "train.jsonl", records[:300]),
        "valid": write_jsonl(folder / "valid.jsonl", records[300:400]),
        "test": write_jsonl(folder / "test.jsonl", records[400:500]),
    }


@pytest.fixture(scope="session")
def small_config_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.toml"
    path.write_text(SMALL_CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, movie_files, small_config_path) -> Path:
    """A small model trained once for the session (2 epochs on 300 movies) and saved as a bundle."""
    from multifield import MultiFieldClassifier

    out = tmp_path_factory.mktemp("bundle") / "model"
    MultiFieldClassifier(small_config_path).fit(movie_files["train"], movie_files["valid"], verbose=False).save(out)
    return out
