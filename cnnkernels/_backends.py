"""The one place a backend is chosen.

Backends, fastest first: ``cython`` (compiled at install), ``numba`` (JIT
twins of the Cython kernels) and ``numpy`` (the reference). Each is a module
exposing the same kernel functions (see :data:`KERNELS`). A backend that cannot
be loaded is left out of :func:`backends`; asking for it raises ``ValueError``
with the reason it failed to load. The default is the fastest available one,
or ``$CNNKERNELS_BACKEND`` when set.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
from types import SimpleNamespace

ORDER = ("cython", "numba", "numpy")
KERNELS = (
    "conv2d_forward",
    "conv2d_backward_data",
    "conv2d_backward_weight",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "channel_moments",
    "channel_sums",
    "channel_affine",
    "batch_norm_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "rmsprop_update",
    "adam_update",
)
# Kernels only some backends have; the plan (cnnkernels.plan) only picks what a backend offers.
OPTIONAL_KERNELS = ("rows_forward", "rows_backward_data", "direct_forward", "direct_backward_weight",
                    "pointwise_forward", "winograd_forward", "winograd_backward_weight", "conv2d_forward_columns",
                    "conv2d_forward_rows", "simd_isa", "winograd22_forward", "rows_matmul", "stream_matmul",
                    "relu_gradient_sums", "channels_last", "pixel_sums",
                    "pointwise_weight_channels_last", "pointwise_backward_weight",
                    "pointwise_weight_nhwc")
_MODULES = {
    "cython": ("cnnkernels._conv", "cnnkernels._pool", "cnnkernels._winograd", "cnnkernels._norm",
               "cnnkernels._activations"),
    "numba": ("cnnkernels.numba_kernels", "cnnkernels.numba_norm", "cnnkernels.numba_activations"),
    "numpy": ("cnnkernels.reference",),
}

_loaded: dict[str, SimpleNamespace] = {}
_failures: dict[str, str] = {}
_lock = threading.Lock()


class _ThreadState(threading.local):
    override = None  # a class default: a thread that never set it finds it without an AttributeError (3 µs a call)


_state = _ThreadState()  # per-thread override set by use_backend()
_default: str | None = None


class BackendUnavailableWarning(RuntimeWarning):
    """A faster backend could not be loaded; a slower one runs instead."""


def _load(name: str) -> SimpleNamespace | None:
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        return None
    with _lock:
        if name in _loaded or name in _failures:
            return _loaded.get(name)
        try:
            modules = [importlib.import_module(module_name) for module_name in _MODULES[name]]
            namespace = SimpleNamespace(name=name)
            for module in modules:
                for kernel in (*KERNELS, *OPTIONAL_KERNELS):
                    if hasattr(module, kernel):
                        setattr(namespace, kernel, getattr(module, kernel))
            missing = [k for k in KERNELS if not hasattr(namespace, k)]
            if missing:
                raise ImportError(f"kernels missing: {missing}")
        except Exception as exc:  # any import failure means "not available", with its reason
            _failures[name] = f"{type(exc).__name__}: {exc}"
            return None
        _loaded[name] = namespace
        return namespace


def backends() -> list[str]:
    """Names of the backends that load on this machine, fastest first."""
    return [name for name in ORDER if _load(name) is not None]


def _check_name(name) -> str:
    if not isinstance(name, str) or name.lower() not in ORDER:
        raise ValueError(f"backend must be one of {list(ORDER)}; received backend={name!r}")
    name = name.lower()
    if _load(name) is None:
        raise ValueError(f"backend {name!r} is not available: {_failures[name]}")
    return name


def _initial_default() -> str:
    requested = os.environ.get("CNNKERNELS_BACKEND", "").strip()
    if requested:
        try:
            return _check_name(requested)
        except ValueError as exc:
            raise ValueError(f"CNNKERNELS_BACKEND: {exc}") from None
    available = backends()
    skipped = ORDER[: ORDER.index(available[0])]
    if skipped:
        reasons = "; ".join(f"{name}: {_failures[name]}" for name in skipped)
        warnings.warn(
            f"cnnkernels is running on the {available[0]!r} backend ({reasons})",
            BackendUnavailableWarning,
            stacklevel=4,
        )
    return available[0]


def get_backend() -> str:
    """Name of the backend that runs when no ``backend=`` is given."""
    override = _state.override
    if override is not None:
        return override
    global _default
    if _default is None:
        _default = _initial_default()
    return _default


def set_backend(name: str) -> None:
    """Make ``name`` the default backend for this process."""
    global _default
    _default = _check_name(name)


@contextlib.contextmanager
def use_backend(name: str):
    """Run the ``with`` block on backend ``name`` (in this thread), then restore."""
    name = _check_name(name)
    previous = getattr(_state, "override", None)
    _state.override = name
    try:
        yield name
    finally:
        _state.override = previous


def kernels(backend: str | None = None) -> SimpleNamespace:
    """The kernel namespace for ``backend`` (None: the current default)."""
    name = get_backend() if backend is None else _check_name(backend)
    return _loaded[name]
