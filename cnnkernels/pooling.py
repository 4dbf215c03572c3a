"""The public pooling API, as ``torch.nn.functional``'s: validate once (cnnkernels._args), pick the
backend, call its kernel.

Max pooling takes a dilation, ``ceil_mode`` and ``return_indices`` (flat ``h·W + w`` per plane,
as PyTorch's); average pooling ``ceil_mode`` and ``divisor_override``; ``max_unpool2d`` scatters
by those indices. Adaptive pooling follows PyTorch's window rule (start ⌊i·H/out⌋, end
⌈(i+1)·H/out⌉): when the output divides the input it is a plain pooling and runs the compiled
kernels; otherwise its windows differ in size and it is computed in NumPy (averages as two
matrix products, maxima window by window), the same for every backend.
"""

from __future__ import annotations

import functools

import numpy as np

from . import _args, _threads, memory
from ._backends import kernels
from ._unbatched import accepts_unbatched
from .reference import DIVISOR_ONE, DIVISOR_VALID, DIVISOR_WINDOW

_NO_INDICES = np.empty((0, 0, 0, 0), np.int64)


def _pool_threads(threads, x_shape, geometry):
    """Pooling's thread count: capped by its window cells (see _threads.MIN_POOL_CELLS_PER_THREAD)."""
    (P, Q), (kh, kw) = geometry.out_hw, geometry.kernel
    cells = float(x_shape[0]) * x_shape[1] * P * Q * kh * kw
    n_threads = _threads.for_work(_threads.resolve(threads), cells, _threads.MIN_POOL_CELLS_PER_THREAD)
    return _threads.under_load(n_threads)


def _setup(x, kernel_size, stride, padding, dilation=1, ceil_mode=False, copy=True):
    x = _args.as_input("x", x, 4) if copy else _args.check_array("x", x, 4)
    _args.check_nonempty("x", x)
    ceil_mode = _args.check_flag("ceil_mode", ceil_mode)
    key = (x.shape, x.dtype, kernel_size, stride, padding, dilation, ceil_mode)
    return x, _args.cached_if_plain(_checked_geometry, (kernel_size, stride, padding, dilation))(*key)


@functools.lru_cache(maxsize=256)
def _checked_geometry(x_shape, dtype, kernel_size, stride, padding, dilation, ceil_mode):
    """A pooling's validated geometry, computed once per shape and plain arguments (as the convolutions' plan:
    see cnnkernels.api); a call that raises is not cached."""
    geometry = _args.pool_geometry(x_shape, kernel_size, stride, padding, dilation, ceil_mode)
    _args.check_allocations(x_shape, x_shape[1], geometry, dtype)
    return geometry


def _window(geometry):
    return (*geometry.kernel, *geometry.stride, geometry.pad[0], geometry.pad[2])


@accepts_unbatched(batched_results=2)
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
               backend=None, threads=None):
    """2-D max pooling, NCHW: ``y[n,c,p,q] = max x[n,c,p·sh − pt + r·dh, q·sw − pl + s·dw]`` over real cells.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W) or (C, H, W), float32 or float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same"
        Padded cells never win; each side must be smaller than the kernel.
    dilation : int or (int, int)
        Distance between a window's taps.
    ceil_mode : bool
        Round the output size up (PyTorch's rule: the last window starts inside the input or
        its left padding).
    return_indices : bool
        Also return, per output, the flat index ``h·W + w`` of its window's first maximum.
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    y : ndarray, shape (N, C, P, Q), dtype of ``x``. NaN propagates.
    indices : ndarray of int64, like ``y`` (with ``return_indices``)
    """
    ops = kernels(backend)
    x, geometry = _setup(x, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = _args.check_flag("return_indices", return_indices)
    y = memory.empty((*x.shape[:2], *geometry.out_hw), x.dtype)
    indices = memory.empty(y.shape, np.int64) if return_indices else _NO_INDICES
    if x.shape[0]:
        ops.max_pool2d_forward(x, *_window(geometry), *geometry.dilation, _pool_threads(threads, x.shape, geometry),
                               y, indices)
    return (y, indices) if return_indices else y


@accepts_unbatched("dy")
def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, backend=None,
                        threads=None):
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its **first** maximum in
    row-major order (PyTorch's rule), so ties after a ReLU are deterministic.

    Returns
    -------
    dx : ndarray like ``x``
    """
    ops = kernels(backend)
    x, geometry = _setup(x, kernel_size, stride, padding, dilation, ceil_mode)
    dy = _args.check_grad("dy", dy, (*x.shape[:2], *geometry.out_hw), x.dtype)
    dx = memory.empty(x.shape, x.dtype)
    if x.shape[0]:
        ops.max_pool2d_backward(dy, x, *_window(geometry), *geometry.dilation,
                                _pool_threads(threads, x.shape, geometry), dx)
    return dx


def _divisor_mode(count_include_pad) -> int:
    return DIVISOR_WINDOW if _args.check_flag("count_include_pad", count_include_pad) else DIVISOR_VALID


def _override(divisor_override):
    if divisor_override is None:
        return None
    if not _args._is_int(divisor_override) or divisor_override == 0:
        raise ValueError(f"divisor_override must be a non-zero int; received divisor_override={divisor_override!r}")
    return int(divisor_override)


def _mean_pool(x, kernel_size, stride, padding, ceil_mode, divisor_mode, backend, threads):
    ops = kernels(backend)
    x, geometry = _setup(x, kernel_size, stride, padding, ceil_mode=ceil_mode)
    y = memory.empty((*x.shape[:2], *geometry.out_hw), x.dtype)
    if x.shape[0]:
        ops.avg_pool2d_forward(x, *_window(geometry), *geometry.padded_end, divisor_mode,
                               _pool_threads(threads, x.shape, geometry), y)
    return y


def _mean_pool_backward(dy, x, kernel_size, stride, padding, ceil_mode, divisor_mode, backend, threads):
    ops = kernels(backend)
    x, geometry = _setup(x, kernel_size, stride, padding, ceil_mode=ceil_mode, copy=False)  # shape and dtype only
    dy = _args.check_grad("dy", dy, (*x.shape[:2], *geometry.out_hw), x.dtype)
    dx = memory.empty(x.shape, x.dtype)
    if x.shape[0]:
        ops.avg_pool2d_backward(dy, *_window(geometry), *geometry.padded_end, divisor_mode,
                                _pool_threads(threads, x.shape, geometry), dx)
    return dx


@accepts_unbatched()
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend=None, threads=None):
    """2-D average pooling, NCHW: ``y[n,c,p,q] = Σ window / divisor``.

    The divisor is kh·kw when ``count_include_pad`` (PyTorch's default; with ``ceil_mode``, the
    part of the window inside the padded input), else the number of real (non-padding) cells
    in the window (Keras's "same"), or ``divisor_override`` when given. Other arguments as
    :func:`max_pool2d`.
    """
    divisor_override = _override(divisor_override)
    if divisor_override is not None:  # PyTorch's rule: the window's sum over the given divisor
        _args.check_flag("count_include_pad", count_include_pad)
        return _mean_pool(x, kernel_size, stride, padding, ceil_mode, DIVISOR_ONE, backend, threads) / \
            np.asarray(divisor_override, dtype=np.asarray(x).dtype)
    return _mean_pool(x, kernel_size, stride, padding, ceil_mode, _divisor_mode(count_include_pad), backend, threads)


@accepts_unbatched("dy")
def avg_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None, *, backend=None, threads=None):
    """Gradient of :func:`avg_pool2d`: ``dx[h,w] = Σ_windows∋(h,w) dy[p,q] / divisor[p,q]``."""
    divisor_override = _override(divisor_override)
    if divisor_override is not None:
        _args.check_flag("count_include_pad", count_include_pad)
        dy = _args.check_array("dy", dy, 4)
        return _mean_pool_backward(dy / np.asarray(divisor_override, dtype=dy.dtype), x, kernel_size, stride, padding,
                                   ceil_mode, DIVISOR_ONE, backend, threads)
    return _mean_pool_backward(dy, x, kernel_size, stride, padding, ceil_mode, _divisor_mode(count_include_pad),
                               backend, threads)


@accepts_unbatched()
def sum_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, *, backend=None, threads=None):
    """2-D sum pooling, NCHW: ``y[n,c,p,q] = Σ x[n,c,h,w]`` over window (p, q); padding adds zeros."""
    return _mean_pool(x, kernel_size, stride, padding, ceil_mode, DIVISOR_ONE, backend, threads)


@accepts_unbatched("dy")
def sum_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, ceil_mode=False, *, backend=None, threads=None):
    """Gradient of :func:`sum_pool2d`: ``dx[h,w] = Σ_windows∋(h,w) dy[p,q]``."""
    return _mean_pool_backward(dy, x, kernel_size, stride, padding, ceil_mode, DIVISOR_ONE, backend, threads)


# ----------------------------------------------------------------------------- unpooling


def _unpool_setup(x, indices, kernel_size, stride, padding, output_size):
    x = _args.as_input("x", x, 4)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu" or indices.shape != x.shape:
        raise TypeError(f"indices must be an integer ndarray shaped like x {x.shape}; received "
                        f"{getattr(indices, 'dtype', type(indices).__name__)} {getattr(indices, 'shape', '')}")
    kernel = _args.as_pair("kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else _args.as_pair("stride", stride, minimum=1)
    top, bottom, left, right = _args.normalise_padding(padding, (1, 1), kernel, stride, (1, 1))
    P, Q = x.shape[2:]
    default = ((P - 1) * stride[0] - top - bottom + kernel[0], (Q - 1) * stride[1] - left - right + kernel[1])
    if output_size is None:
        size = default
    else:
        size = tuple(int(v) for v in tuple(output_size)[-2:]) if isinstance(output_size, (tuple, list)) else None
        if size is None or len(size) != 2 or any(abs(s - d) >= st for s, d, st in zip(size, default, stride)):
            raise ValueError(f"output_size must be (H, W) within a stride of {default}; received "
                             f"output_size={output_size!r}")
    if min(size) < 1:
        raise ValueError(f"the unpooled output would be {size[0]}x{size[1]}; received kernel_size={kernel_size!r}, "
                         f"stride={stride}, padding={padding!r}")
    _args.check_allocation("the output", (*x.shape[:2], *size), x.dtype)
    flat = indices.reshape(*x.shape[:2], -1).astype(np.int64, copy=False)
    if flat.size and (flat.min() < 0 or flat.max() >= size[0] * size[1]):
        raise ValueError(f"indices must lie in [0, {size[0] * size[1]}) for a {size[0]}x{size[1]} output; received "
                         f"values from {flat.min()} to {flat.max()}")
    return x, flat, size


@accepts_unbatched("indices")
def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The partial inverse of :func:`max_pool2d`: each value goes to the cell its index names,
    every other cell is 0, as ``torch.nn.functional.max_unpool2d``.

    ``y[n, c].flat[indices[n, c, p, q]] = x[n, c, p, q]``; the output is
    ``(P−1)·sh − pt − pb + kh`` high (likewise wide) unless ``output_size`` says otherwise.
    """
    x, flat, size = _unpool_setup(x, indices, kernel_size, stride, padding, output_size)
    y = memory.zeros((*x.shape[:2], size[0] * size[1]), x.dtype)
    np.put_along_axis(y, flat, x.reshape(*x.shape[:2], -1), axis=2)
    return y.reshape(*x.shape[:2], *size)


@accepts_unbatched("dy", "indices")
def max_unpool2d_backward(dy, x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Gradient of :func:`max_unpool2d` with respect to ``x``: ``dx[n,c,p,q] = dy[n,c].flat[indices[n,c,p,q]]``."""
    x, flat, size = _unpool_setup(x, indices, kernel_size, stride, padding, output_size)
    dy = _args.check_grad("dy", dy, (*x.shape[:2], *size), x.dtype)
    return np.take_along_axis(dy.reshape(*x.shape[:2], -1), flat, axis=2).reshape(x.shape)


# ----------------------------------------------------------------------------- adaptive pooling


def _adaptive_setup(x, output_size):
    x = _args.as_input("x", x, 4)
    _args.check_nonempty("x", x)
    H, W = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) in (1, 2):
        size = [H if output_size[0] is None else output_size[0], W if output_size[-1] is None else output_size[-1]]
    else:
        size = [output_size, output_size]
    if not all(_args._is_int(s) and s >= 1 for s in size):
        raise ValueError(f"output_size must be positive ints (or None: the input's size); received "
                         f"output_size={output_size!r}")
    size = (int(size[0]), int(size[1]))
    _args.check_allocation("the output", (*x.shape[:2], *size), x.dtype)
    return x, size


def _bounds(size, out):
    """PyTorch's adaptive windows: [⌊i·size/out⌋, ⌈(i+1)·size/out⌉) for i < out."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def _divides(x, size):
    return x.shape[2] % size[0] == 0 and x.shape[3] % size[1] == 0


def _averaging(size, out, dtype):
    """The (out × size) matrix whose row i averages adaptive window i of an axis."""
    starts, ends = _bounds(size, out)
    matrix = np.zeros((out, size), dtype)
    for i, (a, b) in enumerate(zip(starts, ends)):
        matrix[i, a:b] = 1.0 / (b - a)
    return matrix


@accepts_unbatched()
def adaptive_avg_pool2d(x, output_size, *, backend=None, threads=None):
    """Average pooling to a given output size, as ``torch.nn.functional.adaptive_avg_pool2d``:
    output (i, j) averages rows [⌊i·H/P⌋, ⌈(i+1)·H/P⌉) and the columns likewise.

    ``output_size``: an int, or (P, Q) where None keeps the input's size. An output that divides
    the input is a plain average pooling (the compiled kernels); otherwise the windows differ in
    size and overlap, and the pooling is ``A_h · x · A_wᵀ`` with averaging matrices: two matrix
    products over the whole batch by NumPy's BLAS (measured 1.1 ms against 6.8 ms for running sums,
    and PyTorch's 2.4 ms, on 8x512x10x10 -> 7x7 at 1 thread).
    """
    x, size = _adaptive_setup(x, output_size)
    N, C, H, W = x.shape
    if size == (1, 1):  # global average pooling (every classifier head): one matrix-vector product
        return (x.reshape(N * C, H * W) @ np.ones(H * W, x.dtype) / np.asarray(H * W, x.dtype)).reshape(N, C, 1, 1)
    if _divides(x, size):
        return avg_pool2d(x, (H // size[0], W // size[1]), backend=backend, threads=threads)
    rows = np.tensordot(x, _averaging(H, size[0], x.dtype), axes=([2], [1]))  # (N, C, W, P)
    return np.ascontiguousarray(np.tensordot(rows, _averaging(W, size[1], x.dtype), axes=([2], [1])))


@accepts_unbatched("dy")
def adaptive_avg_pool2d_backward(dy, x, output_size, *, backend=None, threads=None):
    """Gradient of :func:`adaptive_avg_pool2d`: each window's gradient shared by its cells (``A_hᵀ · dy · A_w``)."""
    x_checked, size = _adaptive_setup(x, output_size)
    N, C, H, W = x_checked.shape
    if _divides(x_checked, size):
        return avg_pool2d_backward(dy, x_checked, (H // size[0], W // size[1]), backend=backend, threads=threads)
    dy = _args.check_grad("dy", dy, (N, C, *size), x_checked.dtype)
    columns = np.tensordot(dy, _averaging(W, size[1], dy.dtype), axes=([3], [0]))  # (N, C, P, W)
    cells = np.tensordot(columns, _averaging(H, size[0], dy.dtype), axes=([2], [0]))  # (N, C, W, H)
    return np.ascontiguousarray(cells.transpose(0, 1, 3, 2))


def _adaptive_argmax(x, size):
    """Max of each adaptive window and the flat h·W + w of its first maximum (the first NaN wins)."""
    N, C, H, W = x.shape
    (h0, h1), (w0, w1) = _bounds(H, size[0]), _bounds(W, size[1])
    y = memory.empty((N, C, *size), x.dtype)
    where = memory.empty((N, C, *size), np.int64)
    for i, (a, b) in enumerate(zip(h0, h1)):
        for j, (c, d) in enumerate(zip(w0, w1)):
            window = x[:, :, a:b, c:d].reshape(N, C, -1)
            at = np.argmax(window, axis=2)  # NumPy's argmax: the first maximum, or the first NaN
            y[:, :, i, j] = np.take_along_axis(window, at[..., None], axis=2)[..., 0]
            where[:, :, i, j] = (a + at // (d - c)) * W + c + at % (d - c)
    return y, where


@accepts_unbatched(batched_results=2)
def adaptive_max_pool2d(x, output_size, return_indices=False, *, backend=None, threads=None):
    """Max pooling to a given output size, as ``torch.nn.functional.adaptive_max_pool2d`` (windows
    as :func:`adaptive_avg_pool2d`'s); ``return_indices`` as :func:`max_pool2d`'s."""
    x, size = _adaptive_setup(x, output_size)
    return_indices = _args.check_flag("return_indices", return_indices)
    if _divides(x, size):
        kernel = (x.shape[2] // size[0], x.shape[3] // size[1])
        return max_pool2d(x, kernel, return_indices=return_indices, backend=backend, threads=threads)
    y, where = _adaptive_argmax(x, size)
    return (y, where) if return_indices else y


@accepts_unbatched("dy")
def adaptive_max_pool2d_backward(dy, x, output_size, *, backend=None, threads=None):
    """Gradient of :func:`adaptive_max_pool2d`: each window's gradient goes to its first maximum."""
    x, size = _adaptive_setup(x, output_size)
    if _divides(x, size):
        kernel = (x.shape[2] // size[0], x.shape[3] // size[1])
        return max_pool2d_backward(dy, x, kernel, backend=backend, threads=threads)
    dy = _args.check_grad("dy", dy, (*x.shape[:2], *size), x.dtype)
    _, where = _adaptive_argmax(x, size)
    N, C, H, W = x.shape
    dx = memory.zeros((N * C, H * W), x.dtype)
    np.add.at(dx, (np.arange(N * C)[:, None], where.reshape(N * C, -1)), dy.reshape(N * C, -1))
    return dx.reshape(x.shape)
