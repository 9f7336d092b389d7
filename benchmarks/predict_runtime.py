"""Prediction without Keras: ``multifield predict`` on ONNX Runtime against the Keras runtime, and fastText,
side by side in one run, on 20,000 movies drawn from the bundled data.

    .venv/bin/python benchmarks/predict_runtime.py [--records 20000] [--fasttext-python PATH] [--out FILE.md]

- ``configs/movies.toml`` is trained once (whole process timed) into benchmarks/.cache/runtime/movies; the
  bundle carries ``model.onnx``.
- ``multifield predict`` whole process (start, imports, load, read, tokenize, model, write) on the same
  20,000-record file with ``--runtime onnx`` and ``--runtime keras``, each twice (the second Keras run finds a
  filled compilation cache), with peak RSS.
- The same predictions: the test split through both runtimes; the share of records with identical label sets
  and the largest score difference.
- One record at a time through the Python API (``multifield.load(dir).predict_records`` and
  ``Predictor.load(dir).records``), on each runtime, p50/p99 after warm-up.
- fastText (``fasttext`` in the interpreter ``--fasttext-python`` names; it needs NumPy < 2, hence its own
  environment): supervised, one-vs-all loss, every field's text as one line, trained on the training split,
  then a whole process that loads it and predicts the same 20,000 records (k = -1, threshold 0.5) and writes
  JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import CACHE_DIR, EXECUTABLE, machine_info, predict_file, timed_process, write_split_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORKDIR = CACHE_DIR / "runtime"

# A record as one line of fastText text: every field's words, list items joined by underscores.
FASTTEXT_LINE = """
import json, sys
import fasttext
def line(record):
    parts = []
    for key in ("title", "plot", "reviews"):
        parts.append(record.get(key) or "")
    for key in ("actors", "features"):
        parts.append(" ".join(item.replace(" ", "_") for item in record.get(key) or []))
    return " ".join(" ".join(parts).split()).lower()
"""

FASTTEXT_TRAIN = FASTTEXT_LINE + """
with open(sys.argv[1]) as source, open(sys.argv[2], "w") as out:
    for text in source:
        record = json.loads(text)
        labels = " ".join("__label__" + genre.replace(" ", "_") for genre in record["genres"])
        out.write(labels + " " + line(record) + "\\n")
model = fasttext.train_supervised(sys.argv[2], epoch=25, lr=0.5, wordNgrams=2, loss="ova", thread=2, verbose=0)
model.save_model(sys.argv[3])
"""

FASTTEXT_PREDICT = FASTTEXT_LINE + """
model = fasttext.load_model(sys.argv[1])
records = [json.loads(text) for text in open(sys.argv[2])]
labels, scores = model.predict([line(record) for record in records], k=-1, threshold=0.5)
with open(sys.argv[3], "w") as out:
    for record, names, values in zip(records, labels, scores):
        out.write(json.dumps({"id": record["id"], "labels": [name[9:] for name in names],
                              "scores": {name[9:]: round(float(v), 6) for name, v in zip(names, values)}}) + "\\n")
"""

RUNTIMES = ("onnx", "keras")

API_SCRIPT = """
import json, sys, time
import numpy as np
import multifield
from multifield.data.io import read_table
from multifield.inference import Predictor
records = read_table({input!r}).records
def latency(predict):
    for index in range({warmup}):
        predict([records[index % len(records)]])
    times = []
    for index in range({warmup}, {warmup} + {calls}):
        record = records[index % len(records)]
        started = time.perf_counter(); predict([record]); times.append(time.perf_counter() - started)
    return {{"p50_ms": 1000 * float(np.percentile(times, 50)), "p99_ms": 1000 * float(np.percentile(times, 99))}}
result = {{"multifield.load": latency(multifield.load({bundle!r}, runtime={runtime!r}).predict_records)}}
result["Predictor.load"] = latency(Predictor.load({bundle!r}, runtime={runtime!r}).records)
result["keras_imported"] = "keras" in sys.modules
print(json.dumps(result))
"""


def api_latency(bundle: Path, input_file: Path, runtime: str, warmup: int = 100, calls: int = 2000) -> dict:
    """One record at a time through the Python API on ``runtime``, in a process of its own: p50/p99 ms of
    ``multifield.load(dir).predict_records([record])`` and of ``Predictor.load(dir).records([record])``
    after ``warmup`` calls, and whether Keras got imported."""
    script = API_SCRIPT.format(bundle=str(bundle), input=str(input_file), runtime=runtime, warmup=warmup, calls=calls)
    return json.loads(timed_process([sys.executable, "-c", script])["stdout"].strip().splitlines()[-1])


def predict(bundle: Path, input_file: Path, runtime: str, out: Path, records: int) -> dict:
    result = timed_process([EXECUTABLE, "predict", str(bundle), "--input", str(input_file), "--output", str(out), "--runtime", runtime])
    written = sum(1 for _ in out.open(encoding="utf-8"))
    if written != records:
        raise RuntimeError(f"predict --runtime {runtime} wrote {written} lines for {records} records")
    return {"seconds": result["seconds"], "records_per_s": records / result["seconds"], "peak_rss_mib": result["peak_rss_mib"]}


def predict_rows(bundle: Path, input_file: Path, records: int, workdir: Path, runs: int = 2) -> dict:
    """``multifield predict`` whole process on each runtime, ``runs`` times each; predictions in workdir/RUNTIME.jsonl."""
    return {runtime: [predict(bundle, input_file, runtime, workdir / f"{runtime}.jsonl", records) for _ in range(runs)]
            for runtime in RUNTIMES}


def agreement(first: Path, second: Path) -> dict:
    a = [json.loads(line) for line in first.open(encoding="utf-8")]
    b = [json.loads(line) for line in second.open(encoding="utf-8")]
    same = sum(set(x["labels"]) == set(y["labels"]) for x, y in zip(a, b))
    largest = max(abs(x["scores"][label] - y["scores"][label]) for x, y in zip(a, b) for label in x["scores"])
    return {"records": len(a), "same_label_sets": same, "largest_score_difference": largest}


def split_agreement(bundle: Path, test: Path, workdir: Path) -> dict:
    """The test split through ``multifield predict`` on both runtimes: identical label sets, largest score difference."""
    rows = sum(1 for _ in test.open(encoding="utf-8"))
    for runtime in RUNTIMES:
        predict(bundle, test, runtime, workdir / f"test-{runtime}.jsonl", rows)
    return agreement(workdir / "test-onnx.jsonl", workdir / "test-keras.jsonl")


def trained_bundle(paths: dict) -> tuple[Path, float | None]:
    bundle = WORKDIR / "movies"
    if (bundle / "model.onnx").exists():
        return bundle, None
    command = [EXECUTABLE, "train", str(REPO / "configs/movies.toml"), "--train", str(paths["train"]), "--valid",
               str(paths["valid"]), "--out", str(bundle), "--overwrite"]
    return bundle, timed_process(command)["seconds"]


def fasttext_rows(python: str, paths: dict, input_file: Path, records: int, workdir: Path = WORKDIR) -> dict:
    """fastText trained on the training split, then two whole processes that predict ``input_file``."""
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "fasttext.bin"
    train = timed_process([python, "-c", FASTTEXT_TRAIN, str(paths["train"]), str(workdir / "fasttext-train.txt"), str(model)])
    out = workdir / "fasttext-predictions.jsonl"
    runs = [timed_process([python, "-c", FASTTEXT_PREDICT, str(model), str(input_file), str(out)]) for _ in range(2)]
    return {"train_s": train["seconds"], "runs": [{"seconds": r["seconds"], "records_per_s": records / r["seconds"],
                                                   "peak_rss_mib": r["peak_rss_mib"]} for r in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--fasttext-python", help="A Python interpreter with fasttext installed (none: fastText is left out).")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/predict_runtime.md")
    args = parser.parse_args(argv)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    paths = write_split_jsonl()
    bundle, train_s = trained_bundle(paths)
    input_file = predict_file(args.records, WORKDIR)
    rows = predict_rows(bundle, input_file, args.records, WORKDIR)
    same_20k = agreement(WORKDIR / "onnx.jsonl", WORKDIR / "keras.jsonl")
    same_test = split_agreement(bundle, paths["test"], WORKDIR)
    api = {runtime: api_latency(bundle, input_file, runtime) for runtime in RUNTIMES}
    fasttext = fasttext_rows(args.fasttext_python, paths, input_file, args.records) if args.fasttext_python else None
    text = markdown(rows, same_20k, same_test, api, fasttext, train_s, args.records)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


def markdown(rows, same_20k, same_test, api, fasttext, train_s, records) -> str:
    info = machine_info()
    lines = ["# Prediction runtimes: ONNX Runtime against Keras, and fastText", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    if train_s is not None:
        lines.append(f"- bundle: configs/movies.toml trained in {train_s:.0f} s (whole process) in this run")
    lines += ["", f"`predict`, whole process, {records:,} records (each run listed):", "",
              "| system | seconds | records/s | peak RSS MiB |", "|---|---|---|---|"]
    for runtime, runs in rows.items():
        for index, run in enumerate(runs, 1):
            lines.append(f"| multifield predict --runtime {runtime} (run {index}) | {run['seconds']:.2f} | {run['records_per_s']:,.0f} | "
                         f"{run['peak_rss_mib']:.0f} |")
    if fasttext:
        for index, run in enumerate(fasttext["runs"], 1):
            lines.append(f"| fastText (load + predict + write, run {index}) | {run['seconds']:.2f} | {run['records_per_s']:,.0f} | "
                         f"{run['peak_rss_mib']:.0f} |")
    lines += ["", f"- the same predictions, {records:,} records: identical label sets on {same_20k['same_label_sets']:,} of "
              f"{same_20k['records']:,}; largest score difference {same_20k['largest_score_difference']:.1e} (scores written to 6 decimals)",
              f"- the same predictions, test split: identical label sets on {same_test['same_label_sets']:,} of "
              f"{same_test['records']:,}; largest score difference {same_test['largest_score_difference']:.1e}",
              "- one record at a time through the Python API (after 100 warm-up calls, 2,000 calls), p50 / p99:"]
    for runtime, figures in api.items():
        lines += [f"  - {runtime}, `{entry}`: {figures[entry]['p50_ms']:.2f} / {figures[entry]['p99_ms']:.2f} ms"
                  for entry in ("multifield.load", "Predictor.load")]
        lines.append(f"  - {runtime}: keras imported: {figures['keras_imported']}")
    if fasttext:
        lines.append(f"- fastText trained in {fasttext['train_s']:.1f} s (25 epochs, word bigrams, one-vs-all loss, 2 threads)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
