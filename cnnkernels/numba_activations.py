"""Numba twins of the activation kernels of :mod:`cnnkernels._activations` (same signatures)."""

from __future__ import annotations

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


leaky_relu_forward = _on_threads(_leaky_relu_forward)
leaky_relu_backward = _on_threads(_leaky_relu_backward)
