"""Helpers of the server tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_records(path, count: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:count]]


def assert_error_body(response, status: int, code: str | None = None) -> dict:
    """A 4xx/5xx answer: JSON ``{"error": {"code", "message", "details"}}``; returns the error object."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_close(left: list[dict], right: list[dict], tolerance: float = 1.5e-6) -> None:
    """Same ids and labels; scores (rounded to 6 decimals) and attention weights within ``tolerance``:
    1e-6 between the unrounded numbers, plus the rounding."""
    assert [row["id"] for row in left] == [row["id"] for row in right]
    for a, b in zip(left, right):
        assert a["labels"] == b["labels"]
        assert a["scores"].keys() == b["scores"].keys()
        assert all(abs(a["scores"][k] - b["scores"][k]) <= tolerance for k in a["scores"]), (a["scores"], b["scores"])
        assert ("attention" in a) == ("attention" in b)
        for name, pairs in a.get("attention", {}).items():
            other = b["attention"][name]
            assert [word for word, _ in pairs] == [word for word, _ in other]
            assert all(abs(x - y) <= tolerance for (_, x), (_, y) in zip(pairs, other))


@contextmanager
def model_held(batcher):
    """Hold the model thread in its next call until ``release`` is set; ``calls`` records how many records
    each call of the model got."""
    original = batcher.predict
    entered, release, calls = threading.Event(), threading.Event(), []

    def held(records, attention):
        calls.append(len(records))
        if not entered.is_set():
            entered.set()
            release.wait(60)
        return original(records, attention)

    batcher.predict = held
    try:
        yield entered, release, calls
    finally:
        release.set()
        batcher.predict = original
