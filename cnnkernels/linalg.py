"""Matrix products on the kernels' own threads: ``matmul``, for dense layers.

NumPy's ``@`` runs on BLAS, whose threads a training loop holds at one while the convolutions'
OpenMP threads own the cores (OpenBLAS's workers spin after each call, against them). Here a
float32 product runs on the backend's threads instead: with few rows (a batch through a dense layer),
b's rows stream past a's broadcast values where they lie (``stream_matmul``, AVX-512); otherwise
with the register-blocked kernel of the convolutions' row products, the rows of one operand
streaming past the other packed in panels of 16 columns (``rows_matmul``).
"""

from __future__ import annotations

import numpy as np

from . import _args, _threads, memory
from ._backends import kernels

# Below this many flops (2·M·N·K) NumPy's call is faster: the packing, and a parallel region's start (~10 µs)
MIN_FLOPS = 2_000_000
# The kernel's blocks add up K products between loading and storing their sums: below 64, OpenBLAS's (one
# thread) was faster even against 2 threads (measured, float32: (1600 x 32)·(32 x 100) 87 / 110 µs at 1 / 2
# threads against 82-89)
MIN_REDUCTION = 64
# The packed operand is read again by every block of rows, so it must stay in L2 (1 MiB here): a (32 x 40000)
# ·(40000 x 100) product streaming 18 MB of packed columns per block took 2.2x OpenBLAS's time
MAX_PACKED_FLOATS = 1 << 18
# Products of at most this many rows read b where it lies (stream_matmul), when it is C-contiguous and fits in L2:
# packing b cost as much as the product. Measured (1600 x 100 b, 1 / 2 threads, µs): 32 rows 72 / 44 against 94 /
# 100 packed or OpenBLAS, 64 rows 141-153 / 95 against 137-150 / 133-140; 128 rows (317 / 189 against 222 / 217) and
# a 4096 x 512 b (8 MB, read from memory by every block of 6 rows: 3.6 ms against 0.9) lose
MAX_STREAMED_ROWS = 64
MIN_STREAMED_FLOPS = 200_000  # (32 x 512)·(512 x 10), 0.3 MFLOP: 5-6 µs against OpenBLAS's 8-9
# A streamed operand that is not C-contiguous is copied first (NumPy, one thread): only small ones
MAX_COPIED_FLOATS = 1 << 16


def _matrix(name, array) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(array).__name__}")
    if array.dtype.newbyteorder("=") not in _args.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; received dtype={array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D; received {name}.ndim={array.ndim} with shape {array.shape}")
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


def _packable(array) -> bool:
    return array.strides[0] > 0 and array.strides[1] > 0


def _way(a, b) -> str | None:
    """How to run a·b on the kernel: "straight" (stream a's rows, pack b), "turned" ((bᵀ·aᵀ)ᵀ: stream bᵀ's rows,
    pack aᵀ, write the product transposed), or None when neither way keeps the packed operand in L2 and the
    streamed one C-contiguous or small; of two ways, the one that copies and gathers less."""
    def cost(streamed, packed, extra):
        if packed.size > MAX_PACKED_FLOATS or not _packable(packed):
            return None
        copy = 0 if streamed.flags.c_contiguous else streamed.size
        if copy > MAX_COPIED_FLOATS:
            return None
        gather = 1 if packed.strides[1] == packed.itemsize else 4  # a column stride of 1 packs 16 floats at once
        return 4 * copy + gather * packed.size + extra

    ways = {"straight": cost(a, b, 0), "turned": cost(b.T, a.T, a.shape[0] * b.shape[1])}
    usable = {way: value for way, value in ways.items() if value is not None}
    return min(usable, key=usable.get) if usable else None


def matmul(a, b, *, backend=None, threads=None):
    """``a @ b`` for two matrices, float32 on the backend's threads.

    ``out[i, j] = Σ_k a[i, k] · b[k, j]``, summed in the operands' dtype. Either operand may
    be a transposed view (``x.T``): the product is taken the way round that copies least.
    At most ``MAX_STREAMED_ROWS`` rows times a C-contiguous ``b`` that fits in L2 run with b's
    rows read where they lie (AVX-512), on any thread count, from ``MIN_STREAMED_FLOPS``.
    Otherwise NumPy's ``@`` (BLAS) runs instead for float64 (and a float32 operand with a float64
    one, which gives float64, as NumPy's), for the backends without the kernels (numba, numpy) and
    where it measured faster: products under ``MIN_FLOPS``, reductions shorter than
    ``MIN_REDUCTION``, one thread unless ``b`` is a transposed view, and operands that would not
    stay in cache (see ``_way``).

    Parameters
    ----------
    a : ndarray, shape (M, K), float32 or float64
    b : ndarray, shape (K, N), float32 or float64
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    out : ndarray, shape (M, N), C-contiguous, of the operands' promoted dtype
    """
    a, b = _matrix("a", a), _matrix("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a's columns must match b's rows; received a of shape {a.shape}, b of shape {b.shape}")
    (M, K), N = a.shape, b.shape[1]
    ops = kernels(backend)
    flops = 2.0 * M * N * K
    n_threads = _threads.for_work(_threads.resolve(threads), flops)
    if (a.dtype == b.dtype == np.float32 and hasattr(ops, "stream_matmul") and flops >= MIN_STREAMED_FLOPS
            and M <= MAX_STREAMED_ROWS and b.size <= MAX_PACKED_FLOATS and b.flags.c_contiguous and _packable(a)
            and max(M, K, N) <= _args.MAX_EXTENT):
        out = memory.empty((M, N), np.float32)
        if ops.stream_matmul(a, b, _threads.under_load(n_threads), out):
            return out
    way = None
    # On one thread OpenBLAS's call is as fast or faster ((32 x 1600)·(1600 x 100): 100 µs against 116), unless b
    # is a transposed view ((32 x 100)·(1600 x 100)ᵀ: 124-130 µs against 80)
    if (a.dtype == b.dtype == np.float32 and hasattr(ops, "rows_matmul") and flops >= MIN_FLOPS
            and K >= MIN_REDUCTION and (n_threads > 1 or not b.flags.c_contiguous)
            and max(M, K, N) <= _args.MAX_EXTENT):  # every index fits the kernels' ints
        way = _way(a, b)
    if way is None:
        return np.matmul(a, b)
    out = memory.empty((M, N), np.float32)
    n_threads = _threads.under_load(n_threads)
    if way == "turned":
        ops.rows_matmul(np.ascontiguousarray(b.T), a.T, n_threads, out, True)
    else:
        ops.rows_matmul(np.ascontiguousarray(a), b, n_threads, out, False)
    return out
