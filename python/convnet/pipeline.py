"""Datasets with the ``tf.data`` methods image tutorials chain: ``take``, ``skip``, ``map``,
``filter``, ``batch``, ``unbatch``, ``shuffle``, ``cache``, ``prefetch``, ``repeat``,
``as_numpy_iterator``, ``cardinality``.

A :class:`Dataset` is re-iterable (a new pass per epoch, so ``fit`` can use it) and lazy: each
method returns a new dataset that reads from the one before. Elements are NumPy arrays, or
tuples / dicts of them; ``map`` and ``filter`` take a tuple's parts as separate arguments, as
``tf.data`` does. ``prefetch`` runs the dataset before it in a background thread, so reading
and decoding images overlaps training (Pillow and NumPy release the GIL while they work).
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from ._random import generator

AUTOTUNE = -1
INFINITE, UNKNOWN = -1, -2  # cardinality() of endless and of filtered datasets, as tf.data's
_AUTOTUNE_BUFFER = 2  # batches prefetched for AUTOTUNE: one in use, one being read


def _count(name, value, allow_autotune=False):
    if allow_autotune and value == AUTOTUNE:
        return value
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative int; received {name}={value!r}")
    return int(value)


def _apply(function, element):
    return function(*element) if isinstance(element, tuple) else function(element)


class Dataset:
    """Base class: subclasses define ``__iter__`` (one pass) and ``cardinality``."""

    def __iter__(self):
        raise NotImplementedError

    def cardinality(self) -> int:
        """The number of elements, or ``INFINITE`` (−1) or ``UNKNOWN`` (−2)."""
        return UNKNOWN

    def __len__(self):
        n = self.cardinality()
        if n < 0:
            raise TypeError("the length of this dataset is " + ("infinite" if n == INFINITE else "unknown"))
        return n

    # -- building -----------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors) -> "Dataset":
        """One element per row of an array, or of each array of a tuple / dict."""
        return _Slices(tensors)

    def take(self, count) -> "Dataset":
        return _Take(self, _count("count", count))

    def skip(self, count) -> "Dataset":
        return _Skip(self, _count("count", count))

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None) -> "Dataset":
        if not callable(map_func):
            raise TypeError(f"map_func must be callable; received {type(map_func).__name__}")
        return _Map(self, map_func)

    def filter(self, predicate, name=None) -> "Dataset":
        if not callable(predicate):
            raise TypeError(f"predicate must be callable; received {type(predicate).__name__}")
        return _Filter(self, predicate)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None,
              name=None) -> "Dataset":
        size = _count("batch_size", batch_size)
        if size == 0:
            raise ValueError("batch_size must be positive; received batch_size=0")
        return _Batch(self, size, bool(drop_remainder))

    def unbatch(self, name=None) -> "Dataset":
        return _Unbatch(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None) -> "Dataset":
        size = _count("buffer_size", buffer_size)
        if size == 0:
            raise ValueError("buffer_size must be positive; received buffer_size=0")
        return _Shuffle(self, size, seed, bool(reshuffle_each_iteration))

    def cache(self, filename="", name=None) -> "Dataset":
        if filename:
            raise ValueError(f"cache keeps elements in memory (filename=''); received filename={filename!r}")
        return _Cache(self)

    def prefetch(self, buffer_size, name=None) -> "Dataset":
        size = _count("buffer_size", buffer_size, allow_autotune=True)
        return _Prefetch(self, _AUTOTUNE_BUFFER if size == AUTOTUNE else max(size, 1))

    def repeat(self, count=None, name=None) -> "Dataset":
        return _Repeat(self, None if count is None or count == -1 else _count("count", count))

    def as_numpy_iterator(self):
        return iter(self)


class _Slices(Dataset):
    def __init__(self, tensors):
        self.tensors = tensors
        parts = list(tensors.values()) if isinstance(tensors, dict) else list(tensors) \
            if isinstance(tensors, tuple) else [tensors]
        self.arrays = [np.asarray(p) for p in parts]
        if not self.arrays or any(a.ndim == 0 for a in self.arrays) or len({len(a) for a in self.arrays}) != 1:
            raise ValueError("from_tensor_slices needs arrays of at least one axis, all of one length; received "
                             f"shapes {[a.shape for a in self.arrays]}")

    def cardinality(self):
        return len(self.arrays[0])

    def __iter__(self):
        for i in range(self.cardinality()):
            rows = [a[i] for a in self.arrays]
            if isinstance(self.tensors, dict):
                yield dict(zip(self.tensors, rows))
            elif isinstance(self.tensors, tuple):
                yield tuple(rows)
            else:
                yield rows[0]


class _Derived(Dataset):
    def __init__(self, source):
        self.source = source

    def cardinality(self):
        return self.source.cardinality()

    def __getattr__(self, name):  # class_names, file_paths, ... of an image dataset survive chaining
        if name.startswith("_") or name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)


class _Take(_Derived):
    def __init__(self, source, count):
        super().__init__(source)
        self.count = count

    def cardinality(self):
        n = self.source.cardinality()
        return self.count if n == INFINITE else n if n == UNKNOWN else min(n, self.count)

    def __iter__(self):
        if self.count == 0:
            return
        for i, element in enumerate(self.source, start=1):
            yield element
            if i >= self.count:
                return


class _Skip(_Take):
    def cardinality(self):
        n = self.source.cardinality()
        return n if n < 0 else max(n - self.count, 0)

    def __iter__(self):
        for i, element in enumerate(self.source):
            if i >= self.count:
                yield element


class _Map(_Derived):
    def __init__(self, source, function):
        super().__init__(source)
        self.function = function

    def __iter__(self):
        for element in self.source:
            yield _apply(self.function, element)


class _Filter(_Map):
    def cardinality(self):
        return INFINITE if self.source.cardinality() == INFINITE else UNKNOWN

    def __iter__(self):
        for element in self.source:
            if bool(np.asarray(_apply(self.function, element))):
                yield element


def _stack(elements):
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_stack([e[i] for e in elements]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack([e[k] for e in elements]) for k in first}
    return np.stack([np.asarray(e) for e in elements])


def _rows(batch):
    """The elements of one batch (the inverse of :func:`_stack`)."""
    if isinstance(batch, tuple):
        return [tuple(parts) for parts in zip(*(_rows(b) for b in batch))]
    if isinstance(batch, dict):
        columns = {k: _rows(v) for k, v in batch.items()}
        return [dict(zip(columns, values)) for values in zip(*columns.values())]
    return list(np.asarray(batch))


class _Batch(_Derived):
    def __init__(self, source, size, drop_remainder):
        super().__init__(source)
        self.size, self.drop_remainder = size, drop_remainder

    def cardinality(self):
        n = self.source.cardinality()
        if n < 0:
            return n
        return n // self.size if self.drop_remainder else -(-n // self.size)

    def __iter__(self):
        pending = []
        for element in self.source:
            pending.append(element)
            if len(pending) == self.size:
                yield _stack(pending)
                pending = []
        if pending and not self.drop_remainder:
            yield _stack(pending)


class _Unbatch(_Derived):
    def cardinality(self):
        return INFINITE if self.source.cardinality() == INFINITE else UNKNOWN

    def __iter__(self):
        for batch in self.source:
            yield from _rows(batch)


class _Shuffle(_Derived):
    """tf.data's buffer shuffle: keep ``size`` elements, yield a random one, refill its place."""

    def __init__(self, source, size, seed, reshuffle):
        super().__init__(source)
        self.size, self.seed, self.reshuffle = size, seed, reshuffle
        self._passes = 0
        self._fixed = int(generator().integers(2**31))  # one order for every pass, when not reshuffled

    def __iter__(self):
        if self.seed is None:
            rng = generator() if self.reshuffle else np.random.default_rng(self._fixed)
        else:
            rng = np.random.default_rng([self.seed, self._passes if self.reshuffle else 0])
        self._passes += 1
        buffer = []
        for element in self.source:
            if len(buffer) < self.size:
                buffer.append(element)
                continue
            index = int(rng.integers(len(buffer)))
            yield buffer[index]
            buffer[index] = element
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))


class _Cache(_Derived):
    """The first complete pass is kept in memory and replayed after (a partial pass is dropped)."""

    def __init__(self, source):
        super().__init__(source)
        self._elements = None

    def __iter__(self):
        if self._elements is not None:
            yield from self._elements
            return
        seen = []
        for element in self.source:
            seen.append(element)
            yield element
        self._elements = seen


class _Repeat(_Derived):
    def __init__(self, source, count):
        super().__init__(source)
        self.count = count

    def cardinality(self):
        n = self.source.cardinality()
        if self.count is None:
            return 0 if n == 0 else INFINITE
        return n if n < 0 else n * self.count

    def __iter__(self):
        passes = 0
        while self.count is None or passes < self.count:
            empty = True
            for element in self.source:
                empty = False
                yield element
            passes += 1
            if empty:
                return


_DONE = object()


class _Prefetch(_Derived):
    """Elements made ahead by a background thread, at most ``size`` waiting. Stopping early (a
    ``take`` downstream, an exception in training) stops the thread; an exception in the
    thread is raised in the reader."""

    def __init__(self, source, size):
        super().__init__(source)
        self.size = size

    def __iter__(self):
        waiting: queue.Queue = queue.Queue(self.size)
        stop = threading.Event()

        def produce():
            try:
                for element in self.source:
                    while not stop.is_set():
                        try:
                            waiting.put((element, None), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                item = (_DONE, None)
            except BaseException as exc:  # handed to the reader
                item = (_DONE, exc)
            while not stop.is_set():
                try:
                    waiting.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        worker = threading.Thread(target=produce, name="convnet-prefetch", daemon=True)
        worker.start()
        try:
            while True:
                element, error = waiting.get()
                if element is _DONE:
                    if error is not None:
                        raise error
                    return
                yield element
        finally:
            stop.set()
            worker.join(timeout=5)
