"""The "Reliability" table of BENCHMARKS.md: bad inputs tried and the answers they got, measured.

    .venv/bin/python benchmarks/reliability.py [--model DIR] [--fuzz-examples 200] [--out FILE.md]

Starts ``multifield serve`` with an API key (127.0.0.1, a free port) and sends it every bad request of
``bad_requests.py`` with the key, then requests without a key (or with a wrong one) on every route; runs the
command line (``predict``, ``evaluate``, ``train``) on bad files, and ``serve`` on a reachable address without
a key; sends SIGTERM to a server under load and counts the requests in flight that failed; runs the fuzzed
readers (``fuzz_readers.py``) for ``--fuzz-examples`` files; and takes the soak's figures from
``benchmarks/results/soak.md`` when a soak has run. Counts tracebacks (in the command line's output and the
server's log) and 5xx answers. Writes ``benchmarks/results/reliability.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("KERAS_BACKEND", "jax")

import httpx  # noqa: E402

from benchmarks.bad_requests import bad_requests  # noqa: E402
from benchmarks.common import CACHE_DIR, machine_info  # noqa: E402
from benchmarks.serve_load import DEFAULT_MODEL, EXECUTABLE, Server, bundled_test_records, ensure_model, free_port  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "reliability.md"
ROUTES = [("GET", "/v1/model"), ("GET", "/v1/example"), ("POST", "/v1/predict"), ("GET", "/openapi.json"), ("GET", "/docs")]


def http_rows(url: str, key: str, records: list[dict]) -> tuple[list[dict], dict]:
    """Each bad request's answer (with the key), and the unauthenticated requests' tally."""
    rows = []
    authorized = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for bad in bad_requests(records[0], 1000, 10 * 1024 * 1024):
            expected = f"{bad.expected} (or closed)" if bad.may_close else str(bad.expected)
            try:
                response = client.request(bad.method, bad.path, content=bad.body or None, headers={**bad.headers, **authorized})
            except httpx.TransportError as error:
                rows.append({"input": bad.name, "answer": f"connection closed ({type(error).__name__})", "expected": expected,
                             "status": 0})
                continue
            code = response.json().get("error", {}).get("code") if response.headers.get("content-type", "").startswith(
                "application/json") else None
            rows.append({"input": bad.name, "answer": f"{response.status_code} {code or ''}".strip(),
                         "expected": expected, "status": response.status_code})
        body = json.dumps({"records": records[:1]}).encode()
        tally = {"sent": 0, "served": 0, "401": 0}
        wrong = [{}, {"authorization": "Bearer " + secrets.token_urlsafe(24)}, {"authorization": f"Basic {key}"},
                 {"authorization": f"Bearer {key[:-1]}"}, {"x-api-key": key}]
        for _ in range(10):
            for headers in wrong:
                for method, path in ROUTES:
                    response = client.request(method, path, content=body if method == "POST" else None,
                                              headers={**headers, "content-type": "application/json"})
                    tally["sent"] += 1
                    tally["served"] += response.status_code < 400
                    tally["401"] += response.status_code == 401
        tally["healthz without key"] = client.get("/healthz").status_code
    return rows, tally


def cli_cases(folder: Path, model: Path) -> list[tuple[str, list[str]]]:
    """(what, command) pairs: the command line on bad files and bad options."""
    record = json.dumps(bundled_test_records()[0])
    files = {
        "JSONL line not JSON": ("bad.jsonl", (record + "\n{oops\n").encode()),
        "JSONL with NUL bytes": ("nul.jsonl", record.encode() + b"\n\x00\x00\x00\n"),
        "JSONL in UTF-16": ("utf16.jsonl", (record + "\n").encode("utf-16")),
        "JSONL a line an array": ("array.jsonl", (record + "\n[1, 2]\n").encode()),
        "JSONL nested 20,000 deep": ("deep.jsonl", b'{"plot": ' + b"[" * 20000 + b"]" * 20000 + b"}\n"),
        "JSONL a 5 MB field": ("huge.jsonl", json.dumps({"id": "h", "plot": "word " * 1_000_000}).encode() + b"\n"),
        "JSONL a text field an object": ("types.jsonl", b'{"id": "t", "plot": {"a": [1, 2]}, "genres": 5}\n'),
        "CSV broken quoting": ("quotes.csv", b'id,plot,genres\n1,"unterminated,Drama\n2,ok,"Drama"x\n'),
        "CSV duplicate columns": ("dup.csv", b"id,plot,plot\n1,a,b\n"),
        "CSV in Latin-1": ("latin.csv", "id,plot,genres\n1,caf\u00e9,Drama\n".encode("latin-1")),
        "CSV rows of the wrong width": ("width.csv", b"id,plot,genres\n1,a\n2,b,Drama,extra\n"),
        "Parquet truncated": ("broken.parquet", b"PAR1\x00\x00PAR1"),
        "gzip truncated": ("cut.jsonl.gz", gzip.compress(((record + "\n") * 50).encode())[:40]),
        "empty file": ("empty.jsonl", b""),
        "unknown suffix": ("data.xlsx", b"x"),
    }
    cases = []
    for what, (name, content) in files.items():
        path = folder / name
        path.write_bytes(content)
        cases.append((f"predict: {what}", ["predict", str(model), "--input", str(path), "--output", str(folder / "out.jsonl")]))
        cases.append((f"predict --skip-bad-rows: {what}", ["predict", str(model), "--input", str(path), "--output",
                                                             str(folder / "out.jsonl"), "--skip-bad-rows"]))
        cases.append((f"evaluate: {what}", ["evaluate", str(model), "--data", str(path)]))
    config = folder / "bad.toml"
    config.write_text('name = "x"\n[labels]\nfield = "genres"\n[fields.plot]\nkind = "txt"\n', encoding="utf-8")
    cases.append(("train: config with an unknown field kind", ["train", str(config), "--train", str(folder / "bad.jsonl"),
                                                               "--out", str(folder / "run")]))
    cases.append(("train: missing --train file", ["train", str(REPO / "configs" / "movies.toml"), "--train", str(folder / "none.jsonl"),
                                                  "--out", str(folder / "run")]))
    cases.append(("serve --host 0.0.0.0 without a key", ["serve", str(model), "--host", "0.0.0.0"]))
    cases.append(("serve --cors-origin not an origin", ["serve", str(model), "--cors-origin", "example.org"]))
    return cases


def cli_rows(folder: Path, model: Path) -> list[dict]:
    environment = {key: value for key, value in os.environ.items() if key != "MULTIFIELD_API_KEY"}
    rows = []
    for what, args in cli_cases(folder, model):
        result = subprocess.run([EXECUTABLE, *args], capture_output=True, text=True, timeout=600,
                                env={**environment, "COLUMNS": "300"})
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        first = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
        rows.append({"input": what, "exit": result.returncode, "said": first.replace(f"{folder}/", "")[:160],
                     "traceback": "Traceback" in result.stderr + result.stdout})
    return rows


def drain_row(url: str, server: Server, key: str, records: list[dict]) -> dict:
    """SIGTERM while 16 clients have requests of 500 records in flight (8000 in all: within the queue's limit, so
    that no request is refused as too many): how many failed, and the exit code."""
    body = json.dumps({"records": [records[i % len(records)] for i in range(500)]}).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}

    async def one(client):
        try:
            return (await client.post("/v1/predict", content=body, headers=headers)).status_code
        except httpx.HTTPError as error:
            return type(error).__name__

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            tasks = [asyncio.create_task(one(client)) for _ in range(16)]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            statuses = await asyncio.gather(*tasks)
            return statuses, started

    statuses, started = asyncio.run(run())
    code = server.process.wait(120)
    return {"in flight": len(statuses), "failed": sum(status != 200 for status in statuses),
            "failures": sorted(str(status) for status in statuses if status != 200), "exit": code,
            "seconds": time.monotonic() - started}


def fuzz_row(model: Path, examples: int) -> str:
    if not examples:
        return "not run"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fuzz_readers.py"), "--examples", str(examples),
                             "--model", str(model)], capture_output=True, text=True, timeout=7200)
    return next((line for line in result.stdout.splitlines() if line.startswith("examples:")), result.stdout[-300:])


def soak_line() -> str:
    soak = REPO / "benchmarks" / "results" / "soak.md"
    if not soak.exists():
        return "no soak has run (benchmarks/serve_load.py --soak 10)"
    lines = soak.read_text(encoding="utf-8").splitlines()
    table = [line for line in lines if line.startswith("|")]
    return "\n".join([lines[2], "", *table[:3]]) if len(table) >= 3 else "unreadable"


def markdown(http: list[dict], tally: dict, cli: list[dict], drain: dict, fuzz: str, server_tracebacks: int) -> str:
    five_xx = sum(row["status"] >= 500 for row in http)
    lines = ["# Reliability", "", "`benchmarks/reliability.py`: every answer below is measured, not written by hand.", "",
             "## HTTP: bad requests (with the key)", "", "| input | answer | expected |", "|---|---|---|"]
    lines += [f"| {row['input']} | {row['answer']} | {row['expected']} |" for row in http]
    lines += ["", f"5xx answers: {five_xx}; tracebacks in the server's log: {server_tracebacks}.", "",
              "## Access", "",
              f"- {tally['sent']} requests without the right key ({len(ROUTES)} routes; no header, a wrong key, Basic, "
              f"a key one character short, X-Api-Key): {tally['served']} served, {tally['401']} answered 401; "
              f"`/healthz` without a key: {tally['healthz without key']}.",
              "", "## Command line: bad files and options", "", "| input | exit | said | traceback |", "|---|---:|---|---|"]
    lines += [f"| {row['input']} | {row['exit']} | {row['said'].replace('|', '/')} | {'yes' if row['traceback'] else 'no'} |"
              for row in cli]
    tracebacks = sum(row["traceback"] for row in cli)
    lines += ["", f"Tracebacks: {tracebacks} of {len(cli)} runs.", "", "## Shutdown", "",
              f"SIGTERM with {drain['in flight']} requests of 500 records in flight (16 clients): "
              f"{drain['failed']} failed{' ' + ', '.join(drain['failures']) if drain['failures'] else ''}; "
              f"exit code {drain['exit']} after {drain['seconds']:.1f} s.", "",
              "## Fuzzed readers", "", f"`benchmarks/fuzz_readers.py`: {fuzz}", "", "## Soak", "", soak_line(), "",
              "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine_info().items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A trained bundle (default: the serving benchmark's, trained once).")
    parser.add_argument("--fuzz-examples", type=int, default=200, help="Generated files for the fuzzed readers (0: skip).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    args = parser.parse_args(argv)
    model = args.model or ensure_model(DEFAULT_MODEL)
    records = bundled_test_records()
    key = secrets.token_urlsafe(24)
    log = CACHE_DIR / "reliability-serve.log"
    with Server(model, free_port(), log, ["--no-access-log"], env={**os.environ, "MULTIFIELD_API_KEY": key}) as server:
        server.wait_ready(timeout=900)
        http, tally = http_rows(server.url, key, records)
        drain = drain_row(server.url, server, key, records)
    server_tracebacks = log.read_text(errors="replace").count("Traceback")
    with tempfile.TemporaryDirectory() as folder:
        cli = cli_rows(Path(folder), model)
    text = markdown(http, tally, cli, drain, fuzz_row(model, args.fuzz_examples), server_tracebacks)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}")
    failed = (any(row["status"] >= 500 for row in http) or tally["served"] or drain["failed"] or drain["exit"] != 0
              or any(row["traceback"] or row["exit"] not in (0, 2) for row in cli) or server_tracebacks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
