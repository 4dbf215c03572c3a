"""The caching allocator's Python face (simd/block_cache.c): its NumPy memory handler and its cache.

:mod:`cnnkernels.memory` makes it the allocator of a ``with`` block; the kernels make their outputs
with :func:`empty` and :func:`zeros`, from the cache whatever the caller's allocator.
"""

import numpy as np

from cpython.pycapsule cimport PyCapsule_New

cimport numpy as cnp

cnp.import_array()

cdef extern from "simd/block_cache.h" nogil:
    int cnnk_block_cache_init()
    void* cnnk_block_cache_handler()
    size_t cnnk_block_cache_release()
    size_t cnnk_block_cache_bytes()
    size_t cnnk_block_cache_set_limit(size_t limit)

cdef extern from "numpy/arrayobject.h":
    object PyDataMem_SetHandler(object handler)

if cnnk_block_cache_init() != 0:
    raise MemoryError("cnnkernels: could not allocate the block cache's lock")

_HANDLER = PyCapsule_New(cnnk_block_cache_handler(), "mem_handler", NULL)


def set_handler(handler=None):
    """Make ``handler`` (a "mem_handler" capsule; None: the block cache) NumPy's allocator in this context;
    returns the one it replaces."""
    return PyDataMem_SetHandler(_HANDLER if handler is None else handler)


cdef object _from_cache(make, shape, dtype):
    previous = PyDataMem_SetHandler(_HANDLER)
    try:
        return make(shape, dtype)
    finally:
        PyDataMem_SetHandler(previous)


def empty(shape, dtype):
    """``np.empty(shape, dtype)`` with its data from the block cache."""
    return _from_cache(np.empty, shape, dtype)


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)`` with its data from the block cache."""
    return _from_cache(np.zeros, shape, dtype)


def release() -> int:
    """Give every cached block back to the system; returns the bytes released."""
    return cnnk_block_cache_release()


def cached_bytes() -> int:
    """Bytes of freed blocks the cache holds."""
    return cnnk_block_cache_bytes()


def set_limit(size_t limit) -> int:
    """The most bytes the cache may hold (freeing the sizes used longest ago beyond it); returns the previous
    limit."""
    return cnnk_block_cache_set_limit(limit)

