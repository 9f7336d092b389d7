"""Hyper-parameter search with Optuna: each trial trains the run's config with sampled settings and is scored
by its best validation micro-F1; the best trial's config is written as TOML, ready for ``multifield train``."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import keras
from rich.console import Console
from rich.table import Table

from multifield.classifier import MultiFieldClassifier, as_table
from multifield.config import Config, config_from_dict, write_config
from multifield.errors import MultifieldError, TrainingError
from multifield.files import write_text
from multifield.model import encoder_kind

# What each encoder kind searches is its ``search_space`` in ``multifield.model.ENCODERS``.
EMBEDDING_SIZES = (32, 64, 128)
DEEP_LOSS_WEIGHTS = (0.0, 0.5, 1.0)
HIDDEN_SIZES = (128, 256, 512)
# Pruning waits for this many epochs: a recurrent model's first epochs say little about where it ends. On the
# plot-only movie study, the best finished trial was no better than the median at epoch 2 and led from epoch 5.
PRUNE_AFTER_EPOCHS = 5


class OptunaMissingError(MultifieldError, ImportError):
    """Optuna is not installed (``pip install 'multifield[tune]'``)."""


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise OptunaMissingError("tuning needs Optuna: pip install 'multifield[tune]'") from None
    return optuna


# -- the search space ------------------------------------------------------------------------------------
def suggest_config(trial, base: Config) -> Config:
    """``base`` with the searched settings drawn from ``trial``, validated again.

    ``trial`` is an Optuna trial, or ``optuna.trial.FixedTrial(params)`` to rebuild a finished trial's config
    from its params. A parameter is named after the config key it sets (``training.learning_rate``,
    ``fields.plot.units``); ``fields.*.<key>`` sets that key in every field. A field's encoder settings are
    its encoder kind's ``search_space``. Everything not searched (token limits, vocabularies, the seed,
    ``max_epochs``, ...) stays as in ``base``.
    """
    data = base.model_dump()
    fields = data["fields"]
    for name, field in base.fields.items():
        if field.embeddings is None:  # pretrained vectors fix the embedding size
            fields[name]["embedding_dim"] = trial.suggest_categorical(f"fields.{name}.embedding_dim", EMBEDDING_SIZES)
        fields[name].update(encoder_kind(field).search_space(trial, name, field))
    embedding_dropout = trial.suggest_float("fields.*.embedding_dropout", 0.0, 0.4)
    # Blanking the only field would blank the whole record: field dropout is searched only with several fields.
    field_dropout = trial.suggest_float("fields.*.field_dropout", 0.0, 0.5) if len(fields) > 1 else None
    for field in fields.values():
        field["embedding_dropout"] = embedding_dropout
        if field_dropout is not None:
            field["field_dropout"] = field_dropout

    training = data["training"]
    training["optimizer"] = trial.suggest_categorical("training.optimizer", ("adam", "adamw", "sgd", "rmsprop"))
    training["learning_rate"] = trial.suggest_float("training.learning_rate", 3e-4, 3e-3, log=True)
    schedule = training["schedule"]
    schedule["kind"] = trial.suggest_categorical("training.schedule.kind", ("constant", "exponential", "cosine"))
    if schedule["kind"] == "exponential":
        schedule["decay_epochs"] = trial.suggest_float("training.schedule.decay_epochs", 1.0, 8.0)
    training["hidden_units"] = trial.suggest_categorical("training.hidden_units", HIDDEN_SIZES)
    training["dropout"] = trial.suggest_float("training.dropout", 0.2, 0.6)
    training["positive_weight"] = trial.suggest_categorical("training.positive_weight", ("none", "sqrt"))
    training["batch_size"] = trial.suggest_categorical("training.batch_size", (32, 64, 128))
    training["label_smoothing"] = trial.suggest_float("training.label_smoothing", 0.0, 0.1)
    if any(field["wide"] for field in fields.values()):  # the deep part's own loss needs a wide part beside it
        training["deep_loss_weight"] = trial.suggest_categorical("training.deep_loss_weight", DEEP_LOSS_WEIGHTS)
    return config_from_dict(data, source=f"trial {trial.number}")


# -- running a study -------------------------------------------------------------------------------------
class TrialReporter(keras.callbacks.Callback):
    """Reports each epoch's validation micro-F1 (logged by ``ValidationMonitor``, which runs before it) to
    an Optuna trial, and stops training when the trial's pruner says so."""

    def __init__(self, trial, epochs: int, console=None):
        super().__init__()
        self.trial, self.epochs, self.console = trial, epochs, console
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        if "val_micro_f1" not in (logs or {}):
            raise RuntimeError("TrialReporter must run after ValidationMonitor: no val_micro_f1 in the epoch logs")
        score = float(logs["val_micro_f1"])
        self.trial.report(score, step=epoch + 1)
        if self.console is not None:
            self.console.print(f"trial {self.trial.number}  epoch {epoch + 1}/{self.epochs}  val micro-F1 {score:.4f}")
        if self.pruned_at is None and self.trial.should_prune():
            self.pruned_at = epoch + 1
            self.model.stop_training = True


class _TrialFailed(Exception):
    """A trial that crashed for a reason of its own (not the user's data or config): the study goes on."""


def tune(
    config: Config,
    train,
    valid=None,
    *,
    out: str | os.PathLike,
    trials: int,
    study_db: str | os.PathLike | None = None,
    resume: bool = False,
    timeout: float | None = None,
    epochs_per_trial: int | None = None,
    pruner=None,
    console=None,
):
    """Run ``trials`` more trials of the study named after ``config.name`` in the SQLite file ``study_db``
    (default: ``out`` with the suffix ``.db``) and return the study.

    After every trial the best config so far is written to ``out`` and the trial table to
    ``<out>.trials.json``, so an interrupted search leaves usable files. Trials are sampled by TPE (seeded
    from ``training.seed``) and pruned by the median rule unless ``pruner`` is given. ``epochs_per_trial``
    trains each trial exactly that many epochs; without it, ``training.max_epochs`` with early stopping.
    A trial trains one model even when ``training.ensemble`` asks for more: the settings are chosen for one
    member, and the best config keeps the ensemble size of ``config``.
    """
    optuna = _import_optuna()
    out = Path(out)
    study_db = Path(study_db) if study_db is not None else out.with_suffix(".db")
    if out.is_dir():
        raise MultifieldError(f"{out}: is a directory; --out names the TOML file to write")
    # Read the data once, and before the study is opened, so that a wrong path fails at once.
    train_table = as_table(train, "<train>")
    valid_table = as_table(valid, "<valid>") if valid is not None else None
    console = console if console is not None else _quiet_console()

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = _open_study(optuna, config, study_db, resume, epochs_per_trial, pruner)
        if config.training.ensemble > 1:
            console.print(f"each trial trains one model; the best config keeps ensemble = {config.training.ensemble}")
        objective = _objective(optuna, config, train_table, valid_table, epochs_per_trial, console)

        def after_trial(study, trial):
            console.print(_trial_line(study, trial))
            write_results(study, out)

        study.optimize(
            objective, n_trials=trials, timeout=timeout, catch=(_TrialFailed,), callbacks=[after_trial], gc_after_trial=True
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def _objective(optuna, config: Config, train_table, valid_table, epochs_per_trial: int | None, console):
    """The function a study calls for each trial: train the trial's config, record what the run did, and
    return its best validation micro-F1; a pruned trial raises ``optuna.TrialPruned``."""
    epochs = epochs_per_trial or config.training.max_epochs

    def objective(trial) -> float:
        trial_config = suggest_config(trial, config)
        trial.set_user_attr("config", trial_config.to_toml_dict())
        reporter = TrialReporter(trial, epochs, console)
        classifier = _train_one_model(optuna, trial, trial_config, train_table, valid_table, epochs_per_trial, reporter)
        if reporter.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_at}")
        validation = classifier.metrics_["validation"]
        trial.set_user_attr("best_epoch", classifier.metrics_["best_epoch"])
        trial.set_user_attr("epochs_run", classifier.metrics_["epochs_run"])
        trial.set_user_attr("tuned_micro_f1", validation["micro_f1"])
        trial.set_user_attr("tuned_macro_f1", validation["macro_f1"])
        return max(classifier.history_["val_micro_f1"])

    return objective


def _train_one_model(
    optuna, trial, config: Config, train_table, valid_table, epochs_per_trial: int | None, reporter: TrialReporter
) -> MultiFieldClassifier:
    """Train ``config`` as one model (the settings are chosen for one ensemble member); a crash of the trial's
    own (a NaN loss, out of memory) is recorded on the trial and raised as ``_TrialFailed``."""
    one_model = config.training.model_copy(update={"ensemble": 1})
    keras.backend.clear_session()
    try:
        return MultiFieldClassifier(config.model_copy(update={"training": one_model})).fit(
            train_table, valid_table, epochs=epochs_per_trial, verbose=False, callbacks=[reporter]
        )
    except TrainingError as error:  # a NaN loss: this trial's settings diverge, the next may not
        trial.set_user_attr("error", str(error))
        raise _TrialFailed(str(error)) from error
    except (MultifieldError, optuna.TrialPruned):
        raise
    except Exception as error:  # a diverging or out-of-memory trial should not end the study
        trial.set_user_attr("error", f"{type(error).__name__}: {error}")
        raise _TrialFailed(trial.user_attrs["error"]) from error
    finally:
        keras.backend.clear_session()


def _open_study(optuna, config: Config, study_db: Path, resume: bool, epochs_per_trial: int | None, pruner):
    name = config.name
    settings = {"base_config": config.to_toml_dict(), "epochs_per_trial": epochs_per_trial}
    existing = None
    if study_db.exists():
        try:
            storage = _storage(optuna, study_db)
            if name in optuna.get_all_study_names(storage=storage):
                existing = optuna.load_study(study_name=name, storage=storage)
        except Exception as error:  # not SQLite, or not Optuna's tables
            raise MultifieldError(f"{study_db}: not an Optuna study database ({type(error).__name__})") from None
    if resume and existing is None:
        raise MultifieldError(f"{study_db}: holds no study {name!r} to resume; leave out --resume to start one")
    if existing is not None and existing.trials:
        if not resume:
            raise MultifieldError(
                f"{study_db}: study {name!r} already has {len(existing.trials)} trials; "
                "pass --resume to continue it, or give another --study-db"
            )
        for key, value in settings.items():
            started = existing.user_attrs.get(key)
            if started != value:
                what = (
                    _first_difference(started, value, "")
                    if key == "base_config"
                    else f"--epochs-per-trial ({started} when started, {value} now)"
                )
                raise MultifieldError(
                    f"{study_db}: study {name!r} was started with a different {what}; "
                    "resume with the same config and options, or give another --study-db"
                )
    previous = len(existing.trials) if existing is not None else 0
    # A resumed study reseeds its sampler: the same seed would draw the first trials' settings again.
    sampler = optuna.samplers.TPESampler(seed=config.training.seed + previous)
    if pruner is None:
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=PRUNE_AFTER_EPOCHS)
    study = optuna.create_study(
        study_name=name,
        storage=_storage(optuna, study_db),
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    for key, value in settings.items():
        study.set_user_attr(key, value)
    return study


def _storage(optuna, study_db: Path):
    study_db.parent.mkdir(parents=True, exist_ok=True)
    # The heartbeat marks the trials of a killed run as failed when the study is resumed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{study_db.resolve()}", heartbeat_interval=60, grace_period=180)


def _first_difference(old, new, path: str) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [key for key in new if key not in old]:
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    return f"config (key {path or '(top level)'}: {old!r} when started, {new!r} now)"


def _trial_line(study, trial) -> str:
    state = trial.state.name.lower()
    if "error" in trial.user_attrs:
        return f"trial {trial.number} {state}: {trial.user_attrs['error']}"
    if trial.value is None:
        return f"trial {trial.number} {state}"
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(completed, key=lambda t: t.value) if completed else None
    line = f"trial {trial.number} {state}: val micro-F1 {trial.value:.4f}"
    return line + (f" (best {best.value:.4f}, trial {best.number})" if best is not None else "")


# -- results ---------------------------------------------------------------------------------------------
def best_config(study) -> Config:
    """The config of the study's best completed trial, as it was trained."""
    completed = [trial for trial in study.trials if trial.state.name == "COMPLETE"]
    if not completed:
        raise MultifieldError(f"study {study.study_name!r} has no completed trial yet")
    best = max(completed, key=lambda trial: trial.value)
    return config_from_dict(best.user_attrs["config"], source=f"trial {best.number}")


def trial_rows(study) -> list[dict]:
    """One dict per trial: number, state, value, params, the epoch scores reported and the run's details."""
    rows = []
    for trial in study.trials:
        attrs = {key: value for key, value in trial.user_attrs.items() if key != "config"}
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "params": trial.params,
                "val_micro_f1_per_epoch": [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)],
                **attrs,
                "seconds": round(trial.duration.total_seconds(), 2) if trial.duration is not None else None,
                "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
            }
        )
    return rows


def write_results(study, out: str | os.PathLike) -> tuple[Path | None, Path]:
    """Write the best config to ``out`` (when a trial has completed) and the trial table to
    ``<out>.trials.json``, each atomically; the paths written (``None`` for a config not written)."""
    out = Path(out)
    rows = trial_rows(study)
    completed = [row for row in rows if row["state"] == "COMPLETE"]
    best = max(completed, key=lambda row: row["value"]) if completed else None
    table_path = out.with_suffix(".trials.json")
    summary = {
        "study": study.study_name,
        "direction": "maximize",
        "metric": "best epoch's validation micro-F1 (one global threshold)",
        "best_trial": best["number"] if best else None,
        "best_value": best["value"] if best else None,
        "trials": rows,
    }
    write_text(table_path, json.dumps(summary, indent=2, ensure_ascii=False, default=_jsonable) + "\n")
    if best is None:
        return None, table_path
    header = (
        f"Best of {len(completed)} completed trials ({len(rows)} in all) of study {study.study_name!r}: trial "
        f"{best['number']}, validation micro-F1 {best['value']:.4f}.\n"
        f"Train: multifield train {out.name} --train TRAIN --valid VALID --out runs/{study.study_name}"
    )
    write_config(best_config(study), out, header=header)
    return out, table_path


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def trials_table(study, limit: int | None = None):
    """A rich table of the trials, best first: number, value, state, epochs and the main settings."""
    trials = sorted(study.trials, key=lambda trial: (trial.value is None, -(trial.value or 0.0), trial.number))
    complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
    best_number = complete[0].number if complete else None
    table = Table(title=f"study {study.study_name!r}: {len(trials)} trials, best first")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("micro-F1", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("settings", ratio=1)
    for trial in trials[:limit]:
        table.add_row(
            str(trial.number),
            f"{trial.value:.4f}" if trial.value is not None else "",
            trial.state.name.lower(),
            str(trial.user_attrs.get("epochs_run", len(trial.intermediate_values))),
            _settings(trial.params),
            style="bold green" if trial.number == best_number else None,
        )
    return table


def _settings(params: dict) -> str:
    """The main settings of a trial in a few words: optimizer and rate, schedule, batch, dropout, cells."""
    parts = []
    if "training.optimizer" in params:
        parts.append(f"{params['training.optimizer']} {params['training.learning_rate']:.1e}")
    schedule = params.get("training.schedule.kind")
    if schedule == "exponential":
        schedule += f" every {params['training.schedule.decay_epochs']:.1f} epochs"
    parts += [schedule] if schedule else []
    for key, label in (("training.batch_size", "batch"), ("training.dropout", "dropout")):
        if key in params:
            value = params[key]
            parts.append(f"{label} {value:.2f}" if isinstance(value, float) else f"{label} {value}")
    if params.get("training.positive_weight", "none") != "none":
        parts.append(f"{params['training.positive_weight']} positive weights")
    for key, cell in params.items():
        if key.endswith(".cell"):
            field = key[len("fields.") : -len(".cell")]
            parts.append(f"{field} {cell} {params.get(f'fields.{field}.units', '')}".rstrip())
    return ", ".join(parts)


def _quiet_console():
    return Console(stderr=True, quiet=True)


__all__ = [
    "TrialReporter",
    "best_config",
    "suggest_config",
    "trial_rows",
    "trials_table",
    "tune",
    "write_results",
]
