"""Numba twins of the batch-normalisation kernels of :mod:`cnnkernels._norm` (same signatures).

x, dy, y and dx are (N, C, L) views; the per-channel vectors are float64; sums run in float64.
Parallel over channels, as the Cython kernels.
"""

from __future__ import annotations

from numba import prange

from ._numba_cache import cached_njit
from .numba_kernels import _PARALLEL, _on_threads


@cached_njit(**_PARALLEL)
def _channel_moments(x, mean, variance):
    """mean[c] = Σ x[:, c] / (N·L);  variance[c] = Σ (x[:, c] − mean[c])² / (N·L)  (two passes)"""
    N, C, L = x.shape
    count = float(N * L)
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for i in range(L):
                total += x[n, c, i]
        centre = total / count
        spread = 0.0
        for n in range(N):
            for i in range(L):
                deviation = x[n, c, i] - centre
                spread += deviation * deviation
        mean[c] = centre
        variance[c] = spread / count


@cached_njit(**_PARALLEL)
def _channel_sums(x, sums):
    """sums[c] = Σ x[:, c]"""
    N, C, L = x.shape
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for i in range(L):
                total += x[n, c, i]
        sums[c] = total


@cached_njit(**_PARALLEL)
def _channel_affine(x, scale, shift, y):
    """y[n,c,i] = x[n,c,i]·scale[c] + shift[c]"""
    N, C, L = x.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        a, b = x.dtype.type(scale[c]), x.dtype.type(shift[c])
        for i in range(L):
            y[n, c, i] = x[n, c, i] * a + b


@cached_njit(**_PARALLEL)
def _batch_norm_backward(dy, x, mean, inv_std, gamma, batch_statistics, dx, sums):
    """sums = (Σ dy, Σ dy·x̂) per channel; dx = γ·inv_std·(dy − Σdy/m − x̂·Σdy·x̂/m), or
    γ·inv_std·dy for constant statistics; an empty dx is skipped"""
    N, C, L = dy.shape
    count = float(N * L)
    for c in prange(C):
        centre, spread = x.dtype.type(mean[c]), x.dtype.type(inv_std[c])
        sum_dy = 0.0
        sum_dy_x_hat = 0.0
        for n in range(N):
            for i in range(L):
                sum_dy += dy[n, c, i]
                sum_dy_x_hat += dy[n, c, i] * ((x[n, c, i] - centre) * spread)
        sums[0, c] = sum_dy
        sums[1, c] = sum_dy_x_hat
        if dx.shape[0] == 0:
            continue
        factor = x.dtype.type(gamma[c] * inv_std[c])
        mean_dy = x.dtype.type(sum_dy / count if batch_statistics else 0.0)
        mean_dy_x_hat = x.dtype.type(sum_dy_x_hat / count if batch_statistics else 0.0)
        for n in range(N):
            for i in range(L):
                dx[n, c, i] = factor * (dy[n, c, i] - mean_dy - (x[n, c, i] - centre) * spread * mean_dy_x_hat)


channel_moments = _on_threads(_channel_moments, outputs=2)  # (mean, variance)
channel_sums = _on_threads(_channel_sums)
channel_affine = _on_threads(_channel_affine)
batch_norm_backward = _on_threads(_batch_norm_backward, outputs=2)  # (dx, sums)
