"""NumPy reference kernels: the oracle every backend is tested against.

Readable first, vectorised second (``sliding_window_view`` + ``einsum``), so it
doubles as the ``numpy`` backend. The functions share the kernel signature of
the compiled backends: arguments are already validated and normalised by
:mod:`cnnkernels.api`, and each kernel writes into a preallocated output.

Zero padding is given as (top, left); bottom/right padding is whatever the
output size implies. Legend: N images, C channels, H×W input, K filters,
R×S kernel, P×Q output, G groups.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Divisor rules shared by avg/sum pooling kernels of every backend.
DIVISOR_ONE, DIVISOR_WINDOW, DIVISOR_VALID = 0, 1, 2


def _padded(x, pt, pl, height, width, fill=0.0):
    """x zero-padded (or ``fill``-padded) to ``height``×``width`` with (pt, pl) before."""
    N, C, H, W = x.shape
    xp = np.full((N, C, max(height, H + pt), max(width, W + pl)), fill, dtype=x.dtype)
    xp[:, :, pt : pt + H, pl : pl + W] = x
    return xp


def _conv_windows(x, R, S, sh, sw, pt, pl, dh, dw, P, Q):
    """(N, C, P, Q, R, S) view: windows[n,c,p,q,r,s] = xpad[n, c, p*sh + r*dh, q*sw + s*dw]."""
    span_h, span_w = (R - 1) * dh + 1, (S - 1) * dw + 1
    xp = _padded(x, pt, pl, (P - 1) * sh + span_h, (Q - 1) * sw + span_w)
    windows = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    return windows[:, :, : (P - 1) * sh + 1 : sh, : (Q - 1) * sw + 1 : sw, ::dh, ::dw]


def conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, n_threads, y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]"""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    P, Q = y.shape[2:]
    windows = _conv_windows(x, R, S, sh, sw, pt, pl, dh, dw, P, Q)
    windows = windows.reshape(N, groups, Cg, P, Q, R, S)
    wg = w.reshape(groups, K // groups, Cg, R, S)
    out = np.einsum("ngcpqrs,gkcrs->ngkpq", windows, wg, optimize=True)
    y[...] = out.reshape(N, K, P, Q)
    if b.size:
        y += b[None, :, None, None]


def conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, n_threads, dx):
    """dx[n,c,h,w] = Σ_k,r,s over (p,q) with h = p*sh+r*dh-pt, w = q*sw+s*dw-pl of dy[n,k,p,q] · w[k,c,r,s]"""
    N, C, H, W = dx.shape
    K, Cg, R, S = w.shape
    P, Q = dy.shape[2:]
    G, Kg = groups, K // groups
    dyg = dy.reshape(N, G, Kg, P, Q)
    wg = w.reshape(G, Kg, Cg, R, S)
    height = max((P - 1) * sh + (R - 1) * dh + 1, H + pt)
    width = max((Q - 1) * sw + (S - 1) * dw + 1, W + pl)
    dxp = np.zeros((N, G, Cg, height, width), dtype=dx.dtype)
    for r in range(R):
        for s in range(S):
            contribution = np.einsum("ngkpq,gkc->ngcpq", dyg, wg[:, :, :, r, s], optimize=True)
            rows = slice(r * dh, r * dh + (P - 1) * sh + 1, sh)
            cols = slice(s * dw, s * dw + (Q - 1) * sw + 1, sw)
            dxp[:, :, :, rows, cols] += contribution
    dx[...] = dxp[:, :, :, pt : pt + H, pl : pl + W].reshape(N, C, H, W)


def conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, n_threads, dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl]"""
    N, C, H, W = x.shape
    K, Cg, R, S = dweight.shape
    P, Q = dy.shape[2:]
    windows = _conv_windows(x, R, S, sh, sw, pt, pl, dh, dw, P, Q)
    windows = windows.reshape(N, groups, Cg, P, Q, R, S)
    dyg = dy.reshape(N, groups, K // groups, P, Q)
    out = np.einsum("ngkpq,ngcpqrs->gkcrs", dyg, windows, optimize=True)
    dweight[...] = out.reshape(K, Cg, R, S)


def _window_cells(H, W, kh, kw, sh, sw, pt, pl, P, Q, dh=1, dw=1):
    """Yield (r, s, rows, cols, valid) for each kernel tap: the input cell each window reads at
    that tap (rows p·sh − pt + r·dh), and whether it is a real cell (not padding)."""
    ih = np.arange(P)[:, None] * sh - pt
    iw = np.arange(Q)[None, :] * sw - pl
    for r in range(kh):
        for s in range(kw):
            rows, cols = ih + r * dh, iw + s * dw
            valid = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
            yield r, s, np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1), np.broadcast_to(valid, (P, Q))


def _max_pool_argmax(x, kh, kw, sh, sw, pt, pl, dh, dw, P, Q):
    """Max of each window and the flat (h*W + w) index of its first maximum in row-major order.

    Padding never wins; NaN wins over numbers (the first NaN), as ``np.max`` and
    ``np.argmax`` would have it.
    """
    N, C, H, W = x.shape
    best = np.full((N, C, P, Q), -np.inf, dtype=x.dtype)
    where = np.full((N, C, P, Q), -1, dtype=np.int64)
    for _, _, rows, cols, valid in _window_cells(H, W, kh, kw, sh, sw, pt, pl, P, Q, dh, dw):
        value = x[:, :, rows, cols]
        take = valid & ((where < 0) | (value > best) | (np.isnan(value) & ~np.isnan(best)))
        best = np.where(take, value, best)
        where = np.where(take, rows * W + cols, where)
    return best, where


def max_pool2d_forward(x, kh, kw, sh, sw, pt, pl, dh, dw, n_threads, y, indices):
    """y[n,c,p,q] = max over real taps (p·sh − pt + r·dh, q·sw − pl + s·dw) of x[n,c]; indices (if not
    empty) = the flat h·W + w of each window's first maximum"""
    best, where = _max_pool_argmax(x, kh, kw, sh, sw, pt, pl, dh, dw, *y.shape[2:])
    y[...] = best
    if indices.size:
        indices[...] = where


def max_pool2d_backward(dy, x, kh, kw, sh, sw, pt, pl, dh, dw, n_threads, dx):
    """dx[n,c,h,w] = Σ_p,q dy[n,c,p,q] · [ (h, w) is the first maximum of window (p, q) ]"""
    N, C, H, W = x.shape
    _, where = _max_pool_argmax(x, kh, kw, sh, sw, pt, pl, dh, dw, *dy.shape[2:])
    flat = np.zeros((N * C, H * W), dtype=dx.dtype)
    planes = np.arange(N * C)[:, None]
    np.add.at(flat, (planes, where.reshape(N * C, -1)), dy.reshape(N * C, -1))
    dx[...] = flat.reshape(N, C, H, W)


def _divisors(H, W, kh, kw, sh, sw, pt, pl, h_end, w_end, P, Q, divisor_mode, dtype):
    if divisor_mode == DIVISOR_ONE:
        return np.ones((P, Q), dtype)
    if divisor_mode == DIVISOR_WINDOW:  # kh·kw within the padded input (less only where ceil_mode runs past it)
        h0 = np.arange(P)[:, None] * sh - pt
        w0 = np.arange(Q)[None, :] * sw - pl
        return ((np.minimum(h0 + kh, h_end) - h0) * (np.minimum(w0 + kw, w_end) - w0)).astype(dtype)
    counts = sum(valid.astype(dtype) for *_, valid in _window_cells(H, W, kh, kw, sh, sw, pt, pl, P, Q))
    return counts


def avg_pool2d_forward(x, kh, kw, sh, sw, pt, pl, h_end, w_end, divisor_mode, n_threads, y):
    """y[n,c,p,q] = Σ real cells of window (p, q) of x[n,c] / divisor[p,q]  (divisor: 1, kh·kw within
    the padded input, or #real cells)"""
    N, C, H, W = x.shape
    P, Q = y.shape[2:]
    xp = _padded(x, pt, pl, (P - 1) * sh + kh, (Q - 1) * sw + kw)
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, : (P - 1) * sh + 1 : sh, : (Q - 1) * sw + 1 : sw]
    y[...] = windows.sum(axis=(4, 5)) / _divisors(H, W, kh, kw, sh, sw, pt, pl, h_end, w_end, P, Q, divisor_mode,
                                                  x.dtype)


def avg_pool2d_backward(dy, kh, kw, sh, sw, pt, pl, h_end, w_end, divisor_mode, n_threads, dx):
    """dx[n,c,h,w] = Σ over windows (p, q) containing (h, w) of dy[n,c,p,q] / divisor[p,q]"""
    N, C, H, W = dx.shape
    P, Q = dy.shape[2:]
    share = dy / _divisors(H, W, kh, kw, sh, sw, pt, pl, h_end, w_end, P, Q, divisor_mode, dy.dtype)
    dxp = np.zeros((N, C, max((P - 1) * sh + kh, H + pt), max((Q - 1) * sw + kw, W + pl)), dx.dtype)
    for r in range(kh):
        for s in range(kw):
            dxp[:, :, r : r + (P - 1) * sh + 1 : sh, s : s + (Q - 1) * sw + 1 : sw] += share
    dx[...] = dxp[:, :, pt : pt + H, pl : pl + W]


# ---------------------------------------------------------------------------- batch normalisation
# x, dy, y and dx are (N, C, L) views; the per-channel vectors are float64.


def channel_moments(x, n_threads, mean, variance):
    """mean[c] = Σ x[:, c] / (N·L);  variance[c] = Σ (x[:, c] − mean[c])² / (N·L)"""
    wide = x.astype(np.float64)
    mean[...] = wide.mean(axis=(0, 2))
    with np.errstate(invalid="ignore"):  # inf − inf: NaN is data here
        variance[...] = np.square(wide - mean[:, None]).mean(axis=(0, 2))


def channel_sums(x, n_threads, sums):
    """sums[c] = Σ x[:, c]"""
    sums[...] = x.sum(axis=(0, 2), dtype=np.float64)


def channel_affine(x, scale, shift, n_threads, y):
    """y[n,c,i] = x[n,c,i]·scale[c] + shift[c]"""
    y[...] = x * scale[:, None].astype(x.dtype) + shift[:, None].astype(x.dtype)


def batch_norm_backward(dy, x, mean, inv_std, gamma, batch_statistics, n_threads, dx, sums):
    """sums = (Σ dy, Σ dy·x̂) per channel with x̂ = (x − mean)·inv_std; dx = γ·inv_std·(dy − Σdy/m − x̂·Σdy·x̂/m)
    (m = N·L) when the statistics were the batch's, else γ·inv_std·dy; an empty dx is skipped"""
    x_hat = (x - mean[:, None]) * inv_std[:, None]
    sums[0] = dy.sum(axis=(0, 2), dtype=np.float64)
    sums[1] = (dy * x_hat).sum(axis=(0, 2))
    if dx.size:
        count = dy.shape[0] * dy.shape[2]
        centred = dy - sums[0][:, None] / count - x_hat * (sums[1][:, None] / count) if batch_statistics else dy
        dx[...] = (gamma * inv_std)[:, None] * centred


# ---------------------------------------------------------------------------- activations (flat arrays)


def leaky_relu_forward(x, negative_slope, n_threads, y):
    """y = x if x > 0 else negative_slope·x, and max(x, 0) at slope 0"""
    y[...] = np.maximum(x, 0) if negative_slope == 0 else np.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(dy, x, negative_slope, n_threads, dx):
    """dx = dy if x > 0 else negative_slope·dy; at slope 0 exactly 0 where x <= 0, else dy (NaN x too)"""
    if negative_slope == 0:
        dx[...] = np.where(x <= 0, 0, dy)
    else:
        dx[...] = np.where(x > 0, dy, dy * dy.dtype.type(negative_slope))


# ---------------------------------------------------------------------------- optimizer steps (flat arrays)


def rmsprop_update(gradient, learning_rate, rho, epsilon, n_threads, variable, velocity):
    """velocity = ρ·velocity + (1 − ρ)·g²; variable −= lr·g / √(velocity + ε), in place (Keras's RMSprop)"""
    t = gradient.dtype.type
    velocity *= t(rho)
    velocity += np.square(gradient) * t(1 - rho)
    variable -= (t(learning_rate) * gradient) / np.sqrt(velocity + t(epsilon))


def adam_update(gradient, step_size, beta_1, beta_2, epsilon, n_threads, variable, momentum, velocity):
    """m += (g − m)(1 − β₁); v += (g² − v)(1 − β₂); variable −= step_size·m / (√v + ε), in place, the
    increment in float64 (Keras's Adam, step_size = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ))"""
    t = gradient.dtype.type
    momentum += (gradient - momentum) * t(1 - beta_1)
    velocity += (np.square(gradient) - velocity) * t(1 - beta_2)
    variable -= (momentum * np.float64(step_size)) / (np.sqrt(velocity) + t(epsilon))
