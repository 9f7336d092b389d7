"""Shared pieces of the benchmarks: the bundled data, its fixed split, thresholds, metrics and machine info."""

from __future__ import annotations

import datetime as _dt
import functools
import gzip
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from sklearn.preprocessing import MultiLabelBinarizer

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "data"
DATA_FILE = DATA_DIR / "tmdb10k.jsonl.gz"
CACHE_DIR = REPO / "benchmarks" / ".cache"
#: The ``multifield`` command of the interpreter running the benchmark.
EXECUTABLE = str(Path(sys.executable).with_name("multifield"))

FIELDS = ("actors", "plot", "features", "reviews", "title")
LIST_FIELDS = ("actors", "features")
TEXT_FIELDS = ("plot", "reviews", "title")
LABEL_FIELD = "genres"

#: One global decision threshold is picked from this grid (validation micro-F1).
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


@dataclass(frozen=True)
class Dataset:
    """The bundled movies on the fixed split, labels binarised on the training part."""

    train: list[dict]
    valid: list[dict]
    test: list[dict]
    classes: tuple[str, ...]
    y_train: np.ndarray
    y_valid: np.ndarray
    y_test: np.ndarray


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _read_ids(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


@functools.lru_cache(maxsize=1)
def load_dataset() -> Dataset:
    """Train = every movie not in ``valid_ids.txt``/``test_ids.txt``; valid and test as listed."""
    records = read_jsonl_gz(DATA_FILE)
    valid_ids = _read_ids(DATA_DIR / "valid_ids.txt")
    test_ids = _read_ids(DATA_DIR / "test_ids.txt")
    train = [r for r in records if r["id"] not in valid_ids and r["id"] not in test_ids]
    valid = [r for r in records if r["id"] in valid_ids]
    test = [r for r in records if r["id"] in test_ids]
    if len(valid) != len(valid_ids) or len(test) != len(test_ids):
        raise ValueError("the split id lists do not match the bundled data")
    mlb = MultiLabelBinarizer()
    y_train = mlb.fit_transform([r[LABEL_FIELD] for r in train])
    y_valid = mlb.transform([r[LABEL_FIELD] for r in valid])
    y_test = mlb.transform([r[LABEL_FIELD] for r in test])
    return Dataset(train, valid, test, tuple(mlb.classes_), y_train, y_valid, y_test)


def field_text(record: dict, field: str) -> str:
    """A field as one string (list fields joined with spaces); missing means empty."""
    value = record.get(field)
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def field_items(record: dict, field: str) -> list[str]:
    """A list field as its items (a string field is one item); missing means no items."""
    value = record.get(field)
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def f1_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(micro-F1, macro-F1) of predicted label sets, scikit-learn, zero_division=0."""
    micro = f1_score(y_true, y_pred, average="micro", zero_division=0)
    macro = f1_score(y_true, y_pred, average="macro", zero_division=0)
    return float(micro), float(macro)


def tune_threshold(y_true: np.ndarray, scores: np.ndarray,
                   grid: tuple[float, ...] = THRESHOLDS) -> tuple[float, float]:
    """The one global threshold of ``grid`` with the best micro-F1; returns (threshold, micro-F1)."""
    best_t, best_f1 = grid[0], -1.0
    for t in grid:
        f1 = f1_score(y_true, (scores >= t).astype(int), average="micro", zero_division=0)
        if f1 > best_f1:
            best_t, best_f1 = t, float(f1)
    return best_t, best_f1


def write_split_jsonl(out_dir: Path | None = None) -> dict[str, Path]:
    """Write train/valid/test JSONL files of the fixed split once; returns their paths."""
    out_dir = Path(out_dir) if out_dir is not None else CACHE_DIR / "split"
    out_dir.mkdir(parents=True, exist_ok=True)
    ignore = CACHE_DIR / ".gitignore"
    if out_dir.is_relative_to(CACHE_DIR) and not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    data = load_dataset()
    paths = {}
    for name, records in (("train", data.train), ("valid", data.valid), ("test", data.test)):
        path = out_dir / f"{name}.jsonl"
        if not path.exists() or sum(1 for _ in path.open(encoding="utf-8")) != len(records):
            write_jsonl(path, records)
        paths[name] = path
    return paths


def write_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def predict_file(records: int, workdir: Path) -> Path:
    """A JSONL file of ``records`` movies drawn (seed 0, with replacement) from the bundled ones, each with its own id."""
    data = load_dataset()
    pool = data.train + data.valid + data.test
    rng = random.Random(0)
    rows = []
    for index in range(records):
        record = dict(rng.choice(pool))
        record["id"] = f"{record['id']}-{index}"
        rows.append(record)
    path = workdir / f"predict-{records}.jsonl"
    write_jsonl(path, rows)
    return path


def with_xla_defaults(env: dict) -> dict:
    """``env`` for a reference that is plain Keras: XLA's own CPU scheduler, which importing ``multifield`` (as the
    benchmark helpers do) would otherwise turn off (``multifield.xla_flags``)."""
    from multifield.xla_flags import SCHEDULER_FLAG

    return dict(env, XLA_FLAGS=f"{SCHEDULER_FLAG}=true")


def timed_process(command: list[str], env: dict | None = None) -> dict:
    """Run a command to the end; its wall time, peak RSS (MiB) and stdout. Fails loudly on a non-zero exit."""
    # Output goes to files, not pipes: a child writing more than a pipe holds would block while we wait.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        raise RuntimeError(f"`{' '.join(command)}` exited with {code}\n{stderr[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024, "stdout": stdout, "stderr": stderr}


def blank(records: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """Copies of ``records`` whose ``fields`` are emptied: "" for text, [] for lists."""
    out = []
    for r in records:
        r = dict(r)
        for f in fields:
            r[f] = [] if isinstance(r.get(f), list) or f in LIST_FIELDS else ""
        out.append(r)
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "python": platform.python_version(),
        "keras": _version("keras"),
        "keras backend": os.environ.get("KERAS_BACKEND", "(unset)"),
        "jax": _version("jax"),
        "numpy": _version("numpy"),
        "scikit-learn": _version("scikit-learn"),
        "load average (1/5/15 min, at the end)": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
