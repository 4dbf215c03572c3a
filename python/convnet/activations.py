"""Activation functions: forward, and backward from the forward's output.

Inside a model, tensors are NCHW (images) or (N, features); the channel or
feature axis is axis 1 either way, which is where softmax normalises (Keras's
axis=-1 in channels_last).
"""

from __future__ import annotations

import numpy as np


def _softmax(x, axis=1):
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
    # Split by sign so that exp never overflows.
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


FORWARD = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
}


def apply_owned(name: str, z):
    """``FORWARD[name](z)`` for a ``z`` the caller owns (a layer's fresh pre-activation, not kept):
    ReLU then runs in place instead of allocating another array of the same size."""
    if name == "relu":
        return np.maximum(z, 0, out=z)
    return FORWARD[name](z)


def backward(name: str, y, dy):
    """dL/dx from y = f(x) and dL/dy."""
    if name == "linear":
        return dy
    if name == "relu":
        return dy * (y > 0)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}")


def check(name) -> str:
    if name is None:
        return "linear"
    if isinstance(name, str) and name.lower() in FORWARD:
        return name.lower()
    raise ValueError(f"unknown activation; expected one of {sorted(FORWARD)}; received activation={name!r}")
