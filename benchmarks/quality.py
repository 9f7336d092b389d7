"""Quality benchmark: several systems side by side on the fixed split of the bundled movies.

    .venv/bin/python benchmarks/quality.py [--only NAME ...] [--out FILE.md] [--seed N] [--list]

Every system trains on the training movies (all movies not in data/valid_ids.txt or data/test_ids.txt), may use
the validation movies for model selection, early stopping and its decision threshold, and is scored on the 1,077
test movies: micro-F1 and macro-F1 of the predicted genre sets (scikit-learn, zero_division=0). One table is
printed and written, with the machine it ran on, to a markdown file (default benchmarks/results/quality.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")  # before any keras import

from benchmarks.anchors import Unavailable, multifield_config, seed_style_keras, tfidf_logreg  # noqa: E402
from benchmarks.common import f1_pair, load_dataset, machine_info  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "quality.md"


@dataclass
class Outcome:
    micro_f1: float
    macro_f1: float
    train_seconds: float
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    name: str
    system: str
    run: Callable[[argparse.Namespace], Outcome]


def _anchor(fn: Callable[..., object], *args, **kwargs) -> Callable[[argparse.Namespace], Outcome]:
    def run(ns: argparse.Namespace) -> Outcome:
        extra = {"seed": ns.seed, "verbose": 2 if ns.verbose else 0} if fn is seed_style_keras else {}
        res = fn(*args, **kwargs, **extra)
        micro, macro = f1_pair(load_dataset().y_test, res.pred)
        return Outcome(micro, macro, res.train_seconds, res.details)
    return run


def _config(path: str, blank_fields: tuple[str, ...] = ()) -> Callable[[argparse.Namespace], Outcome]:
    def run(ns: argparse.Namespace) -> Outcome:
        res = multifield_config(path, blank_fields, verbose=ns.verbose)
        return Outcome(res.micro_f1, res.macro_f1, res.train_seconds, res.details)
    return run


ALL5 = ("actors", "plot", "features", "reviews", "title")

ROWS = [
    Row("tfidf-all", "TF-IDF per field + one-vs-rest logistic regression, tuned threshold, all 5 fields",
        _anchor(tfidf_logreg, ALL5)),
    Row("tfidf-plot", "TF-IDF + logistic regression, plot only", _anchor(tfidf_logreg, ("plot",))),
    Row("tfidf-plot-title", "TF-IDF + logistic regression, plot + title", _anchor(tfidf_logreg, ("plot", "title"))),
    Row("seed-as-written", "seed-style Keras model as written (0.5 threshold, 3 epochs)",
        _anchor(seed_style_keras, threshold=0.5, epochs=3)),
    Row("seed-tuned", "seed-style Keras model, early stopping (<= 10 epochs), tuned threshold",
        _anchor(seed_style_keras, threshold=None, epochs=10, early_stopping=True)),
    Row("multifield-movies", "multifield, configs/movies.toml (all 5 fields)", _config("configs/movies.toml")),
    Row("multifield-movies-plot-title", "multifield, configs/movies.toml, plot + title only on test "
        "(actors, features, reviews blanked)", _config("configs/movies.toml", ("actors", "features", "reviews"))),
    Row("multifield-plot-only", "multifield, configs/movies-plot-only.toml", _config("configs/movies-plot-only.toml")),
]
ROW_NAMES = [r.name for r in ROWS]


def markdown_table(results: list[tuple[Row, Outcome]]) -> str:
    lines = ["| system | row | test micro-F1 | test macro-F1 | train time (s) |", "|---|---|---|---|---|"]
    for row, o in results:
        lines.append(f"| {row.system} | `{row.name}` | {o.micro_f1:.3f} | {o.macro_f1:.3f} | {o.train_seconds:.0f} |")
    return "\n".join(lines)


def _fmt_details(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def write_markdown(path: Path, results, skipped, info: dict, argv: list[str]) -> None:
    data = load_dataset()
    parts = [
        "# Quality benchmark",
        "",
        f"Fixed split of `data/tmdb10k.jsonl.gz`: {len(data.train):,} train, {len(data.valid):,} validation, "
        f"{len(data.test):,} test movies; {len(data.classes)} genres. Scores are on the test movies; "
        "train time is wall-clock on the machine below (whole `multifield train` process for the multifield rows).",
        "",
        markdown_table(results),
        "",
    ]
    if results:
        parts += ["Chosen on validation / notes:", ""]
        parts += [f"- `{row.name}`: {_fmt_details(o.details)}" for row, o in results if o.details]
        parts.append("")
    if skipped:
        parts += ["Not run:", ""] + [f"- `{name}`: {why}" for name, why in skipped] + [""]
    parts += ["Machine:", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()]
    parts += ["", f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/quality.py', *argv])}`", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def print_table(results) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(markdown_table(results))
        return
    table = Table(title="Quality on the fixed test split (1,077 movies)")
    for col, just in (("system", "left"), ("row", "left"), ("micro-F1", "right"), ("macro-F1", "right"),
                      ("train s", "right")):
        table.add_column(col, justify=just)
    for row, o in results:
        table.add_row(row.system, row.name, f"{o.micro_f1:.3f}", f"{o.macro_f1:.3f}", f"{o.train_seconds:.0f}")
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=ROW_NAMES, metavar="NAME",
                    help=f"run only these rows: {', '.join(ROW_NAMES)}")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the Keras anchors (default: 0)")
    ap.add_argument("--verbose", action="store_true", help="show training progress")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    ns = ap.parse_args(argv)
    if ns.list:
        for r in ROWS:
            print(f"{r.name:30s} {r.system}")
        return 0
    rows = [r for r in ROWS if ns.only is None or r.name in ns.only]
    results, skipped = [], []
    for row in rows:
        print(f"[{row.name}] {row.system} ...", flush=True)
        t0 = time.perf_counter()
        try:
            o = row.run(ns)
        except Unavailable as exc:
            print(f"[{row.name}] skipped: {exc}", flush=True)
            skipped.append((row.name, f"skipped ({exc})"))
            continue
        except Exception as exc:  # one failing row must not lose the others
            traceback.print_exc()
            print(f"[{row.name}] failed: {exc}".splitlines()[0], flush=True)
            skipped.append((row.name, f"failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"))
            continue
        results.append((row, o))
        print(f"[{row.name}] micro-F1 {o.micro_f1:.3f}  macro-F1 {o.macro_f1:.3f}  train {o.train_seconds:.0f} s  "
              f"({time.perf_counter() - t0:.0f} s in all) {_fmt_details(o.details)}", flush=True)
    print_table(results)
    out = ns.out if ns.out.is_absolute() else Path.cwd() / ns.out
    write_markdown(out, results, skipped, machine_info(), argv)
    print(f"wrote {out}")
    return 0 if results or not rows else 1


if __name__ == "__main__":
    sys.exit(main())
