"""``multifield demo``: the movie-genre model trained on the bundled movies and shown at work.

Trains ``configs/movies.toml`` on the training part of the fixed split, evaluates on its test part,
prints the metrics and the plot words the model attended to for three test movies, and writes the
bundle, metrics, predictions and the training report (``report.html``) under the output directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from multifield.config import load_config
from multifield.data.io import read_table, write_jsonl
from multifield.errors import MultifieldError
from multifield.metrics import metrics_tables
from multifield.runs import train_run

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_resource(relative: str) -> Path:
    """A file of the repository (bundled data, shipped configs), from the working directory or the checkout."""
    for base in (Path.cwd(), REPO_ROOT):
        if (base / relative).exists():
            return base / relative
    raise MultifieldError(f"{relative}: not found; run the demo from the multifield checkout")


def bundled_split(limit: int | None = None):
    """The bundled movies as (train, valid, test) Tables, split by the shipped id lists."""
    table = read_table(find_resource("data/tmdb10k.jsonl.gz"))
    valid_ids = set(find_resource("data/valid_ids.txt").read_text().split())
    test_ids = set(find_resource("data/test_ids.txt").read_text().split())
    parts: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
    for index, record in enumerate(table.records):
        part = "test" if record["id"] in test_ids else "valid" if record["id"] in valid_ids else "train"
        parts[part].append(index)
    if limit:
        parts["train"] = parts["train"][:limit]
    return table.subset(parts["train"]), table.subset(parts["valid"]), table.subset(parts["test"])


def run_demo(
    out: Path,
    epochs: int | None = None,
    limit: int | None = None,
    members: int | None = None,
    console: Console | None = None,
) -> dict:
    """Train, evaluate and show the movie model under ``out``; the test metrics."""
    console = console or Console()
    train, valid, test = bundled_split(limit)
    console.rule("multifield demo: movie genres from actors, plot, keywords, tagline and title")
    console.print(f"bundled movies: {len(train)} train, {len(valid)} validation, {len(test)} test")
    config = load_config(find_resource("configs/movies.toml"))
    if members:
        config.training.ensemble = members
    out.mkdir(parents=True, exist_ok=True)
    classifier = train_run(config, train, valid, out / "model", console, epochs=epochs, overwrite=True, report=out / "report.html")

    metrics = classifier.evaluate(test)
    (out / "test_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    console.rule("test set")
    console.print(*metrics_tables(metrics))

    predictions = classifier.predict_records(test, attention=True)
    write_jsonl(out / "test_predictions.jsonl", predictions)
    console.rule("what the model read: the most attended plot words")
    for record, prediction in list(zip(test.records, predictions))[:3]:
        show_attended(console, record, prediction)
    console.print(f"\nmodel, metrics, predictions and the training report (report.html) written under {out}/")
    return metrics


def show_attended(console: Console, record: dict, prediction: dict) -> None:
    """A movie's true and predicted genres and its eight most attended plot words."""
    weights = prediction["attention"].get("plot", [])
    top = sorted(weights, key=lambda pair: -pair[1])[:8]
    console.print(f"[bold]{record.get('title', record['id'])}[/]")
    console.print(f"  true:      {', '.join(record.get('genres', []))}")
    console.print(f"  predicted: {', '.join(prediction['labels'])}")
    console.print("  attended:  " + ", ".join(f"{word} ({weight:.2f})" for word, weight in top), highlight=False)
