"""The inference table of ``benchmarks/speed.py``: each figure lands in its runtime's column."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.serve_load import WRK_MISSING  # noqa: E402
from benchmarks.speed import inference_markdown  # noqa: E402

SETTINGS = {"bundle": "b", "predict records": 20_000, "api warm-up calls": 100, "api calls": 2000, "serve requests": 2000,
            "serve clients": 16, "wrk seconds": 15.0}


def served(p50: float, rate: float, wrk_row: dict | None = None) -> dict:
    row = {"errors": 0, "p50 ms": p50, "p99 ms": 2 * p50, "requests/s": rate}
    return {"ready_seconds": p50 * 10, "peak_rss_mib": rate, "rows": {"httpx": row, "wrk": wrk_row or row}}


def result(wrk_missing: bool = False) -> dict:
    latency = {"keras": {"p50_ms": 3.0, "p99_ms": 9.0}, "onnx": {"p50_ms": 0.5, "p99_ms": 0.9}}
    missing = {"scenario": "x (wrk)", "missing": WRK_MISSING} if wrk_missing else None
    return {
        "predict": {runtime: [{"records_per_s": rate, "peak_rss_mib": rate / 10}] * 2 for runtime, rate in (("keras", 2000), ("onnx", 6000))},
        "api": {runtime: {"multifield.load": figures, "Predictor.load": figures, "keras_imported": runtime == "keras"}
                for runtime, figures in latency.items()},
        "serve": {"keras": served(20.0, 500, missing), "onnx": served(5.0, 1500, missing)},
        "agreement": {"records": 1000, "same_label_sets": 998, "largest_score_difference": 1e-6},
    }


def row(lines: list[str], starts: str) -> list[str]:
    found = next(line for line in lines if line.startswith("| " + starts))
    return [cell.strip() for cell in found.strip("|").split("|")][1:]


def test_keras_is_the_before_column_and_onnx_the_after_column():
    lines = inference_markdown(result(), SETTINGS)
    assert row(lines, "measure") == ["Keras (before)", "ONNX Runtime (after)", "fastText"]
    assert row(lines, "`multifield predict`") == ["2,000 / 2,000", "6,000 / 6,000", "not measured"]
    assert row(lines, "one record, `Predictor.load") == ["3.00 / 9.00", "0.50 / 0.90", "–"]
    assert row(lines, "server start-up") == ["200.0", "50.0", "–"]
    assert row(lines, "peak RSS of the server") == ["500", "1500", "–"]
    assert any("identical label sets on 998 (99.80%)" in line for line in lines)


def test_without_wrk_its_rows_say_so_and_the_python_client_rows_stay():
    lines = inference_markdown(result(wrk_missing=True), SETTINGS)
    assert row(lines, "`multifield serve`") == [WRK_MISSING, WRK_MISSING, "–"]
    assert row(lines, "the same, Python client: requests/s") == ["500", "1,500", "–"]


def test_a_run_of_one_part_keeps_the_other_parts_figures():
    from benchmarks.speed import HEADER, with_other_half

    header = "\n".join(HEADER) + "\n"
    inference = header + "## Inference\n\nnew inference figures\n\n- part: inference\n"
    training = header + "## Training\n\nold training figures\n\n- part: training\n"
    both = with_other_half(inference, "inference", training)
    assert both.startswith(inference) and "old training figures" in both and both.count("# Speed benchmark") == 1
    assert "The training half, a separate run (`--part training`):" in both
    # Again, with a newer inference run: the training half is still there once, the old inference text gone.
    again = with_other_half(inference.replace("new", "newer"), "inference", both)
    assert "newer inference figures" in again and "new inference figures" not in again
    assert again.count("old training figures") == 1
    # The other way round, and a file of neither half.
    assert "new inference figures" in with_other_half(training, "training", both)
    assert with_other_half(inference, "inference", None) == inference
    assert with_other_half(inference, "all", training) == inference
