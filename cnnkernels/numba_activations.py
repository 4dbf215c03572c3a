"""Numba twins of the elementwise kernels of :mod:`cnnkernels._activations` (same signatures)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_cache import cached_njit
from .numba_kernels import _PARALLEL, _on_threads


@cached_njit(**_PARALLEL)
def _leaky_relu_forward(x, negative_slope, y):
    """y = x if x > 0 else negative_slope·x, and max(x, 0) at slope 0"""
    slope = x.dtype.type(negative_slope)
    zero = x.dtype.type(0)
    relu = negative_slope == 0
    for i in prange(x.shape[0]):
        value = x[i]
        y[i] = value if value > 0 or value != value else (zero if relu else value * slope)


@cached_njit(**_PARALLEL)
def _leaky_relu_backward(dy, x, negative_slope, dx):
    """dx = dy if x > 0 else negative_slope·dy; at slope 0 exactly 0 where x <= 0, else dy"""
    slope = dy.dtype.type(negative_slope)
    zero = dy.dtype.type(0)
    relu = negative_slope == 0
    for i in prange(dy.shape[0]):
        if relu:
            dx[i] = zero if x[i] <= 0 else dy[i]
        else:
            dx[i] = dy[i] if x[i] > 0 else dy[i] * slope


@cached_njit(**_PARALLEL)
def _rmsprop_update(gradient, learning_rate, rho, epsilon, variable, velocity):
    """velocity = ρ·velocity + (1 − ρ)·g²; variable −= lr·g / √(velocity + ε), in place"""
    t = gradient.dtype.type
    keep, take, lr, eps = t(rho), t(1 - rho), t(learning_rate), t(epsilon)
    for i in prange(gradient.shape[0]):
        g = gradient[i]
        average = velocity[i] * keep + (g * g) * take
        velocity[i] = average
        variable[i] = variable[i] - (lr * g) / np.sqrt(average + eps)


@cached_njit(**_PARALLEL)
def _adam_update(gradient, step_size, beta_1, beta_2, epsilon, variable, momentum, velocity):
    """m += (g − m)(1 − β₁); v += (g² − v)(1 − β₂); variable −= step_size·m / (√v + ε), the increment in float64"""
    t = gradient.dtype.type
    take_1, take_2, eps = t(1 - beta_1), t(1 - beta_2), t(epsilon)
    for i in prange(gradient.shape[0]):
        g = gradient[i]
        first = momentum[i] + (g - momentum[i]) * take_1
        second = velocity[i] + (g * g - velocity[i]) * take_2
        momentum[i] = first
        velocity[i] = second
        variable[i] = variable[i] - (np.float64(first) * step_size) / np.float64(np.sqrt(second) + eps)


leaky_relu_forward = _on_threads(_leaky_relu_forward)
leaky_relu_backward = _on_threads(_leaky_relu_backward)
rmsprop_update = _on_threads(_rmsprop_update, outputs=2)
adam_update = _on_threads(_adam_update, outputs=3)
