"""The soak run of ``serve_load.py --soak MINUTES``: mixed good and bad requests from concurrent clients for
minutes, the server's resident memory (RSS) sampled all along.

Of every 10 requests, 6 are good (1 record, or 8 records, some asking for attention weights), 3 are bad (from
``bad_requests.py``: each must get its 4xx) and 1 carries no API key (must get 401: the server runs with one).
The figures: errors on good requests (any answer but 200), bad requests answered otherwise than expected, 5xx
answers, and the RSS growth from the first minute to the last (the mean of the samples in each; for runs
shorter than 3 minutes, the first and last third).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.bad_requests import JSON, BadRequest, bad_requests

SAMPLE_SECONDS = 2.0


def rss_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` (Linux: /proc), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples the RSS of ``pid`` every ``SAMPLE_SECONDS`` until stopped: ``samples`` holds (seconds, bytes)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.is_set():
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.samples.append((time.monotonic() - started, rss))
            self.stopped.wait(SAMPLE_SECONDS)


@dataclass
class SoakCounts:
    requests: Counter = field(default_factory=Counter)  # by kind: good, bad, no key
    good_errors: Counter = field(default_factory=Counter)  # status or exception name
    unexpected: Counter = field(default_factory=Counter)  # bad requests answered otherwise: "name: status"
    server_errors: int = 0  # 5xx answers


def mixed_requests(records: list[dict], catalogue: list[BadRequest], key: str, seed: int):
    """An endless stream of (kind, method, path, body, headers, the answers expected: statuses, or "closed" where
    the server may close the connection before reading the whole body)."""
    chooser = random.Random(seed)
    authorized = {"authorization": f"Bearer {key}"}
    while True:
        roll = chooser.random()
        if roll < 0.6:
            count = chooser.choice((1, 1, 8))
            chosen = [records[chooser.randrange(len(records))] for _ in range(count)]
            path = "/v1/predict?attention=true" if chooser.random() < 0.2 else "/v1/predict"
            yield "good", "POST", path, json.dumps({"records": chosen}).encode(), {**JSON, **authorized}, (200,)
        elif roll < 0.9:
            bad = chooser.choice(catalogue)
            expected = (bad.expected, "closed") if bad.may_close else (bad.expected,)
            yield f"bad: {bad.name}", bad.method, bad.path, bad.body, {**bad.headers, **authorized}, expected
        else:
            yield "no key", "POST", "/v1/predict", json.dumps({"records": records[:1]}).encode(), dict(JSON), (401,)


async def soak_clients(url: str, requests, concurrency: int, deadline: float) -> SoakCounts:
    counts = SoakCounts()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0) as client:

        async def worker():
            while time.monotonic() < deadline:
                kind, method, path, body, headers, expected = next(requests)
                counts.requests["good" if kind == "good" else "no key" if kind == "no key" else "bad"] += 1
                try:
                    response = await client.request(method, path, content=body or None, headers=headers)
                    status = response.status_code
                except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as error:
                    status = "closed" if "closed" in expected else type(error).__name__
                except httpx.HTTPError as error:
                    status = type(error).__name__
                if isinstance(status, int) and status >= 500:
                    counts.server_errors += 1
                if kind == "good" and status != 200:
                    counts.good_errors[str(status)] += 1
                elif kind != "good" and status not in expected:
                    counts.unexpected[f"{kind}: {status}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def rss_growth(samples: list[tuple[float, int]], seconds: float) -> tuple[float, float, float]:
    """Mean RSS (bytes) of the first and last window (a minute, or a third of a shorter run) and the growth in %."""
    window = min(60.0, seconds / 3)
    first = [rss for at, rss in samples if at <= window] or [samples[0][1]]
    last = [rss for at, rss in samples if at >= samples[-1][0] - window] or [samples[-1][1]]
    start, end = sum(first) / len(first), sum(last) / len(last)
    return start, end, 100.0 * (end - start) / start


def run_soak(url: str, pid: int, minutes: float, concurrency: int, records: list[dict], key: str,
             max_records: int, max_body_bytes: int) -> dict:
    """Soak the server at ``url`` (process ``pid``) for ``minutes``; the figures, as a dict."""
    catalogue = bad_requests(records[0], max_records, max_body_bytes)
    sampler = RssSampler(pid)
    sampler.start()
    started = time.monotonic()
    counts = asyncio.run(soak_clients(url, mixed_requests(records, catalogue, key, seed=0), concurrency,
                                      started + 60.0 * minutes))
    seconds = time.monotonic() - started
    sampler.stopped.set()
    sampler.join()
    start, end, growth = rss_growth(sampler.samples, seconds)
    return {
        "minutes": seconds / 60,
        "clients": concurrency,
        "requests": dict(counts.requests),
        "good errors": sum(counts.good_errors.values()),
        "good error kinds": dict(counts.good_errors),
        "bad answered otherwise": sum(counts.unexpected.values()),
        "bad answered otherwise kinds": dict(counts.unexpected),
        "5xx": counts.server_errors,
        "rss first MiB": start / 2**20,
        "rss last MiB": end / 2**20,
        "rss growth %": growth,
        "rss samples": [(round(at), round(rss / 2**20, 1)) for at, rss in sampler.samples],
    }


def soak_markdown(result: dict, info: dict, settings: dict) -> str:
    samples = result["rss samples"]
    step = max(1, len(samples) // 12)
    series = ", ".join(f"{at} s: {mib} MiB" for at, mib in samples[::step])
    lines = [
        "# Serving soak",
        "",
        f"`benchmarks/serve_load.py --soak {result['minutes']:.1f}`: {result['clients']} clients for "
        f"{result['minutes']:.1f} minutes, mixed requests (see `benchmarks/soak.py`).",
        "",
        "| requests (good / bad / no key) | errors on good | bad answered otherwise | 5xx | RSS first → last (MiB) | RSS growth |",
        "|---|---:|---:|---:|---|---:|",
        f"| {result['requests'].get('good', 0)} / {result['requests'].get('bad', 0)} / {result['requests'].get('no key', 0)} "
        f"| {result['good errors']} | {result['bad answered otherwise']} | {result['5xx']} "
        f"| {result['rss first MiB']:.1f} → {result['rss last MiB']:.1f} | {result['rss growth %']:+.2f}% |",
        "",
        f"RSS over time: {series}",
        "",
    ]
    if result["good error kinds"] or result["bad answered otherwise kinds"]:
        lines += [f"Errors: {json.dumps(result['good error kinds'])}; otherwise answered: "
                  f"{json.dumps(result['bad answered otherwise kinds'])}", ""]
    lines += ["Machine and run:", ""] + [f"- {key}: {value}" for key, value in {**info, **settings}.items()]
    return "\n".join(lines) + "\n"
