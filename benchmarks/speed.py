"""Speed benchmark: training and inference of the movie model, side by side with the seed-style reference.

    .venv/bin/python benchmarks/speed.py [--epochs 3] [--predict-records 50000] [--out FILE.md]

One run measures, on the fixed split of the bundled movies and on this machine:

- **training**, as whole processes (interpreter start, imports, tokenizing, compiling, training, saving):
  ``multifield train configs/movies.toml --epochs N`` with an empty compilation cache, and again with the
  cache the first run filled (a second training of the same model on the same data);
  ``benchmarks/configs/movies-before-speed.toml`` (the movie config before the speed work: BiLSTM(64) over
  128-wide plot embeddings, a BiGRU over the tagline, every batch padded to max_tokens), empty cache; and the
  seed-style reference model of ``benchmarks/anchors.py`` (``uniform`` embeddings, ``pad_sequences`` 'pre'
  padding to 200 plot tokens, Bidirectional LSTM(64) + the public answer's attention layer, GlobalMaxPooling
  on the other fields, batch 64) trained N epochs. For each: wall time, train records/s, peak RSS and test
  micro/macro-F1.
- **inference**: ``multifield predict`` on a file of ``--predict-records`` movies resampled from the bundled ones,
  whole process, twice: with an empty compilation cache and with the cache the first run filled; and, through
  the Python API in one process, the latency of one record (p50/p99 after warm-up), the records/s of the
  model on large batches, and the compile time (first call of every shape minus a second call).
- **arithmetic**: the achieved GFLOP/s of a training step of a plot encoder (Embedding 128 → BiLSTM 64 →
  attention, and the shipped Embedding 64 → BiGRU 48 → attention; batch 64, 160 steps; FLOPs counted for the
  recurrent matrix products, backward = 2x forward) next to the machine's float32 matrix-product peak
  measured with ``jax.numpy.dot`` (2048 x 2048).

It prints a markdown table with the machine it ran on and writes it (default benchmarks/results/speed.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks.common import CACHE_DIR, load_dataset, machine_info, write_jsonl, write_split_jsonl  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "speed.md"
EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
CONFIG = REPO / "configs" / "movies.toml"
BEFORE_CONFIG = REPO / "benchmarks" / "configs" / "movies-before-speed.toml"


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
    result = timed_process([sys.executable, "-c", SEED_SCRIPT.format(repo=str(REPO), epochs=epochs)], env)
    scores = json.loads(result["stdout"].strip().splitlines()[-1])
    return {"seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"], **scores}


def predict_file(records: int, workdir: Path) -> Path:
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


def predict_process(bundle: Path, input_file: Path, records: int, workdir: Path, env: dict) -> dict:
    output = workdir / "predictions.jsonl"
    result = timed_process([EXECUTABLE, "predict", str(bundle), "--input", str(input_file), "--output", str(output)], env)
    with output.open(encoding="utf-8") as lines:
        written = sum(1 for _ in lines)
    if written != records:
        raise RuntimeError(f"predict wrote {written} lines for {records} records")
    return {"seconds": result["seconds"], "records_per_s": records / result["seconds"], "peak_rss_mib": result["peak_rss_mib"]}


API_SCRIPT = """
import json, sys, time
import numpy as np
sys.path.insert(0, {repo!r})
import multifield
from multifield.data.io import read_table
classifier = multifield.load({bundle!r})
records = read_table({input!r}).records
batch = records[:{batch}]
started = time.perf_counter(); classifier.predict_proba(batch); first = time.perf_counter() - started
started = time.perf_counter(); classifier.predict_proba(batch); second = time.perf_counter() - started
for record in records[:50]:
    classifier.predict_proba([record])
latencies = []
for record in records[50:1050]:
    started = time.perf_counter(); classifier.predict_proba([record]); latencies.append(time.perf_counter() - started)
print(json.dumps({{"compile_s": first - second, "batch_records_per_s": len(batch) / second,
                  "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99))}}))
"""


def api_figures(bundle: Path, input_file: Path, env: dict) -> dict:
    script = API_SCRIPT.format(repo=str(REPO), bundle=str(bundle), input=str(input_file), batch=10_000)
    result = timed_process([sys.executable, "-c", script], env)
    return json.loads(result["stdout"].strip().splitlines()[-1])


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


def markdown(rows: dict, info: dict, settings: dict) -> str:
    train_records = settings["train records"]
    seed, fast, slow = rows["seed"], rows["multifield"], rows["before"]
    lines = [
        "# Speed benchmark",
        "",
        f"`benchmarks/speed.py`: the fixed split of the bundled movies ({train_records} training records), "
        f"{settings['epochs']} epochs, each row a whole process on the machine below. Train records/s is "
        "epochs x records / wall time; the multifield rows also run their wide (linear) stage for as many "
        "epochs before the deep one, inside that time.",
        "",
        "## Training",
        "",
        "| model | wall time (s) | train records/s | peak RSS (MiB) | test micro-F1 | test macro-F1 | speed-up vs reference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "seed": "seed-style reference (pre-padding to 200, BiLSTM 64 + the answer's attention, batch 64)",
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
    cold, warm, api, flops = rows["predict_cold"], rows["predict_warm"], rows["api"], rows["flops"]
    lines += [
        "",
        "## Inference",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| `multifield predict`, {settings['predict records']} records, whole process, empty compilation cache | "
        f"{cold['seconds']:.1f} s = {cold['records_per_s']:.0f} records/s |",
        f"| the same, second run (compiled functions from the cache) | {warm['seconds']:.1f} s = {warm['records_per_s']:.0f} records/s |",
        f"| peak RSS of `multifield predict` | {warm['peak_rss_mib']:.0f} MiB |",
        f"| model alone, Python API, 10,000 records in one call (compiled) | {api['batch_records_per_s']:.0f} records/s |",
        f"| one record through the Python API, p50 / p99 (after warm-up) | {api['p50_ms']:.2f} / {api['p99_ms']:.2f} ms |",
        f"| compile time of the predict shapes (first call minus second) | {api['compile_s']:.1f} s |",
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
        "Machine and run:",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in {**info, **settings}.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="Epochs of every training row.")
    parser.add_argument("--predict-records", type=int, default=50_000, help="Records of the predict file (20,000 or more).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    args = parser.parse_args(argv)

    paths = write_split_jsonl()
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="speed-", dir=CACHE_DIR))
    env = dict(os.environ, KERAS_BACKEND="jax", MULTIFIELD_CACHE_DIR=str(workdir / "xla-cache"))

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
    bundle = rows["multifield"]["bundle"]
    print("inference ...", flush=True)
    input_file = predict_file(args.predict_records, workdir)
    env_cold = dict(env, MULTIFIELD_CACHE_DIR=str(workdir / "predict-cache"))
    rows["predict_cold"] = predict_process(bundle, input_file, args.predict_records, workdir, env_cold)
    rows["predict_warm"] = predict_process(bundle, input_file, args.predict_records, workdir, env_cold)
    rows["api"] = api_figures(bundle, input_file, env)
    print("arithmetic ...", flush=True)
    rows["flops"] = flops_figures(env)

    info = machine_info()
    info["load average (1/5/15 min, at the start)"] = load_before
    settings = {
        "epochs": args.epochs,
        "train records": len(load_dataset().train),
        "predict records": args.predict_records,
        "peak RSS": "ru_maxrss of the finished process (os.wait4)",
    }
    text = markdown(rows, info, settings)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
