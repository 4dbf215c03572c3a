"""Array memory for loops that make the same arrays again and again, as training steps do.

Through ``malloc``, the megabytes a step frees at the top of the heap go back to the OS at the
step's end and are faulted in again, page by page, in the next step: 800 page faults, 3.5 ms of
a 12 ms step of the tutorial model (20x20x3, batch 32, 1 thread). Inside
:func:`caching_allocator`, NumPy takes array data from a cache that keeps freed blocks of
64 KiB to 64 MiB (rounded up to a page) for the next array of that size, as PyTorch's caching
allocators do. The cache holds at most :func:`set_cache_limit` bytes (1 GiB by default) of freed
blocks, and keeps them after the block ends, for the next step; :func:`release_cached_memory`
gives them back (a block of a size not seen lately displaces the sizes used longest ago).
Arrays made inside the block stay valid after it; they go back to the cache, or to the OS,
whenever they are freed. Without the compiled extension the block changes nothing.

The kernels' own outputs (convolution, pooling, normalization and activation results and
gradients) come from the cache always, as PyTorch's come from its allocator: a loop that calls
a kernel and drops its last result reuses that result's block (tutorial conv1 forward, called
in turn with PyTorch's: 0.97 -> 0.47 ms, 370 -> 0 page faults a call). ``set_cache_limit(0)``
makes every freed block go back to the OS at once.
"""

from __future__ import annotations

import contextlib

import numpy as np

try:
    from . import _memory
except ImportError:  # the compiled extension did not build: NumPy's own allocator serves
    _memory = None

#: ``np.empty`` / ``np.zeros`` for the kernels' outputs: from the block cache where it is built
empty = np.empty if _memory is None else _memory.empty
zeros = np.zeros if _memory is None else _memory.zeros


@contextlib.contextmanager
def caching_allocator():
    """A ``with`` block in which NumPy allocates array data from the block cache (in this thread or
    asyncio context only: NumPy keeps its allocator in a context variable). Re-entrant.

    Examples
    --------
    >>> import numpy as np, cnnkernels
    >>> with cnnkernels.caching_allocator():
    ...     for step in range(3):
    ...         y = np.ones((256, 256), np.float32) * 2  # the second step reuses the first's blocks
    >>> float(y.sum())
    131072.0
    """
    if _memory is None:
        yield
        return
    previous = _memory.set_handler()
    try:
        yield
    finally:
        _memory.set_handler(previous)


def release_cached_memory() -> int:
    """Give the freed blocks the cache holds back to the OS; returns their bytes."""
    return 0 if _memory is None else _memory.release()


def cached_memory() -> int:
    """Bytes of freed blocks the cache holds, ready for the next arrays of their sizes."""
    return 0 if _memory is None else _memory.cached_bytes()


def set_cache_limit(limit: int) -> int:
    """The most bytes of freed blocks the cache may hold (0: none; it releases what it holds beyond
    the new limit); returns the previous limit."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"the cache limit must be a non-negative int of bytes; received limit={limit!r}")
    return 0 if _memory is None else _memory.set_limit(min(limit, 2**63 - 1))
