"""Images between the kernels' layout (N, C, H, W) and channels-last (N, H, W, C), as PyTorch's
``x.contiguous(memory_format=torch.channels_last)`` does in memory.

NumPy's copy of a transposed view walks one side with a stride of C or H·W floats: 60-70 µs for
(32, 16, 10, 10) float32, the tutorial model's Flatten. The compiled backend transposes each
image in 16 x 16 blocks in registers (AVX-512; 8 x 8 on AVX2), one image per thread. Other
dtypes (float64, byte-swapped float32, integers) and the other backends take NumPy's copy; the
result has the input's dtype.
"""

from __future__ import annotations

import numpy as np

from . import _threads, memory
from ._backends import kernels

# values per thread: below this a second thread costs more than it saves (a 50k-value transpose takes ~10 µs)
MIN_VALUES_PER_THREAD = 65_536


def _image_batch(name, x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images, 4-D; received shape {x.shape}")
    return x


def _transposed(x, rows, cols, out_shape, backend, threads):
    """Each image's (rows, cols) plane transposed: out[n, j, i] = x[n, i, j], as ``out_shape``."""
    ops = kernels(backend)
    # NumPy's copy where the compiled one does not pay: a narrow plane (3 channels) of a small batch, 13 µs
    # against NumPy's 10.5 at (32, 20, 20, 3) -> (32, 3, 20, 20)
    narrow = min(rows, cols) < 16 and x.size < MIN_VALUES_PER_THREAD
    if x.dtype != np.float32 or not hasattr(ops, "channels_last") or 0 in x.shape or narrow:
        return np.ascontiguousarray(x.reshape(x.shape[0], rows, cols).transpose(0, 2, 1)).reshape(out_shape)
    x = np.ascontiguousarray(x)  # a strided view: one copy first
    out = memory.empty(out_shape, x.dtype)
    n_threads = _threads.for_work(_threads.resolve(threads), float(x.size), MIN_VALUES_PER_THREAD)
    ops.channels_last(x.reshape(x.shape[0], rows, cols), _threads.under_load(n_threads),
                      out.reshape(x.shape[0], cols, rows))
    return out


def to_channels_last(x, *, backend=None, threads=None):
    """``y[n, h, w, c] = x[n, c, h, w]``: a C-contiguous (N, H, W, C) copy of an (N, C, H, W) batch.

    Parameters
    ----------
    x : ndarray, 4-D, any dtype (float32 runs the compiled transpose)
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    y : ndarray of shape (N, H, W, C), dtype of ``x``
    """
    x = _image_batch("x", x)
    N, C, H, W = x.shape
    return _transposed(x, C, H * W, (N, H, W, C), backend, threads)


def to_channels_first(x, *, backend=None, threads=None):
    """``y[n, c, h, w] = x[n, h, w, c]``: a C-contiguous (N, C, H, W) copy of an (N, H, W, C) batch, the
    inverse of :func:`to_channels_last` (the same arguments, dtypes and kernels)."""
    x = _image_batch("x", x)
    N, H, W, C = x.shape
    return _transposed(x, H * W, C, (N, C, H, W), backend, threads)
