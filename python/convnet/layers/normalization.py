"""BatchNormalization with Keras 3's defaults and update rule."""

from __future__ import annotations

import numpy as np

from .. import initializers
from .base import Layer


class BatchNormalization(Layer):
    """Normalise each channel (feature) over the batch and spatial axes.

    Training: y = γ·(x − μ_B)/sqrt(σ²_B + ε) + β with the batch's mean and biased
    variance, and moving = moving·momentum + batch·(1 − momentum).
    Inference: the moving statistics replace the batch's. Weights in Keras's
    order: gamma, beta (trainable), moving_mean, moving_variance (not trainable).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None, trainable=True,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        if axis not in (-1, 1, 3):
            raise ValueError(f"BatchNormalization normalises the channel axis (-1 for channels_last, 1 for "
                             f"channels_first); received axis={axis!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]; received momentum={momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive; received epsilon={epsilon!r}")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def build(self, input_shape):
        channels = input_shape[0]
        if self.scale:
            self.params["gamma"] = initializers.ones((channels,))
        if self.center:
            self.params["beta"] = initializers.zeros((channels,))
        self.state["moving_mean"] = initializers.zeros((channels,))
        self.state["moving_variance"] = initializers.ones((channels,))
        super().build(input_shape)

    @staticmethod
    def _axes(x):
        return (0, 2, 3) if x.ndim == 4 else (0,)

    @staticmethod
    def _per_channel(values, x):
        return values.reshape((1, -1, 1, 1) if x.ndim == 4 else (1, -1))

    def forward(self, x, training=False):
        axes = self._axes(x)
        if training and self.trainable:
            mean = x.mean(axis=axes)
            variance = x.var(axis=axes)
            self.state["moving_mean"][...] = self.state["moving_mean"] * self.momentum + mean * (1 - self.momentum)
            self.state["moving_variance"][...] = (self.state["moving_variance"] * self.momentum
                                                  + variance * (1 - self.momentum))
        else:
            mean, variance = self.state["moving_mean"], self.state["moving_variance"]
        self._training = training and self.trainable
        self._inv_std = self._per_channel(1.0 / np.sqrt(variance + self.epsilon), x).astype(x.dtype)
        self._x_hat = (x - self._per_channel(mean, x)) * self._inv_std
        y = self._x_hat
        if self.scale:
            y = y * self._per_channel(self.params["gamma"], x)
        if self.center:
            y = y + self._per_channel(self.params["beta"], x)
        return y

    def backward(self, dy):
        axes = self._axes(dy)
        if self.center:
            self.grads["beta"] = dy.sum(axis=axes)
        if self.scale:
            self.grads["gamma"] = (dy * self._x_hat).sum(axis=axes)
            dx_hat = dy * self._per_channel(self.params["gamma"], dy)
        else:
            dx_hat = dy
        if not self._training:  # the statistics were constants
            return dx_hat * self._inv_std
        count = dy.size // dy.shape[1]
        mean_dx_hat = dx_hat.sum(axis=axes, keepdims=True) / count
        mean_dx_hat_x_hat = (dx_hat * self._x_hat).sum(axis=axes, keepdims=True) / count
        return (dx_hat - mean_dx_hat - self._x_hat * mean_dx_hat_x_hat) * self._inv_std

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
