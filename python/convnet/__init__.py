"""convnet: a Keras-compatible CNN layer API on the cnnkernels kernels.

``import convnet as keras`` covers what Keras image scripts use: ``keras.Input``,
``keras.Model``, ``keras.Sequential``, ``keras.layers``, ``keras.models``,
``keras.optimizers``, ``keras.losses``, ``keras.callbacks``.
"""

from . import callbacks, data, initializers, layers, losses, metrics, optimizers, regularizers, viz
from ._random import floatx, set_floatx, set_seed
from .functional import Model
from .graph import Input, KerasTensor
from .io import ModelFileError, load_model
from .layers import containers as _containers  # registers Residual and Parallel for loading
from .layers.base import reset_names as clear_session
from .sequential import Sequential
from . import models  # noqa: E402  (needs Model and Sequential)

__version__ = "0.1.0"

__all__ = ["Input", "KerasTensor", "Model", "ModelFileError", "Sequential", "callbacks", "clear_session", "data",
           "floatx", "initializers", "layers", "load_model", "losses", "metrics", "models", "optimizers", "regularizers",
           "set_floatx", "set_seed", "viz"]
