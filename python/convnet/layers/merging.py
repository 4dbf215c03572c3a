"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, and their
functional forms ``add``, ``concatenate``, ... (Keras names and arguments).

They take a list of tensors of one shape (Concatenate: one shape but for ``axis``).
Maximum and Minimum send each gradient to the first input that holds the extreme
value (TensorFlow's rule for ties).
"""

from __future__ import annotations

import numpy as np

from .base import Layer


class _Merge(Layer):
    _multi_input = True
    _minimum_inputs = 2

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if len(shapes) < self._minimum_inputs:
            raise ValueError(f"{type(self).__name__} needs at least {self._minimum_inputs} inputs; "
                             f"received {len(shapes)}")
        self._check_shapes(shapes)
        self.input_shape = shapes
        self.output_shape = tuple(self.compute_output_shape(shapes))
        self.built = True

    def _check_shapes(self, shapes):
        if len(set(shapes)) != 1:
            raise ValueError(f"{type(self).__name__} needs inputs of one shape; received per-sample shapes "
                             f"{shapes} (in the kernels' channels-first layout)")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def _merge(self, xs):
        raise NotImplementedError

    def forward(self, xs, training=False):
        self._xs = xs
        return self._merge(xs)


class Add(_Merge):
    """Sum of the inputs."""

    def _merge(self, xs):
        return sum(xs[1:], xs[0].copy())

    def backward(self, dy):
        return [dy] * len(self._xs)


class Subtract(_Merge):
    """inputs[0] − inputs[1]; exactly two inputs."""

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"Subtract needs exactly 2 inputs; received {len(input_shape)}")
        super().build(input_shape)

    def _merge(self, xs):
        return xs[0] - xs[1]

    def backward(self, dy):
        return [dy, -dy]


class Multiply(_Merge):
    """Element-wise product of the inputs."""

    def _merge(self, xs):
        out = xs[0].copy()
        for x in xs[1:]:
            out *= x
        return out

    def backward(self, dy):
        grads = []
        for i in range(len(self._xs)):
            g = dy.copy()
            for j, x in enumerate(self._xs):
                if j != i:
                    g *= x
            grads.append(g)
        return grads


class Average(_Merge):
    """Element-wise mean of the inputs."""

    def _merge(self, xs):
        return sum(xs[1:], xs[0].copy()) / np.asarray(len(xs), xs[0].dtype)

    def backward(self, dy):
        share = dy / np.asarray(len(self._xs), dy.dtype)
        return [share] * len(self._xs)


class _Extreme(_Merge):
    _pick = None  # np.argmax or np.argmin

    def _merge(self, xs):
        stacked = np.stack(xs)
        self._winner = type(self)._pick(stacked, axis=0)  # first input holding the extreme
        return np.take_along_axis(stacked, self._winner[None], axis=0)[0]

    def backward(self, dy):
        return [np.where(self._winner == i, dy, 0).astype(dy.dtype) for i in range(len(self._xs))]


class Maximum(_Extreme):
    """Element-wise maximum of the inputs."""

    _pick = staticmethod(np.argmax)


class Minimum(_Extreme):
    """Element-wise minimum of the inputs."""

    _pick = staticmethod(np.argmin)


class Concatenate(_Merge):
    """Joins the inputs along ``axis`` (Keras's default −1: channels for channels_last images)."""

    _minimum_inputs = 1

    def __init__(self, axis=-1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"axis must be an int; received axis={axis!r}")
        self.axis = int(axis)

    def _internal_axis(self, ndim):
        """``axis`` of the user's (batch-first) layout, as an axis of the kernels' layout."""
        from .. import graph

        axis = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= axis < ndim:
            raise ValueError(f"Concatenate axis must name a non-batch axis of {ndim}-D inputs; "
                             f"received axis={self.axis}")
        if ndim == 4 and getattr(self, "_layout", graph.CHANNELS_LAST) in (graph.CHANNELS_LAST, None):
            return (0, 2, 3, 1)[axis]  # (N, H, W, C) axis -> (N, C, H, W) axis
        return axis

    def _check_shapes(self, shapes):
        ndims = {len(s) for s in shapes}
        if len(ndims) != 1:
            raise ValueError(f"Concatenate needs inputs of one rank; received per-sample shapes {shapes}")
        axis = self._internal_axis(len(shapes[0]) + 1) - 1
        others = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(others) != 1:
            raise ValueError(f"Concatenate(axis={self.axis}) needs inputs that agree on every other axis; "
                             f"received per-sample shapes {shapes} (in the kernels' channels-first layout)")

    def compute_output_shape(self, input_shape):
        axis = self._internal_axis(len(input_shape[0]) + 1) - 1
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def _merge(self, xs):
        self._axis = self._internal_axis(xs[0].ndim)
        return np.concatenate(xs, axis=self._axis)

    def backward(self, dy):
        bounds = np.cumsum([0, *(x.shape[self._axis] for x in self._xs)])
        index = [slice(None)] * dy.ndim
        grads = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            index[self._axis] = slice(start, stop)
            grads.append(np.ascontiguousarray(dy[tuple(index)]))
        return grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    """Functional form of :class:`Add`: ``add([x, y])``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of :class:`Concatenate`: ``concatenate([x, y], axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
