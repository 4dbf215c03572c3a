"""Thread counts, resolved once per call and passed to the kernels; BLAS kept out of their way.

Every public function resolves ``n_threads`` once (:func:`resolve`): its ``threads=``
argument, else the innermost ``with cnnkernels.threads(n):`` of the calling Python thread,
else the process default (:func:`set_num_threads`, ``$CNNKERNELS_NUM_THREADS``,
``$OMP_NUM_THREADS``, the CPUs this process may run on). The plan then caps it by the work
(:func:`for_work`) and the kernels receive it as an argument: no kernel module holds a
thread count, so two Python threads asking for different counts both get theirs.

The compiled kernels call BLAS inside their parallel loops; a threaded sgemm there
oversubscribes the cores (measured several times slower), so SciPy's BLAS, the one they
call, is held at one thread *while a kernel runs* (:data:`kernel_blas`) and given back its
own setting after: nothing outside a call changes another library's threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import numbers
import os
import threading
import time

# Below these amounts of work per thread a parallel loop costs more than it saves (waking the
# other thread, splitting tiles into smaller blocks). Measured with `python -m bench.split`
# (1 vs 2 threads, interleaved medians): 3x3 convolutions of 4.7 MFLOP ran 1.05x slower on
# 2 threads, of 7.4 MFLOP 1.2x faster, of 59 MFLOP 1.3-1.5x; 2x2 max pooling of 2k window
# cells ran level, of 8k cells 1.1x faster, of 33k 1.4x faster.
MIN_FLOPS_PER_THREAD = 3_000_000
MIN_POOL_CELLS_PER_THREAD = 4_000

_process_default: int | None = None
_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("cnnkernels_threads", default=None)


def _check_count(n, name="n") -> int:
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"number of threads must be an int; received {name}={n!r}")
    if n < 1:
        raise ValueError(f"number of threads must be positive; received {name}={n!r}")
    return int(n)


def _default_threads() -> int:
    for variable in ("CNNKERNELS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(variable, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return _cpu_count()


def get_num_threads() -> int:
    """Threads a call made now from this Python thread would use (before the plan caps it by its work)."""
    override = _override.get()
    if override is not None:
        return override
    global _process_default
    if _process_default is None:
        _process_default = _default_threads()
    return _process_default


def set_num_threads(n: int) -> None:
    """Set the process-wide default number of threads of the kernels, and of NumPy's BLAS.

    Parameters
    ----------
    n : int
        Positive number of threads. Calls with ``threads=`` and ``with threads(m):``
        blocks still use theirs. NumPy's BLAS (the ``numpy`` backend and your own matrix
        products) is set to ``n`` too, because you asked; SciPy's is left alone.
    """
    global _process_default
    _process_default = _check_count(n)
    for lib in _blas_controllers(from_scipy=False):
        lib.set_num_threads(_process_default)


@contextlib.contextmanager
def threads(n: int):
    """Run the ``with`` block's kernel calls on ``n`` threads (in this Python thread only).

    >>> with cnnkernels.threads(1):
    ...     y = cnnkernels.conv2d(x, w)   # doctest: +SKIP
    """
    token = _override.set(_check_count(n))
    try:
        yield
    finally:
        _override.reset(token)


def resolve(threads=None) -> int:
    """The thread count of one call: its ``threads=`` argument, else :func:`get_num_threads`."""
    return get_num_threads() if threads is None else _check_count(threads, "threads")


def for_work(n_threads: int, flops: float, per_thread: float | None = None) -> int:
    """At most ``n_threads``, and no more than give each ``per_thread`` of the work
    (default :data:`MIN_FLOPS_PER_THREAD`)."""
    return max(1, min(n_threads, int(flops // (per_thread or MIN_FLOPS_PER_THREAD))))


# ----------------------------------------------------------------------------- load

# How long one look at the run queue is trusted: reading it costs ~80 µs, a call ~0.1-10 ms.
LOAD_TTL_SECONDS = 0.05
_load_lock = threading.Lock()
# (monotonic time, CPUs other programs kept busy in the last two looks, whether the user lets threads adapt)
_load_seen = (-1.0, 0, True)
_last_look = 0


def _adapts_to_load() -> bool:
    """On unless the user asked OpenMP for fixed teams (OMP_DYNAMIC=false) or turned it off."""
    for variable in ("CNNKERNELS_DYNAMIC_THREADS", "OMP_DYNAMIC"):
        value = os.environ.get(variable, "").strip().lower()
        if value:
            return value not in ("0", "false", "no", "off")
    return True


def _runnable_elsewhere() -> int:
    """Threads of other processes runnable right now: the kernel's run queue (/proc/loadavg's
    4th field counts every runnable thread) minus this process's running threads."""
    with open("/proc/loadavg", "rb") as f:
        running = int(f.read().split()[3].split(b"/")[0])
    ours = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread ended meanwhile
            continue
        ours += stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R"
    return max(0, running - ours)


def under_load(n_threads: int) -> int:
    """``n_threads``, or fewer when other programs keep the CPUs busy.

    OpenMP ends every parallel loop at a barrier: with 2 threads on 2 busy cores, each call
    waits for the thread the OS has descheduled, and a 3.5 ms convolution took 60 ms
    (``python -m bench.busy``). With as many threads as CPUs left free (at least 1) it takes
    what one thread takes. Linux only; elsewhere, and with OMP_DYNAMIC=false or
    CNNKERNELS_DYNAMIC_THREADS=0, ``n_threads`` is returned. The run queue and these two
    switches are read at most every LOAD_TTL_SECONDS (a change to them counts from the next look).
    """
    global _load_seen, _last_look
    if n_threads <= 1:
        return n_threads
    now = time.monotonic()
    seen_at, elsewhere, adapts = _load_seen
    if now - seen_at > LOAD_TTL_SECONDS:  # the switches are read with the run queue: 1.3 µs a call otherwise
        with _load_lock:
            adapts = _adapts_to_load()
            look = 0
            if adapts:
                try:
                    look = _runnable_elsewhere()
                except (OSError, ValueError, IndexError):  # no /proc: not Linux
                    pass
            # Busy in two looks in a row: one look catches a kernel worker or a process waking for
            # a moment (measured: 4% of looks on an idle machine), sustained load shows in both.
            elsewhere = min(look, _last_look)
            _last_look = look
            _load_seen = (now, elsewhere, adapts)
    return max(1, min(n_threads, _cpu_count() - elsewhere)) if adapts else n_threads


@functools.lru_cache(maxsize=1)
def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- BLAS


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


class _SingleThreadedBlas:
    """A re-entrant, thread-safe ``with`` block holding some BLAS libraries at one thread.

    The first block to enter (in any Python thread) saves their settings and sets 1; the
    last to leave restores them, so overlapping blocks in several threads never restore a
    setting another block still relies on, and nothing outlives the blocks.
    """

    def __init__(self, find_controllers):
        self._find_controllers = find_controllers
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []

    @functools.cached_property
    def _controllers(self):  # scanning the loaded libraries takes milliseconds: once
        return tuple(self._find_controllers())

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = [(lib, lib.num_threads) for lib in self._controllers]
                for lib, count in self._saved:
                    if count != 1:
                        lib.set_num_threads(1)
            self._depth += 1
        return self

    def __call__(self):  # `with numpy_blas_single_threaded():` reads as the function it used to be
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, count in self._saved:
                    if count != 1:
                        lib.set_num_threads(count)
                self._saved = []
        return False


def _scipy_blas():
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library the kernels call)

    return _blas_controllers(from_scipy=True)


#: The BLAS the compiled kernels call (SciPy's), at one thread while a kernel runs.
kernel_blas = _SingleThreadedBlas(_scipy_blas)

#: NumPy's BLAS at one thread for a block of code, e.g. a training step that alternates
#: NumPy matrix products with the parallel kernels: a multi-threaded OpenBLAS keeps spinning
#: after each call and takes the cores from the kernels that follow (measured here at
#: 2 threads: a tutorial-model training step took 31 ms instead of 12.5).
numpy_blas_single_threaded = _SingleThreadedBlas(lambda: _blas_controllers(from_scipy=False))
