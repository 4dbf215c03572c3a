"""convnet: a Keras-compatible CNN layer API on the cnnkernels kernels."""

from . import callbacks, data, initializers, layers, losses, metrics, optimizers, viz
from ._random import floatx, set_floatx, set_seed
from .io import ModelFileError, load_model
from .layers.base import reset_names as clear_session
from .model import Sequential

__version__ = "0.1.0"

__all__ = ["ModelFileError", "Sequential", "callbacks", "clear_session", "data", "initializers", "layers",
           "load_model", "losses", "metrics", "optimizers", "floatx", "set_floatx", "set_seed", "viz"]
