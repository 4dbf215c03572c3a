"""convnet: a Keras-compatible CNN layer API on the cnnkernels kernels.

``import convnet as keras`` covers what Keras image scripts use: ``keras.Input``,
``keras.Model``, ``keras.Sequential``, ``keras.layers``, ``keras.models``,
``keras.optimizers`` (and ``keras.optimizers.schedules``), ``keras.losses``, ``keras.metrics``,
``keras.callbacks``, ``keras.activations``, ``keras.constraints``, ``keras.regularizers``,
``keras.utils``, ``keras.preprocessing``, ``keras.datasets`` and ``keras.ops``.
"""

from . import (activations, callbacks, constraints, data, datasets, initializers, layers, losses, metrics, ops,
               optimizers, pipeline, preprocessing, regularizers, schedules, utils, viz)
from ._random import floatx, set_floatx, set_seed
from .functional import Model
from .graph import Input, KerasTensor
from .io import ModelFileError, load_model
from .layers import containers as _containers  # registers Residual and Parallel for loading
from .layers.base import reset_names as clear_session
from .sequential import Sequential
from . import models  # noqa: E402  (needs Model and Sequential)

__version__ = "0.1.0"

optimizers.schedules = schedules  # keras.optimizers.schedules.ExponentialDecay(...)

__all__ = ["Input", "KerasTensor", "Model", "ModelFileError", "Sequential", "activations", "callbacks",
           "clear_session", "constraints", "data", "datasets", "floatx", "initializers", "layers", "load_model",
           "losses", "metrics", "models", "ops", "optimizers", "pipeline", "preprocessing", "regularizers",
           "schedules", "set_floatx", "set_seed", "utils", "viz"]
