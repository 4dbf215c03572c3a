"""Noise and dropout layers that act only in training (Keras's names, arguments and configs):
SpatialDropout2D, GaussianNoise, GaussianDropout, ActivityRegularization; and the
activation layers with arguments: ELU, PReLU."""

from __future__ import annotations

import numpy as np

from .. import initializers, regularizers
from .._random import draws, seeded
from .base import Layer, check_data_format, check_image_input, check_rate, user_shape


class SpatialDropout2D(Layer):
    """Dropout of whole feature maps: in training each (image, channel) plane is zeroed with
    probability ``rate`` and the others scaled by 1/(1−rate)."""

    def __init__(self, rate, data_format=None, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rate = check_rate("rate", rate)
        self.data_format = check_data_format(data_format)
        self.seed, self._rng = seed, seeded(seed)

    def build(self, input_shape):
        check_image_input(self, input_shape)
        super().build(input_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._scale = None
            return x
        keep = draws(self).random((x.shape[0], x.shape[1], 1, 1)) >= self.rate
        self._scale = keep.astype(x.dtype) * x.dtype.type(1 / (1 - self.rate))
        return x * self._scale

    def backward(self, dy):
        return dy if self._scale is None else dy * self._scale

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "data_format": self.data_format, "seed": self.seed}


class GaussianNoise(Layer):
    """x + N(0, stddev²) noise in training; the identity otherwise."""

    def __init__(self, stddev, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.floating)) or not stddev >= 0:
            raise ValueError(f"stddev must be a non-negative number; received stddev={stddev!r}")
        self.stddev = float(stddev)
        self.seed, self._rng = seed, seeded(seed)

    def forward(self, x, training=False):
        if not training or self.stddev == 0:
            return x
        return x + draws(self).normal(0.0, self.stddev, x.shape).astype(x.dtype)

    def backward(self, dy):
        return dy

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """x · N(1, rate/(1−rate)) multiplicative noise in training; the identity otherwise."""

    def __init__(self, rate, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rate = check_rate("rate", rate)
        self.seed, self._rng = seed, seeded(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._scale = None
            return x
        stddev = np.sqrt(self.rate / (1 - self.rate))
        self._scale = draws(self).normal(1.0, stddev, x.shape).astype(x.dtype)
        return x * self._scale

    def backward(self, dy):
        return dy if self._scale is None else dy * self._scale

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class ActivityRegularization(Layer):
    """The identity, adding l1·Σ|x| + l2·Σx² of its input (per batch, averaged over it) to the loss."""

    def __init__(self, l1=0.0, l2=0.0, name=None, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(name=name, activity_regularizer=regularizers.L1L2(l1, l2), **kwargs)
        self.l1, self.l2 = self.activity_regularizer.l1, self.activity_regularizer.l2

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        config = {**super().get_config(), "l1": self.l1, "l2": self.l2}
        config.pop("activity_regularizer", None)  # l1 and l2 say it
        return config


class ELU(Layer):
    """x for x > 0, alpha·(eˣ − 1) otherwise."""

    def __init__(self, alpha=1.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not np.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number; received alpha={alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        self._x = x
        return np.where(x > 0, x, x.dtype.type(self.alpha) * np.expm1(np.minimum(x, 0)))

    def backward(self, dy):
        x = self._x
        return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(self.alpha) * np.exp(np.minimum(x, 0)))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """x for x > 0, alpha·x otherwise, with a learned ``alpha`` per position and channel
    (``shared_axes`` share it: ``shared_axes=[1, 2]`` gives one per channel, as Keras)."""

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, shared_axes=None, name=None,
                 trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.regularizers = {"alpha": regularizers.get(alpha_regularizer)}
        if shared_axes is not None and not isinstance(shared_axes, (list, tuple)):
            shared_axes = [shared_axes]
        if shared_axes is not None and not all(isinstance(a, (int, np.integer)) and a >= 1 for a in shared_axes):
            raise ValueError(f"shared_axes must be axes >= 1 of (batch, ...); received shared_axes={shared_axes!r}")
        self.shared_axes = None if shared_axes is None else [int(a) for a in shared_axes]

    def build(self, input_shape):
        user = list(user_shape(self, input_shape))
        for axis in self.shared_axes or []:
            if axis > len(user):
                raise ValueError(f"PReLU {self.name!r}: shared axis {axis} is past the input's {len(user)} axes")
            user[axis - 1] = 1
        self._alpha_user_shape = tuple(user)
        keras_alpha = self.alpha_initializer(self._alpha_user_shape)
        self.params["alpha"] = np.ascontiguousarray(self._internal_layout("alpha", keras_alpha))
        super().build(input_shape)

    def _keras_layout(self, key, array):
        return array.transpose(1, 2, 0) if array.ndim == 3 and getattr(self, "_layout", None) != "channels_first" \
            else array

    def _internal_layout(self, key, array):
        return np.ascontiguousarray(array.transpose(2, 0, 1)) \
            if array.ndim == 3 and getattr(self, "_layout", None) != "channels_first" else array

    def forward(self, x, training=False):
        self._x = x
        return np.where(x > 0, x, self.params["alpha"] * x)

    def backward(self, dy):
        x, alpha = self._x, self.params["alpha"]
        negative = x <= 0
        d_alpha = dy * x * negative
        axes = tuple(i for i in range(x.ndim) if i == 0 or alpha.shape[i - 1] == 1 < x.shape[i])
        self.grads["alpha"] = d_alpha.sum(axis=axes, keepdims=True).reshape(alpha.shape)
        return dy * np.where(negative, alpha, x.dtype.type(1))

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializers.name_of(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.regularizers["alpha"]),
                "shared_axes": self.shared_axes}


__all__ = ["ActivityRegularization", "ELU", "GaussianDropout", "GaussianNoise", "PReLU", "SpatialDropout2D"]
