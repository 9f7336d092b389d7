"""Load benchmark of ``multifield serve``: latency and throughput under concurrent clients.

    .venv/bin/python benchmarks/serve_load.py [--model DIR] [--runtime onnx|keras|both] [--requests 2000] [--concurrency 16]
        [--client httpx|wrk|both] [--wrk-seconds 15] [--out FILE.md]
    .venv/bin/python benchmarks/serve_load.py --soak MINUTES [--concurrency 16]   (see benchmarks/soak.py)

Starts ``multifield serve --runtime RUNTIME`` on a trained bundle in a subprocess (127.0.0.1, a free port) and
times it from the process start to the first 200 on ``/healthz``. Then from this process it sends ``--requests``
single-record requests from ``--concurrency`` concurrent clients (httpx.AsyncClient), then ``--requests / 64``
requests of 64 records each, also from ``--concurrency`` clients; the same two loads from wrk
(``-t2 -c CONCURRENCY --latency``, a Lua script that POSTs the same bodies; ``--wrk-seconds`` each after a 2 s
warm-up; without wrk on PATH those rows say "wrk not installed"); and last ``--sequential`` single-record
requests from one client (the latency of a request that does not queue). The server's peak RSS (VmHWM of its
process) is read just before it is stopped. With ``--runtime both`` a Keras server follows the ONNX Runtime
one. The records are the test movies of the bundled split. For each scenario it reports the errors (any answer
other than 200), p50/p99 latency as the client sees it and as the server spent it (its ``Server-Timing``
header), requests/s and records/s; it prints a markdown table with the machine it ran on and writes it
(default benchmarks/results/serve_load.md). The server is stopped at the end, whatever happens.

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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")

import httpx  # noqa: E402

from benchmarks.common import CACHE_DIR, EXECUTABLE, machine_info  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_load.md"
DEFAULT_MODEL = CACHE_DIR / "serve-model"
BATCH_RECORDS = 64
RUNTIMES = ("onnx", "keras")


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
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.command, stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the process start to the first 200 on /healthz (polled every 50 ms)."""
        while time.monotonic() - self.started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return time.monotonic() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the server was not ready within {timeout:.0f} s; see {self.log}")

    def peak_rss_mib(self) -> float:
        """The server process's peak resident memory so far (VmHWM in /proc/PID/status), MiB; NaN where that is unreadable."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        except OSError:
            return math.nan
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else math.nan

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
-- POSTs the request bodies of a file (one JSON body a line) to /v1/predict, one after the other, round and round.
local bodies, next_body = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"}, bodies[next_body])
end
"""

WRK_MISSING = "wrk not installed"
_WRK_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_WRK_TIME = r"([\d.]+)(us|ms|s|m|h)"


def parse_wrk(text: str) -> dict:
    """What wrk's output with ``--latency`` says: requests, seconds, requests/s, p50/p99 latency (ms), errors by kind."""
    percentiles = {float(p): float(value) * _WRK_MS[unit]
                   for p, value, unit in re.findall(r"^\s*(\d+(?:\.\d+)?)%\s+" + _WRK_TIME + r"\s*$", text, re.MULTILINE)}
    total = re.search(r"(\d+) requests in " + _WRK_TIME, text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if 50.0 not in percentiles or 99.0 not in percentiles or not total or not rate:
        raise ValueError(f"wrk's output has no latency distribution or request count (run it with --latency):\n{text[-2000:]}")
    errors = {}
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sockets:
        errors.update(zip(("connect", "read", "write", "timeout"), (int(count) for count in sockets.groups())))
    status = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if status:
        errors["status"] = int(status.group(1))
    return {"requests": int(total.group(1)), "seconds": float(total.group(2)) * _WRK_MS[total.group(3)] / 1000,
            "requests/s": float(rate.group(1)), "p50 ms": percentiles[50.0], "p99 ms": percentiles[99.0],
            "errors": {kind: count for kind, count in errors.items() if count}}


def run_wrk(url: str, script: Path, body_file: Path, concurrency: int, seconds: float) -> dict:
    """wrk with two threads, ``concurrency`` connections, for ``seconds``; its output parsed (``parse_wrk``)."""
    command = ["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "30s", "-s", str(script),
               url + "/v1/predict", "--", str(body_file)]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=True).stdout)


def wrk_scenario(name: str, url: str, bodies: list[bytes], records_each: int, concurrency: int, seconds: float,
                 warmup_seconds: float = 2) -> dict:
    """The same load from wrk (C, two threads): a lighter client than Python's, so that the latency it reports is
    the server's and the loopback's, not the load generator's own wait for the CPU. A ``warmup_seconds`` run,
    then the measured one of ``seconds``. Without wrk on PATH, the row says so instead."""
    if shutil.which("wrk") is None:
        return {"scenario": name + " (wrk)", "missing": WRK_MISSING}
    with tempfile.TemporaryDirectory() as folder:
        script, body_file = Path(folder) / "load.lua", Path(folder) / "bodies.txt"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        run_wrk(url, script, body_file, concurrency, warmup_seconds)
        result = run_wrk(url, script, body_file, concurrency, seconds)
    return {
        "scenario": name + " (wrk)",
        "requests": result["requests"],
        "records": result["requests"] * records_each,
        "errors": sum(result["errors"].values()),
        "error kinds": result["errors"],
        "p50 ms": result["p50 ms"],
        "p99 ms": result["p99 ms"],
        "server p50 ms": math.nan,
        "server p99 ms": math.nan,
        "requests/s": result["requests/s"],
        "records/s": result["requests/s"] * records_each,
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


def single_bodies(records: list[dict], count: int) -> list[bytes]:
    """``count`` request bodies of one record each, cycling through ``records``."""
    return [json.dumps({"records": [records[i % len(records)]]}).encode() for i in range(count)]


def batch_bodies(records: list[dict], count: int, size: int = BATCH_RECORDS) -> list[bytes]:
    return [json.dumps({"records": [records[(i * size + j) % len(records)] for j in range(size)]}).encode() for i in range(count)]


def served(model: Path, runtime: str, options: list[str], load) -> dict:
    """``multifield serve MODEL --runtime RUNTIME`` in a subprocess: seconds from its start to ready, the rows that
    ``load(url)`` measures on it, and its peak RSS read just before it is stopped."""
    with Server(model, free_port(), CACHE_DIR / f"serve-load-{runtime}.log", ["--runtime", runtime, *options]) as server:
        ready_seconds = server.wait_ready(timeout=900)
        print(f"server on {runtime} ready after {ready_seconds:.1f} s", flush=True)
        rows = load(server.url)
        peak = server.peak_rss_mib()
    return {"runtime": runtime, "ready_seconds": ready_seconds, "peak_rss_mib": peak, "rows": rows}


def single_record_serving(model: Path, runtime: str, requests: int, concurrency: int, wrk_seconds: float,
                          options: list[str] = (), time_limit: float = 600) -> dict:
    """One record per request from ``concurrency`` clients, from Python (httpx, ``requests`` requests) and from wrk
    (``wrk_seconds``), on a server of its own: ``served``'s figures with rows "httpx" and "wrk"."""
    singles = single_bodies(bundled_test_records(), requests)
    name = f"1 record per request, {concurrency} clients"

    def load(url: str) -> dict:
        deadline = time.monotonic() + time_limit
        return {"httpx": scenario(name, url, singles, 1, concurrency, deadline),
                "wrk": wrk_scenario(name, url, singles, 1, concurrency, wrk_seconds)}

    return served(model, runtime, list(options), load)


def markdown(results: list[dict], info: dict, settings: dict) -> str:
    lines = [
        "# Serving load benchmark",
        "",
        f"`benchmarks/serve_load.py`: `multifield serve` on {settings['model']}; the clients "
        "(httpx.AsyncClient in the benchmark's process, or wrk with two threads: rows marked (wrk)) run in a second "
        "process on the same machine. Latency is measured by the client, "
        "from sending a request to reading its whole answer; the server columns are the server's own time "
        "(its `Server-Timing` header: from the request reaching the application to the answer starting, "
        "queueing for the model included).",
        "",
        "| runtime | scenario | requests | records | errors | p50 ms | p99 ms | server p50 ms | server p99 ms | requests/s | records/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines += [scenario_line(result["runtime"], row) for row in result["rows"]]
    lines += ["", "| runtime | start-up to ready s (process start to the first 200 on /healthz) | server peak RSS MiB (VmHWM) |",
              "|---|---:|---:|"]
    lines += [f"| {result['runtime']} | {result['ready_seconds']:.1f} | {result['peak_rss_mib']:.0f} |" for result in results]
    lines += ["", "Machine and run:", ""]
    lines += [f"- {key}: {value}" for key, value in {**info, **settings}.items() if key != "model"]
    return "\n".join(lines) + "\n"


def scenario_line(runtime: str, row: dict) -> str:
    if "missing" in row:
        return f"| {runtime} | {row['scenario']} | {row['missing']} | | | | | | | | |"
    return (f"| {runtime} | {row['scenario']} | {row['requests']} | {row['records']} | {row['errors']} | {row['p50 ms']:.1f} "
            f"| {row['p99 ms']:.1f} | {_ms(row['server p50 ms'])} | {_ms(row['server p99 ms'])} "
            f"| {row['requests/s']:.0f} | {row['records/s']:.0f} |")


def load_rows(args, singles: list[bytes], batches: list[bytes]):
    """The scenarios of one server, as a function of its URL (for ``served``)."""
    clients = args.concurrency

    def load(url: str) -> list[dict]:
        deadline = time.monotonic() + args.time_limit
        rows = []
        if args.client in ("httpx", "both"):
            rows += [scenario(f"1 record per request, {clients} clients", url, singles, 1, clients, deadline),
                     scenario(f"{BATCH_RECORDS} records per request, {clients} clients", url, batches, BATCH_RECORDS, clients, deadline)]
        if args.client in ("wrk", "both"):
            rows += [wrk_scenario(f"1 record per request, {clients} clients", url, singles, 1, clients, args.wrk_seconds),
                     wrk_scenario(f"{BATCH_RECORDS} records per request, {clients} clients", url, batches, BATCH_RECORDS, clients,
                                  args.wrk_seconds)]
        if args.sequential:
            rows.append(scenario("1 record per request, 1 client", url, singles[: args.sequential], 1, 1, deadline))
        return rows

    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A trained bundle (default: train one into benchmarks/.cache).")
    parser.add_argument("--runtime", choices=(*RUNTIMES, "both"), default="onnx", help="The server's --runtime (both: one after the other).")
    parser.add_argument("--requests", type=int, default=2000, help="Single-record requests (and /64 batch requests).")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--sequential", type=int, default=500, help="Single-record requests from one client (0: none).")
    parser.add_argument("--wrk-seconds", type=float, default=15, help="Duration of each wrk scenario (after a 2 s warm-up).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    parser.add_argument("--time-limit", type=float, default=600, help="Seconds for the httpx load of one server (startup excluded).")
    parser.add_argument("--serve-option", action="append", default=[], help="Passed on to `multifield serve`.")
    parser.add_argument("--client", choices=("httpx", "wrk", "both"), default="both",
                        help="Load generator: Python's httpx, wrk (Debian package wrk; its rows say so when it is not installed), or both.")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="Run the soak instead: mixed requests for MINUTES.")
    args = parser.parse_args(argv)
    if args.soak:
        return soak_main(args)

    model = args.model or ensure_model(DEFAULT_MODEL)
    records = bundled_test_records()
    singles, batches = single_bodies(records, args.requests), batch_bodies(records, max(1, args.requests // BATCH_RECORDS))
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    runtimes = RUNTIMES if args.runtime == "both" else (args.runtime,)
    results = [served(model, runtime, args.serve_option, load_rows(args, singles, batches)) for runtime in runtimes]
    info = machine_info()
    info["load average (1/5/15 min, at the start)"] = load_before
    info["uvicorn"] = _version("uvicorn")
    info["event loop / HTTP parser"] = ", ".join(
        f"{name} {'yes' if _version(name) != 'absent' else 'absent'}" for name in ("uvloop", "httptools")
    )
    info["platform"] = platform.platform()
    settings = {"model": describe_model(model), "server": " ".join(["multifield serve MODEL --port PORT --runtime RUNTIME", *args.serve_option])}
    rows = [row for result in results for row in result["rows"] if "missing" not in row]
    for row in rows:
        if row["error kinds"]:
            settings[f"errors of '{row['scenario']}'"] = json.dumps(row["error kinds"])
    text = markdown(results, info, settings)
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
