"""Saving and loading: architecture as JSON and weights as arrays in one .npz file.

Never pickle: files are read with ``allow_pickle=False``, so a model file cannot
run code. Every write goes to a temporary file in the destination's folder and
is renamed over the destination only once complete, so a failed or interrupted
save never destroys the previous file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "convnet"
VERSION = 1
_HEADER = "__convnet__"


class ModelFileError(ValueError):
    """A file that is not a readable convnet model or weights file."""


def _atomic_savez(path, arrays: dict) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=".convnet-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _header(kind: str, **content) -> np.ndarray:
    text = json.dumps({"format": FORMAT, "version": VERSION, "kind": kind, **content})
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _weights_dict(weights) -> dict:
    return {f"weight_{i:04d}": np.asarray(w) for i, w in enumerate(weights)}


def _read(path, kind: str):
    """(header dict, list of weight arrays) of a file we wrote, or ModelFileError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path!r} does not exist or is not a file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if _HEADER not in archive.files:
                raise ModelFileError(f"{path!r} is not a convnet file (no {_HEADER} entry)")
            header = json.loads(archive[_HEADER].tobytes().decode("utf-8"))
            names = sorted(n for n in archive.files if n.startswith("weight_"))
            weights = [archive[n] for n in names]
    except ModelFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path!r} is not a readable convnet file: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is not a convnet file (header {str(header)[:80]!r})")
    if header.get("version") != VERSION:
        raise ModelFileError(f"{path!r} has format version {header.get('version')!r}; this convnet reads {VERSION}")
    if header.get("kind") != kind:
        raise ModelFileError(f"{path!r} holds {header.get('kind')!r}, not {kind!r}"
                             + (" (use load_model)" if header.get("kind") == "model" else ""))
    return header, weights


def save_model(model, path) -> None:
    compile_config = None
    if model.compiled:
        compile_config = {"loss": model.loss.get_config(), "optimizer": model.optimizer.get_config(),
                          "metrics": list(model.metric_names)}
    if not model._build_from_input():
        raise ValueError("build the model (or train it) before saving")
    header = _header("model", model=model.get_config(), compile=compile_config, metadata=model.metadata)
    _atomic_savez(path, {_HEADER: header, **_weights_dict(model.get_weights())})


def load_model(path, compile=True):
    """A :class:`convnet.Sequential` saved by ``model.save(path)``, built, with its weights;
    compiled again (optimizer state fresh) when it was compiled at save time."""
    from .layers.containers import layer_from_config
    from .model import Sequential

    header, weights = _read(path, "model")
    try:
        config = header["model"]
        model = Sequential([layer_from_config(entry) for entry in config["layers"]], name=config["name"])
        model.build(config["input_shape"])
        model.set_weights(weights)
        model.metadata = dict(header.get("metadata") or {})
        if compile and header.get("compile"):
            settings = header["compile"]
            model.compile(optimizer=settings["optimizer"], loss=settings["loss"], metrics=settings["metrics"])
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{os.fspath(path)!r} holds a model this convnet cannot rebuild: {exc}") from None
    return model


def save_weights(model, path) -> None:
    if not model._build_from_input():
        raise ValueError("build the model (or train it) before saving its weights")
    shapes = [list(w.shape) for w in model.get_weights()]
    _atomic_savez(path, {_HEADER: _header("weights", shapes=shapes), **_weights_dict(model.get_weights())})


def load_weights(model, path) -> None:
    _, weights = _read(path, "weights")
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ModelFileError(f"{os.fspath(path)!r} does not fit this model: {exc}") from None
