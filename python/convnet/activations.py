"""Activation functions with Keras 3's names and formulas, forward and backward.

Two faces. As functions on arrays in the user's layout (``convnet.activations.relu(x)``,
``softmax(x, axis=-1)``), as Keras's ``keras.activations``. Inside layers, by name
(``activation="gelu"`` or ``activation=convnet.activations.gelu``): tensors there are NCHW or
(N, features), so the channel / feature axis that softmax normalises is axis 1.

Backward passes work from the forward's output ``y``; the two whose derivative needs the
input as well (``gelu``, ``silu``) say so in :data:`NEEDS_INPUT`, and layers keep it for them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

import cnnkernels

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
LEAKY_SLOPE = 0.2  # keras.activations.leaky_relu's default (the LeakyReLU layer's is 0.3)


def _c(x, value):
    return x.dtype.type(value)


def _softmax(x, axis=1):
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis=1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _sigmoid(x):
    return special.expit(x).astype(x.dtype, copy=False)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, _c(x, alpha) * np.expm1(np.minimum(x, 0)))


def _gelu(x):
    return _c(x, 0.5) * x * (1 + special.erf(x / _c(x, math.sqrt(2)))).astype(x.dtype, copy=False)


def _softplus(x):
    return np.logaddexp(_c(x, 0), x)


def _hard_sigmoid(x):
    return np.clip(x / _c(x, 6) + _c(x, 0.5), 0, 1)


# forward on the internal layout: name -> f(x)
FORWARD = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "leaky_relu": lambda x: np.where(x > 0, x, x * _c(x, LEAKY_SLOPE)),
    "elu": _elu,
    "selu": lambda x: _c(x, SELU_SCALE) * _elu(x, SELU_ALPHA),
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "softplus": _softplus,
    "softsign": lambda x: x / (np.abs(x) + 1),
    "hard_sigmoid": _hard_sigmoid,
    "exponential": np.exp,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}
ALIASES = {"swish": "silu"}
NEEDS_INPUT = frozenset({"gelu", "silu"})


def _gelu_derivative(x):
    cdf = _c(x, 0.5) * (1 + special.erf(x / _c(x, math.sqrt(2))))
    return (cdf + x * np.exp(-x * x / 2) / _c(x, math.sqrt(2 * math.pi))).astype(x.dtype, copy=False)


def _silu_derivative(x):
    s = _sigmoid(x)
    return s * (1 + x * (1 - s))


def _compiled_pair(dy, y) -> bool:
    """Whether cnnkernels' one-pass gradients take these (a float64 loss gradient may meet float32)."""
    return dy.dtype == y.dtype and dy.dtype in (np.float32, np.float64) and dy.shape == y.shape


def backward(name: str, y, dy, x=None):
    """dL/dx from y = f(x) and dL/dy (and x itself for the names in :data:`NEEDS_INPUT`)."""
    if name == "linear":
        return dy
    if name == "relu":
        return cnnkernels.relu_backward(dy, y) if _compiled_pair(dy, y) else dy * ~(y <= 0)  # dy at a NaN, as it
    if name == "relu6":
        return dy * ((y > 0) & (y < 6))
    if name == "leaky_relu":
        if _compiled_pair(dy, y):
            return cnnkernels.leaky_relu_backward(dy, y, LEAKY_SLOPE)
        return dy * np.where(y > 0, _c(y, 1), _c(y, LEAKY_SLOPE))
    if name == "elu":
        return dy * np.where(y > 0, _c(y, 1), y + 1)
    if name == "selu":
        return dy * np.where(y > 0, _c(y, SELU_SCALE), y + _c(y, SELU_SCALE * SELU_ALPHA))
    if name == "gelu":
        return dy * _gelu_derivative(x)
    if name == "silu":
        return dy * _silu_derivative(x)
    if name == "softplus":
        return dy * -np.expm1(-y)  # sigmoid(x) = 1 - e^(-softplus(x))
    if name == "softsign":
        return dy * np.square(1 - np.abs(y))
    if name == "hard_sigmoid":
        return dy * (((y > 0) & (y < 1)) / _c(y, 6))
    if name == "exponential":
        return dy * y
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))
    if name == "log_softmax":
        return dy - np.exp(y) * np.sum(dy, axis=1, keepdims=True)
    raise ValueError(f"unknown activation {name!r}")


def apply_owned(name: str, z):
    """``(FORWARD[name](z), kept)`` for a ``z`` the caller owns (a layer's fresh pre-activation):
    ReLU then runs in place, and ``kept`` is ``z`` for the activations whose backward needs it
    (else None), to pass back to :func:`backward` as ``x``."""
    if name == "relu":
        if z.dtype in (np.float32, np.float64):  # one parallel pass, where np.maximum takes one thread
            return cnnkernels.relu(z, inplace=True), None
        return np.maximum(z, 0, out=z), None
    return FORWARD[name](z), (z if name in NEEDS_INPUT else None)


def check(identifier) -> str:
    """The activation's name from None, a name or one of this module's functions."""
    if identifier is None:
        return "linear"
    if callable(identifier) and getattr(identifier, "__module__", None) == __name__ \
            and identifier.__name__ in PUBLIC:
        identifier = identifier.__name__
    if isinstance(identifier, str):
        name = ALIASES.get(identifier.lower(), identifier.lower())
        if name in FORWARD:
            return name
    raise ValueError(f"unknown activation; expected one of {sorted([*FORWARD, *ALIASES])} or a "
                     f"convnet.activations function (other callables cannot be differentiated); received "
                     f"activation={identifier!r}")


def get(identifier):
    """Keras's ``activations.get``: the function for a name (or None → linear)."""
    return PUBLIC[check(identifier)]


def serialize(function) -> str:
    return check(function)


# -- the functions, on arrays in the user's layout (Keras's keras.activations) ------------------


def _array(x):
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def linear(x):
    return _array(x)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0), or Keras's general form: slope below ``threshold``, capped at ``max_value``."""
    x = _array(x)
    y = np.where(x >= threshold, x, (x - _c(x, threshold)) * _c(x, negative_slope)) if (negative_slope or threshold) \
        else np.maximum(x, 0)
    return np.minimum(y, _c(x, max_value)) if max_value is not None else y


def relu6(x):
    return FORWARD["relu6"](_array(x))


def leaky_relu(x, negative_slope=LEAKY_SLOPE):
    x = _array(x)
    return np.where(x > 0, x, x * _c(x, negative_slope))


def elu(x, alpha=1.0):
    return _elu(_array(x), alpha)


def selu(x):
    return FORWARD["selu"](_array(x))


def gelu(x, approximate=False):
    x = _array(x)
    if approximate:
        inner = _c(x, math.sqrt(2 / math.pi)) * (x + _c(x, 0.044715) * x**3)
        return _c(x, 0.5) * x * (1 + np.tanh(inner))
    return _gelu(x)


def silu(x):
    return FORWARD["silu"](_array(x))


swish = silu


def softplus(x):
    return _softplus(_array(x))


def softsign(x):
    return FORWARD["softsign"](_array(x))


def hard_sigmoid(x):
    return _hard_sigmoid(_array(x))


def exponential(x):
    return np.exp(_array(x))


def sigmoid(x):
    return _sigmoid(_array(x))


def tanh(x):
    return np.tanh(_array(x))


def softmax(x, axis=-1):
    return _softmax(_array(x), axis)


def log_softmax(x, axis=-1):
    return _log_softmax(_array(x), axis)


PUBLIC = {f.__name__: f for f in (linear, relu, relu6, leaky_relu, elu, selu, gelu, silu, softplus, softsign,
                                  hard_sigmoid, exponential, sigmoid, tanh, softmax, log_softmax)}
