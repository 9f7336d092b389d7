"""Hyper-parameter search: a small study on the bundled movies through the command line (best config,
SQLite study, resume, refusal), the search space without training, and pruning."""

import json
import os
import shutil
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")


from cli_helpers import run_cli, run_script

from multifield.config import ATTENTION_ENCODERS, Config, config_from_dict, load_config, write_config
from multifield.model import ATTENTION_HEADS, RECURRENT_UNITS
from multifield.tuning import DEEP_LOSS_WEIGHTS, EMBEDDING_SIZES, HIDDEN_SIZES, suggest_config, trials_table, tune

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_config_path(small_config_path, tmp_path_factory) -> Path:
    """The small config cut to one short recurrent field and one pooled field: a trial's epoch is all XLA
    compilation, and each field adds to it."""
    data = load_config(small_config_path).to_toml_dict()
    data["name"] = "tiny-movies"
    data["fields"] = {"plot": {**data["fields"]["plot"], "max_tokens": 16}, "title": data["fields"]["title"]}
    return write_config(config_from_dict(data), tmp_path_factory.mktemp("tiny") / "tiny.toml")


@pytest.fixture(scope="module")
def tune_files(movie_files, tmp_path_factory) -> dict[str, Path]:
    """The fixture's movies with 256 for training: every searched batch size divides it, so a trial compiles
    one training step instead of two (a full and a last, partial batch)."""
    train = tmp_path_factory.mktemp("tune_data") / "train.jsonl"
    train.write_text("".join(movie_files["train"].read_text().splitlines(keepends=True)[:256]))
    return {"train": train, "valid": movie_files["valid"]}


@pytest.fixture(scope="module")
def three_trials(tiny_config_path, tune_files, tmp_path_factory) -> Path:
    """A study of 3 one-epoch trials run through `multifield tune`; the folder holding its files."""
    folder = tmp_path_factory.mktemp("study")
    run_cli("tune", tiny_config_path, "--train", tune_files["train"], "--valid", tune_files["valid"],
            "--trials", 3, "--epochs-per-trial", 1, "--out", folder / "best.toml")
    return folder


def load_study(db: Path, name: str = "tiny-movies"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


# -- the command ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_writes_the_best_trials_config(three_trials, tiny_config_path):
    study = load_study(three_trials / "best.db")
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3
    assert all(len(trial.intermediate_values) == 1 for trial in study.trials)  # one epoch each

    best = load_config(three_trials / "best.toml")
    rebuilt = suggest_config(optuna.trial.FixedTrial(study.best_trial.params), load_config(tiny_config_path))
    assert best == rebuilt
    assert best.training.learning_rate == study.best_trial.params["training.learning_rate"]
    assert f"trial {study.best_trial.number}" in (three_trials / "best.toml").read_text().splitlines()[0]

    table = json.loads((three_trials / "best.trials.json").read_text())
    assert table["best_trial"] == study.best_trial.number
    assert table["best_value"] == pytest.approx(study.best_value)
    assert [row["number"] for row in table["trials"]] == [0, 1, 2]
    assert {"params", "value", "state", "best_epoch", "val_micro_f1_per_epoch"} <= set(table["trials"][0])
    assert not list(three_trials.glob(".*.tmp"))  # atomic writes leave no temporary files behind


@pytest.mark.slow
def test_resume_adds_trials_with_new_settings(three_trials, tiny_config_path, tune_files, tmp_path):
    shutil.copy(three_trials / "best.db", tmp_path / "study.db")
    result = run_cli("tune", tiny_config_path, "--train", tune_files["train"], "--valid", tune_files["valid"],
                     "--trials", 2, "--epochs-per-trial", 1, "--out", tmp_path / "best.toml",
                     "--study-db", tmp_path / "study.db", "--resume")
    study = load_study(tmp_path / "study.db")
    assert [trial.number for trial in study.trials] == [0, 1, 2, 3, 4]
    assert all(trial.state.name == "COMPLETE" for trial in study.trials)
    # A resumed sampler must not start its random sequence again from the first trial's settings.
    assert study.trials[3].params != study.trials[0].params
    assert len(json.loads((tmp_path / "best.trials.json").read_text())["trials"]) == 5
    assert load_config(tmp_path / "best.toml") == suggest_config(
        optuna.trial.FixedTrial(study.best_trial.params), load_config(tiny_config_path)
    )
    assert "micro-F1" in result.stdout and "5 trials" in result.stdout


@pytest.mark.slow
def test_existing_study_is_refused_without_resume(three_trials, tiny_config_path, tune_files):
    db = three_trials / "best.db"
    before = db.read_bytes()
    result = run_script("tune", tiny_config_path, "--train", tune_files["train"], "--valid", tune_files["valid"],
                        "--trials", 1, "--out", three_trials / "best.toml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "already has 3 trials" in result.stderr and "--resume" in result.stderr
    assert db.read_bytes() == before


@pytest.mark.slow
def test_resume_with_another_config_is_refused(three_trials, tiny_config_path, tune_files, tmp_path):
    shutil.copy(three_trials / "best.db", tmp_path / "study.db")
    data = load_config(tiny_config_path).to_toml_dict()
    data["training"]["max_epochs"] = 9
    config = write_config(config_from_dict(data), tmp_path / "changed.toml")
    result = run_cli("tune", config, "--train", tune_files["train"], "--trials", 1, "--out", tmp_path / "best.toml",
                     "--study-db", tmp_path / "study.db", "--resume", check_exit=2)
    assert "key training.max_epochs: 2 when started, 9 now" in result.output


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda c, f, t: [c, "--train", t / "absent.jsonl", "--out", t / "best.toml"], "absent.jsonl: no such file"),
        (lambda c, f, t: [t / "absent.toml", "--train", f["train"], "--out", t / "best.toml"], "no such config file"),
        (lambda c, f, t: [c, "--train", f["train"], "--out", t / "best.toml", "--resume"], "no study 'tiny-movies' to resume"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tiny_config_path, movie_files, tmp_path, make_args, expected):
    result = run_cli("tune", *make_args(tiny_config_path, movie_files, tmp_path), check_exit=2)
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "best.db").exists() and not (tmp_path / "best.toml").exists()


def test_help_has_an_example():
    assert "Example:" in run_cli("tune", "--help").output


# -- pruning --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_trial_below_the_threshold_is_pruned_after_its_first_epoch(tiny_config_path, tune_files, tmp_path,
                                                                    monkeypatch):
    from multifield.classifier import MultiFieldClassifier

    fit, trained = MultiFieldClassifier.fit, []

    def recording_fit(self, *args, **kwargs):
        trained.append(self.config)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(MultiFieldClassifier, "fit", recording_fit)
    data = load_config(tiny_config_path).to_toml_dict()
    data["training"]["ensemble"] = 3
    study = tune(config_from_dict(data), tune_files["train"], tune_files["valid"], out=tmp_path / "best.toml",
                 trials=1, epochs_per_trial=2, pruner=optuna.pruners.ThresholdPruner(lower=1.1))
    (trial,) = study.trials
    assert trial.state.name == "PRUNED"
    assert [config.training.ensemble for config in trained] == [1]  # a trial trains one member
    assert trial.user_attrs["config"]["training"]["ensemble"] == 3
    assert list(trial.intermediate_values) == [1]  # training stopped: epoch 2 never ran
    assert not (tmp_path / "best.toml").exists()  # no completed trial, no best config
    assert json.loads((tmp_path / "best.trials.json").read_text())["trials"][0]["state"] == "PRUNED"
    assert "pruned" in _render(trials_table(study))


def _render(table) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    console.print(table)
    return console.export_text()


# -- the search space -----------------------------------------------------------------------------------
@pytest.mark.parametrize("config_name", ["movies.toml", "movies-plot-only.toml"])
def test_search_space_gives_valid_configs(config_name):
    base = load_config(REPO / "configs" / config_name)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"optimizer": set(), "schedule": set(), "cell": set(), "batch_size": set()}
    for _ in range(60):
        trial = study.ask()
        config = suggest_config(trial, base)
        assert isinstance(config, Config)
        training = config.training
        assert 3e-4 <= training.learning_rate <= 3e-3 and 0.2 <= training.dropout <= 0.6
        assert training.positive_weight in ("none", "sqrt") and training.batch_size in (32, 64, 128)
        assert training.hidden_units in HIDDEN_SIZES
        assert 0.0 <= training.label_smoothing <= 0.1
        if any(field.wide for field in config.fields.values()):
            assert training.deep_loss_weight in DEEP_LOSS_WEIGHTS
            seen.setdefault("deep_loss_weight", set()).add(training.deep_loss_weight)
        else:
            assert "training.deep_loss_weight" not in trial.params
        if training.schedule.kind == "exponential":
            assert 1.0 <= training.schedule.decay_epochs <= 8.0
        for name, field in config.fields.items():
            if field.embeddings is None:
                assert field.embedding_dim in EMBEDDING_SIZES
            else:  # pretrained vectors fix the embedding size
                assert field.embedding_dim == base.fields[name].embedding_dim
            assert 0.0 <= field.embedding_dropout <= 0.4
            if field.encoder == "rnn_attention":
                assert field.units in RECURRENT_UNITS
                seen["cell"].add(field.cell)
            if field.encoder in ATTENTION_ENCODERS:
                assert field.heads in ATTENTION_HEADS
                seen.setdefault("heads", set()).add(field.heads)
            else:
                assert f"fields.{name}.heads" not in trial.params
            assert field.max_tokens == base.fields[name].max_tokens  # what is not searched stays
        assert (training.seed, training.max_epochs) == (base.training.seed, base.training.max_epochs)
        # Each parameter is named after the key it sets, and the params alone rebuild the config.
        assert training.learning_rate == trial.params["training.learning_rate"]
        assert suggest_config(optuna.trial.FixedTrial(trial.params), base) == config
        seen["optimizer"].add(training.optimizer)
        seen["schedule"].add(training.schedule.kind)
        seen["batch_size"].add(training.batch_size)
        study.tell(trial, 0.0)
    assert seen == {"optimizer": {"adam", "adamw", "sgd", "rmsprop"}, "schedule": {"constant", "exponential", "cosine"},
                    "cell": {"lstm", "gru"}, "batch_size": {32, 64, 128}, "deep_loss_weight": set(DEEP_LOSS_WEIGHTS),
                    "heads": set(ATTENTION_HEADS)}
    field_dropouts = {field.field_dropout for field in config.fields.values()}
    if len(base.fields) == 1:  # blanking the only field would blank the record
        assert "fields.*.field_dropout" not in trial.params and field_dropouts == {0.0}
    else:
        assert field_dropouts == {trial.params["fields.*.field_dropout"]}


def test_pretrained_vectors_keep_their_size(tmp_path):
    data = load_config(REPO / "configs" / "movies.toml").to_toml_dict()
    data["fields"]["plot"].update(embedding_dim=50, embeddings={"path": str(tmp_path / "glove.txt")})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    config = suggest_config(trial, config_from_dict(data))
    assert config.fields["plot"].embedding_dim == 50 and "fields.plot.embedding_dim" not in trial.params
    assert "fields.actors.embedding_dim" in trial.params  # a field without vectors
