"""convnet: a Keras-compatible CNN layer API on the cnnkernels kernels."""

from . import callbacks, initializers, layers, losses, metrics, optimizers
from ._random import set_seed
from .io import ModelFileError, load_model
from .layers.base import reset_names as clear_session
from .model import Sequential

__version__ = "0.1.0"

__all__ = ["ModelFileError", "Sequential", "callbacks", "clear_session", "initializers", "layers", "load_model", "losses", "metrics",
           "optimizers", "set_seed"]
