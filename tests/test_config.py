from pathlib import Path

import pytest

from multifield.config import PooledFieldConfig, RNNAttentionFieldConfig, config_from_dict, load_config
from multifield.errors import ConfigError

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
