"""Keras-compatible layers on the cnnkernels kernels."""

from ..graph import Input, InputLayer
from .base import Layer
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, LeakyReLU, ReLU, Softmax
from .merging import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from .normalization import BatchNormalization
from .pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    SumPooling2D,
)


def __getattr__(name):
    # Residual and Parallel are small Models: importing them here eagerly would import the
    # model module while it is still importing this package.
    if name in ("Residual", "Parallel"):
        from . import containers

        return getattr(containers, name)
    raise AttributeError(f"module 'convnet.layers' has no attribute {name!r}")


__all__ = [
    "Activation", "Add", "Average", "AveragePooling2D", "BatchNormalization", "Concatenate", "Conv2D", "Dense",
    "Dropout", "Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "InputLayer", "Layer",
    "LeakyReLU", "MaxPooling2D", "Maximum", "Minimum", "Multiply", "Parallel", "ReLU", "Residual", "Softmax",
    "Subtract", "SumPooling2D", "add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract",
]
