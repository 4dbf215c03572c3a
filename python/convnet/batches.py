"""The one batch iterator behind fit / evaluate / predict.

What it reads, as Keras does:

- arrays: ``x`` one array, a list (one per model input) or a dict by input name; ``y``
  likewise per output; ``sample_weight`` an array of one weight per sample;
- ``Sequence``-style objects (``__len__`` and ``__getitem__`` giving a batch), such as
  Keras's ``PyDataset``;
- re-iterable datasets (a new pass per epoch: :func:`convnet.data.image_dataset_from_directory`);
- generators (one pass in all; ``steps_per_epoch`` takes that many batches an epoch).

A batch from a dataset is ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._random import generator


def is_array_data(x) -> bool:
    return isinstance(x, (np.ndarray, list, tuple, dict)) or np.isscalar(x)


def _is_sequence(x) -> bool:
    return not is_array_data(x) and hasattr(x, "__getitem__") and hasattr(x, "__len__")


def _is_stream(x) -> bool:
    return x is not None and not is_array_data(x) and (hasattr(x, "__iter__") or _is_sequence(x))


def as_list(value, names, what):
    """One entry per model input (or output): a single value, a list, or a dict by name."""
    if value is None:
        return None
    if isinstance(value, dict):
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"{what} given as a dict lacks {missing}; expected keys {names}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(names) == 1 and len(value) == 1 and isinstance(value[0], np.ndarray):
        return list(value)  # [array] for a one-input model, as Keras reads it
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(f"the model has {len(names)} {what}s {names}; received a list of {len(value)}")
        return list(value)
    return [value]


def unpack(item):
    """(x, y, sample_weight) of one batch from a dataset."""
    if isinstance(item, tuple):
        if not 1 <= len(item) <= 3:
            raise ValueError(f"a dataset batch must be x, (x,), (x, y) or (x, y, sample_weight); received a "
                             f"tuple of {len(item)}")
        return (*item, *(None,) * (3 - len(item)))
    return item, None, None


def class_weights_to_sample_weights(y, class_weight):
    """Keras's class_weight: each sample weighs what its class (label, or argmax of one-hot) weighs."""
    y = np.asarray(y)
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.round(y.reshape(len(y), -1)[:, 0])
    try:
        return np.array([class_weight[int(label)] for label in labels], np.float64)
    except KeyError as exc:
        raise ValueError(f"class_weight has no entry for class {exc.args[0]}; received keys "
                         f"{sorted(class_weight)}") from None


def combined_weights(y, sample_weight, class_weight):
    """The sample weights a batch trains with: ``sample_weight`` times the class weights of ``y``."""
    if class_weight is None or y is None:
        return sample_weight
    weights = class_weights_to_sample_weights(y, class_weight)
    return weights if sample_weight is None else np.asarray(sample_weight) * weights


class Batches:
    """Batches of one data source; :meth:`epoch` yields ``(x, y, sample_weight)`` for one epoch."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False, steps=None,
                 class_weight=None):
        self.batch_size, self.shuffle, self.steps, self.class_weight = batch_size, shuffle, steps, class_weight
        self.stream = _is_stream(x)
        self._iterator = None
        if self.stream:
            if y is not None or sample_weight is not None:
                raise ValueError("when x is a dataset or generator, it yields the targets: y and sample_weight "
                                 "must be None")
            self.source = x
            self.one_shot = not _is_sequence(x) and iter(x) is x  # a generator: one pass in all
            cardinality = getattr(x, "cardinality", None)
            if steps is None and callable(cardinality) and cardinality() == -1:
                raise ValueError("the dataset repeats forever: give steps_per_epoch (and validation_steps)")
            return
        self.source = x  # already lists of arrays, one per model input / output
        self.y, self.sample_weight = y, sample_weight
        self.size = len(x[0]) if x else 0
        for array in [*x, *(y or [])]:
            if len(array) != self.size:
                raise ValueError(f"x and y must have the same number of samples; received "
                                 f"{' and '.join(str(len(a)) for a in [*x, *(y or [])])}")
        if sample_weight is not None and len(sample_weight) != self.size:
            raise ValueError(f"sample_weight must have one weight per sample ({self.size}); received "
                             f"{len(sample_weight)}")

    def shard(self, strategy, seed, empty, stop=lambda: False) -> "Batches":
        """Deal the batches out to MPI ranks (see :mod:`convnet.distributed`): arrays as slices of global
        batches of ``batch_size`` × ranks in an order drawn from the shared ``seed`` each epoch, a dataset
        batch by batch; ``empty()`` makes the batch of no samples a rank takes once it has run out, and
        the epoch ends on every rank when ``stop()`` is true on any."""
        self.strategy, self.seed, self.empty, self.stop, self._epochs = strategy, seed, empty, stop, 0
        return self

    def __len__(self):
        """Batches per epoch, or 0 when unknown (a generator without ``steps``)."""
        strategy = getattr(self, "strategy", None)
        if strategy is not None and self.steps is None:
            if not self.stream:
                return math.ceil(self.size / (self.batch_size * strategy.size))
            try:
                return math.ceil(len(self.source) / strategy.size)
            except TypeError:
                return 0
        if self.steps is not None:
            return self.steps
        if not self.stream:
            return math.ceil(self.size / self.batch_size)
        try:
            return len(self.source)
        except TypeError:
            return 0

    def epoch(self):
        if getattr(self, "strategy", None) is not None:
            items = self.strategy.lockstep(self._shard_items(), self.empty, self.stop)
        else:
            items = self._stream_items() if self.stream else self._array_items()
        for x, y, sample_weight in items:
            yield x, y, combined_weights(y[0] if isinstance(y, list) else y, sample_weight, self.class_weight)

    def _array_items(self):
        order = generator().permutation(self.size) if self.shuffle else np.arange(self.size)
        stops = range(0, self.size, self.batch_size)
        if self.steps is not None:
            stops = stops[: self.steps]
        for start in stops:
            index = order[start : start + self.batch_size]
            yield ([a[index] for a in self.source], None if self.y is None else [a[index] for a in self.y],
                   None if self.sample_weight is None else self.sample_weight[index])

    def _shard_items(self):
        rank, size = self.strategy.rank, self.strategy.size
        if self.stream and _is_sequence(self.source) and self.steps is None:  # read only this rank's batches
            for item in Dealt(self.source, rank, size):
                yield unpack(item)
            if callable(getattr(self.source, "on_epoch_end", None)):
                self.source.on_epoch_end()
            return
        if self.stream:  # every rank reads the same stream and keeps its own batches
            steps, self.steps = self.steps, None if self.steps is None else self.steps * size
            try:
                for index, item in enumerate(self._stream_items()):
                    if index % size == rank:
                        yield item
            finally:
                self.steps = steps
            return
        order = np.random.default_rng([self.seed, self._epochs]).permutation(self.size) if self.shuffle \
            else np.arange(self.size)
        self._epochs += 1
        step = self.batch_size * size
        starts = range(0, self.size, step)
        for start in starts if self.steps is None else starts[: self.steps]:
            index = np.array_split(order[start:start + step], size)[rank]
            yield ([a[index] for a in self.source], None if self.y is None else [a[index] for a in self.y],
                   None if self.sample_weight is None else self.sample_weight[index])

    def _stream_items(self):
        if _is_sequence(self.source) and self.steps is None:
            for i in range(len(self.source)):
                yield unpack(self.source[i])
            if callable(getattr(self.source, "on_epoch_end", None)):
                self.source.on_epoch_end()  # Keras's PyDataset hook (reshuffle between epochs)
            return
        if self.steps is None:
            if self.one_shot and self._iterator is not None:
                return  # a generator runs once; later epochs get nothing (Keras warns the same way)
            self._iterator = iter(self.source)
            for item in self._iterator:
                yield unpack(item)
            return
        # steps per epoch: continue where the last epoch stopped; a dataset starts over when it runs out
        if self._iterator is None:
            self._iterator = iter(self.source) if not _is_sequence(self.source) else self._sequence_cycle()
        for _ in range(self.steps):
            try:
                item = next(self._iterator)
            except StopIteration:
                if self.one_shot:
                    warnings.warn("the generator ran out of data: give steps_per_epoch × epochs batches at least",
                                  stacklevel=4)
                    return
                self._iterator = iter(self.source)
                try:
                    item = next(self._iterator)
                except StopIteration:
                    return
            yield unpack(item)

    def _sequence_cycle(self):
        while True:
            for i in range(len(self.source)):
                yield self.source[i]


class Dealt:
    """Every ``size``-th item of a re-iterable source, from the ``rank``-th: one MPI rank's share of a
    dataset (for evaluate and predict, where ranks need not step together)."""

    def __init__(self, source, rank, size):
        self.source, self.rank, self.size = source, rank, size

    def __len__(self):
        return max(0, -(-(len(self.source) - self.rank) // self.size))

    def __iter__(self):
        if _is_sequence(self.source):  # read only this rank's batches
            for index in range(self.rank, len(self.source), self.size):
                yield self.source[index]
            return
        for index, item in enumerate(self.source):
            if index % self.size == self.rank:
                yield item
