"""Dense, Flatten, Dropout and activation layers (Keras names, arguments, defaults)."""

from __future__ import annotations

import numpy as np

import cnnkernels

from .. import activations, constraints, initializers, regularizers
from .._random import draws, keep_mask, seeded
from .base import Layer, check_data_format, check_positive_int, check_rate


class Dense(Layer):
    """y = activation(x · kernel + bias); kernel (in, out) as Keras."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.regularizers = {"kernel": regularizers.get(kernel_regularizer), "bias": regularizers.get(bias_regularizer)}
        self.constraints = {"kernel": constraints.get(kernel_constraint), "bias": constraints.get(bias_constraint)}
        self.units = check_positive_int("units", units)
        self.activation = activations.check(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(f"Dense expects flat input (batch, features); received per-sample shape "
                             f"{tuple(input_shape)} (add Flatten or a global pooling layer before it)")
        self.params["kernel"] = self.kernel_initializer((input_shape[0], self.units))
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.units,))
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def forward(self, x, training=False):
        self._x = x
        z = cnnkernels.matmul(x, self.params["kernel"])  # on the kernels' threads (NumPy's BLAS is held at one)
        if self.use_bias:
            z += self.params["bias"]
        self._y, self._z = activations.apply_owned(self.activation, z)
        return self._y

    def backward(self, dy):
        dz = activations.backward(self.activation, self._y, dy, self._z)
        self.grads["kernel"] = cnnkernels.matmul(self._x.T, dz)
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=0)
        return cnnkernels.matmul(dz, self.params["kernel"].T)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.regularizers["kernel"]),
                "bias_regularizer": regularizers.serialize(self.regularizers["bias"]),
                "kernel_constraint": constraints.serialize(self.constraints["kernel"]),
                "bias_constraint": constraints.serialize(self.constraints["bias"])}


class Flatten(Layer):
    """(N, C, H, W) → (N, H·W·C) in channels_last order (as Keras), or C·H·W for channels_first."""

    def __init__(self, data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self._shape = x.shape
        if x.ndim == 4 and self.data_format != "channels_first":
            x = cnnkernels.to_channels_last(x)
        return x.reshape(x.shape[0], int(np.prod(x.shape[1:])))  # not -1: a batch may be empty

    def backward(self, dy):
        N, *rest = self._shape
        if len(rest) == 3 and self.data_format != "channels_first":
            C, H, W = rest
            return cnnkernels.to_channels_first(dy.reshape(N, H, W, C))
        return dy.reshape(self._shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability ``rate`` and the rest scaled by 1/(1−rate)."""

    def __init__(self, rate, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.rate = check_rate("rate", rate)
        self.seed = seed
        self._rng = seeded(seed)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._scale = None
            return x
        self._scale = keep_mask(draws(self), x.shape, self.rate) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._scale

    def backward(self, dy):
        return dy if self._scale is None else dy * self._scale

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Activation(Layer):
    """Applies ``activation``: any name of :mod:`convnet.activations` (softmax over channels/features)."""

    def __init__(self, activation, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.activation = activations.check(activation)

    def forward(self, x, training=False):
        self._y = activations.FORWARD[self.activation](x)
        self._z = x if self.activation in activations.NEEDS_INPUT else None
        return self._y

    def backward(self, dy):
        return activations.backward(self.activation, self._y, dy, self._z)

    def _fused_slope(self):
        """The slope a convolution before it applies this activation with (see convnet.graph), or None."""
        if type(self).forward is not Activation.forward or type(self).backward is not Activation.backward:
            return None
        return {"relu": 0.0, "leaky_relu": activations.LEAKY_SLOPE}.get(self.activation)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class ReLU(Activation):
    def __init__(self, name=None, **kwargs):
        super().__init__("relu", name=name, **kwargs)

    def get_config(self):
        return Layer.get_config(self)


class Softmax(Activation):
    """Softmax over the channel / feature axis (Keras's axis=-1)."""

    def __init__(self, axis=-1, name=None, **kwargs):
        if axis != -1:
            raise ValueError(f"Softmax supports axis=-1 (channels / features) only; received axis={axis!r}")
        super().__init__("softmax", name=name, **kwargs)

    def get_config(self):
        return {**Layer.get_config(self), "axis": -1}


class LeakyReLU(Layer):
    """max(x, negative_slope·x); Keras 3's default slope 0.3. ``LeakyReLU(0.5)`` works as in the tutorial."""

    def __init__(self, negative_slope=0.3, name=None, **kwargs):
        if "alpha" in kwargs:  # Keras 2 spelling
            negative_slope = kwargs.pop("alpha")
        super().__init__(name=name, **kwargs)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)) or negative_slope < 0:
            raise ValueError(f"negative_slope must be a non-negative number; received negative_slope={negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=False):
        self._y = cnnkernels.leaky_relu(x, self.negative_slope)  # one compiled pass, as PyTorch's
        return self._y

    def backward(self, dy):
        # the slope is >= 0, so y has x's sign and stands for it
        return cnnkernels.leaky_relu_backward(np.asarray(dy, self._y.dtype), self._y, self.negative_slope)

    def _fused_slope(self):
        """The slope a convolution before it applies this activation with (see convnet.graph), or None."""
        plain = type(self).forward is LeakyReLU.forward and type(self).backward is LeakyReLU.backward
        return self.negative_slope if plain else None

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
