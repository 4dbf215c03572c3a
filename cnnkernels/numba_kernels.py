"""Numba twins of the Cython kernels: same signatures, same algorithms.

Convolution is im2col with implicit zero padding + ``np.dot`` (BLAS), over work
items (image, group, block of output rows) in a ``prange``; each Numba thread
uses its own slice of a reusable scratch buffer (see cnnkernels._workspace for
the bound). Pooling loops over (image, channel) planes. Arguments arrive
validated from :mod:`cnnkernels.api`. Legend: N images, C channels, H×W input,
K filters, R×S kernel, P×Q output, G groups, Cg = C/G, Kg = K/G.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ._workspace import block_rows, scratch

_SERIAL = dict(cache=True, nogil=True, fastmath=False)
_PARALLEL = dict(cache=True, nogil=True, fastmath=False, parallel=True)


def set_num_threads(n: int) -> None:
    """Threads for Numba's parallel loops (capped at the pool Numba started with)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


# ----------------------------------------------------------------------------- im2col


@njit(**_SERIAL)
def _valid_range(offset, stride, size, count):
    """[lo, hi): the j in 0..count-1 with 0 <= j·stride + offset < size."""
    lo = 0
    hi = 0
    if offset < 0:
        lo = (-offset + stride - 1) // stride
    if size - 1 - offset >= 0:
        hi = (size - 1 - offset) // stride + 1
    lo = min(lo, count)
    hi = max(min(hi, count), lo)
    return lo, hi


@njit(**_SERIAL)
def _im2col(image, c0, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, rows, Q, col):
    """col[(c·R + r)·S + s, i·Q + q] = image[c0 + c, (p0+i)·sh + r·dh − pt, q·sw + s·dw − pl], 0 outside

    One 2-D slice copy per kernel offset: per-element loops with runtime strides
    compile to scalar code here (measured 4x slower)."""
    H, W = image.shape[1], image.shape[2]
    for c in range(Cg):
        for r in range(R):
            top = p0 * sh + r * dh - pt
            i_lo, i_hi = _valid_range(top, sh, H, rows)
            for s in range(S):
                offset = s * dw - pl
                lo, hi = _valid_range(offset, sw, W, Q)
                block = col[(c * R + r) * S + s].reshape(rows, Q)
                # zero only what padding covers: even an empty slice costs a few ns here
                if i_lo > 0:
                    block[:i_lo] = 0
                if i_hi < rows:
                    block[i_hi:] = 0
                if lo > 0:
                    block[i_lo:i_hi, :lo] = 0
                if hi < Q:
                    block[i_lo:i_hi, hi:] = 0
                if i_hi > i_lo and hi > lo:
                    block[i_lo:i_hi, lo:hi] = image[
                        c0 + c,
                        top + i_lo * sh : top + (i_hi - 1) * sh + 1 : sh,
                        offset + lo * sw : offset + (hi - 1) * sw + 1 : sw,
                    ]


@njit(**_SERIAL)
def _col2im(col, c0, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, rows, Q, image):
    """image[c0 + c, (p0+i)·sh + r·dh − pt, q·sw + s·dw − pl] += col[(c·R + r)·S + s, i·Q + q] (inside only)

    Element loops here: a 2-D slice "+=" measured 2x slower than this."""
    H, W = image.shape[1], image.shape[2]
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                offset = s * dw - pl
                lo, hi = _valid_range(offset, sw, W, Q)
                for i in range(rows):
                    ih = (p0 + i) * sh + r * dh - pt
                    if 0 <= ih < H:
                        for q in range(lo, hi):
                            image[c0 + c, ih, q * sw + offset] += col[row, i * Q + q]


# ----------------------------------------------------------------------------- convolution


@njit(**_PARALLEL)
def _conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, workspace):
    N = x.shape[0]
    K, Cg, R, S = w.shape
    P, Q = y.shape[2], y.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    blocks = (P + rows - 1) // rows
    filters = w.reshape(groups, Kg, CRS)
    out = y.reshape(N, K, P * Q)
    per_thread = CRS * rows * Q + Kg * rows * Q
    for item in prange(N * groups * blocks):
        n = item // (groups * blocks)
        g = (item // blocks) % groups
        p0 = (item % blocks) * rows
        nrows = min(rows, P - p0)
        L = nrows * Q
        mine = workspace[numba.get_thread_id() * per_thread :]
        col = mine[: CRS * L].reshape(CRS, L)
        product = mine[CRS * L : CRS * L + Kg * L].reshape(Kg, L)
        _im2col(x[n], g * Cg, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, nrows, Q, col)
        if groups == 1 and blocks == 1:  # the whole output image is one contiguous block
            np.dot(filters[g], col, out[n])
            target = out[n, :, :]
        else:
            np.dot(filters[g], col, product)
            target = out[n, g * Kg : (g + 1) * Kg, p0 * Q : p0 * Q + L]
            target[:] = product
        if b.size:
            for k in range(Kg):
                target[k] += b[g * Kg + k]


def conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]"""
    K, Cg, R, S = w.shape
    Q = y.shape[3]
    rows = block_rows(Cg * R * S, y.shape[2], Q)
    workspace = scratch(numba.get_num_threads() * (Cg * R * S + K // groups) * rows * Q, y.dtype)
    _conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, workspace)


@njit(**_PARALLEL)
def _conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, workspace):
    N = dx.shape[0]
    K, Cg, R, S = w.shape
    P, Q = dy.shape[2], dy.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    blocks = (P + rows - 1) // rows
    filters = w.reshape(groups, Kg, CRS)
    grad = dy.reshape(N, K, P * Q)
    per_thread = CRS * rows * Q + Kg * rows * Q
    # Blocks of one image overlap in dx, so one thread owns each (image, group).
    for item in prange(N * groups):
        n = item // groups
        g = item % groups
        mine = workspace[numba.get_thread_id() * per_thread :]
        dx[n, g * Cg : (g + 1) * Cg] = 0
        for block in range(blocks):
            p0 = block * rows
            L = min(rows, P - p0) * Q
            col = mine[: CRS * L].reshape(CRS, L)
            if groups == 1 and blocks == 1:  # dy of the image is already one contiguous block
                grad_block = grad[n]
            else:
                grad_block = mine[CRS * L : CRS * L + Kg * L].reshape(Kg, L)
                grad_block[:] = grad[n, g * Kg : (g + 1) * Kg, p0 * Q : p0 * Q + L]
            np.dot(filters[g].T, grad_block, col)
            _col2im(col, g * Cg, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, L // Q, Q, dx[n])


def conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, dx):
    """dx[n,c,h,w] = Σ_k,r,s dy[n,k,p,q] · w[k,c,r,s] over h = p*sh+r*dh-pt, w = q*sw+s*dw-pl"""
    K, Cg, R, S = w.shape
    Q = dy.shape[3]
    rows = block_rows(Cg * R * S, dy.shape[2], Q)
    workspace = scratch(numba.get_num_threads() * (Cg * R * S + K // groups) * rows * Q, dx.dtype)
    _conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, workspace)


@njit(**_PARALLEL)
def _conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, dweight, rows, workspace, partial):
    N = x.shape[0]
    K, Cg, R, S = dweight.shape
    P, Q = dy.shape[2], dy.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    blocks = (P + rows - 1) // rows
    grad = dy.reshape(N, K, P * Q)
    per_thread = CRS * rows * Q + Kg * rows * Q + Kg * CRS
    partial[:] = 0
    for item in prange(N * groups * blocks):
        n = item // (groups * blocks)
        g = (item // blocks) % groups
        p0 = (item % blocks) * rows
        nrows = min(rows, P - p0)
        L = nrows * Q
        tid = numba.get_thread_id()
        mine = workspace[tid * per_thread :]
        col = mine[: CRS * L].reshape(CRS, L)
        grad_block = mine[CRS * L : CRS * L + Kg * L].reshape(Kg, L)
        product = mine[CRS * L + Kg * L : CRS * L + Kg * L + Kg * CRS].reshape(Kg, CRS)
        _im2col(x[n], g * Cg, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, nrows, Q, col)
        if groups == 1 and blocks == 1:
            np.dot(grad[n], col.T, product)
        else:
            grad_block[:] = grad[n, g * Kg : (g + 1) * Kg, p0 * Q : p0 * Q + L]
            np.dot(grad_block, col.T, product)
        partial[tid, g] += product
    dweight[:] = partial.sum(axis=0).reshape(K, Cg, R, S)


def conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl]"""
    K, Cg, R, S = dweight.shape
    Q = dy.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    rows = block_rows(CRS, dy.shape[2], Q)
    threads = numba.get_num_threads()
    workspace = scratch(threads * ((CRS + Kg) * rows * Q + Kg * CRS), x.dtype)
    partial = np.empty((threads, groups, Kg, CRS), x.dtype)
    _conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, dweight, rows, workspace, partial)


# ----------------------------------------------------------------------------- pooling


@njit(**_SERIAL)
def _clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W):
    """Real rows [r0, r1) and columns [s0, s1) of window (p, q)."""
    return (
        max(p * sh - pt, 0),
        min(p * sh - pt + kh, H),
        max(q * sw - pl, 0),
        min(q * sw - pl + kw, W),
    )


@njit(**_SERIAL)
def _first_max(plane, r0, r1, s0, s1):
    """(h, w) of the window's first maximum in row-major order; the first NaN wins.
    Selects, not branches, on the comparison (random data would mispredict them)."""
    best_h, best_w = r0, s0
    top = plane[r0, s0]
    for h in range(r0, r1):
        for w in range(s0, s1):
            value = plane[h, w]
            if np.isnan(value):
                return h, w
            better = value > top
            best_h = h if better else best_h
            best_w = w if better else best_w
            top = value if better else top
    return best_h, best_w


@njit(**_SERIAL)
def _divisor(r0, r1, s0, s1, kh, kw, mode):
    if mode == 1:  # reference.DIVISOR_WINDOW
        return kh * kw
    if mode == 2:  # reference.DIVISOR_VALID
        return (r1 - r0) * (s1 - s0)
    return 1


@njit(**_PARALLEL)
def max_pool2d_forward(x, kh, kw, sh, sw, pt, pl, y):
    """y[n,c,p,q] = max over real cells (h, w) of window (p*sh-pt.., q*sw-pl..) of x[n,c,h,w]"""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for plane in prange(N * C):
        image, out = x[plane // C, plane % C], y[plane // C, plane % C]
        for p in range(P):
            r0, r1 = max(p * sh - pt, 0), min(p * sh - pt + kh, H)
            for q in range(Q):
                s0, s1 = max(q * sw - pl, 0), min(q * sw - pl + kw, W)
                # inlined _window_max: branch-free maximum, NaN if the window holds one
                top = image[r0, s0]
                nan_seen = False
                for h in range(r0, r1):
                    for w in range(s0, s1):
                        value = image[h, w]
                        nan_seen |= value != value
                        top = value if value > top else top
                out[p, q] = np.nan if nan_seen else top


@njit(**_PARALLEL)
def max_pool2d_backward(dy, x, kh, kw, sh, sw, pt, pl, dx):
    """dx[n,c,h,w] = Σ_p,q dy[n,c,p,q] · [(h, w) is the first maximum of window (p, q)]"""
    N, C, H, W = x.shape
    P, Q = dy.shape[2], dy.shape[3]
    for plane in prange(N * C):
        image, grad, out = x[plane // C, plane % C], dy[plane // C, plane % C], dx[plane // C, plane % C]
        out[:] = 0
        for p in range(P):
            for q in range(Q):
                r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W)
                h, w = _first_max(image, r0, r1, s0, s1)
                out[h, w] += grad[p, q]


@njit(**_PARALLEL)
def avg_pool2d_forward(x, kh, kw, sh, sw, pt, pl, divisor_mode, y):
    """y[n,c,p,q] = Σ real cells of window (p, q) of x[n,c] / divisor  (1, kh·kw or #real cells)"""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    for plane in prange(N * C):
        image, out = x[plane // C, plane % C], y[plane // C, plane % C]
        for p in range(P):
            for q in range(Q):
                r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W)
                total = image[r0, s0] * 0
                for h in range(r0, r1):
                    for w in range(s0, s1):
                        total += image[h, w]
                out[p, q] = total / _divisor(r0, r1, s0, s1, kh, kw, divisor_mode)


@njit(**_PARALLEL)
def avg_pool2d_backward(dy, kh, kw, sh, sw, pt, pl, divisor_mode, dx):
    """dx[n,c,h,w] = Σ over windows (p, q) containing (h, w) of dy[n,c,p,q] / divisor[p,q]"""
    N, C, H, W = dx.shape
    P, Q = dy.shape[2], dy.shape[3]
    for plane in prange(N * C):
        grad, out = dy[plane // C, plane % C], dx[plane // C, plane % C]
        out[:] = 0
        for p in range(P):
            for q in range(Q):
                r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W)
                share = grad[p, q] / _divisor(r0, r1, s0, s1, kh, kw, divisor_mode)
                for h in range(r0, r1):
                    for w in range(s0, s1):
                        out[h, w] += share
