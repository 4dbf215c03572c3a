"""Pooling layers: max, average, sum (ours), and the global ones."""

from __future__ import annotations

import numpy as np

import cnnkernels
from cnnkernels import _args

from .base import Layer, check_data_format
from .conv import _pair, check_padding


class _Pooling2D(Layer):
    _kind = ""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pool_size = _pair("pool_size", pool_size)
        self.strides = self.pool_size if strides is None else _pair("strides", strides)
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects image input; received per-sample shape "
                             f"{tuple(input_shape)}")
        geometry = _args.pool_geometry((1, *input_shape), self.pool_size, self.strides, self.padding)
        return (input_shape[0], *geometry.out_hw)

    def _arguments(self):
        extra = {"count_include_pad": False} if self._kind == "avg" else {}  # Keras's "same" averages real cells
        return (self.pool_size, self.strides, self.padding), extra

    def forward(self, x, training=False):
        self._x = x
        args, extra = self._arguments()
        return getattr(cnnkernels, f"{self._kind}_pool2d")(x, *args, **extra)

    def backward(self, dy):
        args, extra = self._arguments()
        backward = getattr(cnnkernels, f"{self._kind}_pool2d_backward")
        return backward(np.ascontiguousarray(dy, dtype=self._x.dtype), self._x, *args, **extra)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling2D(_Pooling2D):
    """Max over each window; the gradient goes to the window's first maximum."""

    _kind = "max"


class AveragePooling2D(_Pooling2D):
    """Mean over each window; with padding="same", over its real cells only (as Keras)."""

    _kind = "avg"


class SumPooling2D(_Pooling2D):
    """Sum over each window (not in Keras; padding adds zeros)."""

    _kind = "sum"


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.data_format = check_data_format(data_format)
        if keepdims:
            raise ValueError("keepdims=True is not supported; received keepdims=True")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{type(self).__name__} expects image input; received per-sample shape "
                             f"{tuple(input_shape)}")
        return (input_shape[0],)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: (N, C, H, W) → (N, C)."""

    def forward(self, x, training=False):
        self._shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy):
        N, C, H, W = self._shape
        return np.ascontiguousarray(np.broadcast_to((dy / (H * W))[:, :, None, None], self._shape))


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width; the gradient goes to the first maximum of each map."""

    def forward(self, x, training=False):
        N, C, H, W = x.shape
        flat = x.reshape(N, C, H * W)
        self._shape = x.shape
        self._where = flat.argmax(axis=2)
        return np.take_along_axis(flat, self._where[:, :, None], axis=2)[:, :, 0]

    def backward(self, dy):
        N, C, H, W = self._shape
        dx = np.zeros((N, C, H * W), dy.dtype)
        np.put_along_axis(dx, self._where[:, :, None], dy[:, :, None], axis=2)
        return dx.reshape(self._shape)
