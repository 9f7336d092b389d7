"""Speed benchmark: training and inference of the movie model, side by side with the seed-style reference,
and prediction on both runtimes (Keras and ONNX Runtime) through the CLI, the Python API and the server.

    .venv/bin/python benchmarks/speed.py [--part training|inference|all] [--epochs 3] [--predict-records 20000]
        [--fasttext-python PATH] [--bundle DIR] [--out FILE.md]

One run measures, on the fixed split of the bundled movies and on this machine:

- **training** (``--part training``), as whole processes (interpreter start, imports, tokenizing, compiling,
  training, saving): ``multifield train configs/movies.toml --epochs N`` with an empty compilation cache, and
  again with the cache the first run filled (a second training of the same model on the same data);
  ``benchmarks/configs/movies-before-speed.toml`` (the movie config before the speed work: BiLSTM(64) over
  128-wide plot embeddings, a BiGRU over the tagline, every batch padded to max_tokens), empty cache; and the
  seed-style reference model of ``benchmarks/anchors.py`` (``uniform`` embeddings, ``pad_sequences`` 'pre'
  padding to 200 plot tokens, Bidirectional LSTM(64) + the public answer's attention layer, GlobalMaxPooling
  on the other fields, batch 64) trained N epochs. For each: wall time, train records/s, peak RSS and test
  micro/macro-F1. Then the **arithmetic**: the achieved GFLOP/s of a training step of a plot encoder
  (Embedding 128 → BiLSTM 64 → attention, and the shipped Embedding 64 → BiGRU 48 → attention; batch 64,
  160 steps; FLOPs counted for the recurrent matrix products, backward = 2x forward) next to the machine's
  float32 matrix-product peak measured with ``jax.numpy.dot`` (2048 x 2048).
- **inference** (``--part inference``), on ``--runtime keras`` ("before") and ``--runtime onnx`` ("after"):
  ``multifield predict`` whole process on ``--predict-records`` movies resampled from the bundled ones, twice
  each, with peak RSS, and fastText on the same file where ``--fasttext-python`` names an interpreter with it
  (``benchmarks/predict_runtime.py``); the test split through both runtimes (identical label sets, largest
  score difference); one record through the Python API, ``multifield.load(dir).predict_records([record])``
  and ``Predictor.load(dir).records([record])``, p50/p99 after warm-up; ``multifield serve`` with single
  records from 16 clients, from wrk (``-t2 -c16 --latency``) and from the Python client, its start-up to
  ready and its peak RSS (``benchmarks/serve_load.py``). The bundle: the one the training half wrote, or
  ``--bundle``, or benchmarks/.cache/runtime/movies (trained there once if missing).

It prints a markdown table with the machine it ran on and writes it (default benchmarks/results/speed.md); a run
of one part keeps the other part's figures from that file's last run below its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks.common import (  # noqa: E402
    CACHE_DIR,
    EXECUTABLE,
    load_dataset,
    machine_info,
    predict_file,
    timed_process,
    with_xla_defaults,
    write_split_jsonl,
)
from benchmarks.predict_runtime import RUNTIMES, api_latency, fasttext_rows, predict_rows, split_agreement, trained_bundle  # noqa: E402
from benchmarks.serve_load import single_record_serving  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "speed.md"
COLUMNS = ("keras", "onnx")  # the inference table's runtime columns: before, after
CONFIG = REPO / "configs" / "movies.toml"
BEFORE_CONFIG = REPO / "benchmarks" / "configs" / "movies-before-speed.toml"


def evaluate(bundle: Path, test: Path, env: dict) -> dict:
    result = timed_process([EXECUTABLE, "evaluate", str(bundle), "--data", str(test), "--json"], env)
    return json.loads(result["stdout"])


def train_multifield(config: Path, paths: dict, epochs: int, workdir: Path, env: dict, name: str) -> dict:
    out = workdir / name
    command = [EXECUTABLE, "train", str(config), "--train", str(paths["train"]), "--valid", str(paths["valid"]),
               "--out", str(out), "--epochs", str(epochs)]
    result = timed_process(command, env)
    metrics = evaluate(out, paths["test"], env)
    return {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"],
            "micro_f1": metrics["micro_f1"], "macro_f1": metrics["macro_f1"], "bundle": out}


SEED_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from benchmarks.anchors import seed_style_keras
from benchmarks.common import f1_pair, load_dataset
result = seed_style_keras(threshold=0.5, epochs={epochs})
micro, macro = f1_pair(load_dataset().y_test, result.pred)
print(json.dumps({{"micro_f1": micro, "macro_f1": macro}}))
"""


def train_seed(epochs: int, env: dict) -> dict:
    script = SEED_SCRIPT.format(repo=str(REPO), epochs=epochs)
    result = timed_process([sys.executable, "-c", script], with_xla_defaults(env))
    scores = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"], **scores}


FLOPS_SCRIPT = """
import json, time
import numpy as np, jax, jax.numpy as jnp, keras
from multifield.layers import RecurrentAttentionEncoder

def best(function, repeats=5):
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter(); function(); times.append(time.perf_counter() - started)
    return min(times)

n = 2048
a = jnp.asarray(np.random.rand(n, n).astype("float32")); b = jnp.asarray(np.random.rand(n, n).astype("float32"))
dot = jax.jit(jnp.dot)
matmul_gflops = 2 * n ** 3 / best(lambda: dot(a, b).block_until_ready()) / 1e9

def encoder_step(cell, dim, units, batch=64, steps=160, vocabulary=20000):
    ids = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(vocabulary, dim, mask_zero=True)(ids)
    context = RecurrentAttentionEncoder(units=units, cell=cell)(embedded)
    model = keras.Model(ids, keras.layers.Dense(20, activation="sigmoid")(context))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.random.randint(2, vocabulary, size=(batch, steps)).astype("int32")
    y = (np.random.rand(batch, 20) < 0.2).astype("float32")
    step = best(lambda: model.train_on_batch(x, y), repeats=10)
    gates = 4 if cell == "lstm" else 3
    forward = 2 * 2 * batch * steps * (dim + units) * gates * units  # two directions, (dim+units) x gates*units
    return {{"step_ms": 1000 * step, "gflops": 3 * forward / step / 1e9}}  # backward = 2x forward

print(json.dumps({{"matmul_gflops": matmul_gflops, "lstm": encoder_step("lstm", 128, 64), "gru": encoder_step("gru", 64, 48)}}))
"""


def flops_figures(env: dict) -> dict:
    result = timed_process([sys.executable, "-c", FLOPS_SCRIPT.format()], env)
    return json.loads(result["stdout"].strip().splitlines()[-1])


def training_markdown(rows: dict, settings: dict) -> list[str]:
    train_records = settings["train records"]
    seed, fast, slow, flops = rows["seed"], rows["multifield"], rows["before"], rows["flops"]
    lines = [
        f"Training: the fixed split of the bundled movies ({train_records} training records), {settings['epochs']} epochs, each "
        "row a whole process. Train records/s is epochs x records / wall time; the multifield rows also run their wide "
        "(linear) stage for as many epochs before the deep one, inside that time.",
        "",
        "## Training",
        "",
        "| model | wall time (s) | train records/s | peak RSS (MiB) | test micro-F1 | test macro-F1 | speed-up vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "seed": "seed-style reference (pre-padding to 200, BiLSTM 64 + the answer's attention, batch 64; XLA's default CPU scheduler)",
        "before": "`benchmarks/configs/movies-before-speed.toml` (BiLSTM 64 over 128-wide embeddings, BiGRU tagline, no length buckets), empty cache",
        "multifield": "`multifield train configs/movies.toml` (shipped), empty compilation cache",
        "multifield_warm": "the same, second run (compiled functions from the cache)",
    }
    for key in ("seed", "before", "multifield", "multifield_warm"):
        row = rows[key]
        lines.append(
            f"| {names[key]} | {row['seconds']:.0f} | {settings['epochs'] * train_records / row['seconds']:.0f} "
            f"| {row['peak_rss_mib']:.0f} | {row['micro_f1']:.3f} | {row['macro_f1']:.3f} "
            f"| {seed['seconds'] / row['seconds']:.2f}x |"
        )
    lines += [
        "",
        "## Arithmetic",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| float32 matrix product, 2048 x 2048, `jax.numpy.dot` | {flops['matmul_gflops']:.0f} GFLOP/s |",
        f"| BiLSTM(64)+attention training step, batch 64 x 160 steps, embedding 128 | {flops['lstm']['step_ms']:.0f} ms = "
        f"{flops['lstm']['gflops']:.1f} GFLOP/s |",
        f"| BiGRU(48)+attention training step (the shipped plot encoder), batch 64 x 160 steps, embedding 64 | "
        f"{flops['gru']['step_ms']:.0f} ms = {flops['gru']['gflops']:.1f} GFLOP/s |",
        "",
        f"Training speed-up of the shipped config over the reference: **{seed['seconds'] / fast['seconds']:.2f}x** "
        f"with an empty compilation cache, {seed['seconds'] / rows['multifield_warm']['seconds']:.2f}x with a filled one; "
        f"over the config before the speed work: {slow['seconds'] / fast['seconds']:.2f}x.",
        "",
    ]
    return lines


def inference_rows(bundle: Path, paths: dict, args, workdir: Path) -> dict:
    """Every inference figure of the table, on both runtimes (and fastText where ``args.fasttext_python`` names it)."""
    input_file = predict_file(args.predict_records, workdir)
    print(f"inference: multifield predict, {args.predict_records} records, both runtimes ...", flush=True)
    result = {"predict": predict_rows(bundle, input_file, args.predict_records, workdir)}
    if args.fasttext_python:
        print("inference: fastText ...", flush=True)
        result["fasttext"] = fasttext_rows(args.fasttext_python, paths, input_file, args.predict_records)
    print("inference: the test split on both runtimes ...", flush=True)
    result["agreement"] = split_agreement(bundle, paths["test"], workdir)
    print("inference: one record through the Python API ...", flush=True)
    result["api"] = {runtime: api_latency(bundle, input_file, runtime, calls=args.api_calls) for runtime in RUNTIMES}
    print("inference: multifield serve ...", flush=True)
    result["serve"] = {runtime: single_record_serving(bundle, runtime, args.serve_requests, args.concurrency, args.wrk_seconds)
                       for runtime in RUNTIMES}
    return result


def _pair(first: float, second: float, digits: int = 2) -> str:
    return f"{first:,.{digits}f} / {second:,.{digits}f}"


def _served(serve: dict, client: str, figure: str) -> str:
    row = serve["rows"][client]
    if "missing" in row:
        return row["missing"]
    errors = f" ({row['errors']} errors)" if row["errors"] else ""
    value = _pair(row["p50 ms"], row["p99 ms"], 1) if figure == "latency" else f"{row['requests/s']:,.0f}"
    return value + errors


def inference_markdown(result: dict, settings: dict) -> list[str]:
    runs, api, serve, fasttext = result["predict"], result["api"], result["serve"], result.get("fasttext")
    ft_runs = fasttext["runs"] if fasttext else None
    clients = settings["serve clients"]
    def both(figure) -> list[str]:  # a figure of each runtime; fastText has none
        return [figure(runtime) for runtime in COLUMNS] + ["–"]

    def rates(rows: list[dict]) -> str:
        return " / ".join(f"{run['records_per_s']:,.0f}" for run in rows)

    cells = {
        f"`multifield predict`, {settings['predict records']:,} records, whole process: records/s (run 1 / run 2)":
            [rates(runs[r]) for r in COLUMNS] + [rates(ft_runs) if ft_runs else "not measured"],
        "peak RSS of `predict` (run 2), MiB":
            [f"{runs[r][-1]['peak_rss_mib']:.0f}" for r in COLUMNS] + [f"{ft_runs[-1]['peak_rss_mib']:.0f}" if ft_runs else "–"],
        "one record, `multifield.load(dir).predict_records([record])`: p50 / p99 ms":
            both(lambda r: _pair(api[r]["multifield.load"]["p50_ms"], api[r]["multifield.load"]["p99_ms"])),
        "one record, `Predictor.load(dir).records([record])`: p50 / p99 ms":
            both(lambda r: _pair(api[r]["Predictor.load"]["p50_ms"], api[r]["Predictor.load"]["p99_ms"])),
        f"`multifield serve`, 1 record per request, {clients} clients, wrk: p50 / p99 ms": both(lambda r: _served(serve[r], "wrk", "latency")),
        "the same, wrk: requests/s": both(lambda r: _served(serve[r], "wrk", "rate")),
        f"the same, Python client (httpx, {clients} concurrent): p50 / p99 ms": both(lambda r: _served(serve[r], "httpx", "latency")),
        "the same, Python client: requests/s": both(lambda r: _served(serve[r], "httpx", "rate")),
        "server start-up to ready (process start to the first 200 on /healthz), s": both(lambda r: f"{serve[r]['ready_seconds']:.1f}"),
        "peak RSS of the server (VmHWM of its process, read before it stops), MiB": both(lambda r: f"{serve[r]['peak_rss_mib']:.0f}"),
    }
    same = result["agreement"]
    lines = [
        "## Inference: Keras (before) and ONNX Runtime (after)",
        "",
        f"Bundle: `{settings['bundle']}`. Each runtime is a separate process; `predict` and the server run with `--runtime keras` "
        "or `--runtime onnx`, the API calls pass `runtime=`. API latency: "
        f"{settings['api warm-up calls']} warm-up calls, then {settings['api calls']:,} timed calls of one record each. "
        f"Serving: the Python client sends {settings['serve requests']:,} requests; wrk (`-t2 -c{clients} --latency`, a Lua script "
        f"that POSTs one record as JSON) runs {settings['wrk seconds']:.0f} s after a 2 s warm-up.",
        "",
        "| measure | Keras (before) | ONNX Runtime (after) | fastText |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {measure} | {' | '.join(values)} |" for measure, values in cells.items()]
    lines += [
        "",
        f"- The same predictions: the test split ({same['records']:,} records) through `multifield predict` on both runtimes: "
        f"identical label sets on {same['same_label_sets']:,} ({100 * same['same_label_sets'] / same['records']:.2f}%); "
        f"largest score difference {same['largest_score_difference']:.1e} (scores written to 6 decimals).",
        f"- Keras imported by the API process on ONNX Runtime: {api['onnx']['keras_imported']}.",
    ]
    if fasttext:
        lines.append(f"- fastText trained in {fasttext['train_s']:.1f} s (25 epochs, word bigrams, one-vs-all loss, 2 threads); its "
                     "predict rows load the model, predict (k = -1, threshold 0.5) and write JSON lines (`benchmarks/predict_runtime.py`).")
    lines.append("")
    return lines


HEADER = ["# Speed benchmark", "", "`benchmarks/speed.py`, one run on the machine below.", ""]


def markdown(training: dict | None, inference: dict | None, info: dict, settings: dict) -> str:
    lines = list(HEADER)
    if training:
        lines += training_markdown(training, settings)
    if inference:
        lines += inference_markdown(inference, settings)
    lines += ["Machine and run:", ""]
    lines += [f"- {key}: {value}" for key, value in {**info, **settings}.items()]
    return "\n".join(lines) + "\n"


_HALF = re.compile(r"\n---\n\nThe (?:training|inference) half, a separate run \(`--part \w+`\):\n")


def with_other_half(text: str, part: str, previous: str | None) -> str:
    """This run's text (``part``: training or inference) and, below it, the other half's from the file's last
    run, if it holds one: a run of one part keeps the other's figures."""
    other = {"training": "inference", "inference": "training"}.get(part)
    if other is None or not previous:
        return text
    kept = next((chunk for chunk in _HALF.split(previous) if re.search(rf"^- part: {other}$", chunk, re.MULTILINE)), None)
    if kept is None:
        return text
    kept = kept.removeprefix("\n".join(HEADER) + "\n")
    return f"{text}\n---\n\nThe {other} half, a separate run (`--part {other}`):\n{kept.rstrip()}\n"


def training_rows(args, paths: dict, workdir: Path, env: dict) -> dict:
    def cache(name: str) -> dict:  # each cold row starts from an empty compilation cache of its own
        return dict(env, MULTIFIELD_CACHE_DIR=str(workdir / f"cache-{name}"))

    rows = {}
    print("training: seed-style reference ...", flush=True)
    rows["seed"] = train_seed(args.epochs, env)
    print("training: the config before the speed work ...", flush=True)
    rows["before"] = train_multifield(BEFORE_CONFIG, paths, args.epochs, workdir, cache("before"), "before")
    print("training: multifield ...", flush=True)
    rows["multifield"] = train_multifield(CONFIG, paths, args.epochs, workdir, cache("movies"), "movies")
    print("training: multifield, second run ...", flush=True)
    rows["multifield_warm"] = train_multifield(CONFIG, paths, args.epochs, workdir, cache("movies"), "movies-warm")
    print("arithmetic ...", flush=True)
    rows["flops"] = flops_figures(env)
    return rows


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("training", "inference", "all"), default="all", help="Which half to run.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of every training row.")
    parser.add_argument("--bundle", type=Path, help="The bundle of the inference half (default: the one --part all trains, or "
                        "benchmarks/.cache/runtime/movies, trained there once if missing).")
    parser.add_argument("--predict-records", type=int, default=20_000, help="Records of the predict file (20,000 or more).")
    parser.add_argument("--fasttext-python", help="A Python interpreter with fasttext installed (none: fastText is left out).")
    parser.add_argument("--api-calls", type=int, default=2000, help="Timed single-record calls through the Python API, per entry point.")
    parser.add_argument("--serve-requests", type=int, default=2000, help="Single-record requests of the Python client, per runtime.")
    parser.add_argument("--wrk-seconds", type=float, default=15, help="Duration of the wrk load, per runtime.")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients of the server.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = write_split_jsonl()
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="speed-", dir=CACHE_DIR))
    env = dict(os.environ, KERAS_BACKEND="jax", MULTIFIELD_CACHE_DIR=str(workdir / "xla-cache"))
    settings = {"part": args.part}
    training = inference = None
    if args.part in ("training", "all"):
        training = training_rows(args, paths, workdir, env)
        settings.update({"epochs": args.epochs, "train records": len(load_dataset().train)})
    if args.part in ("inference", "all"):
        bundle = args.bundle or (training["multifield"]["bundle"] if training else trained_bundle(paths)[0])
        # Keras' compiled functions start from an empty cache of this run's own; later Keras processes find what earlier ones compiled.
        os.environ["MULTIFIELD_CACHE_DIR"] = str(workdir / "inference-cache")
        inference = inference_rows(bundle, paths, args, workdir)
        settings.update({"bundle": _shown(bundle), "predict records": args.predict_records, "api warm-up calls": 100,
                         "api calls": args.api_calls, "serve requests": args.serve_requests, "serve clients": args.concurrency,
                         "wrk seconds": args.wrk_seconds,
                         "Keras compilation cache": "empty at the start of the inference half (its first `predict --runtime keras` "
                         "compiles; the later Keras processes find what earlier ones compiled)"})
    settings["peak RSS"] = "ru_maxrss of the finished process (os.wait4); the server's: VmHWM of its process"
    info = machine_info()
    info["load average (1/5/15 min, at the start)"] = load_before
    text = markdown(training, inference, info, settings)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = args.out.read_text(encoding="utf-8") if args.out.exists() else None
    args.out.write_text(with_other_half(text, args.part, previous), encoding="utf-8")
    print(f"written to {args.out}")
    serve_errors = sum(row.get("errors", 0) for result in (inference or {}).get("serve", {}).values() for row in result["rows"].values())
    return 1 if serve_errors else 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
