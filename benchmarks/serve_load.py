"""Load benchmark of ``multifield serve``: latency and throughput under concurrent clients.

    .venv/bin/python benchmarks/serve_load.py [--model DIR] [--requests 2000] [--concurrency 16] [--out FILE.md]
    .venv/bin/python benchmarks/serve_load.py --soak MINUTES [--concurrency 16]   (see benchmarks/soak.py)

Starts ``multifield serve`` on a trained bundle in a subprocess (127.0.0.1, a free port), waits for
``/healthz``, then from this process sends ``--requests`` single-record requests from ``--concurrency``
concurrent clients (httpx.AsyncClient), then ``--requests / 64`` requests of 64 records each, also from
``--concurrency`` clients, and last ``--sequential`` single-record requests from one client (the latency of
a request that does not queue). The records are the test movies of the bundled split. For each scenario it
reports the errors (any answer other than 200), p50/p99 latency as the client sees it and as the server
spent it (its ``Server-Timing`` header), requests/s and records/s; it prints a markdown table with the
machine it ran on and writes it (default benchmarks/results/serve_load.md). The server is stopped at the
end, whatever happens.

Without ``--model``, ``configs/movies.toml`` is trained for one epoch on the bundled split into
benchmarks/.cache/serve-model, once, and reused by later runs while that config stays the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")

import httpx  # noqa: E402

from benchmarks.common import CACHE_DIR, machine_info  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_load.md"
DEFAULT_MODEL = CACHE_DIR / "serve-model"
EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
BATCH_RECORDS = 64


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bundled_test_records() -> list[dict]:
    from multifield.demo import bundled_split

    return list(bundled_split()[2].records)


def ensure_model(directory: Path) -> Path:
    """The movie model trained one epoch on the bundled split, trained here once and reused while
    configs/movies.toml stays the same."""
    from multifield.config import load_config

    config = load_config(REPO / "configs" / "movies.toml").to_toml_dict()
    try:
        cached = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = None
    if cached == json.loads(json.dumps(config)) and (directory / "manifest.json").exists():
        return directory
    from multifield.data.io import write_jsonl
    from multifield.demo import bundled_split

    train, valid, _ = bundled_split()
    data = CACHE_DIR / "serve-data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "train.jsonl", train.records)
    write_jsonl(data / "valid.jsonl", valid.records)
    print(f"training configs/movies.toml for 1 epoch into {directory} (once) ...", flush=True)
    command = [EXECUTABLE, "train", str(REPO / "configs" / "movies.toml"), "--train", str(data / "train.jsonl"),
               "--valid", str(data / "valid.jsonl"), "--out", str(directory), "--epochs", "1", "--overwrite"]
    subprocess.run(command, check=True, timeout=3600)
    return directory


class Server:
    """``multifield serve`` in a subprocess, its output in a log file; stopped on exit from the block."""

    def __init__(self, model: Path, port: int, log: Path, extra: list[str], env: dict | None = None):
        self.command = [EXECUTABLE, "serve", str(model), "--port", str(port), *extra]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = env

    def __enter__(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = self.log.open("w")
        self.process = subprocess.Popen(self.command, stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the server was not ready within {timeout:.0f} s; see {self.log}")

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


async def load(url: str, bodies: list[bytes], concurrency: int, deadline: float) -> dict:
    """Send every body once, ``concurrency`` at a time; per-request latency in seconds and error count."""
    latencies: list[float] = []
    server_times: list[float] = []
    errors: dict[str, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def worker():
            while not queue.empty() and time.monotonic() < deadline:
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/predict", content=body, headers=headers)
                    status = str(response.status_code)
                    timing = response.headers.get("server-timing", "")
                    if "dur=" in timing:
                        server_times.append(float(timing.split("dur=")[1].split(",")[0]) / 1000)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                latencies.append(time.perf_counter() - started)
                if status != "200":
                    errors[status] = errors.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,
        "server_times": server_times,
        "errors": errors,
        "seconds": elapsed,
        "unsent": queue.qsize(),
    }


WRK_SCRIPT = r"""
-- Cycles through the request bodies of a file, one JSON body a line; prints one RESULT line at the end.
local bodies, next_body = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"}, bodies[next_body])
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %f %f\n", summary.requests, summary.duration,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(url: str, script: Path, body_file: Path, concurrency: int, seconds: float) -> dict:
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script),
               url + "/v1/predict", "--", str(body_file)]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120).stdout
    fields = next(line for line in output.splitlines() if line.startswith("RESULT")).split()[1:]
    requests, duration_us, *errors = (int(value) for value in fields[:7])
    return {
        "requests": requests,
        "seconds": duration_us / 1e6,
        "errors": dict(zip(("connect", "read", "write", "status", "timeout"), errors)),
        "p50": float(fields[7]) / 1e6,
        "p99": float(fields[8]) / 1e6,
    }


def wrk_scenario(name: str, url: str, bodies: list[bytes], records_each: int, concurrency: int, max_seconds: float) -> dict:
    """The same load from wrk (C, one thread): a lighter client than Python's, so that the latency it
    reports is the server's and the loopback's, not the load generator's own wait for the CPU. wrk runs
    for a time, not a count: a 5 s warm-up run measures the rate, and the measured run lasts long
    enough for about ``len(bodies)`` requests (10% more); the table gives the count it reached."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        script, body_file = Path(folder) / "load.lua", Path(folder) / "bodies.txt"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        warm = run_wrk(url, script, body_file, concurrency, 5)
        rate = max(warm["requests"] / max(warm["seconds"], 1e-3), 1.0)
        result = run_wrk(url, script, body_file, concurrency, min(max_seconds, 1.1 * len(bodies) / rate + 1))
    errors = {kind: count for kind, count in result["errors"].items() if count}
    return {
        "scenario": name + " (wrk)",
        "requests": result["requests"],
        "records": result["requests"] * records_each,
        "errors": sum(errors.values()),
        "error kinds": errors,
        "p50 ms": 1000 * result["p50"],
        "p99 ms": 1000 * result["p99"],
        "server p50 ms": math.nan,
        "server p99 ms": math.nan,
        "requests/s": result["requests"] / result["seconds"],
        "records/s": result["requests"] * records_each / result["seconds"],
        "seconds": result["seconds"],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def scenario(name: str, url: str, bodies: list[bytes], records_each: int, concurrency: int, deadline: float) -> dict:
    asyncio.run(load(url, bodies[: concurrency * 2], concurrency, deadline))  # connections and code paths warm
    result = asyncio.run(load(url, bodies, concurrency, deadline))
    done = len(result["latencies"])
    return {
        "scenario": name,
        "requests": done,
        "records": done * records_each,
        "errors": sum(result["errors"].values()) + result["unsent"],
        "error kinds": result["errors"],
        "p50 ms": 1000 * percentile(result["latencies"], 50),
        "p99 ms": 1000 * percentile(result["latencies"], 99),
        "server p50 ms": 1000 * percentile(result["server_times"], 50) if result["server_times"] else math.nan,
        "server p99 ms": 1000 * percentile(result["server_times"], 99) if result["server_times"] else math.nan,
        "requests/s": done / result["seconds"],
        "records/s": done * records_each / result["seconds"],
        "seconds": result["seconds"],
    }


def describe_model(model: Path) -> str:
    try:
        shown = model.resolve().relative_to(REPO)
    except ValueError:
        shown = model
    try:
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"`{shown}`"
    members = config.get("training", {}).get("ensemble", 1)
    fields = ", ".join(f"{name} ({field.get('encoder')})" for name, field in config.get("fields", {}).items())
    return f"`{shown}` (config `{config.get('name')}`: {members} member(s); fields {fields})"


def markdown(rows: list[dict], info: dict, settings: dict) -> str:
    lines = [
        "# Serving load benchmark",
        "",
        f"`benchmarks/serve_load.py`: `multifield serve` on {settings['model']}; the clients "
        "(httpx.AsyncClient in the benchmark's process, or wrk with one thread: rows marked (wrk)) run in a second "
        "process on the same machine. Latency is measured by the client, "
        "from sending a request to reading its whole answer; the server columns are the server's own time "
        "(its `Server-Timing` header: from the request reaching the application to the answer starting, "
        "queueing for the model included).",
        "",
        "| scenario | requests | records | errors | p50 ms | p99 ms | server p50 ms | server p99 ms | requests/s | records/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['requests']} | {row['records']} | {row['errors']} | {row['p50 ms']:.1f} "
            f"| {row['p99 ms']:.1f} | {_ms(row['server p50 ms'])} | {_ms(row['server p99 ms'])} "
            f"| {row['requests/s']:.0f} | {row['records/s']:.0f} |"
        )
    lines += ["", "Machine and run:", ""]
    lines += [f"- {key}: {value}" for key, value in {**info, **settings}.items() if key != "model"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A trained bundle (default: train one into benchmarks/.cache).")
    parser.add_argument("--requests", type=int, default=2000, help="Single-record requests (and /64 batch requests).")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--sequential", type=int, default=500, help="Single-record requests from one client (0: none).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    parser.add_argument("--time-limit", type=float, default=600, help="Seconds for the whole load (startup excluded).")
    parser.add_argument("--serve-option", action="append", default=[], help="Passed on to `multifield serve`.")
    parser.add_argument(
        "--client", choices=("httpx", "wrk", "both"), default="both" if shutil.which("wrk") else "httpx",
        help="Load generator: Python's httpx, wrk (Debian package wrk), or both one after the other.",
    )
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="Run the soak instead: mixed requests for MINUTES.")
    args = parser.parse_args(argv)
    if args.soak:
        return soak_main(args)

    model = args.model or ensure_model(DEFAULT_MODEL)
    records = bundled_test_records()
    singles = [json.dumps({"records": [records[i % len(records)]]}).encode() for i in range(args.requests)]
    batch_count = max(1, args.requests // BATCH_RECORDS)
    batches = [
        json.dumps({"records": [records[(i * BATCH_RECORDS + j) % len(records)] for j in range(BATCH_RECORDS)]}).encode()
        for i in range(batch_count)
    ]
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with Server(model, free_port(), CACHE_DIR / "serve-load.log", args.serve_option) as server:
        ready_seconds = server.wait_ready(timeout=900)
        print(f"server ready after {ready_seconds:.0f} s (load, warm-up); load average {load_before}", flush=True)
        deadline = time.monotonic() + args.time_limit
        clients = args.concurrency
        rows = []
        if args.client in ("httpx", "both"):
            rows += [
                scenario(f"1 record per request, {clients} clients", server.url, singles, 1, clients, deadline),
                scenario(f"{BATCH_RECORDS} records per request, {clients} clients", server.url, batches, BATCH_RECORDS, clients, deadline),
            ]
        if args.client in ("wrk", "both"):
            seconds = max(30.0, deadline - time.monotonic())
            rows += [
                wrk_scenario(f"1 record per request, {clients} clients", server.url, singles, 1, clients, seconds),
                wrk_scenario(f"{BATCH_RECORDS} records per request, {clients} clients", server.url, batches, BATCH_RECORDS, clients, seconds),
            ]
        if args.sequential:
            rows.append(scenario("1 record per request, 1 client", server.url, singles[: args.sequential], 1, 1, deadline))
    info = machine_info()
    info["load average (1/5/15 min, at the start)"] = load_before
    info["uvicorn"] = _version("uvicorn")
    info["event loop / HTTP parser"] = ", ".join(
        f"{name} {'yes' if _version(name) != 'absent' else 'absent'}" for name in ("uvloop", "httptools")
    )
    info["platform"] = platform.platform()
    settings = {
        "model": describe_model(model),
        "server": " ".join(["multifield serve MODEL --port PORT", *args.serve_option]),
        "server startup to ready (load + warm-up)": f"{ready_seconds:.0f} s",
    }
    for row in rows:
        if row["error kinds"]:
            settings[f"errors of '{row['scenario']}'"] = json.dumps(row["error kinds"])
    text = markdown(rows, info, settings)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}")
    return 0 if all(row["errors"] == 0 for row in rows) else 1


SOAK_LIMITS = {"max_records": 100, "max_body_bytes": 1024 * 1024}


def soak_main(args) -> int:
    """``--soak MINUTES``: the server runs with an API key and small limits (so that the bad requests over a
    limit stay cheap); writes benchmarks/results/soak.md (or --out, if given)."""
    import secrets

    from benchmarks.soak import run_soak, soak_markdown

    model = args.model or ensure_model(DEFAULT_MODEL)
    key = secrets.token_urlsafe(24)
    options = ["--max-records", str(SOAK_LIMITS["max_records"]), "--max-body-bytes", str(SOAK_LIMITS["max_body_bytes"]),
               "--no-access-log", *args.serve_option]
    with Server(model, free_port(), CACHE_DIR / "serve-soak.log", options, env={**os.environ, "MULTIFIELD_API_KEY": key}) as server:
        ready_seconds = server.wait_ready(timeout=900)
        print(f"server ready after {ready_seconds:.0f} s; soaking for {args.soak} minutes at {args.concurrency} clients", flush=True)
        result = run_soak(server.url, server.process.pid, args.soak, args.concurrency, bundled_test_records(), key,
                          **SOAK_LIMITS)
    settings = {"model": describe_model(model), "server": " ".join(["multifield serve MODEL --port PORT", *options]),
                "API key": "from MULTIFIELD_API_KEY"}
    text = soak_markdown(result, machine_info(), settings)
    print(text)
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("soak.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"RSS growth {result['rss growth %']:+.2f}% (first to last minute); errors on good requests: "
          f"{result['good errors']}; bad answered otherwise: {result['bad answered otherwise']}; 5xx: {result['5xx']}")
    print(f"written to {out}")
    return 0 if result["good errors"] == 0 and result["5xx"] == 0 and result["bad answered otherwise"] == 0 else 1


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
