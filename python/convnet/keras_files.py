"""Keras's files, read and written with h5py and zipfile: no TensorFlow, no Keras.

- ``.keras`` (Keras 3): a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.
- ``.weights.h5`` (Keras 3): each layer's weights at ``layers/<key>/vars/<i>``, where the key
  is the layer's class name in snake case, numbered within its model (``conv2d``,
  ``conv2d_1``, ...) in ``model.layers`` order, and nested models add ``layers/`` levels.
- legacy ``.h5`` (Keras 2, tf.keras, and Keras 3's ``save("m.h5")``): the config in the
  ``model_config`` attribute, each layer's weights under ``model_weights/<layer name>``
  listed by its ``weight_names`` attribute; weights-only files have the layer groups at the root.

Hostile files fail cleanly: zip members are size-checked before they are read (a member
that would expand past :data:`convnet.io.MAX_EXPANSION` times its compressed size, or a config past
:data:`MAX_CONFIG_BYTES`, is refused), every dataset's shape and dtype is checked against
the layer before any data is read, a config too deeply nested for the JSON parser is a
:class:`~convnet.ModelFileError`, and weights are assigned only once all of them have been read.
"""

from __future__ import annotations

import datetime
import inspect
import json
import os
import tempfile
import warnings
import zipfile

import numpy as np

from . import keras_config
from .io import ModelFileError, atomic_write, check_member, physical_memory, weight_budget
from .layers.base import _snake

MAX_CONFIG_BYTES = 64 << 20
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ModelFileError("reading and writing Keras's .keras and .h5 files needs h5py: pip install h5py") from None
    return h5py


def describe(path) -> str:
    """What a file is, for messages about foreign files."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "an HDF5 file"
    if zipfile.is_zipfile(path):
        return "a zip file"
    return f"neither zip nor HDF5 (it starts with {head!r})"


def _json(text, source, what):
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{source}: {what} is nested too deeply to be a model config") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{source}: {what} is not valid JSON: {exc}") from None


# ----------------------------------------------------------------------------- weights paths


def weight_groups(model, prefix=""):
    """(h5 path, layer) of every layer under ``model``, named as Keras 3 names them."""
    from .functional import Model
    from .sequential import Sequential

    inner = list(model._stack) if isinstance(model, Sequential) else list(model.layers)
    used: dict[str, int] = {}
    groups = []
    for layer in inner:
        base = _snake(keras_config.keras_class_name(layer))
        used[base] = used.get(base, -1) + 1
        path = f"{prefix}layers/{base}" + (f"_{used[base]}" if used[base] else "")
        groups.append((path, layer))
        if isinstance(layer, Model):
            groups += weight_groups(layer, path + "/")
    return groups


def _leaf(layer):
    from .functional import Model

    return not isinstance(layer, Model)


def _read_arrays(group, names, expected, source, where):
    arrays = []
    if len(names) != len(expected):
        raise ModelFileError(f"{source}: {where} has {len(names)} weights; the layer has {len(expected)}")
    for name, shape in zip(names, expected):
        dataset = group.get(name)
        if dataset is None or not hasattr(dataset, "shape"):
            raise ModelFileError(f"{source}: {where} lacks weight {name!r}")
        if tuple(dataset.shape) != tuple(shape) or dataset.dtype.kind != "f":
            raise ModelFileError(f"{source}: {where} weight {name!r} is {dataset.dtype} {tuple(dataset.shape)}; "
                                 f"the layer needs floats of shape {tuple(shape)}")
        array = np.asarray(dataset[()])
        if array.size and not np.isfinite(array).all():
            raise ModelFileError(f"{source}: {where} weight {name!r} {tuple(shape)} holds NaN or infinite values")
        arrays.append(array)
    return arrays


def _assign(loaded):
    for layer, arrays in loaded:
        layer.set_weights(arrays)


def read_keras3_weights(model, root, source):
    """Set ``model``'s weights from a Keras 3 weights tree (all read first, then assigned)."""
    loaded = []
    for path, layer in weight_groups(model):
        expected = [w.shape for w in layer._keras_weights()] if _leaf(layer) else []
        if not expected:
            continue
        group = root.get(path + "/vars")
        if group is None:
            raise ModelFileError(f"{source}: no weights for layer {layer.name!r} (expected at {path}/vars)")
        loaded.append((layer, _read_arrays(group, [str(i) for i in range(len(expected))], expected, source,
                                           f"layer {layer.name!r}")))
        if str(len(expected)) in group:
            raise ModelFileError(f"{source}: layer {layer.name!r} has more weights in the file than {len(expected)}")
    _assign(loaded)


def _names(attribute):
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in np.asarray(attribute).ravel()]


def read_legacy_weights(model, root, source):
    """Set weights from a legacy HDF5 layout: ``model_weights`` (full model) or the root (weights only)."""
    group = root["model_weights"] if "model_weights" in root else root
    if "layer_names" not in group.attrs:
        raise ModelFileError(f"{source}: an HDF5 file without Keras's layer_names: not a Keras weights file")
    saved = [name for name in _names(group.attrs["layer_names"])
             if name in group and len(_names(group[name].attrs.get("weight_names", [])))]
    ours = [layer for layer in model.layers if layer.get_weights()]
    if len(saved) != len(ours):
        raise ModelFileError(f"{source}: the file has weights for {len(saved)} layers ({saved[:6]}...); the model "
                             f"has {len(ours)} layers with weights")
    loaded = []
    for name, layer in zip(saved, ours):  # Keras matches full-model files by order, as here
        names = _names(group[name].attrs["weight_names"])
        loaded.append((layer, _read_arrays(group[name], names, layer._expected_shapes(), source, f"layer {name!r}")))
    _assign(loaded)


# ----------------------------------------------------------------------------- optimizer state


def _slot_groups(optimizer):
    """Keras 3's optimizer variables after iteration and learning_rate: groups of slot names, each
    group laid out variable by variable (Adam: momentum and velocity of each variable in turn)."""
    kind = type(optimizer).__name__
    if kind in ("Adam", "AdamW"):
        return [("momentum", "velocity")] + ([("velocity_hat",)] if optimizer.amsgrad else [])
    if kind == "RMSprop":
        return [("velocity",)] + ([("momentum",)] if optimizer.momentum > 0 else []) + (
            [("average_gradient",)] if optimizer.centered else [])
    if kind == "SGD":
        return [("momentum",)] if optimizer.momentum != 0 else []
    if kind == "Adagrad":
        return [("accumulator",)]
    if kind == "Adadelta":
        return [("accumulated_grad", "accumulated_delta_var")]
    if kind == "Adamax":
        return [("momentum", "norm")]
    return None  # Nadam keeps a scalar Keras stores elsewhere: its state is not carried


def _slot_layout(model):
    """[(layer, param key, slot name)] in the order of Keras's optimizer variables."""
    variables = model.trainable_variables()
    return [(layer, key, name) for group in _slot_groups(model.optimizer)
            for layer, key in variables for name in group]


def _write_optimizer(model, root):
    optimizer = model.optimizer
    if not model.compiled or _slot_groups(optimizer) is None:
        return
    group = root.create_group("optimizer/vars")
    group.attrs["name"] = optimizer.name
    group.create_dataset("0", data=np.int64(optimizer.iterations))
    group.create_dataset("1", data=np.float32(optimizer.current_learning_rate()))
    for index, (layer, key, name) in enumerate(_slot_layout(model), start=2):
        variable = layer.params[key]
        initial = getattr(optimizer, "initial_accumulator_value", 0.0) if name == "accumulator" else 0.0
        value = optimizer._slot(variable, name, initial)  # a slot not made yet starts as the first step would
        group.create_dataset(str(index), data=layer._keras_layout(key, value))


def read_optimizer(model, root, source) -> None:
    """The optimizer's step count and slots, when the file has them for this optimizer; else a warning
    (as Keras gives) and a fresh optimizer."""
    group = root.get("optimizer/vars")
    if group is None or not model.compiled:
        return
    layout = _slot_layout(model) if _slot_groups(model.optimizer) is not None else None
    if layout is None or len(group) != 2 + len(layout):
        warnings.warn(f"{source}: optimizer state skipped: the file has {len(group)} optimizer variables, "
                      f"this {type(model.optimizer).__name__} has {2 + len(layout or [])}", stacklevel=3)
        return
    shapes = [layer._keras_layout(key, layer.params[key]).shape for layer, key, _ in layout]
    arrays = _read_arrays(group, [str(i) for i in range(2, 2 + len(layout))], shapes, source, "optimizer")
    step = group.get("0")
    if step is None or step.shape != () or step.dtype.kind not in "iuf":
        raise ModelFileError(f"{source}: the optimizer's iteration count is not a number")
    optimizer = model.optimizer
    optimizer.iterations = int(step[()])
    for (layer, key, name), value in zip(layout, arrays):
        variable = layer.params[key]
        slots = optimizer._slots.setdefault(id(variable), (variable, {}))[1]
        slots[name] = np.array(layer._internal_layout(key, value), dtype=variable.dtype, order="C")


# ----------------------------------------------------------------------------- reading


def _open_member(archive, name, source, limit):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{source}: a zip without {name!r}: not a Keras .keras archive "
                             f"(it holds {archive.namelist()[:5]})") from None
    check_member(info, source, limit)
    return info


def read_keras_archive(path):
    """(config, compile config or None, temporary weights file path, convnet metadata) of a .keras file."""
    source = repr(os.fspath(path))
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{source} is not a Keras .keras archive: it is {describe(path)}")
    weights_path = None
    try:
        with zipfile.ZipFile(path) as archive:
            _open_member(archive, "config.json", source, MAX_CONFIG_BYTES)
            config = _json(archive.read("config.json"), source, "config.json")
            metadata = {}
            if "metadata.json" in archive.namelist():
                _open_member(archive, "metadata.json", source, MAX_CONFIG_BYTES)
                metadata = _json(archive.read("metadata.json"), source, "metadata.json")
            info = _open_member(archive, "model.weights.h5", source, physical_memory() // 2)
            handle, weights_path = tempfile.mkstemp(prefix=".convnet-", suffix=".h5")
            with os.fdopen(handle, "wb") as out, archive.open(info) as member:
                while chunk := member.read(1 << 20):
                    out.write(chunk)
            if not isinstance(config, dict):
                raise ModelFileError(f"{source}: config.json is not an object")
    except BaseException as exc:
        if weights_path is not None:
            os.unlink(weights_path)
        if isinstance(exc, (zipfile.BadZipFile, OSError, EOFError, NotImplementedError)):
            raise ModelFileError(f"{source} is a damaged .keras archive: {type(exc).__name__}: {exc}") from None
        raise
    ours = metadata.get("convnet_metadata") if isinstance(metadata, dict) else None
    return config, config.get("compile_config"), weights_path, ours if isinstance(ours, dict) else {}


def model_from_keras_config(config, source):
    from .serialization import layer_from_config

    entry = keras_config.from_keras(config, source)
    try:
        model = layer_from_config(entry)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, MemoryError) as exc:
        raise ModelFileError(f"{source} holds a model convnet cannot build: {type(exc).__name__}: {exc}") from None
    if getattr(model, "_graph", None) is None:
        raise ModelFileError(f"{source}: the model has no input shape")
    return model


def compile_from_keras(model, compile_config, source) -> None:
    """Compile as the file says, where convnet has the optimizer, loss and metrics; else warn, as Keras does."""
    from . import optimizers

    if compile_config.get("loss") is None:
        return  # compiled without a loss (or not at all): nothing to train with, as in Keras
    try:
        optimizer = compile_config.get("optimizer")
        if isinstance(optimizer, dict):
            cls = optimizers._BY_NAME[str(optimizer.get("class_name")).lower()]
            accepted = (set(inspect.signature(cls.__init__).parameters)
                        | set(inspect.signature(optimizers.Optimizer.__init__).parameters)
                        | set(optimizers.Optimizer._NO_OP)) - {"self", "kwargs", "keras_options"}
            settings = optimizer.get("config") or {}
            # Keras's options convnet lacks, at their no-op values (the name only labels the optimizer)
            unsupported = {k: v for k, v in settings.items() if k not in accepted and v not in (None, False)
                           and k not in ("name", "ema_momentum")}
            if unsupported:
                raise ValueError(f"optimizer settings {unsupported} are not supported")
            optimizer = cls(**{k: v for k, v in settings.items() if k in accepted})
        model.compile(optimizer=optimizer, loss=compile_config.get("loss"), metrics=compile_config.get("metrics"),
                      loss_weights=compile_config.get("loss_weights"))
    except (KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"{source}: the model is left uncompiled; its compile settings could not be restored "
                      f"({type(exc).__name__}: {exc})", stacklevel=3)


def _stored_values(h5py, root) -> int:
    """How many weight values an open model.weights.h5 holds (its datasets' sizes; nothing is read)."""
    total = 0

    def count(name, item):
        nonlocal total
        if isinstance(item, h5py.Dataset) and not name.startswith("optimizer"):
            total += item.size

    root.visititems(count)
    return total


def load_keras(path, compile=True):
    """A convnet model from a Keras 3 ``.keras`` archive (compiled, with its optimizer state, when the
    file says how and convnet has that optimizer)."""
    h5py = _h5py()
    source = repr(os.fspath(path))
    config, compile_config, weights_path, metadata = read_keras_archive(path)
    try:
        with h5py.File(weights_path, "r") as root:
            with weight_budget(_stored_values(h5py, root)):  # no layer larger than the file's weights
                model = model_from_keras_config(config, source)
            model.metadata = metadata
            read_keras3_weights(model, root, source)
            if compile and isinstance(compile_config, dict):
                compile_from_keras(model, compile_config, source)
                read_optimizer(model, root, source)
    except OSError as exc:
        raise ModelFileError(f"{source}: model.weights.h5 is not a readable HDF5 file: {exc}") from None
    finally:
        os.unlink(weights_path)
    return model


def _open_h5(path):
    h5py = _h5py()
    source = repr(os.fspath(path))
    with open(path, "rb") as f:
        if not f.read(8).startswith(HDF5_SIGNATURE):
            raise ModelFileError(f"{source} is not an HDF5 file: it is {describe(path)}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{source} is a damaged HDF5 file: {exc}") from None


def load_legacy_h5(path, compile=True):
    """A convnet model from a legacy full-model ``.h5`` (Keras 2, tf.keras, Keras 3's ``save("m.h5")``)."""
    source = repr(os.fspath(path))
    with _open_h5(path) as root:
        text = root.attrs.get("model_config")
        if text is None:
            raise ModelFileError(f"{source} has no model_config: a weights-only file (use model.load_weights)")
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if len(text) > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{source}: a model_config of {len(text)} bytes is refused")
        model = model_from_keras_config(_json(text, source, "model_config"), source)
        read_legacy_weights(model, root, source)
        training = root.attrs.get("training_config")
        metadata = root.attrs.get("convnet_metadata")
        metadata = _json(metadata, source, "convnet_metadata") if metadata is not None else {}
        model.metadata = metadata if isinstance(metadata, dict) else {}
    if compile and training is not None:
        training = _json(training.decode("utf-8") if isinstance(training, bytes) else training, source,
                         "training_config")
        if isinstance(training, dict):
            compile_from_keras(model, {**training, "optimizer": training.get("optimizer_config")}, source)
    return model


def load_h5_weights(model, path):
    """Weights from a Keras 3 ``.weights.h5`` or a legacy weights / full-model ``.h5``."""
    source = repr(os.fspath(path))
    with _open_h5(path) as root:
        if "layers" in root and "model_weights" not in root:
            read_keras3_weights(model, root, source)
            read_optimizer(model, root, source)
        else:
            read_legacy_weights(model, root, source)


# ----------------------------------------------------------------------------- writing


def _write_keras3_weights(model, root):
    root.create_group("vars").attrs["name"] = model.name
    for path, layer in weight_groups(model):
        group = root.create_group(path + "/vars")
        group.attrs["name"] = layer.name
        if _leaf(layer):
            for index, value in enumerate(layer.get_weights()):
                group.create_dataset(str(index), data=value)
    _write_optimizer(model, root)


def _compile_config(model):
    """Keras's compile_config for what Keras can read back: string losses and metrics, our optimizers."""
    if not model.compiled or not isinstance(model._loss_spec, str):
        return None
    metrics = model._metrics_spec
    if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
        return None
    optimizer = {k: v for k, v in model.optimizer.get_config().items() if k != "decay"}
    return {"optimizer": {"module": "keras.optimizers", "class_name": type(model.optimizer).__name__,
                          "config": optimizer, "registered_name": None},
            "loss": model._loss_spec, "loss_weights": None, "metrics": metrics, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def save_keras(model, path) -> None:
    """Write ``model`` as a Keras 3 ``.keras`` archive (atomically)."""
    from . import __version__

    h5py = _h5py()
    source = repr(os.fspath(path))
    config = keras_config.to_keras(model, source)
    compile_config = _compile_config(model)
    if compile_config is not None:
        config["compile_config"] = compile_config
    metadata = {"keras_version": "3.0.0", "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "saved_by": f"convnet {__version__}", "convnet_metadata": model.metadata}
    handle, weights_path = tempfile.mkstemp(prefix=".convnet-", suffix=".h5")
    os.close(handle)
    try:
        with h5py.File(weights_path, "w") as root:
            _write_keras3_weights(model, root)

        def write(f):
            with zipfile.ZipFile(f, "w") as archive:
                archive.writestr("metadata.json", json.dumps(metadata))
                archive.writestr("config.json", json.dumps(config))
                archive.write(weights_path, "model.weights.h5")

        atomic_write(path, write)
    finally:
        os.unlink(weights_path)


def save_h5_weights(model, path) -> None:
    """Write the weights in Keras 3's ``.weights.h5`` layout (atomically)."""
    h5py = _h5py()

    def write(f):
        with h5py.File(f, "w") as root:
            _write_keras3_weights(model, root)

    atomic_write(path, write)


def save_legacy_h5(model, path) -> None:
    """Write a legacy full-model ``.h5`` (``model_config`` + ``model_weights``), as Keras 3's ``save("m.h5")``."""
    h5py = _h5py()
    source = repr(os.fspath(path))
    config = keras_config.to_keras(model, source)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]

    def write(f):
        with h5py.File(f, "w") as root:
            root.attrs["keras_version"] = "3.0.0"
            root.attrs["backend"] = "numpy"
            root.attrs["model_config"] = json.dumps(config)
            root.attrs["convnet_metadata"] = json.dumps(model.metadata)
            weights = root.create_group("model_weights")
            weights.attrs["layer_names"] = [layer.name.encode("utf-8") for layer in layers]
            for layer in layers:
                group = weights.create_group(layer.name)
                names = [f"{layer.name}/weight_{i}" for i in range(len(layer.get_weights()))]
                group.attrs["weight_names"] = [name.encode("utf-8") for name in names]
                for name, value in zip(names, layer.get_weights()):
                    group.create_dataset(name, data=value)
            compile_config = _compile_config(model)
            if compile_config is not None:
                training = {k: v for k, v in compile_config.items() if k != "optimizer"}
                root.attrs["training_config"] = json.dumps({**training,
                                                            "optimizer_config": compile_config["optimizer"]})

    atomic_write(path, write)
