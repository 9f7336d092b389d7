"""A long run of the fuzzed-readers check (``tests/test_fuzz_readers.py`` runs it briefly in the suite).

    .venv/bin/python benchmarks/fuzz_readers.py [--examples 2000] [--model DIR] [--seed N]

Generates hostile JSONL, CSV and Parquet files with hypothesis (``tests/fuzz_files.py``: broken quoting, NUL
bytes, huge fields, odd encodings, wrong types, duplicate columns, truncated files) and passes each through
the readers of train, predict and evaluate, with and without skipping bad rows. Every outcome must be a
success or a one-line error (exit 2 on the command line), and ``predict --skip-bad-rows`` must write one
line per input record. Prints the number of examples tried, the outcomes by format, and the first failure
(with the file that caused it, kept under ``--keep``) if there is one; exits 1 then.

Without ``--model``, a small model is trained on 300 bundled movies (two epochs, a minute or less).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
os.environ.setdefault("KERAS_BACKEND", "jax")

from fuzz_files import Readers, Sample, data_files  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as with_seed  # noqa: E402


def small_model(folder: Path) -> Path:
    """A small model trained on 300 bundled movies, as the tests' session model."""
    from movie_data import SMALL_CONFIG, bundled_movies, write_jsonl

    from multifield import MultiFieldClassifier

    config = folder / "small.toml"
    config.write_text(SMALL_CONFIG, encoding="utf-8")
    movies = bundled_movies(400)
    train, valid = write_jsonl(folder / "train.jsonl", movies[:300]), write_jsonl(folder / "valid.jsonl", movies[300:])
    out = folder / "model"
    MultiFieldClassifier(config).fit(train, valid, verbose=False).save(out)
    return out


def run(readers: Readers, examples: int, seed: int | None, keep: Path) -> tuple[Counter, list[str]]:
    """Run ``examples`` generated files through the readers; the outcome counts and the failures."""
    counts: Counter = Counter()
    failures: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(sample=data_files)
    def check(sample: Sample) -> None:
        counts["examples"] += 1
        kind = Path(sample.name).suffix.lstrip(".")
        with tempfile.TemporaryDirectory() as folder:
            try:
                outcomes = readers.check(sample, Path(folder))
            except Exception:  # a traceback the command line would show, or a wrong line count
                keep.mkdir(parents=True, exist_ok=True)
                sample.write(keep)
                failures.append(f"{keep / sample.name}:\n{traceback.format_exc()}")
                return
        for outcome in outcomes:
            counts[f"{kind} {outcome}"] += 1

    (check if seed is None else with_seed(seed)(check))()
    return counts, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="Generated files to try.")
    parser.add_argument("--model", type=Path, help="A model bundle (default: a small one trained here).")
    parser.add_argument("--seed", type=int, help="Hypothesis seed (default: derandomized, the same files each run).")
    parser.add_argument("--keep", type=Path, default=REPO / "tmp" / "fuzz-failures", help="Where a failing file is kept.")
    args = parser.parse_args(argv)
    from multifield.errors import DataWarning

    warnings.simplefilter("ignore", DataWarning)  # the "note:" lines of values converted: thousands, and expected
    with tempfile.TemporaryDirectory() as folder:
        bundle = args.model or small_model(Path(folder))
        readers = Readers.load(bundle)
        started = time.monotonic()
        counts, failures = run(readers, args.examples, args.seed, args.keep)
    took = time.monotonic() - started
    print(f"examples: {counts.pop('examples', 0)} generated files in {took:.0f} s; failures: {len(failures)}")
    for key in sorted(counts):
        print(f"  {key}: {counts[key]}")
    for failure in failures[:3]:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
