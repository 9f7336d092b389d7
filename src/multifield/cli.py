"""The ``multifield`` command line: train, evaluate, predict, explain, tune, serve, demo and init.

A mistake in the user's input ends the command with one line on stderr and exit code 2; ``--debug``
shows the traceback instead. Each command imports the modules it runs when it runs: they load Keras and
JAX (seconds), which ``--help``, ``--version`` and a mistyped flag should not wait for.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from multifield.allocator import keep_freed_memory
from multifield.compilation_cache import enable_compilation_cache
from multifield.config import load_config
from multifield.errors import DataWarning, MultifieldError
from multifield.version import __version__

app = typer.Typer(
    name="multifield",
    help="Multi-field, multi-label text classification with recurrent attention (Keras 3).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
_state = {"debug": False}


def _version(value: bool):
    if value:
        typer.echo(f"multifield {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
):
    """Train, evaluate, predict with and explain multi-field text classifiers.

    Example: multifield train configs/movies.toml --train train.jsonl --out runs/movies
    """
    _state["debug"] = debug


def user_errors(command):
    """Report a MultifieldError as one line and exit 2, unless --debug asks for the traceback. Commands
    keep XLA's compiled functions on disk between runs (``multifield.compilation_cache``) and freed memory for
    reuse (``multifield.allocator``)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        keep_freed_memory()
        enable_compilation_cache()
        with warnings.catch_warnings():
            # A value converted because its meaning was clear is said once, as one "note:" line.
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = functools.partial(_show_note, warnings.showwarning)
            try:
                return command(*args, **kwargs)
            except MultifieldError as error:
                if _state["debug"]:
                    raise
                err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None

    return wrapper


def _show_note(show, message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DataWarning):
        err_console.print(f"[yellow]note:[/] {message}", highlight=False, soft_wrap=True)
    else:
        show(message, category, filename, lineno, file, line)


SKIP_HELP = "Leave out malformed records (reported on stderr: how many, their first line numbers) instead of failing."
RUNTIME_HELP = (
    "onnx: ONNX Runtime on the bundle's model.onnx (no Keras or JAX; a bundle without one uses Keras); keras: the Keras model."
)
THREADS_HELP = "Batches that ONNX Runtime runs at once, one core each (default: MULTIFIELD_THREADS, or at most 2)."


def _load_predictor(model_dir: Path, runtime: str, threads: Optional[int]):
    """The bundle's Predictor on ``runtime``; says so when a bundle without model.onnx falls back to Keras."""
    from multifield.inference import Predictor

    predictor = Predictor.load(model_dir, runtime=runtime.lower(), threads=threads)
    if runtime.lower() == "onnx" and predictor.runtime == "keras":
        err_console.print(
            f"[yellow]note:[/] {model_dir} has no model.onnx: predicting with Keras (add one: multifield export {model_dir})",
            highlight=False, soft_wrap=True,
        )
    return predictor


@app.command()
@user_errors
def train(
    config: Path = typer.Argument(..., help="The run's TOML config (fields, encoders, labels, training)."),
    train_file: Path = typer.Option(..., "--train", help="Training records: JSONL, CSV or Parquet."),
    valid_file: Optional[Path] = typer.Option(
        None, "--valid", help="Validation records. Without it, a part of --train is split off by a hash of the id."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the model bundle to."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Train exactly N epochs (no early stopping)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle in --out."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run from its checkpoint (OUT.checkpoint.npz, written after every epoch)."
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help=SKIP_HELP),
    stream: Optional[bool] = typer.Option(
        None, "--stream/--in-memory",
        help="Read --train chunk by chunk each epoch (memory does not grow with the file) or hold it in memory. "
        "Default: stream files over 256 MB.",
    ),
    distribute: Optional[str] = typer.Option(
        None, "--distribute", help="'data-parallel': train on every JAX device, of every process (see docs/distributed.md)."
    ),
    coordinator_address: Optional[str] = typer.Option(
        None, "--coordinator-address",
        help="HOST:PORT of process 0, for several processes (default: KERAS_DISTRIBUTION_JOB_ADDRESSES, or SLURM/Kubernetes).",
    ),
    num_processes: Optional[int] = typer.Option(
        None, "--num-processes", min=1, help="Processes in the run (default: KERAS_DISTRIBUTION_NUM_PROCESSES)."
    ),
    process_id: Optional[int] = typer.Option(
        None, "--process-id", min=0, help="This process's number, 0 to N-1 (default: KERAS_DISTRIBUTION_PROCESS_ID)."
    ),
):
    """Train a model and write its bundle, with a training report (OUT/report.html).

    Example: multifield train configs/movies.toml --train data/train.jsonl --valid data/valid.jsonl --out runs/movies

    On two machines: multifield train configs/movies.toml --train big.jsonl --valid valid.jsonl --out runs/big
    --stream --distribute data-parallel --coordinator-address 10.0.0.1:1234 --num-processes 2 --process-id 0 (1 on the other)
    """
    from multifield.runs import Distribution, train_run

    distribution = None
    if distribute is not None or coordinator_address or num_processes or process_id is not None:
        distribution = Distribution(distribute or "data-parallel", coordinator_address, num_processes, process_id)
    train_run(
        load_config(config), train_file, valid_file, out, err_console, epochs=epochs, overwrite=overwrite, resume=resume,
        stream=stream, skip_bad_rows=skip_bad_rows, distribution=distribution,
    )


@app.command()
@user_errors
def evaluate(
    model_dir: Path = typer.Argument(..., help="A model bundle written by `multifield train`."),
    data: Path = typer.Option(..., "--data", help="Labelled records: JSONL, CSV or Parquet."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help=SKIP_HELP),
):
    """Score a model on labelled records: micro/macro/samples F1, P@1, P@3, hamming loss, per-label table.

    Example: multifield evaluate runs/movies --data data/test.jsonl --json
    """
    from multifield.classifier import load
    from multifield.metrics import metrics_tables
    from multifield.runs import read_records

    model = load(model_dir)
    metrics = model.evaluate(read_records(data, model.config_, True, skip_bad_rows, err_console))
    if metrics.get("unknown_labels"):
        err_console.print(f"[yellow]note:[/] labels the model never saw in training are not scored: {metrics['unknown_labels']}")
    if as_json:
        typer.echo(json.dumps(metrics, ensure_ascii=False))
        return
    Console().print(*metrics_tables(metrics))


@app.command()
@user_errors
def predict(
    model_dir: Path = typer.Argument(..., help="A model bundle written by `multifield train`."),
    input_file: Path = typer.Option(..., "--input", help="Records to classify: JSONL, CSV or Parquet."),
    output: Path = typer.Option(..., "--output", help="JSONL file to write, one line per input record, same order."),
    attention: bool = typer.Option(False, "--attention", help="Add each attention field's [word, weight] pairs."),
    skip_bad_rows: bool = typer.Option(
        False, "--skip-bad-rows", help='Write {"id", "line", "error"} for a malformed record instead of failing (every record keeps its line).'
    ),
    runtime: str = typer.Option("onnx", "--runtime", help=RUNTIME_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
):
    """Predict labels; writes {"id", "labels", "scores"[, "attention"]} per record.

    Example: multifield predict runs/movies --input new.jsonl --output predictions.jsonl --attention
    """
    from multifield.data.io import skipped_summary

    predictor = _load_predictor(model_dir, runtime, threads)
    written = predictor.predict_file(input_file, output, attention=attention, skip_bad_rows=skip_bad_rows)
    if written.skipped:
        summary = skipped_summary(written.skipped, written.line_kind)
        err_console.print(f"[yellow]note:[/] {input_file}: {summary}; their lines in {output} hold an \"error\"", highlight=False, soft_wrap=True)
    errors, predictions = len(written.skipped), written.count - len(written.skipped)
    counts = f"{predictions} prediction{'' if predictions == 1 else 's'}"
    counts += f" and {errors} error line{'' if errors == 1 else 's'}" if errors else ""
    err_console.print(f"{counts} written to {output}")


@app.command()
@user_errors
def explain(
    model_dir: Path = typer.Argument(..., help="A model bundle written by `multifield train`."),
    input_file: Path = typer.Option(..., "--input", help="Records to explain: JSONL, CSV or Parquet."),
    out: Path = typer.Option(..., "--out", help="The HTML report to write (one self-contained file)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write a heatmap PNG per record into this directory."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Explain only the first N records."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help=SKIP_HELP),
    runtime: str = typer.Option("onnx", "--runtime", help=RUNTIME_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
):
    """Write an HTML report: predicted labels with probability bars, words shaded by attention.

    Example: multifield explain runs/movies --input test.jsonl --out report.html --limit 20 --png heatmaps/
    """
    from multifield.explain import write_report
    from multifield.runs import read_records

    predictor = _load_predictor(model_dir, runtime, threads)
    records = read_records(input_file, predictor.config, False, skip_bad_rows, err_console)
    count = write_report(predictor, records, out, png_dir=png, limit=limit)
    err_console.print(f"{count} records explained in {out}")


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Directory for the model, metrics and predictions."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Train exactly N epochs."),
    limit: Optional[int] = typer.Option(None, "--limit", min=10, help="Use only the first N training movies (quick look)."),
    members: Optional[int] = typer.Option(
        None, "--members", min=1, max=16, help="Ensemble members to train (default: the config's, 1)."
    ),
):
    """Train the movie-genre model on the bundled movies, evaluate it on the test split, show what it read.

    Example: multifield demo --out runs/demo
    """
    from multifield.demo import run_demo

    run_demo(out, epochs=epochs, limit=limit, members=members, console=Console())


@app.command()
@user_errors
def tune(
    config: Path = typer.Argument(..., help="The run's TOML config: the starting point; what is not searched stays."),
    train_file: Path = typer.Option(..., "--train", help="Training records: JSONL, CSV or Parquet."),
    valid_file: Optional[Path] = typer.Option(
        None, "--valid", help="Validation records scoring every trial. Without it, a part of --train is split off by a hash of the id."
    ),
    trials: int = typer.Option(20, "--trials", min=1, help="Trials to run now (after the study's earlier ones with --resume)."),
    out: Path = typer.Option(..., "--out", help="TOML file for the best config; the trial table goes beside it (.trials.json)."),
    study_db: Optional[Path] = typer.Option(None, "--study-db", help="SQLite file holding the study (default: --out with the suffix .db)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the study already in --study-db."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1, help="Start no new trial after this many seconds."),
    epochs_per_trial: Optional[int] = typer.Option(
        None, "--epochs-per-trial", min=1, help="Train each trial exactly N epochs (default: up to training.max_epochs, with early stopping)."
    ),
):
    """Search hyper-parameters with Optuna (TPE, median pruning) and write the best config, ready to train.

    A trial trains the config with sampled sizes, cells, attention heads, hidden layer size, optimizer, learning rate,
    schedule, dropouts, positive weights and batch size; its score is its best epoch's validation micro-F1.

    Example: multifield tune configs/movies.toml --train data/train.jsonl --valid data/valid.jsonl --trials 30 --out runs/best.toml
    """
    from multifield import tuning

    study = tuning.tune(
        load_config(config),
        train_file,
        valid_file,
        out=out,
        trials=trials,
        study_db=study_db,
        resume=resume,
        timeout=timeout,
        epochs_per_trial=epochs_per_trial,
        console=err_console,
    )
    Console().print(tuning.trials_table(study))
    best, table = tuning.write_results(study, out)
    if best is None:
        raise MultifieldError(f"none of the study's {len(study.trials)} trials completed; no config written (trials in {table})")
    err_console.print(f"best config written to {best}, trials to {table}")


@app.command()
@user_errors
def serve(
    model_dir: Path = typer.Argument(..., help="A model bundle written by `multifield train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default serves this machine only."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes, each with its own copy of the model."),
    max_records: int = typer.Option(1000, "--max-records", min=1, help="Records in one request."),
    max_field_chars: int = typer.Option(100_000, "--max-field-chars", min=1, help="Characters in one field of a record."),
    max_body_bytes: int = typer.Option(10 * 1024 * 1024, "--max-body-bytes", min=1024, help="Bytes of a request body."),
    batch_sizes: str = typer.Option(
        "1,8,64,256", "--batch-sizes", help="Row counts the model is compiled for at start; batches are padded up to one."
    ),
    access_log: bool = typer.Option(
        False, "--access-log/--no-access-log",
        help="Log one line per request (off by default: at 16 clients it cost a third of the server's throughput).",
    ),
    runtime: str = typer.Option("onnx", "--runtime", help=RUNTIME_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP + " Per worker."),
    api_key_file: Optional[Path] = typer.Option(
        None, "--api-key-file", help="A file holding the API key that requests must send (Authorization: Bearer KEY); "
        "or set MULTIFIELD_API_KEY. Required with a --host other machines can reach.",
    ),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve a --host other machines can reach without an API key."),
    cors_origins: Optional[list[str]] = typer.Option(
        None, "--cors-origin", help="An origin (https://host[:port]) whose pages may call the API from a browser; repeatable. "
        "Default: none (CORS off).",
    ),
    drain_seconds: float = typer.Option(
        30.0, "--drain-seconds", min=0, help="On SIGTERM, how long the requests in flight may take before the server exits anyway."
    ),
):
    """Serve a model over HTTP: POST /v1/predict, GET /v1/model, GET /healthz, API docs at /docs.

    Example: multifield serve runs/movies --port 8000   (then: curl -s localhost:8000/healthz)

    For other machines: MULTIFIELD_API_KEY=$(cat key.txt) multifield serve runs/movies --host 0.0.0.0
    """
    import os

    from pydantic import ValidationError

    from multifield.bundle import RUNTIMES
    from multifield.server import ServerSettings
    from multifield.server import serve as run_server
    from multifield.server.auth import check_access, read_api_key

    api_key = read_api_key(api_key_file)
    check_access(host, api_key, no_auth)  # before the model loads: a refusal costs no wait

    try:
        sizes = tuple(int(size) for size in batch_sizes.split(","))
    except ValueError:
        raise MultifieldError(f"--batch-sizes {batch_sizes!r}: give increasing numbers such as 1,8,64,256") from None
    try:
        settings = ServerSettings(
            max_records=max_records, max_field_chars=max_field_chars, max_body_bytes=max_body_bytes, batch_sizes=sizes,
            drain_seconds=drain_seconds, cors_origins=tuple(cors_origins or ()),
        )
    except ValidationError as error:
        first = error.errors()[0]
        option = {"cors_origins": "cors-origin"}.get(str(first["loc"][0]), str(first["loc"][0]).replace("_", "-"))
        raise MultifieldError(f"--{option}: {first['msg'].removeprefix('Value error, ')}") from None
    if runtime.lower() not in RUNTIMES:
        raise MultifieldError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    # The workers read these when they load the model (multifield.server.serving_model, multifield.onnx_session).
    os.environ["MULTIFIELD_RUNTIME"] = runtime.lower()
    if threads is not None:
        os.environ["MULTIFIELD_THREADS"] = str(threads)
    run_server(model_dir, settings, host=host, port=port, workers=workers, access_log=access_log,
               announce=lambda line: err_console.print(line, highlight=False, soft_wrap=True), api_key=api_key, no_auth=no_auth)


@app.command()
@user_errors
def export(model_dir: Path = typer.Argument(..., help="A model bundle written by `multifield train`.")):
    """Add model.onnx (the model as an ONNX graph, which predict, explain and serve run with ONNX Runtime) to a
    bundle written before bundles carried one; the manifest gets the hashes of both model files.

    Example: multifield export runs/movies
    """
    from multifield.bundle import export_onnx

    err_console.print(f"{export_onnx(model_dir)} written")


@app.command()
@user_errors
def init(
    data: Path = typer.Argument(..., help="A data file: JSONL, CSV or Parquet (optionally gzipped)."),
    labels: str = typer.Option(..., "--labels", help="The column holding each record's labels."),
    id_column: Optional[str] = typer.Option(
        None, "--id", help="The column holding each record's unique id (default: 'id' if there is one; otherwise each "
        "record's line number is its id). It may also be a text field."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="The config to write (default: DATA's name with .toml, here)."),
    vectors: Optional[Path] = typer.Option(
        None, "--vectors", help="A local GloVe or word2vec text file: text fields whose words it mostly holds start from it."
    ),
    sample: int = typer.Option(5000, "--sample", min=10, help="Records read from the start of the file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
):
    """Profile a data file and write a commented config that trains well on it as it is.

    Prints each column's kind (long or short text, items, category, numbers, id-like, constant, empty), the evidence
    measured on the sample and what the config does with it.

    Example: multifield init questions.csv --labels tags --out questions.toml
    """
    from multifield.init import decisions_table, profile_file, write_config

    profile = profile_file(data, labels, id_column, sample=sample, vectors=vectors)
    out = out or Path(data.name.split(".")[0] + ".toml")
    console = Console()
    console.print(decisions_table(profile))
    console.print(f"id: {profile.id_note}", highlight=False, soft_wrap=True)
    if profile.left_out:
        left_out = ", ".join(f"{column.name} ({column.kind})" for column in profile.left_out)
        console.print(f"left out: {left_out}", highlight=False, soft_wrap=True)
    if profile.bad_rows:
        err_console.print(
            f"[yellow]note:[/] {data}: {profile.bad_rows} bad records in the sample were not profiled; "
            "train refuses them unless --skip-bad-rows is given", highlight=False, soft_wrap=True,
        )
    write_config(profile, out, overwrite=overwrite)
    console.print(f"config written to {out}; train it: multifield train {out} --train {data} --out runs/{out.stem}",
                  highlight=False, soft_wrap=True)


def run() -> None:
    """The ``multifield`` console command. When the command is done, the exit handlers run and the output is
    flushed, then the process ends without Python's teardown of every module and object, which takes about a
    second once Keras and JAX are loaded: every file a command writes is written and closed before it returns."""
    try:
        app()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
