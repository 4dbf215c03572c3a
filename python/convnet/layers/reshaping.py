"""Layers that move or scale values without weights: ZeroPadding2D, Cropping2D, UpSampling2D
(nearest, bilinear), Reshape, Permute, Rescaling, Identity — Keras's names, arguments and configs.

Images flow NCHW inside a model (see :mod:`convnet.layers.base`); arguments are in Keras's
terms (rows, then columns).
"""

from __future__ import annotations

import numpy as np

from .base import Layer, check_data_format, internal_array, internal_shape, user_shape, user_view
from .preprocessing import _Resize


def _two_pairs(name, value):
    """Keras's ((top, bottom), (left, right)) from an int, a symmetric pair or the pairs themselves."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pairs = ((value, value), (value, value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        pairs = ((value[0], value[0]), (value[1], value[1]))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in value)):
        pairs = tuple(tuple(p) for p in value)
    else:
        raise ValueError(f"{name} must be an int, (rows, cols) or ((top, bottom), (left, right)); received "
                         f"{name}={value!r}")
    flat = [v for p in pairs for v in p]
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in flat):
        raise ValueError(f"{name} must be non-negative ints; received {name}={value!r}")
    return tuple(tuple(int(v) for v in p) for p in pairs)


def _pad(x, pairs):
    """Zeros around each image: ((top, bottom), (left, right)) rows and columns."""
    return np.pad(x, ((0, 0), (0, 0), *pairs))


def _crop(x, pairs):
    """The adjoint of :func:`_pad`: those rows and columns cut off."""
    (t, b), (l, r) = pairs
    return np.ascontiguousarray(x[:, :, t:x.shape[2] - b, l:x.shape[3] - r])


class ZeroPadding2D(Layer):
    """Zeros around each image: ``padding`` rows above/below and columns left/right."""

    def __init__(self, padding=(1, 1), data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding = _two_pairs("padding", padding)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        (t, b), (l, r) = self.padding
        return (C, H + t + b, W + l + r)

    def forward(self, x, training=False):
        return _pad(x, self.padding)

    def backward(self, dy):
        return _crop(dy, self.padding)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


class Cropping2D(Layer):
    """Rows and columns cut from each image's borders."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.cropping = _two_pairs("cropping", cropping)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        (t, b), (l, r) = self.cropping
        if t + b >= H or l + r >= W:
            raise ValueError(f"Cropping2D {self.name!r}: cropping {self.cropping} leaves nothing of a {H}x{W} image")
        return (C, H - t - b, W - l - r)

    def forward(self, x, training=False):
        return _crop(x, self.cropping)

    def backward(self, dy):
        return _pad(dy, self.cropping)

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping], "data_format": self.data_format}


class UpSampling2D(Layer):
    """Each pixel repeated ``size`` times down and across (``interpolation="nearest"``, Keras's default),
    or the image resized bilinearly by ``size``."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                     for v in pair):
            raise ValueError(f"size must be a positive int or a pair of them; received size={size!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"interpolation must be 'nearest' or 'bilinear'; received interpolation={interpolation!r}")
        self.size = (int(pair[0]), int(pair[1]))
        self.data_format = check_data_format(data_format)
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        C, H, W = input_shape
        return (C, H * self.size[0], W * self.size[1])

    def forward(self, x, training=False):
        if self.interpolation == "bilinear":  # Keras resizes with half-pixel centres
            H, W = x.shape[2:]
            self._resize = _Resize((H, W), (H * self.size[0], W * self.size[1]), "bilinear")
            return self._resize.forward(x)
        return x.repeat(self.size[0], axis=2).repeat(self.size[1], axis=3)

    def backward(self, dy):
        if self.interpolation == "bilinear":
            return self._resize.backward(dy)
        N, C, H, W = dy.shape
        sh, sw = self.size
        return dy.reshape(N, C, H // sh, sh, W // sw, sw).sum(axis=(3, 5))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}


class Reshape(Layer):
    """Each sample reshaped to ``target_shape`` (Keras's layout: channels last for images; one -1 allowed)."""

    def __init__(self, target_shape, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(target_shape, (tuple, list)) or not target_shape or not all(
                isinstance(v, (int, np.integer)) and (v > 0 or v == -1) for v in target_shape) or \
                list(target_shape).count(-1) > 1:
            raise ValueError(f"target_shape must be positive ints (one may be -1); received target_shape={target_shape!r}")
        self.target_shape = tuple(int(v) for v in target_shape)

    def _user_shape(self, input_shape):  # the per-sample shape in Keras's layout
        return (*input_shape[1:], input_shape[0]) if len(input_shape) == 3 else tuple(input_shape)

    def compute_output_shape(self, input_shape):
        size = int(np.prod(input_shape))
        known = int(np.prod([v for v in self.target_shape if v != -1]))
        target = tuple(size // known if v == -1 else v for v in self.target_shape)
        if int(np.prod(target)) != size:
            raise ValueError(f"Reshape {self.name!r}: cannot reshape {self._user_shape(input_shape)} "
                             f"({size} values) to {self.target_shape}")
        return (target[-1], *target[:-1]) if len(target) == 3 else target

    def forward(self, x, training=False):
        self._shape = x.shape
        user = x.transpose(0, 2, 3, 1) if x.ndim == 4 else x
        shape = self.output_shape
        out = user.reshape(x.shape[0], *((*shape[1:], shape[0]) if len(shape) == 3 else shape))
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2) if out.ndim == 4 else out)

    def backward(self, dy):
        user = dy.transpose(0, 2, 3, 1) if dy.ndim == 4 else dy
        N, *rest = self._shape
        if len(rest) == 3:
            return np.ascontiguousarray(user.reshape(N, rest[1], rest[2], rest[0]).transpose(0, 3, 1, 2))
        return user.reshape(self._shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Rescaling(Layer):
    """``x · scale + offset`` (e.g. ``Rescaling(1./255)`` on [0, 255] pixels)."""

    def __init__(self, scale, offset=0.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        for key, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(value):
                raise ValueError(f"{key} must be a finite number; received {key}={value!r}")
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x, training=False):
        return x * x.dtype.type(self.scale) + x.dtype.type(self.offset)

    def backward(self, dy):
        return dy * dy.dtype.type(self.scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Identity(Layer):
    """Its input, unchanged."""

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy


class Permute(Layer):
    """Each sample's axes reordered: ``dims`` a permutation of 1..ndim in Keras's layout (channels last)."""

    def __init__(self, dims, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not isinstance(dims, (tuple, list)) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims must be a permutation of 1..n (the axes after the batch); received dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        user = user_shape(self, input_shape)
        if len(user) != len(self.dims):
            raise ValueError(f"Permute {self.name!r}: dims={list(self.dims)} for an input of {len(user)} axes "
                             f"{tuple(user)}")
        return internal_shape(self, tuple(user[d - 1] for d in self.dims))

    def forward(self, x, training=False):
        return internal_array(self, user_view(self, x).transpose(0, *self.dims))

    def backward(self, dy):
        inverse = np.argsort((0, *self.dims))
        return internal_array(self, user_view(self, dy).transpose(*inverse))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}
