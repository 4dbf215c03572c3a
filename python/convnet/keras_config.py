"""Keras's model configs, read and written: Keras 3 (``.keras``) and Keras 2 / tf.keras (legacy ``.h5``).

:func:`from_keras` turns a Keras config into convnet's (see :mod:`convnet.serialization`),
option by option: an option convnet has is passed on; an option convnet lacks is accepted
only at the value that makes it a no-op (no constraint, no renorm, float32 / float64, ...);
anything else — a layer class convnet does not have, ``Lambda``, a custom object, mixed
precision — raises :class:`convnet.ModelFileError` naming the layer, the option and the file,
before any layer is built. :func:`to_keras` writes the config Keras 3's
``keras.saving.load_model`` expects. Nothing in a config is ever executed.
"""

from __future__ import annotations

import inspect

from .io import ModelFileError
from .layers.base import REGISTRY, Layer, _snake, layer_classes

MAX_NESTING = 32  # models inside models: deeper than this is not a real network
MODEL_CLASSES = ("Sequential", "Functional", "Model")
OURS_ONLY = ("SumPooling2D", "Residual", "Parallel")  # convnet's own layers: Keras has no class to load them

# Options Keras writes that convnet lacks, at the value that makes each a no-op.
NO_OP_VALUES = {
    "kernel_constraint": None, "bias_constraint": None, "beta_constraint": None, "gamma_constraint": None,
    "depthwise_constraint": None, "pointwise_constraint": None,
    "activity_regularizer": None, "beta_regularizer": None, "gamma_regularizer": None,
    "quantization_config": None, "lora_rank": None, "noise_shape": None, "renorm_clipping": None,
    "synchronized": False, "renorm": False, "rms_scaling": False, "sparse": False, "ragged": False,
    "optional": False,
    "beta_initializer": "zeros", "gamma_initializer": "ones", "moving_mean_initializer": "zeros",
    "moving_variance_initializer": "ones", "max_value": None, "threshold": 0.0, "negative_slope": 0.0,
}
# Options whose value does not matter once the ones above are no-ops (or that only Keras reads).
IGNORED = ("renorm_momentum", "lora_alpha", "autocast", "build_config", "shared_object_id", "registered_name",
           "module")
FLOAT_DTYPES = ("float32", "float64")


def _fail(source, where, message):
    raise ModelFileError(f"{source}: {where}: {message}")


def _object_name(value):
    """'glorot_uniform' from a serialized Keras object ({"class_name": "GlorotUniform", ...}) or a string."""
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        if value["class_name"] == "function" and isinstance(value.get("config"), str):  # Keras 3 activations
            return value["config"]
        return _snake(value["class_name"])
    return value


def _dtype_name(value):
    if isinstance(value, dict):  # Keras 3: {"class_name": "DTypePolicy", "config": {"name": "float32"}}
        value = (value.get("config") or {}).get("name")
    return value


def _layer_options(cls, config, source, where):
    """Keyword arguments of ``cls`` from a Keras layer config (see the module docstring)."""
    accepted = set(inspect.signature(cls.__init__).parameters) | set(inspect.signature(Layer.__init__).parameters)
    options = {}
    for key, value in config.items():
        if key == "dtype":
            dtype = _dtype_name(value)
            if dtype not in (None, *FLOAT_DTYPES):
                _fail(source, where, f"dtype {dtype!r} is not supported (convnet computes in float32 or float64)")
            continue
        if key == "axis" and isinstance(value, list) and len(value) == 1:  # tf.keras BatchNormalization
            value = value[0]
        if key.endswith("_initializer") or key == "activation":
            value = _object_name(value)
        elif (key.endswith("_regularizer") or key.endswith("_constraint")) and isinstance(value, dict):
            value = {"class_name": value.get("class_name"), "config": value.get("config") or {}}
        if key in accepted:
            options[key] = value
        elif value is None and (key.endswith("_constraint") or key.endswith("_regularizer")):
            continue  # none of it: a no-op whatever the weight
        elif key in NO_OP_VALUES:
            if value != NO_OP_VALUES[key]:
                _fail(source, where, f"{key}={str(value)[:80]} is not supported by convnet "
                                     f"(only {NO_OP_VALUES[key]!r})")
        elif key not in IGNORED:
            _fail(source, where, f"option {key}={str(value)[:80]} is not supported by convnet")
    return options


def _shape(config):
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(v, int) and 0 < v < 2**31 for v in shape[1:]):
        return None
    return shape[1:]


def from_keras(entry, source, depth=0):
    """convnet's ``{"class_name", "config"}`` for one Keras layer or model entry."""
    if depth > MAX_NESTING:
        _fail(source, "config", f"models nested more than {MAX_NESTING} deep")
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        _fail(source, "config", f"a layer entry must be {{'class_name': ..., 'config': {{...}}}}; received "
                                f"{str(entry)[:120]}")
    class_name, config = entry.get("class_name"), entry["config"]
    where = f"layer {config.get('name', entry.get('name'))!r} ({class_name})"
    module = entry.get("module")
    if class_name == "Lambda" or isinstance(config.get("function"), (dict, str, list)):
        _fail(source, where, "Lambda layers and serialized Python code are refused (Keras's safe_mode)")
    if (isinstance(module, str) and not module.startswith("keras")) or (
            entry.get("registered_name") not in (None, class_name, "Functional")):
        _fail(source, where, f"custom object {entry.get('registered_name') or module!r} is not supported")
    if class_name == "Sequential":
        return {"class_name": "Sequential", "config": _sequential(config, source, depth)}
    if class_name in ("Functional", "Model"):
        return {"class_name": "Functional", "config": _functional(config, source, depth)}
    if class_name == "InputLayer":
        shape = _shape(config)
        if shape is None:
            _fail(source, where, f"needs a batch_shape of positive sizes; received {config.get('batch_shape')!r}")
        _layer_options(Layer, {k: v for k, v in config.items() if k not in ("batch_shape", "batch_input_shape")},
                       source, where)
        return {"class_name": "InputLayer", "config": {"name": config.get("name"), "batch_shape": [None, *shape],
                                                       "dtype": _dtype_name(config.get("dtype"))}}
    classes = layer_classes()
    if not isinstance(class_name, str) or class_name not in classes or class_name.startswith("_") \
            or class_name in OURS_ONLY + MODEL_CLASSES:
        supported = sorted(k for k in classes if not k.startswith("_") and k not in OURS_ONLY + MODEL_CLASSES)
        _fail(source, where, f"layer class {class_name!r} is not supported by convnet; it has {', '.join(supported)}")
    return {"class_name": class_name, "config": _layer_options(classes[class_name], config, source, where)}


def _sequential(config, source, depth):
    entries = config.get("layers")
    if not isinstance(entries, list):
        _fail(source, "Sequential", "config has no list of layers")
    input_shape = None
    layers = []
    for entry in entries:
        translated = from_keras(entry, source, depth + 1)
        if translated["class_name"] == "InputLayer":
            input_shape = translated["config"]["batch_shape"][1:]
        else:
            layers.append(translated)
    build_shape = config.get("build_input_shape")
    if input_shape is None and isinstance(build_shape, list):
        input_shape = _shape({"batch_shape": build_shape})
    return {"name": config.get("name"), "trainable": config.get("trainable", True), "input_shape": input_shape,
            "layers": layers}


def _keras2_nodes(nodes, source, where):
    """Keras 2's inbound nodes ([[name, node, tensor, kwargs], ...] per call) in Keras 3's form."""
    converted = []
    for node in nodes:
        if isinstance(node, dict):  # already Keras 3's {"args": [...], "kwargs": {...}}
            converted.append(node)
            continue
        if not isinstance(node, list) or not all(isinstance(ref, list) and len(ref) >= 3 for ref in node):
            _fail(source, where, f"inbound node {str(node)[:80]} is not a list of [layer, node, tensor]")
        refs = [{"class_name": "__keras_tensor__", "config": {"keras_history": list(ref[:3])}} for ref in node]
        kwargs = node[0][3] if len(node[0]) > 3 and isinstance(node[0][3], dict) else {}
        converted.append({"args": [refs if len(refs) > 1 else refs[0]], "kwargs": kwargs})
    return converted


def _endpoints(value):
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [value], True  # Keras 3 writes one endpoint flat
    return value, isinstance(value, list) and len(value) == 1


def _functional(config, source, depth):
    entries = config.get("layers")
    if not isinstance(entries, list):
        _fail(source, "Functional", "config has no list of layers")
    layers = []
    for entry in entries:
        translated = from_keras(entry, source, depth + 1)
        name = entry.get("name") or entry["config"].get("name")
        where = f"layer {name!r}"
        nodes = _keras2_nodes(entry.get("inbound_nodes") or [], source, where)
        for node in nodes:
            extra = {k: v for k, v in (node.get("kwargs") or {}).items() if v is not None and k != "training"}
            if extra:
                _fail(source, where, f"call arguments {sorted(extra)} are not supported by convnet")
            node["kwargs"] = {}
        layers.append({**translated, "name": name, "inbound_nodes": nodes})
    inputs, single_input = _endpoints(config.get("input_layers"))
    outputs, single_output = _endpoints(config.get("output_layers"))
    return {"name": config.get("name"), "trainable": config.get("trainable", True), "layers": layers,
            "input_layers": inputs, "output_layers": outputs, "single_input": single_input,
            "single_output": single_output}


# ----------------------------------------------------------------------------- convnet -> Keras 3


def keras_class_name(layer) -> str:
    from .functional import Model
    from .sequential import Sequential

    if isinstance(layer, Sequential):
        return "Sequential"
    if type(layer) is Model:
        return "Functional"
    return type(layer).__name__


def _keras_layer_config(layer, source):
    name = keras_class_name(layer)
    if name in OURS_ONLY or name.startswith("_") or (name not in REGISTRY and name not in MODEL_CLASSES):
        _fail(source, f"layer {layer.name!r} ({name})", "has no Keras equivalent, so it cannot be saved in Keras's "
                                                         "format; save to .npz")
    config = {k: v for k, v in layer.get_config().items() if k != "input_shape"}
    if "data_format" in config and config["data_format"] is None:
        config["data_format"] = "channels_last"
    for key, value in config.items():
        if key.endswith("_regularizer") and isinstance(value, dict):
            config[key] = {"module": "keras.regularizers", **value, "registered_name": None}
        elif key.endswith("_constraint") and isinstance(value, dict):
            config[key] = {"module": "keras.constraints", **value, "registered_name": None}
    return config


def _input_entry(name, shape, dtype):
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": [None, *shape], "dtype": dtype, "sparse": False, "ragged": False,
                       "name": name}, "registered_name": None}


def to_keras(layer, source) -> dict:
    """The Keras 3 config entry of a convnet layer or model."""
    from .functional import Model
    from .sequential import Sequential

    if isinstance(layer, Sequential):
        g = layer._require_graph("save")
        shape = list(g.inputs[0].shape[1:])
        entries = [_input_entry(g.inputs[0].node.layer.name, shape, g.inputs[0].dtype.name)]
        entries += [to_keras(inner, source) for inner in layer._stack]
        return {"module": "keras", "class_name": "Sequential",
                "config": {"name": layer.name, "trainable": layer.trainable, "layers": entries,
                           "build_input_shape": [None, *shape]},
                "registered_name": None, "build_config": {"input_shape": [None, *shape]}}
    if isinstance(layer, Model):
        from .serialization import functional_config

        config = functional_config(layer)
        by_name = {inner.name: inner for inner in layer.layers}
        for entry in config["layers"]:
            inner = by_name[entry["name"]]
            if entry["class_name"] == "InputLayer":
                translated = _input_entry(inner.name, list(inner.shape), inner.dtype.name)
            else:
                translated = to_keras(inner, source)
            entry.update({k: v for k, v in translated.items() if k in ("module", "class_name", "config",
                                                                         "registered_name")})
        for key in ("input_layers", "output_layers"):
            single = config.pop("single_input" if key == "input_layers" else "single_output")
            if single:
                config[key] = config[key][0]
        return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
                "registered_name": "Functional"}
    return {"module": "keras.layers", "class_name": keras_class_name(layer),
            "config": _keras_layer_config(layer, source), "registered_name": None}
