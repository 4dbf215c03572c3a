"""Scratch memory and im2col blocking shared by the compiled backends.

A freshly touched 4 KiB page costs about a microsecond (a page fault), so the
compiled kernels reuse one scratch buffer per Python thread instead of
allocating tens of MB per call. The buffer only grows, and is bounded by the
blocking rule below, whatever the batch size.
"""

from __future__ import annotations

import threading

import numpy as np

# im2col block: at most this many elements per thread (8 MiB in float32), or one output row ...
BLOCK_ELEMENTS = 1 << 21
# ... and about this many output pixels: OpenBLAS sgemm on 16 filters x 288 rows ran at 80
# GFLOP/s with 1,024 columns and 48 GFLOP/s with 8,192 (the column block falls out of cache).
BLOCK_COLUMNS = 1024
# bytes: where scratch memory starts
CACHE_LINE = 64

_local = threading.local()


def block_rows(crs: int, P: int, Q: int) -> int:
    """Output rows per im2col block: max(1, min(P, BLOCK_COLUMNS // Q, BLOCK_ELEMENTS // (C/G·R·S·Q)))."""
    return max(1, min(P, BLOCK_COLUMNS // Q, BLOCK_ELEMENTS // (crs * Q)))


def scratch(count: int, dtype) -> np.ndarray:
    """A 1-D array of ``count`` elements of ``dtype`` in this thread's reusable buffer.

    The contents are garbage; the next call in the same thread reuses the memory.
    """
    dtype = np.dtype(dtype)
    nbytes = max(count * dtype.itemsize, 64)
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes:
        # on a cache line: NumPy aligns to 16 bytes, and every 64-byte vector load of a kernel then spans two lines
        memory = np.empty(nbytes + CACHE_LINE, dtype=np.uint8)
        start = -memory.ctypes.data % CACHE_LINE
        buffer = memory[start:start + nbytes]
        _local.buffer = buffer
    return buffer[: count * dtype.itemsize].view(dtype)
