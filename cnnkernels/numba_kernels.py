"""Numba twins of the Cython kernels: same signatures, same algorithms.

Convolution is im2col with implicit zero padding + ``np.dot`` (BLAS), over work
items (image, group, block of output rows). The ``prange`` runs over ``slots``, one
per thread asked for: slot t takes items t, t + slots, ... and owns slice t of a
reusable scratch buffer (see cnnkernels._workspace for the bound), so no scratch is
indexed by Numba's internal thread id. Pooling loops over (image, channel) planes.
Every kernel takes ``n_threads``, set as Numba's thread count of the calling Python
thread for the call only (Numba's mask is per thread). Arguments arrive validated
from :mod:`cnnkernels.api`. Legend: N images, C channels, H×W input,
K filters, R×S kernel, P×Q output, G groups, Cg = C/G, Kg = K/G.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

import numba
import numpy as np
from numba import prange

from ._numba_cache import cached_njit
from ._workspace import block_rows, scratch

# compiled once per user, cached outside the installed package (see _numba_cache)
_SERIAL = dict(nogil=True, fastmath=False)
_PARALLEL = dict(nogil=True, fastmath=False, parallel=True)

_pool_lock = threading.Lock()
_pool_started = False


def _openmp_thread_counts():
    """(get, set) pairs of every OpenMP runtime already in the process that Numba's may share.
    RTLD_NOLOAD: a runtime that is not loaded is skipped, never loaded just to be looked at."""
    pairs = []
    mode = getattr(os, "RTLD_NOLOAD", 0) | ctypes.DEFAULT_MODE
    for name in (None, "libgomp.so.1", "libomp.so", "libiomp5.so"):
        try:
            library = ctypes.CDLL(name, mode=mode)
            pairs.append((library.omp_get_max_threads, library.omp_set_num_threads))
        except (OSError, AttributeError):
            continue
    return pairs


def _start_pool() -> None:
    """Start Numba's thread pool, leaving OpenMP's thread count as it found it.

    Numba's OpenMP layer calls ``omp_set_num_threads`` when it starts, in whichever OpenMP
    runtime the process loaded first — PyTorch's, if it was imported before: its
    ``get_num_threads()`` then changed from 1 to 2. The setting is restored here.
    """
    global _pool_started
    with _pool_lock:
        if _pool_started:
            return
        runtimes = _openmp_thread_counts()
        before = [get() for get, _ in runtimes]
        numba.np.ufunc.parallel._launch_threads()
        for (_, set_count), count in zip(runtimes, before):
            set_count(count)
        _pool_started = True


@contextlib.contextmanager
def _numba_threads(n_threads: int):
    """Numba's thread count of this Python thread is ``n_threads`` (capped) for the block only."""
    if not _pool_started:
        _start_pool()
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


# ----------------------------------------------------------------------------- im2col


@cached_njit(**_SERIAL)
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


@cached_njit(**_SERIAL)
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


@cached_njit(**_SERIAL)
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


@cached_njit(**_SERIAL)
def _decode(item, groups, blocks, rows, P):
    """(image, group, first output row, rows) of work item ``item``."""
    p0 = (item % blocks) * rows
    return item // (groups * blocks), (item // blocks) % groups, p0, min(rows, P - p0)


@cached_njit(**_SERIAL)
def _forward_item(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, item, mine):
    """One work item (image, group, block of output rows) of the forward pass, in scratch ``mine``."""
    N = x.shape[0]
    K, Cg, R, S = w.shape
    P, Q = y.shape[2], y.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    blocks = (P + rows - 1) // rows
    filters = w.reshape(groups, Kg, CRS)
    out = y.reshape(N, K, P * Q)
    n, g, p0, nrows = _decode(item, groups, blocks, rows, P)
    L = nrows * Q
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


@cached_njit(**_PARALLEL)
def _conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, slots, workspace):
    items = x.shape[0] * groups * ((y.shape[2] + rows - 1) // rows)
    per_slot = workspace.size // slots
    for slot in prange(slots):
        for item in range(slot, items, slots):
            _forward_item(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, item,
                          workspace[slot * per_slot : (slot + 1) * per_slot])


def conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, n_threads, y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]"""
    K, Cg, R, S = w.shape
    Q = y.shape[3]
    rows = block_rows(Cg * R * S, y.shape[2], Q)
    workspace = scratch(n_threads * (Cg * R * S + K // groups) * rows * Q, y.dtype)
    with _numba_threads(n_threads):
        _conv2d_forward(x, w, b, sh, sw, pt, pl, dh, dw, groups, y, rows, n_threads, workspace)


@cached_njit(**_SERIAL)
def _backward_data_item(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, item, mine):
    """dx of one (image, group): its row blocks overlap in dx, so one slot owns all of them."""
    N = dx.shape[0]
    K, Cg, R, S = w.shape
    P, Q = dy.shape[2], dy.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    blocks = (P + rows - 1) // rows
    filters = w.reshape(groups, Kg, CRS)
    grad = dy.reshape(N, K, P * Q)
    n = item // groups
    g = item % groups
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


@cached_njit(**_PARALLEL)
def _conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, slots, workspace):
    items = dx.shape[0] * groups
    per_slot = workspace.size // slots
    for slot in prange(slots):
        for item in range(slot, items, slots):
            _backward_data_item(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, item,
                                workspace[slot * per_slot : (slot + 1) * per_slot])


def conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, n_threads, dx):
    """dx[n,c,h,w] = Σ_k,r,s dy[n,k,p,q] · w[k,c,r,s] over h = p*sh+r*dh-pt, w = q*sw+s*dw-pl"""
    K, Cg, R, S = w.shape
    Q = dy.shape[3]
    rows = block_rows(Cg * R * S, dy.shape[2], Q)
    workspace = scratch(n_threads * (Cg * R * S + K // groups) * rows * Q, dx.dtype)
    with _numba_threads(n_threads):
        _conv2d_backward_data(dy, w, sh, sw, pt, pl, dh, dw, groups, dx, rows, n_threads, workspace)


@cached_njit(**_PARALLEL)
def _conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, R, S, rows, slots, workspace, partial):
    N, C = x.shape[0], x.shape[1]
    Cg = C // groups
    Kg, CRS = partial.shape[2], partial.shape[3]
    K = Kg * groups
    P, Q = dy.shape[2], dy.shape[3]
    blocks = (P + rows - 1) // rows
    grad = dy.reshape(N, K, P * Q)
    per_slot = workspace.size // slots
    partial[:] = 0
    # Slot t always sums items t, t + slots, ...: the result is reproducible at a given thread count.
    for slot in prange(slots):
        mine = workspace[slot * per_slot : (slot + 1) * per_slot]
        for item in range(slot, N * groups * blocks, slots):
            n, g, p0, nrows = _decode(item, groups, blocks, rows, P)
            L = nrows * Q
            col = mine[: CRS * L].reshape(CRS, L)
            product = mine[CRS * L + Kg * L : CRS * L + Kg * L + Kg * CRS].reshape(Kg, CRS)
            _im2col(x[n], g * Cg, Cg, R, S, sh, sw, pt, pl, dh, dw, p0, nrows, Q, col)
            if groups == 1 and blocks == 1:
                np.dot(grad[n], col.T, product)
            else:
                grad_block = mine[CRS * L : CRS * L + Kg * L].reshape(Kg, L)
                grad_block[:] = grad[n, g * Kg : (g + 1) * Kg, p0 * Q : p0 * Q + L]
                np.dot(grad_block, col.T, product)
            partial[slot, g] += product


def conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, n_threads, dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl]"""
    K, Cg, R, S = dweight.shape
    Q = dy.shape[3]
    Kg, CRS = K // groups, Cg * R * S
    rows = block_rows(CRS, dy.shape[2], Q)
    per_slot = (CRS + Kg) * rows * Q + Kg * CRS
    # one scratch buffer for the im2col blocks and the per-slot partial sums: reused across calls
    space = scratch(n_threads * (per_slot + groups * Kg * CRS), x.dtype)
    workspace = space[: n_threads * per_slot]
    partial = space[n_threads * per_slot :].reshape(n_threads, groups, Kg, CRS)
    with _numba_threads(n_threads):
        _conv2d_backward_weight(dy, x, sh, sw, pt, pl, dh, dw, groups, R, S, rows, n_threads, workspace, partial)
    dweight[:] = partial.sum(axis=0).reshape(K, Cg, R, S)


# ----------------------------------------------------------------------------- pooling


@cached_njit(**_SERIAL)
def _first_tap(origin, step):
    """The first tap t >= 0 with origin + t·step >= 0."""
    return 0 if origin >= 0 else (-origin + step - 1) // step


@cached_njit(**_SERIAL)
def _clip_window(p, q, kh, kw, sh, sw, pt, pl, dh, dw, H, W):
    """(h0, w0, r0, r1, s0, s1): taps r in [r0, r1) of rows h0 + r·dh are real, columns likewise."""
    h0, w0 = p * sh - pt, q * sw - pl
    r0, s0 = _first_tap(h0, dh), _first_tap(w0, dw)
    r1 = max(min(kh, (H - h0 + dh - 1) // dh), r0)
    s1 = max(min(kw, (W - w0 + dw - 1) // dw), s0)
    return h0, w0, r0, r1, s0, s1


@cached_njit(**_SERIAL)
def _first_max(plane, h0, w0, r0, r1, s0, s1, dh, dw):
    """Flat index h·W + w of the window's first maximum in row-major order; the first NaN wins.
    Selects, not branches, on the comparison (random data would mispredict them)."""
    W = plane.shape[1]
    best_h, best_w = h0 + r0 * dh, w0 + s0 * dw
    top = plane[best_h, best_w]
    for r in range(r0, r1):
        h = h0 + r * dh
        for s in range(s0, s1):
            w = w0 + s * dw
            value = plane[h, w]
            if np.isnan(value):
                return h * W + w
            better = value > top
            best_h = h if better else best_h
            best_w = w if better else best_w
            top = value if better else top
    return best_h * W + best_w


@cached_njit(**_SERIAL)
def _divisor(h0, w0, r0, r1, s0, s1, kh, kw, h_end, w_end, mode):
    if mode == 1:  # reference.DIVISOR_WINDOW: kh·kw within the padded input
        return (min(h0 + kh, h_end) - h0) * (min(w0 + kw, w_end) - w0)
    if mode == 2:  # reference.DIVISOR_VALID
        return (r1 - r0) * (s1 - s0)
    return 1


@cached_njit(**_PARALLEL)
def _max_pool2d_forward(x, kh, kw, sh, sw, pt, pl, dh, dw, y, indices):
    """y[n,c,p,q] = max over real taps (p·sh − pt + r·dh, q·sw − pl + s·dw) of x[n,c]; indices (if not
    empty) = the flat h·W + w of each window's first maximum"""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    with_indices = indices.size > 0
    for plane in prange(N * C):
        image, out = x[plane // C, plane % C], y[plane // C, plane % C]
        for p in range(P):
            for q in range(Q):
                h0, w0, r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, dh, dw, H, W)
                if with_indices:
                    at = _first_max(image, h0, w0, r0, r1, s0, s1, dh, dw)
                    out[p, q] = image[at // W, at % W]
                    indices[plane // C, plane % C, p, q] = at
                    continue
                # inlined: branch-free maximum, NaN if the window holds one
                top = image[h0 + r0 * dh, w0 + s0 * dw]
                nan_seen = False
                for r in range(r0, r1):
                    for s in range(s0, s1):
                        value = image[h0 + r * dh, w0 + s * dw]
                        nan_seen |= value != value
                        top = value if value > top else top
                out[p, q] = np.nan if nan_seen else top


@cached_njit(**_PARALLEL)
def _max_pool2d_backward(dy, x, kh, kw, sh, sw, pt, pl, dh, dw, dx):
    """dx[n,c,h,w] = Σ_p,q dy[n,c,p,q] · [(h, w) is the first maximum of window (p, q)]"""
    N, C, H, W = x.shape
    P, Q = dy.shape[2], dy.shape[3]
    for plane in prange(N * C):
        image, grad, out = x[plane // C, plane % C], dy[plane // C, plane % C], dx[plane // C, plane % C]
        out[:] = 0
        for p in range(P):
            for q in range(Q):
                h0, w0, r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, dh, dw, H, W)
                at = _first_max(image, h0, w0, r0, r1, s0, s1, dh, dw)
                out[at // W, at % W] += grad[p, q]


@cached_njit(**_PARALLEL)
def _avg_pool2d_forward(x, kh, kw, sh, sw, pt, pl, h_end, w_end, divisor_mode, y):
    """y[n,c,p,q] = Σ real cells of window (p, q) of x[n,c] / divisor  (1, kh·kw within the padded
    input, or #real cells)"""
    N, C, H, W = x.shape
    P, Q = y.shape[2], y.shape[3]
    zero = np.zeros(1, x.dtype)[0]  # the input's type; not cell * 0, which is NaN for ±inf
    for plane in prange(N * C):
        image, out = x[plane // C, plane % C], y[plane // C, plane % C]
        for p in range(P):
            for q in range(Q):
                h0, w0, r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, 1, 1, H, W)
                total = zero
                for h in range(h0 + r0, h0 + r1):
                    for w in range(w0 + s0, w0 + s1):
                        total += image[h, w]
                out[p, q] = total / _divisor(h0, w0, r0, r1, s0, s1, kh, kw, h_end, w_end, divisor_mode)


@cached_njit(**_PARALLEL)
def _avg_pool2d_backward(dy, kh, kw, sh, sw, pt, pl, h_end, w_end, divisor_mode, dx):
    """dx[n,c,h,w] = Σ over windows (p, q) containing (h, w) of dy[n,c,p,q] / divisor[p,q]"""
    N, C, H, W = dx.shape
    P, Q = dy.shape[2], dy.shape[3]
    for plane in prange(N * C):
        grad, out = dy[plane // C, plane % C], dx[plane // C, plane % C]
        out[:] = 0
        for p in range(P):
            for q in range(Q):
                h0, w0, r0, r1, s0, s1 = _clip_window(p, q, kh, kw, sh, sw, pt, pl, 1, 1, H, W)
                share = grad[p, q] / _divisor(h0, w0, r0, r1, s0, s1, kh, kw, h_end, w_end, divisor_mode)
                for h in range(h0 + r0, h0 + r1):
                    for w in range(w0 + s0, w0 + s1):
                        out[h, w] += share


def _on_threads(kernel, outputs=1):
    """``kernel`` with the kernel contract's ``n_threads`` argument (just before its ``outputs``
    output arrays), run on that many Numba threads."""

    def run(*args):
        n_threads = args[-1 - outputs]
        with _numba_threads(n_threads):
            kernel(*args[:-1 - outputs], *args[-outputs:])

    run.__doc__ = kernel.__doc__
    return run


max_pool2d_forward = _on_threads(_max_pool2d_forward, outputs=2)  # (y, indices)
max_pool2d_backward = _on_threads(_max_pool2d_backward)
avg_pool2d_forward = _on_threads(_avg_pool2d_forward)
avg_pool2d_backward = _on_threads(_avg_pool2d_backward)
