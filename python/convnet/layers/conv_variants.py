"""Conv2DTranspose, DepthwiseConv2D and SeparableConv2D on the cnnkernels kernels.

Keras's weight layouts in ``get_weights`` — Conv2DTranspose (kh, kw, filters, in),
DepthwiseConv2D (kh, kw, in, depth_multiplier), SeparableConv2D depthwise (kh, kw, in, dm)
and pointwise (1, 1, in·dm, filters) — stored internally in the kernels' layouts.
"""

from __future__ import annotations

import numpy as np

import cnnkernels

from .. import activations, initializers, regularizers
from .base import Layer, check_data_format, check_positive_int
from .conv import Conv2D, _pair, check_padding


class _Convolutional(Layer):
    """What the three share: activation, bias, initializers, regularizers, data format."""

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                 bias_initializer, bias_regularizer, name, trainable, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)
        self.dilation_rate = _pair("dilation_rate", dilation_rate)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"strides > 1 and dilation_rate > 1 cannot be combined, as in Keras; received "
                             f"strides={strides!r}, dilation_rate={dilation_rate!r}")
        self.activation = activations.check(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.regularizers = {"bias": regularizers.get(bias_regularizer)}

    def _finish(self, z):
        if self.use_bias:
            z += self.params["bias"].reshape(1, -1, 1, 1)
        self._y, self._z = activations.apply_owned(self.activation, z)
        return self._y

    def _bias_grad(self, dz):
        if self.use_bias:
            self.grads["bias"] = dz.sum(axis=(0, 2, 3))

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "activation": self.activation, "use_bias": self.use_bias,
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.regularizers["bias"])}


def _check_image(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} expects image input (batch, height, width, channels); received "
                         f"per-sample shape {tuple(input_shape)}")


class Conv2DTranspose(_Convolutional):
    """Transposed convolution (Keras's): the adjoint of a Conv2D with the same kernel, strides and padding.

    Output size as Keras: "valid" → ``H·s + max(k − s, 0)``, "same" → ``H·s`` (k the dilated kernel), or
    ``(H−1)·s + k − 2·(k//2 if same) + output_padding`` when ``output_padding`` is given.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, name=None, trainable=True,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, bias_regularizer, name, trainable, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.output_padding = None if output_padding is None else _pair_nonnegative(output_padding)
        if self.output_padding is not None and any(o >= s for o, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"output_padding must be smaller than strides; received output_padding={output_padding!r}, "
                             f"strides={strides!r}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.regularizers["kernel"] = regularizers.get(kernel_regularizer)

    def _geometry(self, size, axis):
        """(pad before, pad after, output padding) of one axis. The output length is Keras's; the pads
        are those of the "same"/"valid" convolution this one is the adjoint of (TensorFlow's rule:
        the odd row is cut at the bottom), and what they leave short is the output padding."""
        k = (self.kernel_size[axis] - 1) * self.dilation_rate[axis] + 1
        s = self.strides[axis]
        if self.output_padding is not None:
            pad = k // 2 if self.padding == "same" else 0
            target = (size - 1) * s + k - 2 * pad + self.output_padding[axis]
        else:
            target = size * s if self.padding == "same" else size * s + max(k - s, 0)
        total = max((size - 1) * s + k - target, 0) if self.padding == "same" else 0
        return total // 2, total - total // 2, target - ((size - 1) * s + k - total)

    def build(self, input_shape):
        _check_image(self, input_shape)
        kh, kw = self.kernel_size
        keras_kernel = self.kernel_initializer((kh, kw, self.filters, input_shape[0]))
        self.params["kernel"] = np.ascontiguousarray(keras_kernel.transpose(3, 2, 0, 1))  # (in, filters, kh, kw)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,))
        super().build(input_shape)

    def _arguments(self, input_hw):
        (t, b, oh), (l, r, ow) = self._geometry(input_hw[0], 0), self._geometry(input_hw[1], 1)
        return dict(stride=self.strides, padding=((t, b), (l, r)), output_padding=(oh, ow), dilation=self.dilation_rate)

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        (t, b, oh), (l, r, ow) = self._geometry(H, 0), self._geometry(W, 1)
        kh, kw = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)]
        return (self.filters, (H - 1) * self.strides[0] + kh - t - b + oh, (W - 1) * self.strides[1] + kw - l - r + ow)

    _keras_layout, _internal_layout = Conv2D._keras_layout, Conv2D._internal_layout  # the same kernel transpose

    def forward(self, x, training=False):
        self._x = x
        return self._finish(cnnkernels.conv_transpose2d(x, self.params["kernel"], **self._arguments(x.shape[2:])))

    def backward(self, dy):
        dz = np.ascontiguousarray(activations.backward(self.activation, self._y, dy, self._z), dtype=self._x.dtype)
        dx, self.grads["kernel"], _ = cnnkernels.conv_transpose2d_backward(
            dz, self._x, self.params["kernel"], **self._arguments(self._x.shape[2:]), bias=False)
        self._bias_grad(dz)
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "output_padding": None if self.output_padding is None else list(self.output_padding),
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.regularizers["kernel"])}


def _pair_nonnegative(value):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                                 for v in pair):
        raise ValueError(f"output_padding must be a non-negative int or a pair of them; received {value!r}")
    return (int(pair[0]), int(pair[1]))


def _depthwise_internal(kernel):
    """(kh, kw, C, dm) → the grouped conv2d weight (C·dm, 1, kh, kw): output channel c·dm + m, as Keras."""
    kh, kw, C, dm = kernel.shape
    return np.ascontiguousarray(kernel.reshape(kh, kw, C * dm).transpose(2, 0, 1)[:, None])


def _depthwise_keras(weight, C):
    """The inverse of :func:`_depthwise_internal` (a view)."""
    Cdm, _, kh, kw = weight.shape
    return weight[:, 0].transpose(1, 2, 0).reshape(kh, kw, C, Cdm // C)


class DepthwiseConv2D(_Convolutional):
    """Each input channel convolved with its own ``depth_multiplier`` filters (conv2d with groups = channels)."""

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None, name=None,
                 trainable=True, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                         bias_initializer, bias_regularizer, name, trainable, **kwargs)
        self.depth_multiplier = check_positive_int("depth_multiplier", depth_multiplier)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.regularizers["depthwise_kernel"] = regularizers.get(depthwise_regularizer)

    def build(self, input_shape):
        _check_image(self, input_shape)
        C = input_shape[0]
        kernel = self.depthwise_initializer((*self.kernel_size, C, self.depth_multiplier))
        self.params["depthwise_kernel"] = _depthwise_internal(kernel)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((C * self.depth_multiplier,))
        super().build(input_shape)

    def _conv(self, channels):
        return dict(stride=self.strides, padding=self.padding, dilation=self.dilation_rate, groups=channels)

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        sizes = []
        for size, k, s, d in zip((H, W), self.kernel_size, self.strides, self.dilation_rate):
            effective = (k - 1) * d + 1
            if self.padding == "valid" and size < effective:
                raise ValueError(f"{type(self).__name__} {self.name!r}: kernel {k} (dilated {effective}) is larger "
                                 f"than the input's {size}")
            sizes.append(-(-size // s) if self.padding == "same" else (size - effective) // s + 1)
        return (C * self.depth_multiplier, *sizes)

    def forward(self, x, training=False):
        self._x = x
        return self._finish(cnnkernels.conv2d(x, self.params["depthwise_kernel"], **self._conv(x.shape[1])))

    def backward(self, dy):
        dz = np.ascontiguousarray(activations.backward(self.activation, self._y, dy, self._z), dtype=self._x.dtype)
        dx, self.grads["depthwise_kernel"], _ = cnnkernels.conv2d_backward(
            dz, self._x, self.params["depthwise_kernel"], **self._conv(self._x.shape[1]), bias=False)
        self._bias_grad(dz)
        return dx

    def _keras_layout(self, key, array):
        return _depthwise_keras(array, self.input_shape[0]) if key == "depthwise_kernel" else array

    def _internal_layout(self, key, array):
        return _depthwise_internal(array) if key == "depthwise_kernel" else array

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.name_of(self.depthwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.regularizers["depthwise_kernel"])}


class SeparableConv2D(DepthwiseConv2D):
    """A depthwise convolution, then a 1×1 convolution to ``filters`` channels (then bias, activation)."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1),
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, name=None, trainable=True, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                         use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         name, trainable, **kwargs)
        self.filters = check_positive_int("filters", filters)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.regularizers["pointwise_kernel"] = regularizers.get(pointwise_regularizer)

    def build(self, input_shape):
        _check_image(self, input_shape)
        C = input_shape[0]
        self.params["depthwise_kernel"] = _depthwise_internal(
            self.depthwise_initializer((*self.kernel_size, C, self.depth_multiplier)))
        pointwise = self.pointwise_initializer((1, 1, C * self.depth_multiplier, self.filters))
        self.params["pointwise_kernel"] = np.ascontiguousarray(pointwise.transpose(3, 2, 0, 1))
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.filters,))
        Layer.build(self, input_shape)

    def compute_output_shape(self, input_shape):
        return (self.filters, *super().compute_output_shape(input_shape)[1:])

    def forward(self, x, training=False):
        self._x = x
        self._middle = cnnkernels.conv2d(x, self.params["depthwise_kernel"], **self._conv(x.shape[1]))
        return self._finish(cnnkernels.conv2d(self._middle, self.params["pointwise_kernel"]))

    def backward(self, dy):
        dz = np.ascontiguousarray(activations.backward(self.activation, self._y, dy, self._z), dtype=self._x.dtype)
        dmiddle, self.grads["pointwise_kernel"], _ = cnnkernels.conv2d_backward(
            dz, self._middle, self.params["pointwise_kernel"], bias=False)
        dx, self.grads["depthwise_kernel"], _ = cnnkernels.conv2d_backward(
            dmiddle, self._x, self.params["depthwise_kernel"], **self._conv(self._x.shape[1]), bias=False)
        self._bias_grad(dz)
        return dx

    def _keras_layout(self, key, array):
        return array.transpose(2, 3, 1, 0) if key == "pointwise_kernel" else super()._keras_layout(key, array)

    def _internal_layout(self, key, array):
        if key == "pointwise_kernel":
            return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
        return super()._internal_layout(key, array)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "pointwise_initializer": initializers.name_of(self.pointwise_initializer),
                "pointwise_regularizer": regularizers.serialize(self.regularizers["pointwise_kernel"])}
