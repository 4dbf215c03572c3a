"""convnet: a Keras-compatible CNN layer API on the cnnkernels kernels.

``import convnet as keras`` covers what Keras image scripts use: ``keras.Input``,
``keras.Model``, ``keras.Sequential``, ``keras.layers``, ``keras.models``,
``keras.optimizers`` (and ``keras.optimizers.schedules``), ``keras.losses``, ``keras.metrics``,
``keras.callbacks``, ``keras.activations``, ``keras.constraints``, ``keras.regularizers``,
``keras.utils``, ``keras.preprocessing``, ``keras.datasets`` and ``keras.ops``.

The submodules load on first use (PEP 562, as SciPy and scikit-image do): ``import convnet`` itself
costs nothing, so the ``convnet`` command answers ``--help`` at once and can say "interrupted" when
Ctrl-C arrives while NumPy and the kernels are still loading.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("activations", "callbacks", "constraints", "data", "datasets", "initializers", "layers", "losses",
               "metrics", "models", "ops", "optimizers", "pipeline", "preprocessing", "regularizers", "schedules",
               "utils", "viz")
_NAMES = {  # public name -> the submodule that defines it
    "floatx": "_random", "set_floatx": "_random", "set_seed": "_random",
    "Model": "functional", "Input": "graph", "KerasTensor": "graph",
    "ModelFileError": "io", "load_model": "io", "Sequential": "sequential",
}

__all__ = sorted([*_SUBMODULES, *_NAMES, "clear_session"], key=str.lower)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    elif name == "clear_session":
        from .layers.base import clear_session as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted({*globals(), *__all__})
