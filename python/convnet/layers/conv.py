"""Conv2D on the cnnkernels kernels."""

from __future__ import annotations

import numpy as np

import cnnkernels
from cnnkernels import _args

from .. import activations, constraints, initializers, regularizers
from .base import Layer, check_data_format, check_positive_int


def _pair(name, received):
    value = received
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{name} must be a positive int or a pair of them; received {name}={received!r}")
    return (int(value[0]), int(value[1]))


def check_padding(padding) -> str:
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f"padding must be 'valid' or 'same'; received padding={padding!r}")


class Conv2D(Layer):
    """2-D convolution, Keras's arguments; the kernel is (kh, kw, in/groups, filters) in get_weights.

    Internally the kernel is stored as (filters, in/groups, kh, kw), the layout of
    :func:`cnnkernels.conv2d`, and the data flows NCHW.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, name=None, trainable=True,
                 **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.regularizers = {"kernel": regularizers.get(kernel_regularizer), "bias": regularizers.get(bias_regularizer)}
        self.constraints = {"kernel": constraints.get(kernel_constraint), "bias": constraints.get(bias_constraint)}
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)
        self.dilation_rate = _pair("dilation_rate", dilation_rate)
        self.groups = check_positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(f"filters must divide by groups; received filters={filters}, groups={groups}")
        self.activation = activations.check(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.needs_input_grad = True  # the model clears it on a first layer: nothing upstream needs dx

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"Conv2D expects image input (batch, height, width, channels); received per-sample "
                             f"shape {tuple(input_shape)}")
        channels = input_shape[0]
        if channels % self.groups:
            raise ValueError(f"input channels must divide by groups; received {channels} channels, "
                             f"groups={self.groups}")
        kh, kw = self.kernel_size
        keras_kernel = self.kernel_initializer((kh, kw, channels // self.groups, self.filters))
        self.params["kernel"] = np.ascontiguousarray(keras_kernel.transpose(3, 2, 0, 1))
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,))
        super().build(input_shape)

    def _geometry(self):
        return dict(stride=self.strides, padding=self.padding, dilation=self.dilation_rate, groups=self.groups)

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        geometry = _args.conv_geometry((1, C, H, W), (self.filters, C // self.groups, *self.kernel_size),
                                       self.strides, self.padding, self.dilation_rate, self.groups, "zeros")
        return (self.filters, *geometry.out_hw)

    def forward(self, x, training=False):
        return self._forward(x, dict(activation="relu") if self.activation == "relu" else None)

    def _absorbs_activation(self) -> bool:
        """Whether a model may run the ReLU / LeakyReLU that alone reads this call's output inside it: no
        activation of its own, no penalty on its output, Conv2D's own forward and backward."""
        return (self.activation == "linear" and self.activity_regularizer is None
                and type(self).forward is Conv2D.forward and type(self).backward is Conv2D.backward)

    def _forward_activated(self, x, training, negative_slope):
        """The output through a (leaky) ReLU of slope ``negative_slope`` (0: ReLU), applied by the kernels."""
        return self._forward(x, dict(activation="leaky_relu", negative_slope=negative_slope))

    def _forward(self, x, fused):
        self._x = x
        self._fused = fused  # the activation the kernels apply (with its gradient in backward), or None
        if fused is not None:  # while the output is in cache
            self._y = cnnkernels.conv2d(x, self.params["kernel"], self.params.get("bias"), **self._geometry(), **fused)
            self._z = None
            return self._y
        z = cnnkernels.conv2d(x, self.params["kernel"], self.params.get("bias"), **self._geometry())
        self._y, self._z = activations.apply_owned(self.activation, z)
        return self._y

    def backward(self, dy):
        if self._fused is not None:  # the activation's gradient and the bias sums in one pass
            dz, fused = dy, dict(**self._fused, output=self._y)
        else:
            dz, fused = activations.backward(self.activation, self._y, dy, self._z), {}
        dx, dkernel, dbias = cnnkernels.conv2d_backward(
            np.ascontiguousarray(dz, dtype=self._x.dtype), self._x, self.params["kernel"], **self._geometry(),
            bias=self.use_bias, input_grad=self.needs_input_grad, **fused)  # a float64 loss gradient: cast
        self.grads["kernel"] = dkernel
        if self.use_bias:
            self.grads["bias"] = dbias
        return dx

    def _keras_layout(self, key, array):
        return array.transpose(2, 3, 1, 0) if key == "kernel" else array

    def _internal_layout(self, key, array):
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1)) if key == "kernel" else array

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.regularizers["kernel"]),
                "bias_regularizer": regularizers.serialize(self.regularizers["bias"]),
                "kernel_constraint": constraints.serialize(self.constraints["kernel"]),
                "bias_constraint": constraints.serialize(self.constraints["bias"])}
