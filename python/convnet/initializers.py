"""Weight initializers with Keras 3's names and formulas.

Fans follow Keras: for a conv kernel (kh, kw, in, out), fan_in = kh·kw·in and
fan_out = kh·kw·out; for a Dense kernel (in, out), fan_in = in, fan_out = out.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ._random import floatx, generator
from .io import charge_weight, physical_memory


def _fans(shape) -> tuple[float, float]:
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _bounded(initializer):
    """Refuse a weight larger than this machine's memory before allocating it: a model file
    asking for 10⁹ filters gets a ValueError, not an out-of-memory kill."""

    @functools.wraps(initializer)
    def checked(shape, dtype=None):
        shape = tuple(int(v) for v in shape)
        charge_weight(shape)  # while a model file is loaded: no more values than the file holds
        nbytes = math.prod(shape) * np.dtype(dtype or floatx()).itemsize
        if nbytes > physical_memory():
            size = f"{nbytes / 2**30:.1f} GiB" if nbytes < 2**1000 else f"a {len(str(nbytes))}-digit number of bytes"
            raise ValueError(f"a weight of shape {shape} would take {size}, more than this "
                             f"machine's {physical_memory() / 2**30:.1f} GiB of memory")
        return initializer(shape, dtype)

    return checked


def _truncated_normal(shape, stddev):
    """Normal(0, stddev) redrawn outside two standard deviations, as Keras's truncated_normal."""
    values = generator().normal(0.0, stddev, size=shape)
    outside = np.abs(values) > 2 * stddev
    while outside.any():
        values[outside] = generator().normal(0.0, stddev, size=int(outside.sum()))
        outside = np.abs(values) > 2 * stddev
    return values


@_bounded
def glorot_uniform(shape, dtype=None):
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
    return generator().uniform(-limit, limit, size=shape).astype(dtype or floatx())


@_bounded
def glorot_normal(shape, dtype=None):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) / 0.8796 (Keras's correction)."""
    fan_in, fan_out = _fans(shape)
    stddev = math.sqrt(2.0 / max(1.0, fan_in + fan_out)) / 0.87962566103423978
    return _truncated_normal(shape, stddev).astype(dtype or floatx())


@_bounded
def he_normal(shape, dtype=None):
    """Truncated normal with stddev sqrt(2 / fan_in) / 0.8796 (Keras's correction)."""
    fan_in, _ = _fans(shape)
    stddev = math.sqrt(2.0 / max(1.0, fan_in)) / 0.87962566103423978
    return _truncated_normal(shape, stddev).astype(dtype or floatx())


@_bounded
def he_uniform(shape, dtype=None):
    """U(-l, l), l = sqrt(6 / fan_in)."""
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / max(1.0, fan_in))
    return generator().uniform(-limit, limit, size=shape).astype(dtype or floatx())


@_bounded
def zeros(shape, dtype=None):
    return np.zeros(shape, dtype or floatx())


@_bounded
def ones(shape, dtype=None):
    return np.ones(shape, dtype or floatx())


_BY_NAME = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_normal, he_uniform, zeros, ones)}


def get(identifier):
    """An initializer from its Keras name (or a callable ``f(shape, dtype)``)."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    raise ValueError(f"unknown initializer; expected one of {sorted(_BY_NAME)}; received {identifier!r}")


def name_of(initializer) -> str:
    for name, function in _BY_NAME.items():
        if function is initializer:
            return name
    raise ValueError(f"initializer {initializer!r} has no name and cannot be saved")
