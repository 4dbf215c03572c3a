"""Where the Numba kernels keep their compiled code: a per-user cache folder, never the installed package.

Numba's ``cache=True`` writes next to the source when it can, i.e. into
``site-packages/cnnkernels/__pycache__``: the folder then outlives an uninstall
and, left as an empty namespace package, hides a later editable install. Our
dispatchers get a cache of their own instead, whose locators are, in order:
``$NUMBA_CACHE_DIR`` when the user set it (Numba's own rule), then
``<user cache>/cnnkernels/numba`` (``$XDG_CACHE_HOME`` or ``~/.cache`` on
Linux, Numba's ``appdirs`` elsewhere). Nothing global changes: other
libraries' Numba functions cache as they always did.
"""

from __future__ import annotations

import os

from numba import njit
from numba.core import caching
from numba.misc.appdirs import AppDirs


def cache_root() -> str:
    """The folder the compiled kernels are cached under (unless ``$NUMBA_CACHE_DIR`` is set)."""
    return os.path.join(AppDirs(appname="cnnkernels", appauthor=False).user_cache_dir, "numba")


class _PerUserLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(cache_root(), self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path


class _CacheImpl(caching.CompileResultCacheImpl):
    # no in-tree locator; without a writable per-user folder the kernels simply compile each run
    _locator_classes = [caching.UserProvidedCacheLocator, _PerUserLocator]


class _FunctionCache(caching.FunctionCache):
    _impl_class = _CacheImpl


def cached_njit(**options):
    """``numba.njit(**options)`` whose compiled code is cached per user (see the module's docstring)."""

    def decorate(function):
        dispatcher = njit(**options)(function)
        dispatcher._cache = _FunctionCache(dispatcher.py_func)  # what Dispatcher.enable_caching() sets
        return dispatcher

    return decorate
