"""``keras.ops`` as tutorials call it: a small NumPy-backed subset (arrays in, arrays out).

``convert_to_numpy``, ``convert_to_tensor``, ``expand_dims``, ``squeeze``, ``argmax``, ``softmax``,
``sigmoid``, ``relu`` and their kind: the same names and arguments as Keras 3's ops, computed
with NumPy (a convnet model's tensors are NumPy arrays already).
"""

from __future__ import annotations

import numpy as np

from . import activations as _activations


def convert_to_numpy(x) -> np.ndarray:
    return np.asarray(x)


def convert_to_tensor(x, dtype=None) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


def cast(x, dtype) -> np.ndarray:
    return np.asarray(x).astype(dtype)


def shape(x) -> tuple:
    return np.shape(x)


def expand_dims(x, axis) -> np.ndarray:
    return np.expand_dims(x, axis)


def squeeze(x, axis=None) -> np.ndarray:
    return np.squeeze(x, axis)


def reshape(x, newshape) -> np.ndarray:
    return np.reshape(x, newshape)


def transpose(x, axes=None) -> np.ndarray:
    return np.transpose(x, axes)


def concatenate(xs, axis=0) -> np.ndarray:
    return np.concatenate(xs, axis=axis)


def stack(xs, axis=0) -> np.ndarray:
    return np.stack(xs, axis=axis)


def argmax(x, axis=None, keepdims=False) -> np.ndarray:
    return np.argmax(x, axis=axis, keepdims=keepdims)


def argmin(x, axis=None, keepdims=False) -> np.ndarray:
    return np.argmin(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001  (Keras's name)
    return np.max(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return np.min(x, axis=axis, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return np.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def clip(x, x_min, x_max) -> np.ndarray:
    return np.clip(x, x_min, x_max)


def where(condition, x1=None, x2=None):
    return np.where(condition) if x1 is None and x2 is None else np.where(condition, x1, x2)


def one_hot(x, num_classes, axis=-1, dtype="float32") -> np.ndarray:
    x = np.asarray(x, np.int64)
    out = (x[..., None] == np.arange(num_classes)).astype(dtype)
    return np.moveaxis(out, -1, axis)


def top_k(x, k, sorted=True):  # noqa: A002  (Keras's argument name)
    """(values, indices) of the k largest entries along the last axis, largest first."""
    x = np.asarray(x)
    indices = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, indices, axis=-1), indices


def abs(x):  # noqa: A001
    return np.abs(x)


exp, log, sqrt, square, tanh = np.exp, np.log, np.sqrt, np.square, np.tanh
zeros, ones, arange = np.zeros, np.ones, np.arange
relu, relu6, sigmoid, softplus, silu, gelu, elu, selu = (
    _activations.relu, _activations.relu6, _activations.sigmoid, _activations.softplus, _activations.silu,
    _activations.gelu, _activations.elu, _activations.selu)
leaky_relu, hard_sigmoid, softmax, log_softmax = (
    _activations.leaky_relu, _activations.hard_sigmoid, _activations.softmax, _activations.log_softmax)
swish = silu
