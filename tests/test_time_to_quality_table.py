"""The table of ``benchmarks/time_to_quality.py``: the first run past the baseline is the one named."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.time_to_quality import markdown  # noqa: E402


def rows(micro_by_epochs: list[float]) -> dict:
    return {
        "tfidf": {"seconds": 40.0, "micro_f1": 0.65, "macro_f1": 0.57},
        "epochs": [{"requested": k + 1, "seconds": 50.0 + 10 * k, "micro_f1": micro, "macro_f1": 0.5, "epochs": k + 1}
                   for k, micro in enumerate(micro_by_epochs)],
        "shipped": {"seconds": 200.0, "micro_f1": 0.677, "macro_f1": 0.601, "epochs": 9},
        "seed": {"seconds": 300.0, "micro_f1": 0.40, "macro_f1": 0.2, "epochs run": 7, "best epoch": 5},
    }


def test_the_first_run_past_the_baseline_gives_the_time_to_quality():
    text = markdown(rows([0.60, 0.655, 0.66]), 0.65, {"cpu": "x"}, 4)
    assert "`multifield train configs/movies.toml --epochs 2` (first past TF-IDF + LR)" in text
    assert text.count("first past") == 1
    assert "**60 s** (2 epochs), against 40 s for TF-IDF + LR itself" in text
    assert "| seed-style reference, early stopping (7 epochs run, best 5) | its best | 300 | 0.400 | 0.200 |" in text


def test_no_run_past_the_baseline_is_said():
    text = markdown(rows([0.60, 0.62]), 0.65, {"cpu": "x"}, 2)
    assert "No run of at most 2 epochs passed TF-IDF + LR's test micro-F1 (0.650)." in text
    assert "(first past" not in text
