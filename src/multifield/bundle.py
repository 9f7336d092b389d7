"""A trained model as one directory of JSON files, a ``.keras`` file and its ONNX graph, written atomically,
loaded safely.

Layout: ``model.keras``, ``model.onnx`` (the same model as an ONNX graph, see ``multifield.onnx_graph``),
``config.json`` (the resolved config), ``labels.json``, ``thresholds.json``, ``tokenizers/<field>.json``,
``metrics.json``, ``history.json``, ``manifest.json`` (with the SHA-256 of both model files), plus any plots.
No pickle: the model is loaded with ``safe_mode=True`` after its layer classes are checked, and a model file
whose hash differs from the manifest's is refused. Loaded for ONNX Runtime (``runtime="onnx"``), a bundle
imports neither Keras nor JAX.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from multifield.config import Config, config_from_dict
from multifield.data.encoding import RecordEncoder
from multifield.data.labels import LabelEncoder
from multifield.data.text import FieldTokenizer
from multifield.errors import BundleError, ConfigError
from multifield.files import pid_alive, write_bytes, write_text
from multifield.version import __version__

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
#: What computes the scores of a loaded bundle: ONNX Runtime on ``model.onnx``, or Keras on ``model.keras``.
RUNTIMES = ("onnx", "keras")


@dataclass
class Bundle:
    config: Config
    encoder: RecordEncoder
    model: object  # keras.Model; None when the bundle was loaded for ONNX Runtime
    thresholds: np.ndarray
    metrics: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    graph: bytes | None = None  # model.onnx, when the bundle has one


def onnx_bytes(model, config: Config) -> bytes:
    """``model`` as the serialized ONNX graph that ``model.onnx`` holds."""
    from multifield.onnx_graph import onnx_graph  # writing a graph needs Keras; reading a bundle does not

    return onnx_graph(model, config).SerializeToString()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(directory: Path, model_files: tuple[str, ...]) -> dict:
    import keras  # only the writers of a bundle call this

    from multifield.onnx_graph import ONNX_OPSET

    return {
        "format_version": FORMAT_VERSION,
        "multifield_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "onnx_opset": ONNX_OPSET,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {name: sha256(directory / name) for name in model_files},
    }


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_bundle(bundle: Bundle, directory: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the bundle into a temporary sibling directory, then rename it into place."""
    directory = Path(directory)
    if directory.exists() and not overwrite and any(directory.iterdir()):
        raise BundleError(f"{directory}: exists and is not empty; choose another directory or overwrite it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_side_prefix(directory), suffix=".tmp", dir=directory.parent))
    try:
        bundle.model.save(staging / MODEL_FILE)
        # A graph the bundle carries is the model's (training writes it from the final weights); else it is written.
        graph = bundle.graph if bundle.graph is not None else onnx_bytes(bundle.model, bundle.config)
        (staging / ONNX_FILE).write_bytes(graph)
        _write_json(staging / "config.json", bundle.config.to_toml_dict())
        _write_json(staging / "labels.json", bundle.encoder.labels.labels)
        _write_json(
            staging / "thresholds.json",
            {label: round(float(t), 4) for label, t in zip(bundle.encoder.labels.labels, bundle.thresholds)},
        )
        (staging / "tokenizers").mkdir()
        for name, tokenizer in bundle.encoder.tokenizers.items():
            (staging / "tokenizers" / f"{name}.json").write_text(tokenizer.to_json(), encoding="utf-8")
        _write_json(staging / "metrics.json", bundle.metrics)
        _write_json(staging / "history.json", bundle.history)
        for name, content in bundle.artifacts.items():
            (staging / name).write_bytes(content)
        _write_json(staging / "manifest.json", _manifest(staging, (MODEL_FILE, ONNX_FILE)))
        if directory.exists():
            # Move the old directory aside first so that a crash leaves either the old or the new bundle.
            retired = Path(tempfile.mkdtemp(prefix=_side_prefix(directory), suffix=".old", dir=directory.parent))
            os.replace(directory, retired / directory.name)
            os.replace(staging, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_leftovers(directory)
    return directory


def _side_prefix(directory: Path) -> str:
    """Name prefix of the staging and retired directories beside ``directory``: they carry the writing
    process's id, so that a later save can tell the leftovers of a killed process from a live one's."""
    return f".{directory.name}.{os.getpid()}."


def _remove_leftovers(directory: Path) -> None:
    """Delete staging (``.tmp``) and retired (``.old``) directories that a killed save of ``directory`` left
    beside it. Called once the new bundle is in place, which supersedes them; a live process's are kept."""
    if os.name != "posix":
        return
    prefix = f".{directory.name}."
    for path in directory.parent.iterdir():
        name = path.name
        if not (name.startswith(prefix) and name.endswith((".tmp", ".old")) and path.is_dir()):
            continue
        pid = name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None


def _check_layer_classes(model_path: Path) -> None:
    """Refuse a model that holds a Lambda layer or a class from outside Keras and multifield."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            model_config = json.loads(archive.read("config.json"))
    except FileNotFoundError:
        raise BundleError(f"{model_path}: missing from the bundle") from None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{model_path}: not a readable .keras file ({error})") from None

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and "config" in node:
                class_name = node["class_name"]
                module = node.get("module") or ""
                registered = node.get("registered_name") or ""
                if class_name == "Lambda" or "Lambda" in registered:
                    raise BundleError(f"{model_path}: holds a Lambda layer; refusing to load code from a model file")
                trusted = module.startswith("keras") or registered.startswith("multifield>") or module == "builtins"
                if module and not trusted:
                    raise BundleError(
                        f"{model_path}: holds {module}.{class_name}, which is neither Keras nor multifield; refusing to load it"
                    )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(model_config)


def load_bundle(directory: str | os.PathLike, runtime: str = "keras") -> Bundle:
    """The bundle in ``directory`` with its ONNX graph (``Bundle.graph``) when it has one; with
    ``runtime="keras"``, or without a graph, also its Keras model (``runtime="onnx"`` then imports no Keras)."""
    directory = Path(directory)
    if runtime not in RUNTIMES:
        raise BundleError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such model directory")
    manifest = _read_json(directory / "manifest.json")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{directory / 'manifest.json'}: bundle format {manifest.get('format_version')} is not supported")
    try:
        config = config_from_dict(_read_json(directory / "config.json"), source=str(directory / "config.json"))
    except ConfigError as error:
        raise BundleError(str(error)) from None
    labels = _read_json(directory / "labels.json")
    threshold_map = _read_json(directory / "thresholds.json")
    tokenizers = {name: _tokenizer(directory / "tokenizers" / f"{name}.json") for name in config.fields}
    # Whichever file computes the scores, a bundle holding a foreign class or a changed model file is refused.
    _check_layer_classes(directory / MODEL_FILE)
    has_graph = (directory / ONNX_FILE).exists() or ONNX_FILE in manifest.get("files", {})
    checked = {name: _checked_bytes(directory, name, manifest) for name in (MODEL_FILE, ONNX_FILE) if name == MODEL_FILE or has_graph}
    graph = checked.get(ONNX_FILE)
    model = None if runtime == "onnx" and graph is not None else _keras_model(directory / MODEL_FILE)
    try:
        thresholds = np.array([threshold_map[label] for label in labels], dtype=np.float32)
    except KeyError as error:
        raise BundleError(f"{directory / 'thresholds.json'}: no threshold for label {error}") from None
    encoder = RecordEncoder(config, tokenizers, LabelEncoder(labels))
    metrics = _read_json(directory / "metrics.json") if (directory / "metrics.json").exists() else {}
    history = _read_json(directory / "history.json") if (directory / "history.json").exists() else {}
    return Bundle(config, encoder, model, thresholds, metrics, history, graph=graph)


def _tokenizer(path: Path) -> FieldTokenizer:
    try:
        return FieldTokenizer.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    except Exception as error:  # tokenizers raises its own exception types for a bad file
        raise BundleError(f"{path}: not a readable tokenizer ({error})") from None


def _checked_bytes(directory: Path, name: str, manifest: dict) -> bytes:
    """The content of a model file, refused unless its SHA-256 is the one the manifest holds. A bundle written
    before the manifest held hashes has a ``model.keras`` and no hashes: that file is read unchecked."""
    path = directory / name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    expected = manifest.get("files", {}).get(name)
    if expected is None and name == MODEL_FILE and "files" not in manifest:
        return content
    if expected is None:
        raise BundleError(f"{path}: not listed in {directory / 'manifest.json'}; refusing to load a file the bundle did not write")
    if hashlib.sha256(content).hexdigest() != expected:
        raise BundleError(f"{path}: changed since the bundle was written (its SHA-256 differs from manifest.json's); refusing to load it")
    return content


def _keras_model(model_path: Path):
    import keras  # heavy: only the Keras runtime needs it

    import multifield.layers  # noqa: F401  (registers the layer classes for deserialisation)

    try:
        return keras.saving.load_model(model_path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise BundleError(f"{model_path}: cannot be loaded ({type(error).__name__}: {error})") from None


def export_onnx(directory: str | os.PathLike) -> Path:
    """Add ``model.onnx``, written from ``model.keras``'s weights, to a bundle (one written before bundles
    carried it), and the hashes of both model files to its manifest; the path of the graph."""
    directory = Path(directory)
    bundle = load_bundle(directory, runtime="keras")
    path = write_bytes(directory / ONNX_FILE, onnx_bytes(bundle.model, bundle.config))
    manifest = _read_json(directory / "manifest.json")  # the versions that wrote model.keras stay
    written = _manifest(directory, (MODEL_FILE, ONNX_FILE))
    manifest.update(onnx_opset=written["onnx_opset"], files=written["files"])
    write_text(directory / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path
