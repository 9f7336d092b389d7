"""Reading wrk's ``--latency`` output, as the serving benchmarks do (``benchmarks/serve_load.py``)."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.serve_load import WRK_MISSING, parse_wrk, wrk_scenario  # noqa: E402

# wrk 4.1 against `multifield serve`, one record per request: `wrk -t2 -c16 -d3s --latency -s load.lua URL -- bodies.txt`
CAPTURED = """Running 3s test @ http://127.0.0.1:35855/v1/predict
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.96ms    4.81ms  43.22ms   67.93%
    Req/Sec   473.95    117.67   800.00     80.00%
  Latency Distribution
     50%   17.40ms
     75%   20.19ms
     90%   21.67ms
     99%   29.58ms
  2854 requests in 3.03s, 1.71MB read
Requests/sec:    940.63
Transfer/sec:    576.80KB
"""


def test_percentiles_count_and_rate_of_a_clean_run():
    result = parse_wrk(CAPTURED)
    assert result["p50 ms"] == pytest.approx(17.40)
    assert result["p99 ms"] == pytest.approx(29.58)
    assert result["requests"] == 2854
    assert result["seconds"] == pytest.approx(3.03)
    assert result["requests/s"] == pytest.approx(940.63)
    assert result["errors"] == {}


def test_units_other_than_milliseconds_and_errors_by_kind():
    text = (CAPTURED.replace("   17.40ms", "  850.00us").replace("   29.58ms", "    1.20s")
            .replace("  2854 requests in 3.03s", "  2854 requests in 1.00m")
            .replace("Requests/sec:", "  Socket errors: connect 0, read 2, write 0, timeout 5\n  Non-2xx or 3xx responses: 7\nRequests/sec:"))
    result = parse_wrk(text)
    assert result["p50 ms"] == pytest.approx(0.85)
    assert result["p99 ms"] == pytest.approx(1200.0)
    assert result["seconds"] == pytest.approx(60.0)
    assert result["errors"] == {"read": 2, "timeout": 5, "status": 7}


def test_output_without_the_latency_distribution_is_refused():
    without = "\n".join(line for line in CAPTURED.splitlines() if "%" not in line or "Stdev" in line or "Latency " in line)
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(without)


def test_without_wrk_the_row_says_so(monkeypatch):
    monkeypatch.setenv("PATH", "")
    row = wrk_scenario("1 record per request, 16 clients", "http://127.0.0.1:9", [b"{}"], 1, 16, 1)
    assert row == {"scenario": "1 record per request, 16 clients (wrk)", "missing": WRK_MISSING}
