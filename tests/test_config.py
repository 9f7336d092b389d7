import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from multifield.config import (
    ATTENTION_ENCODERS,
    ENCODER_KINDS,
    FIELD_CONFIGS,
    PooledFieldConfig,
    RNNAttentionFieldConfig,
    config_from_dict,
    config_to_toml,
    encoder_name,
    load_config,
    write_config,
)
from multifield.errors import ConfigError, MultifieldError

REPO = Path(__file__).resolve().parents[1]

REPO_CONFIGS = ["configs/movies.toml"]


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("relative", REPO_CONFIGS)
def test_shipped_configs_validate(relative):
    config = load_config(REPO / relative)
    assert config.labels.field == "genres"
    assert isinstance(config.fields["plot"], RNNAttentionFieldConfig)


def test_movie_config_has_the_documented_encoders():
    config = load_config(REPO / "configs/movies.toml")
    assert config.attention_fields() == ["plot", "reviews"]
    assert config.fields["actors"].kind == config.fields["features"].kind == "items"
    assert isinstance(config.fields["title"], PooledFieldConfig)


def test_defaults_fill_in(tmp_path):
    config = load_config(write(tmp_path, '[fields.plot]\nencoder = "rnn_attention"\n'))
    assert config.training.optimizer == "adam"
    assert config.fields["plot"].units == 64
    assert config.labels.field == "labels"
    assert config.training.threshold_objective == "micro_macro"


def test_the_movie_config_keeps_its_thresholds_on_micro_f1():
    assert load_config(REPO / "configs/movies.toml").training.threshold_objective == "micro"


@pytest.mark.parametrize(
    "text, key",
    [
        ('[fields.plot]\nencoder = "rnn_attention"\nunit = 3\n', "fields.plot.unit"),
        ('[fields.plot]\nencoder = "rnn_attention"\nunits = "many"\n', "fields.plot.units"),
        ('[fields.plot]\nencoder = "rnn_attention"\ncell = "rnn"\n', "fields.plot.cell"),
        ('[fields.plot]\nencoder = "transformer"\n', "fields.plot"),
        ('[fields.plot]\nencoder = "pooled"\npooling = "median"\n', "fields.plot.pooling"),
        ('[fields.plot]\nencoder = "pooled"\n[training]\noptimizer = "lbfgs"\n', "training.optimizer"),
        ('[fields.plot]\nencoder = "pooled"\n[training]\nlearning_rate = -1\n', "training.learning_rate"),
        ('[fields.plot]\nencoder = "pooled"\n[training.schedule]\nkind = "step"\n', "training.schedule.kind"),
        ('[fields.plot]\nencoder = "pooled"\n[training]\nthreshold_shrinkage = "sometimes"\n', "training.threshold_shrinkage"),
        ('[fields.plot]\nencoder = "pooled"\n[training]\nthreshold_shrinkage = 1.5\n', "training.threshold_shrinkage"),
        ('[fields.plot]\nencoder = "pooled"\n[training]\nthreshold_objective = "macro"\n', "training.threshold_objective"),
        ("[fields]\n", "(top level)"),
    ],
)
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    message = str(error.value)
    assert "run.toml" in message
    assert f"key {key}:" in message
    assert "\n" not in message


@pytest.mark.parametrize("value, toml", [("auto", '"auto"'), (0.5, "0.5"), (1.0, "1")])
def test_threshold_shrinkage_is_a_number_or_auto(tmp_path, value, toml):
    config = load_config(write(tmp_path, f'[fields.plot]\nencoder = "pooled"\n[training]\nthreshold_shrinkage = {toml}\n'))
    assert config.training.threshold_shrinkage == value
    again = config_from_dict(config.to_toml_dict())
    assert again.training.threshold_shrinkage == value and again == config


def test_threshold_shrinkage_error_is_one_clear_message(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, '[fields.plot]\nencoder = "pooled"\n[training]\nthreshold_shrinkage = "sometimes"\n'))
    assert str(error.value).endswith(
        'key training.threshold_shrinkage: Input should be a number from 0 to 1, or "auto" (got \'sometimes\')'
    )


def test_a_field_cannot_be_the_label_key(tmp_path):
    with pytest.raises(ConfigError, match="also the label key"):
        load_config(write(tmp_path, '[labels]\nfield = "plot"\n[fields.plot]\nencoder = "pooled"\n'))


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[fields.plot\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_relative_embedding_paths_resolve_against_the_config(tmp_path):
    config = load_config(
        write(tmp_path, '[fields.plot]\nencoder = "rnn_attention"\nembeddings = {path = "vectors.txt"}\n')
    )
    assert config.fields["plot"].embeddings.path == (tmp_path / "vectors.txt").resolve()


def test_each_encoder_kind_is_one_config_class():
    assert ENCODER_KINDS == ("rnn_attention", "attention", "pooled")
    assert ATTENTION_ENCODERS == ("rnn_attention", "attention")
    for field_config in FIELD_CONFIGS:
        config = config_from_dict({"fields": {"text": {"encoder": encoder_name(field_config)}}})
        assert type(config.fields["text"]) is field_config
        assert (config.attention_fields() == ["text"]) == field_config.pools_with_attention


def test_the_schema_imports_without_keras():
    probe = "import sys, multifield.config; print('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


# -- writing a config as TOML ----------------------------------------------------------------------------
def test_shipped_config_round_trips(tmp_path):
    config = load_config(REPO / "configs" / "movies.toml")
    written = write_config(config, tmp_path / "movies.toml", header="Best of 3 trials.\nTrain: multifield train")
    assert load_config(written) == config
    text = written.read_text()
    assert text.startswith("# Best of 3 trials.\n# Train:")
    assert list(tomllib.loads(text)) == ["name", "id_field", "fields", "labels", "training"]
    for header in ("[fields.plot]", "[fields.title]", "[labels]", "[training]", "[training.schedule]"):
        assert header in text.splitlines()


def test_awkward_values_round_trip(tmp_path):
    data = {
        "name": 'quote " back \\ tab \t newline \n bell \x07 del \x7f é',
        "fields": {"a field.with dots": {"encoder": "pooled", "embedding_dim": 7},
                   "plot": {"encoder": "rnn_attention", "attention_units": 12,
                            "embeddings": {"path": str(tmp_path / "vectors file.txt"), "trainable": False}}},
        "labels": {"field": "genres", "delimiter": "\t"},
        "training": {"learning_rate": 1e-05, "weight_decay": 1e16, "dropout": 0.1 + 0.2,
                     "schedule": {"kind": "exponential", "decay_epochs": 2.5}},
    }
    config = config_from_dict(data)
    written = write_config(config, tmp_path / "awkward.toml")
    assert load_config(written) == config
    assert load_config(written).training.dropout == 0.1 + 0.2  # floats keep every bit


def test_a_config_toml_cannot_express_is_refused():
    config = load_config(REPO / "configs" / "movies.toml")
    no_clipping = config.model_copy(update={"training": config.training.model_copy(update={"clipnorm": None})})
    with pytest.raises(MultifieldError, match="cannot be written as TOML"):
        config_to_toml(no_clipping)
