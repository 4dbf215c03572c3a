"""Weight constraints with Keras 3's names and formulas: ``kernel_constraint=constraints.max_norm(2)``.

A constraint is a projection applied to a weight after each optimizer step, as Keras does.
``axis`` refers to the weight in Keras's layout: (kh, kw, in, out) for a conv kernel, (in, out)
for a Dense kernel, so ``axis=[0, 1, 2]`` bounds each filter.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # keras.backend.epsilon()


def _axis(value):
    if isinstance(value, (list, tuple)):
        return [int(a) for a in value]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"axis must be an int or a list of ints; received axis={value!r}")


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a non-negative number; received {name}={value!r}")
    return float(value)


class Constraint:
    def __call__(self, w: np.ndarray) -> np.ndarray:
        return w

    def get_config(self) -> dict:
        return {}


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=True))


class MaxNorm(Constraint):
    """w · min(‖w‖, max_value) / (ε + ‖w‖), the norm taken along ``axis``."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = _number("max_value", max_value), _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        return w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """max(w, 0)."""

    def __call__(self, w):
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    """w / (ε + ‖w‖) along ``axis``."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """w · (rate·clip(‖w‖, min_value, max_value) + (1 − rate)·‖w‖) / (ε + ‖w‖) along ``axis``."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value = _number("min_value", min_value), _number("max_value", max_value)
        self.rate, self.axis = _number("rate", rate), _axis(axis)

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm
_BY_NAME = {"MaxNorm": MaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm, "MinMaxNorm": MinMaxNorm,
            "max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm}


def get(identifier):
    """None, a Constraint, a Keras name ("max_norm") or a config ``{"class_name": "MaxNorm", "config": {...}}``."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_NAME:
        return _BY_NAME[identifier["class_name"]](**(identifier.get("config") or {}))
    raise ValueError(f"unknown constraint; expected one of {sorted(_BY_NAME)} or a Constraint; received "
                     f"{identifier!r}")


def serialize(constraint):
    if constraint is None:
        return None
    return {"class_name": type(constraint).__name__, "config": constraint.get_config()}


def apply(layer, key) -> None:
    """Project ``layer.params[key]`` by its constraint, in Keras's layout (the trainer calls this
    after each optimizer step)."""
    constraint = layer.constraints.get(key)
    if constraint is not None:
        weight = layer.params[key]
        projected = constraint(layer._keras_layout(key, weight))
        weight[...] = layer._internal_layout(key, np.asarray(projected, weight.dtype))
