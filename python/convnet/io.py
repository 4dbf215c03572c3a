"""Saving and loading. The format follows the file name, as in Keras: ``.npz`` is convnet's
(architecture as JSON and weights as arrays in one file), ``.keras``, ``.weights.h5`` and
``.h5`` are Keras's (:mod:`convnet.keras_files`).

Never pickle: files are read with ``allow_pickle=False``, so a model file cannot
run code. Every write goes to a temporary file in the destination's folder and
is renamed over the destination only once complete, so a failed or interrupted
save never destroys the previous file.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import socket
import tempfile
import zipfile

import numpy as np

FORMAT = "convnet"
VERSION = 1
_HEADER = "__convnet__"


class ModelFileError(ValueError):
    """A file that is not a readable convnet model or weights file."""


MAX_EXPANSION = 1000  # weights compress little; text configs ~10x; a zip bomb 1000x and more


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


# While a file's model is built, the values its layers may create in all: what the file holds. A 4 kB file asking
# for Conv2D(10**7) is refused at that layer, before 1.8 G parameters are drawn (17 s and 9 GiB, measured).
_weight_budget = contextvars.ContextVar("convnet_weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(values: int):
    """Layers built in the block may create at most ``values`` weight values in all (what the file holds)."""
    token = _weight_budget.set([int(values), int(values)])
    try:
        yield
    finally:
        _weight_budget.reset(token)


def charge_weight(shape) -> None:
    """Count a weight about to be created against the budget of the file being loaded, if one is."""
    budget = _weight_budget.get()
    if budget is None:
        return
    count = math.prod(shape)
    if count > budget[0]:
        raise ModelFileError(f"its config asks for a weight of shape {tuple(shape)}, more values than the "
                             f"{budget[1]:,} the file holds in all")
    budget[0] -= count


def check_weight_values(weights, source: str) -> None:
    """Weights must be real floating-point numbers, all finite: anything else cannot be a weight."""
    for index, weight in enumerate(weights):
        if weight.dtype.kind != "f":
            raise ModelFileError(f"{source}: weight {index} is {weight.dtype} {weight.shape}; weights are real floats")
        if weight.size and not np.isfinite(weight).all():
            raise ModelFileError(f"{source}: weight {index} {weight.shape} holds NaN or infinite values")


def check_member(info, source, limit) -> None:
    """A zip member must not expand past ``limit`` bytes, nor :data:`MAX_EXPANSION` times its
    compressed size: checked from the zip's directory, before a byte is decompressed."""
    if info.file_size > limit or info.file_size > MAX_EXPANSION * max(info.compress_size, 1) + (1 << 20):
        raise ModelFileError(f"{source}: {info.filename!r} would expand from {info.compress_size} to "
                             f"{info.file_size} bytes: refused (a zip bomb, or not a model)")


def _file_mode(path) -> int:
    """The mode a saved file gets: the replaced file's, else what ``open()`` would give (0666 less the
    umask) — not mkstemp's private 0600, which left saved models unreadable to the user's group."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as status:  # reading the umask without changing it (thread-safe)
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _temporary_prefix(pid=None) -> str:
    """Our temporary files say who made them: ``.convnet-<host>-<pid>-``."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"
    return f".convnet-{host}-{os.getpid() if pid is None else pid}-"


def remove_stale_temporaries(folder) -> int:
    """Delete the temporary files a killed save of ours left in ``folder``: only ``.convnet-*.tmp``
    files made on this host by a process that no longer exists (never anyone else's, nor a save
    still running, here or on another machine sharing the folder). Returns how many went."""
    mine = _temporary_prefix(pid=0)[: -len("0-")]  # ".convnet-<host>-"
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(mine) and name.endswith(".tmp")):
            continue
        pid = name[len(mine):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its process still runs (or is someone else's we may not signal): leave it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed += 1
        except OSError:
            pass
    return removed


def atomic_write(path, write) -> None:
    """Call ``write(binary file)`` on a temporary file beside ``path``, then rename it over ``path``:
    a failed or interrupted write leaves the previous file as it was (and the next save removes the
    temporary file a killed one left)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot save to {path!r}: folder {folder!r} does not exist")
    remove_stale_temporaries(folder)
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _atomic_savez(path, arrays: dict) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


# The format follows the file name, as in Keras.
NPZ, KERAS, WEIGHTS_H5, H5 = "npz", "keras", "weights.h5", "h5"


def file_format(path, weights: bool) -> str:
    """Which format a path names: .npz (convnet's), .keras, .weights.h5 or .h5 (Keras's)."""
    name = os.fspath(path).lower()
    if name.endswith(".npz"):
        return NPZ
    if name.endswith(".keras") and not weights:
        return KERAS
    if name.endswith(".weights.h5"):
        return WEIGHTS_H5
    if name.endswith((".h5", ".hdf5")):
        return H5
    kinds = ".weights.h5, .h5 or .npz" if weights else ".keras, .h5 or .npz"
    raise ValueError(f"the file name must end in {kinds} (the format follows the name, as in Keras); "
                     f"received {os.fspath(path)!r}")


def _foreign(path, error):
    """A clearer message for a Keras file given where ours was expected."""
    from . import keras_files

    try:
        what = keras_files.describe(path)
    except OSError:
        return error
    if what == "a zip file":  # an .npz (a zip) without our header: the reader's message says so
        return error
    return ModelFileError(f"{os.fspath(path)!r} is not a convnet .npz file: it is {what}")


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
        if zipfile.is_zipfile(path):  # np.load would decompress every member whole
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    check_member(info, repr(path), physical_memory() // 2)
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


def _loss_config(loss):
    from . import losses

    if isinstance(loss, dict):
        return {key: _loss_config(value) for key, value in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_loss_config(value) for value in loss]
    return losses.get(loss).get_config()


def _require_built(model, what):
    if model._graph is None:
        raise ValueError(f"build the model (or train it) before saving {what}")


def save_model(model, path) -> None:
    from . import keras_files
    from .serialization import layer_config

    _require_built(model, "it")
    kind = file_format(path, weights=False)
    if kind == WEIGHTS_H5:
        raise ValueError(f"a .weights.h5 file holds weights only: use save_weights; received {os.fspath(path)!r}")
    if kind == KERAS:
        return keras_files.save_keras(model, path)
    if kind == H5:
        return keras_files.save_legacy_h5(model, path)
    compile_config = None
    if model.compiled:
        compile_config = {"loss": _loss_config(model._loss_spec), "optimizer": model.optimizer.get_config(),
                          "metrics": model._metrics_spec, "loss_weights": model._loss_weights_spec}
    header = _header("model", model=layer_config(model), compile=compile_config, metadata=model.metadata)
    _atomic_savez(path, {_HEADER: header, **_weights_dict(model.get_weights())})


def load_model(path, compile=True):
    """The model saved by ``model.save(path)`` (Sequential, functional, nested), built, with its
    weights; compiled again (optimizer state fresh) when it was compiled at save time."""
    from . import keras_files
    from .sequential import Sequential
    from .serialization import layer_from_config

    if not os.path.isfile(os.fspath(path)):
        raise ModelFileError(f"{os.fspath(path)!r} does not exist or is not a file")
    kind = file_format(path, weights=False)
    if kind == KERAS:
        return keras_files.load_keras(path, compile=compile)
    if kind in (H5, WEIGHTS_H5):  # a .weights.h5 given here gets load_legacy_h5's "weights-only file" message
        return keras_files.load_legacy_h5(path, compile=compile)
    try:
        header, weights = _read(path, "model")
    except ModelFileError as error:
        raise _foreign(path, error) from None
    try:
        check_weight_values(weights, repr(os.fspath(path)))
        config = header["model"]
        # Files of the first version hold a Sequential config without a class name.
        with weight_budget(sum(w.size for w in weights)):
            model = layer_from_config(config) if "class_name" in config else Sequential.from_config(config)
        if model._graph is None:
            raise ValueError("the saved model has no input shape")
        model.set_weights(weights)
        model.metadata = dict(header.get("metadata") or {})
        if compile and header.get("compile"):
            settings = header["compile"]
            model.compile(optimizer=settings["optimizer"], loss=settings["loss"], metrics=settings["metrics"],
                          loss_weights=settings.get("loss_weights"))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise ModelFileError(f"{os.fspath(path)!r} holds a model this convnet cannot rebuild: {exc}") from None
    return model


def save_weights(model, path) -> None:
    from . import keras_files

    _require_built(model, "its weights")
    if file_format(path, weights=True) != NPZ:
        return keras_files.save_h5_weights(model, path)
    shapes = [list(w.shape) for w in model.get_weights()]
    _atomic_savez(path, {_HEADER: _header("weights", shapes=shapes), **_weights_dict(model.get_weights())})


def load_weights(model, path) -> None:
    from . import keras_files

    if not os.path.isfile(os.fspath(path)):
        raise ModelFileError(f"{os.fspath(path)!r} does not exist or is not a file")
    if file_format(path, weights=True) != NPZ:
        _require_built(model, "loading weights into it")
        return keras_files.load_h5_weights(model, path)
    try:
        _, weights = _read(path, "weights")
    except ModelFileError as error:
        raise _foreign(path, error) from None
    check_weight_values(weights, repr(os.fspath(path)))
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ModelFileError(f"{os.fspath(path)!r} does not fit this model: {exc}") from None
