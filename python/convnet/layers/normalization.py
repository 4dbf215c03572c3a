"""BatchNormalization and LayerNormalization with Keras 3's defaults and formulas."""

from __future__ import annotations

import numpy as np

import cnnkernels

from .. import initializers, regularizers
from .base import Layer, internal_array, user_shape, user_view


class BatchNormalization(Layer):
    """Normalise each channel (feature) over the batch and spatial axes.

    Training: y = γ·(x − μ_B)/sqrt(σ²_B + ε) + β with the batch's mean and biased
    variance, and moving = moving·momentum + batch·(1 − momentum).
    Inference: the moving statistics replace the batch's. Weights in Keras's
    order: gamma, beta (trainable), moving_mean, moving_variance (not trainable).
    ``synchronized=True`` (Keras's argument): on MPI ranks the batch is the global one — the
    statistics and their gradients are reduced across ranks (see :mod:`convnet.distributed`);
    in one process it changes nothing.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, synchronized=False,
                 name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.synchronized = bool(synchronized)
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

    def _strategy(self):
        if not self.synchronized:
            return None
        from .. import distributed

        return distributed.current()

    def _batch_statistics(self, x, axes):
        """Mean and biased variance over the batch: this rank's, or every rank's when synchronized."""
        strategy = self._strategy()
        if strategy is None:
            return x.mean(axis=axes), x.var(axis=axes)
        sums = strategy.sum(np.append(x.sum(axis=axes, dtype=np.float64), x.size // x.shape[1]))
        self._count = max(sums[-1], 1)
        mean = sums[:-1] / self._count
        centred = x - self._per_channel(mean.astype(x.dtype), x)
        return mean, strategy.sum(np.square(centred).sum(axis=axes, dtype=np.float64)) / self._count

    def forward(self, x, training=False):
        # an empty batch (an MPI rank that has run out) has no statistics of its own
        training = training and self.trainable and (len(x) > 0 or self._strategy() is not None)
        if training:
            if self._strategy() is None:
                mean, variance = cnnkernels.channel_moments(x)
            else:
                mean, variance = self._batch_statistics(x, self._axes(x))
            self.state["moving_mean"][...] = self.state["moving_mean"] * self.momentum + mean * (1 - self.momentum)
            self.state["moving_variance"][...] = (self.state["moving_variance"] * self.momentum
                                                  + variance * (1 - self.momentum))
        else:
            mean, variance = self.state["moving_mean"], self.state["moving_variance"]
        self._x, self._mean, self._variance, self._training = x, mean, variance, training
        if x.size == 0:
            return np.empty_like(x)
        # the batch's own statistics as the "running" ones: cnnkernels normalises, Keras's momentum rule is ours
        return cnnkernels.batch_norm(x, np.asarray(mean, x.dtype), np.asarray(variance, x.dtype),
                                     self.params.get("gamma"), self.params.get("beta"), eps=self.epsilon)

    def backward(self, dy):
        """dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂)), the means over the batch (over every rank's when
        synchronized); Σdy and Σdy·x̂ are also β's and γ's gradients (this rank's: the trainer sums them)."""
        dy = np.asarray(dy, self._x.dtype)  # a float64 loss gradient may reach a float32 layer
        gamma = self.params.get("gamma")
        strategy = self._strategy() if self._training else None
        if dy.size == 0:
            sum_dy = sum_dy_x_hat = np.zeros(dy.shape[1], dy.dtype)
            dx = np.zeros_like(dy)
        else:
            dx, sum_dy_x_hat, sum_dy = cnnkernels.batch_norm_backward(
                dy, self._x, np.asarray(self._mean, dy.dtype), np.asarray(self._variance, dy.dtype), gamma,
                eps=self.epsilon, training=self._training, input_grad=strategy is None)
        if self.center:
            self.grads["beta"] = sum_dy
        if self.scale:
            self.grads["gamma"] = sum_dy_x_hat
        if strategy is not None:  # the means are the global batch's (dy holds this rank's share of the loss)
            sums = strategy.sum(np.concatenate([sum_dy, sum_dy_x_hat]))
            mean_dy, mean_dy_x_hat = sums.reshape(2, -1) / self._count
            inv_std = 1.0 / np.sqrt(np.asarray(self._variance, np.float64) + self.epsilon)
            x_hat = (self._x - self._per_channel(np.asarray(self._mean, np.float64), dy)) * self._per_channel(inv_std, dy)
            factor = inv_std if gamma is None else gamma * inv_std
            dx = ((dy - self._per_channel(mean_dy, dy) - x_hat * self._per_channel(mean_dy_x_hat, dy))
                  * self._per_channel(factor, dy)).astype(dy.dtype)
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "synchronized": self.synchronized}


class LayerNormalization(Layer):
    """Normalise each sample over ``axis`` (Keras's axes of (batch, ...), default the channels):
    y = γ·(x − μ)/sqrt(σ² + ε) + β, with γ and β of the normalised axes' shape, as Keras."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, name=None, trainable=True,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a != 0 for a in axes):
            raise ValueError(f"axis must be a non-zero int or a list of them (axes of (batch, ...)); received "
                             f"axis={axis!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive; received epsilon={epsilon!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.regularizers = {"gamma": regularizers.get(gamma_regularizer), "beta": regularizers.get(beta_regularizer)}

    def build(self, input_shape):
        user = (None, *user_shape(self, input_shape))
        raw = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        axes = [a + len(user) if a < 0 else a for a in raw]
        if not all(0 < a < len(user) for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"LayerNormalization {self.name!r}: axis={self.axis!r} does not fit an input of shape "
                             f"{user}")
        if axes != sorted(axes):
            raise ValueError(f"LayerNormalization {self.name!r}: give axis={self.axis!r} all positive or all "
                             "negative")
        self._axes = tuple(axes)
        shape = tuple(user[a] for a in axes)
        if self.scale:
            self.params["gamma"] = self.gamma_initializer(shape)
        if self.center:
            self.params["beta"] = self.beta_initializer(shape)
        self._broadcast = tuple(user[a] if a in axes else 1 for a in range(len(user)))
        super().build(input_shape)

    def forward(self, x, training=False):
        u = user_view(self, x)
        mean = u.mean(axis=self._axes, keepdims=True)
        self._inv_std = (1.0 / np.sqrt(u.var(axis=self._axes, keepdims=True) + self.epsilon)).astype(x.dtype)
        self._x_hat = (u - mean) * self._inv_std
        y = self._x_hat
        if self.scale:
            y = y * self.params["gamma"].reshape(self._broadcast)
        if self.center:
            y = y + self.params["beta"].reshape(self._broadcast)
        return internal_array(self, y)

    def backward(self, dy):
        du = user_view(self, dy)
        others = tuple(a for a in range(du.ndim) if a not in self._axes)
        if self.center:
            self.grads["beta"] = du.sum(axis=others).reshape(self.params["beta"].shape)
        if self.scale:
            self.grads["gamma"] = (du * self._x_hat).sum(axis=others).reshape(self.params["gamma"].shape)
            du = du * self.params["gamma"].reshape(self._broadcast)
        mean_d = du.mean(axis=self._axes, keepdims=True)
        mean_dx = (du * self._x_hat).mean(axis=self._axes, keepdims=True)
        return internal_array(self, (du - mean_d - self._x_hat * mean_dx) * self._inv_std)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": initializers.name_of(self.beta_initializer),
                "gamma_initializer": initializers.name_of(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.regularizers["beta"]),
                "gamma_regularizer": regularizers.serialize(self.regularizers["gamma"])}
