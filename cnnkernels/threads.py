"""One owner per thread pool: a single call sets OpenMP, Numba and BLAS threads.

The compiled backends parallelise over images with OpenMP / Numba ``prange``
and call BLAS *inside* those loops, so the BLAS they call (SciPy's OpenBLAS,
which ``scipy.linalg.cython_blas`` and Numba's ``np.dot`` both use) is kept
single-threaded: a threaded sgemm inside a parallel loop oversubscribes the
cores and runs several times slower. NumPy's own BLAS (the ``numpy`` backend,
and the user's matrix products) is given ``n`` threads by
:func:`set_num_threads`.
"""

from __future__ import annotations

import contextlib
import functools
import os

_num_threads: int | None = None
_kernel_blas_pinned = False


def _default_threads() -> int:
    for variable in ("CNNKERNELS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the kernels use (OpenMP and Numba), and NumPy's BLAS after :func:`set_num_threads`."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_threads()
    return _num_threads


def _blas_controllers(from_scipy: bool):
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    return [
        lib
        for lib in ThreadpoolController().lib_controllers
        if lib.user_api == "blas" and (("scipy.libs" in lib.filepath or "/scipy/" in lib.filepath) == from_scipy)
    ]


@functools.lru_cache(maxsize=1)
def _numpy_blas():
    """NumPy's BLAS controllers, looked up once (scanning the loaded libraries takes milliseconds)."""
    return tuple(_blas_controllers(from_scipy=False))


@contextlib.contextmanager
def numpy_blas_single_threaded():
    """Run the block with NumPy's BLAS on one thread, then restore it.

    For code that alternates NumPy matrix products with the parallel kernels (a
    network's dense and conv layers): a multi-threaded OpenBLAS keeps spinning
    after each call and takes the cores from the kernels that follow (measured
    here at 2 threads: a tutorial-model training step took 31 ms instead of 12.5).
    """
    controllers = _numpy_blas()
    previous = [lib.num_threads for lib in controllers]
    for lib in controllers:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, count in zip(controllers, previous):
            lib.set_num_threads(count)


def pin_kernel_blas() -> None:
    """Keep the BLAS called inside parallel kernels single-threaded (once per process)."""
    global _kernel_blas_pinned
    if _kernel_blas_pinned:
        return
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library to pin)

    for lib in _blas_controllers(from_scipy=True):
        lib.set_num_threads(1)
    _kernel_blas_pinned = True


def set_num_threads(n: int) -> None:
    """Set the thread count of every pool cnnkernels uses.

    Parameters
    ----------
    n : int
        Positive number of threads for the OpenMP (Cython) and Numba kernels
        and for NumPy's BLAS. SciPy's BLAS, called inside the parallel
        kernels, stays at one thread.
    """
    import numbers

    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"number of threads must be an int; received n={n!r}")
    if n < 1:
        raise ValueError(f"number of threads must be positive; received n={n!r}")
    global _num_threads
    _num_threads = int(n)
    from . import _backends

    for namespace in _backends.loaded():
        namespace.set_num_threads(_num_threads)
    for lib in _blas_controllers(from_scipy=False):
        lib.set_num_threads(_num_threads)
