"""Keras-compatible layers on the cnnkernels kernels."""

from ..graph import Input, InputLayer
from .base import Layer
from .conv import Conv2D
from .conv_variants import Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
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
from .normalization import BatchNormalization, LayerNormalization
from .pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    SumPooling2D,
)
from .preprocessing import (
    CenterCrop,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Resizing,
)
from .regularization import ELU, ActivityRegularization, GaussianDropout, GaussianNoise, PReLU, SpatialDropout2D
from .reshaping import Cropping2D, Identity, Permute, Reshape, Rescaling, UpSampling2D, ZeroPadding2D

# Keras's other names for the same classes
Convolution2D, Convolution2DTranspose = Conv2D, Conv2DTranspose
MaxPool2D, AvgPool2D = MaxPooling2D, AveragePooling2D
GlobalAvgPool2D, GlobalMaxPool2D = GlobalAveragePooling2D, GlobalMaxPooling2D


def __getattr__(name):
    # Residual and Parallel are small Models: importing them here eagerly would import the
    # model module while it is still importing this package.
    if name in ("Residual", "Parallel"):
        from . import containers

        return getattr(containers, name)
    raise AttributeError(f"module 'convnet.layers' has no attribute {name!r}")


__all__ = [
    "ActivityRegularization", "CenterCrop", "ELU", "GaussianDropout", "GaussianNoise", "LayerNormalization", "PReLU",
    "Permute", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom",
    "Resizing", "SpatialDropout2D",
    "Activation", "Add", "Average", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Concatenate", "Conv2D",
    "Conv2DTranspose", "Convolution2D", "Convolution2DTranspose", "Cropping2D", "Dense", "DepthwiseConv2D", "Dropout",
    "Flatten", "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D", "Identity",
    "Input", "InputLayer", "Layer", "LeakyReLU", "MaxPool2D", "MaxPooling2D", "Maximum", "Minimum", "Multiply",
    "Parallel", "ReLU", "Rescaling", "Reshape", "Residual", "SeparableConv2D", "Softmax", "Subtract", "SumPooling2D",
    "UpSampling2D", "ZeroPadding2D", "add", "average", "concatenate", "maximum", "minimum", "multiply", "subtract",
]
