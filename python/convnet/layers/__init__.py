"""Keras-compatible layers on the cnnkernels kernels."""

from .base import Layer
from .containers import Parallel, Residual
from .conv import Conv2D
from .core import Activation, Dense, Dropout, Flatten, Input, LeakyReLU, ReLU, Softmax
from .normalization import BatchNormalization
from .pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    SumPooling2D,
)

__all__ = [
    "Activation", "AveragePooling2D", "BatchNormalization", "Conv2D", "Dense", "Dropout", "Flatten",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Input", "Layer", "LeakyReLU", "MaxPooling2D", "Parallel",
    "ReLU", "Residual", "Softmax", "SumPooling2D",
]
