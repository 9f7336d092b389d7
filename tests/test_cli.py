"""Every command, on a small slice of the bundled movies: in-process with typer's runner, and the
contract details (exit codes, no traceback) through the installed console script."""

import json
import subprocess
import sys

import pytest
from cli_helpers import run_cli, run_script

import multifield


def test_version_and_help():
    assert multifield.__version__ in run_cli("--version").output
    help_text = run_cli("--help").output
    for command in ("train", "evaluate", "predict", "demo"):
        assert command in help_text
    assert "Example:" in run_cli("train", "--help").output


def test_console_command_runs_the_exit_handlers_and_keeps_the_exit_code(tmp_path):
    """``multifield`` (``cli.run``) ends the process without Python's teardown, after the exit handlers and the
    command's own exit code."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        "sys.argv = ['multifield', *sys.argv[1:]]\n"
        "from multifield.cli import run\n"
        "run()\n"
    )
    ok = subprocess.run([sys.executable, "-c", script, "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0
    assert ok.stdout.splitlines() == [f"multifield {multifield.__version__}", "exit handler ran"]
    missing = tmp_path / "missing.toml"
    bad = subprocess.run(
        [sys.executable, "-c", script, "train", str(missing), "--train", "x.jsonl", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stdout.strip() == "exit handler ran"
    assert bad.stderr.strip() == f"error: {missing}: no such config file"


def test_train_evaluate_predict(small_config_path, movie_files, tmp_path):
    out = tmp_path / "model"
    run_cli("train", small_config_path, "--train", movie_files["train"], "--valid", movie_files["valid"],
            "--out", out, "--epochs", 1)
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 1  # --epochs N trains exactly N epochs

    result = run_cli("evaluate", out, "--data", movie_files["test"], "--json")
    metrics = json.loads(result.stdout)
    assert {"micro_f1", "macro_f1", "samples_f1", "precision_at_1", "precision_at_3", "hamming_loss", "per_label"} <= set(metrics)
    table = run_cli("evaluate", out, "--data", movie_files["test"]).stdout
    assert "micro f1" in table and "per label" in table

    output = tmp_path / "predictions.jsonl"
    run_cli("predict", out, "--input", movie_files["test"], "--output", output, "--attention")
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    inputs = [json.loads(line) for line in movie_files["test"].read_text().splitlines()]
    assert [row["id"] for row in rows] == [record["id"] for record in inputs]
    assert all(set(row["attention"]) == {"plot", "reviews"} for row in rows)


def test_train_without_valid_splits_by_hash_and_refuses_to_overwrite(small_config_path, movie_files, tmp_path):
    out = tmp_path / "model"
    run_cli("train", small_config_path, "--train", movie_files["train"], "--out", out, "--epochs", 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_records"] + metrics["validation_records"] == 300
    assert 10 < metrics["validation_records"] < 60
    result = run_cli("train", small_config_path, "--train", movie_files["train"], "--out", out, "--epochs", 1,
                     check_exit=2)
    assert "not empty" in result.output and "--overwrite" in result.output


def test_csv_input_with_json_and_delimited_labels(small_config_path, movie_files, tmp_path):
    import pandas as pd

    records = [json.loads(line) for line in movie_files["train"].read_text().splitlines()]
    frame = pd.DataFrame(records).drop(columns=["extra"])
    frame["actors"] = frame["actors"].map(json.dumps)
    frame["features"] = frame["features"].map("|".join)
    frame["genres"] = [json.dumps(g) if i % 2 else "|".join(g) for i, g in enumerate(frame["genres"])]
    frame.to_csv(tmp_path / "train.csv", index=False)
    out = tmp_path / "model"
    run_cli("train", small_config_path, "--train", tmp_path / "train.csv", "--out", out, "--epochs", 1)
    assert len(json.loads((out / "labels.json").read_text())) >= 15


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda b, f, t: ["evaluate", b, "--data", t / "absent.jsonl"], "absent.jsonl: no such file"),
        (lambda b, f, t: ["evaluate", t / "nobundle", "--data", f["test"]], "no such model directory"),
        (lambda b, f, t: ["train", t / "absent.toml", "--train", f["train"], "--out", t / "o"], "no such config file"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(trained_bundle, movie_files, tmp_path, make_args, expected):
    result = run_script(*make_args(trained_bundle, movie_files, tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_line_is_named_and_debug_shows_the_traceback(trained_bundle, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "plot": "fine"}\n{"id": "b", "plot": [1, 2]}\n')
    result = run_script("predict", trained_bundle, "--input", bad, "--output", tmp_path / "out.jsonl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.jsonl, line 2, field 'plot'" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    debug = run_script("--debug", "predict", trained_bundle, "--input", bad, "--output", tmp_path / "out.jsonl")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_config_error_names_the_key(movie_files, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[fields.plot]\nencoder = "rnn_attention"\nunits = "many"\n')
    result = run_script("train", config, "--train", movie_files["train"], "--out", tmp_path / "o")
    assert result.returncode == 2 and "key fields.plot.units" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_slice(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--epochs", 1, "--limit", 200)
    assert "micro f1" in result.stdout and "attended" in result.stdout
    assert (out / "model" / "model.keras").exists()
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["records"] == 1077
    assert sum(1 for _ in (out / "test_predictions.jsonl").open()) == 1077
