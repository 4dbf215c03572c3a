"""Image preprocessing and augmentation layers with Keras 3's names, arguments and formulas:
Resizing, CenterCrop, RandomCrop, RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast.

The random layers act in training (``fit``, or a direct call such as ``data_augmentation(images)``,
as in Keras) and are the identity in ``predict``/``evaluate`` (RandomCrop then centre-crops).
They draw from ``seed`` when given, else from the generator ``convnet.set_seed`` seeds.
Every transform is linear in the pixels, so each has an exact backward pass (a gradient
flows through them when weights sit upstream).

Resizing is bilinear with half-pixel centres and no antialiasing (Keras's default), written
as one matrix per axis: y = A_h · x · A_wᵀ.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse

from .._random import draws, seeded
from .base import Layer, check_data_format, check_image_input, check_positive_int

INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("reflect", "wrap", "constant", "nearest")


def resize_matrix(n_in: int, n_out: int, interpolation: str = "bilinear") -> np.ndarray:
    """(n_out, n_in) matrix of a 1-D resize with half-pixel centres: src = (i + ½)·n_in/n_out − ½."""
    scale = n_in / n_out
    rows = np.arange(n_out)
    matrix = np.zeros((n_out, n_in))
    if interpolation == "nearest":
        matrix[rows, np.minimum(np.floor((rows + 0.5) * scale).astype(int), n_in - 1)] = 1
        return matrix
    source = np.maximum((rows + 0.5) * scale - 0.5, 0)
    low = np.minimum(np.floor(source).astype(int), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = source - low
    np.add.at(matrix, (rows, low), 1 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def aspect_crop(height, width, target_height, target_width):
    """The centred window of the target's aspect ratio: (top, left, rows, cols), Keras's arithmetic."""
    rows = max(min(height, int(float(width * target_height) / target_width)), 1)
    cols = max(min(width, int(float(height * target_width) / target_height)), 1)
    return int(float(height - rows) / 2), int(float(width - cols) / 2), rows, cols


class _Resize:
    """y = A_h · x[..., window] · A_wᵀ and its adjoint, for (N, C, H, W) arrays."""

    def __init__(self, in_hw, out_hw, interpolation, window=None):
        self.in_hw, self.window = in_hw, window or (0, 0, *in_hw)
        top, left, rows, cols = self.window
        self.a_h = resize_matrix(rows, out_hw[0], interpolation)
        self.a_w = resize_matrix(cols, out_hw[1], interpolation)

    def forward(self, x):
        top, left, rows, cols = self.window
        part = x[:, :, top:top + rows, left:left + cols]
        a_h, a_w = self.a_h.astype(x.dtype), self.a_w.astype(x.dtype)
        return np.ascontiguousarray(np.matmul(a_h, np.matmul(part, a_w.T)))

    def backward(self, dy):
        top, left, rows, cols = self.window
        dx = np.zeros((*dy.shape[:2], *self.in_hw), dy.dtype)
        a_h, a_w = self.a_h.astype(dy.dtype), self.a_w.astype(dy.dtype)
        dx[:, :, top:top + rows, left:left + cols] = np.matmul(a_h.T, np.matmul(dy, a_w))
        return dx


def _check_size_pair(height, width):
    return check_positive_int("height", height), check_positive_int("width", width)


class Resizing(Layer):
    """Resize images to (height, width); ``crop_to_aspect_ratio`` first takes the centred window
    of the target's aspect ratio."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, data_format=None,
                 name=None, **kwargs):
        for key, no_op in (("pad_to_aspect_ratio", False), ("antialias", False)):
            if kwargs.pop(key, no_op) != no_op:
                raise ValueError(f"Resizing supports {key}={no_op} only")
        kwargs.pop("fill_mode", None), kwargs.pop("fill_value", None)  # used only by pad_to_aspect_ratio
        super().__init__(name=name, **kwargs)
        self.height, self.width = _check_size_pair(height, width)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}")
        self.interpolation, self.crop_to_aspect_ratio = interpolation, bool(crop_to_aspect_ratio)
        self.data_format = check_data_format(data_format)

    def build(self, input_shape):
        check_image_input(self, input_shape)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width)

    def _resize(self, hw, crop):
        window = aspect_crop(*hw, self.height, self.width) if crop else None
        return _Resize(hw, (self.height, self.width), self.interpolation, window)

    def forward(self, x, training=False):
        self._op = self._resize(x.shape[2:], self.crop_to_aspect_ratio)
        return self._op.forward(x)

    def backward(self, dy):
        return self._op.backward(dy)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "data_format": self.data_format}


class CenterCrop(Resizing):
    """The centred (height, width) window; an image smaller than that is resized to it after
    taking its centred window of the target's aspect ratio (Keras's rule)."""

    def __init__(self, height, width, data_format=None, name=None, **kwargs):
        super().__init__(height, width, data_format=data_format, name=name, **kwargs)

    def _crop(self, hw, top, left):
        return _Resize(hw, (self.height, self.width), "bilinear", (top, left, self.height, self.width))

    def forward(self, x, training=False):
        H, W = x.shape[2:]
        if H >= self.height and W >= self.width:
            self._op = self._crop((H, W), int((H - self.height) / 2), int((W - self.width) / 2))
        else:
            self._op = self._resize((H, W), True)
        return self._op.forward(x)

    def get_config(self):
        return {**Layer.get_config(self), "height": self.height, "width": self.width, "data_format": self.data_format}


class _Random(Layer):
    """What the random layers share: a seed, and acting only in training (None counts as training:
    a direct call augments, as in Keras; models pass False to predict and evaluate)."""

    def __init__(self, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None; received seed={seed!r}")
        self.seed, self._rng = seed, seeded(seed)

    @property
    def rng(self) -> np.random.Generator:
        return draws(self)

    @staticmethod
    def _active(training) -> bool:
        return training is None or bool(training)

    def build(self, input_shape):
        check_image_input(self, input_shape)
        super().build(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomCrop(_Random):
    """A random (height, width) window in training; in inference the centred window of that aspect
    ratio resized to (height, width), as Keras."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.height, self.width = _check_size_pair(height, width)
        self.data_format = check_data_format(data_format)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width)

    def forward(self, x, training=False):
        H, W = x.shape[2:]
        target = (self.height, self.width)
        if self._active(training) and H >= self.height and W >= self.width:
            top = int(self.rng.integers(0, H - self.height + 1))
            left = int(self.rng.integers(0, W - self.width + 1))
            self._op = _Resize((H, W), target, "bilinear", (top, left, *target))
        else:
            self._op = _Resize((H, W), target, "bilinear", aspect_crop(H, W, *target))
        return self._op.forward(x)

    def backward(self, dy):
        return self._op.backward(dy)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "data_format": self.data_format}


class RandomFlip(_Random):
    """Each image flipped left-right and/or upside down with probability ½ (``mode``)."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}; received mode={mode!r}")
        self.mode = mode
        self.data_format = check_data_format(data_format)

    def _flip(self, x):
        out = x.copy()
        if self._horizontal.any():
            out[self._horizontal] = out[self._horizontal, :, :, ::-1]
        if self._vertical.any():
            out[self._vertical] = out[self._vertical, :, ::-1, :]
        return out

    def forward(self, x, training=False):
        n = len(x)
        self._horizontal = np.zeros(n, bool)
        self._vertical = np.zeros(n, bool)
        if not self._active(training):
            return x
        if "horizontal" in self.mode:
            self._horizontal = self.rng.random(n) < 0.5
        if "vertical" in self.mode:
            self._vertical = self.rng.random(n) < 0.5
        return self._flip(x)

    def backward(self, dy):
        return self._flip(dy)  # a flip is its own adjoint

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "data_format": self.data_format}


def _factor_range(name, factor, signed=True):
    """(lower, upper) from a number f (→ (−f, f)) or a pair, as Keras's preprocessing layers read it."""
    pair = tuple(factor) if isinstance(factor, (tuple, list)) else (-factor if signed else factor, factor)
    if len(pair) != 2 or not all(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)
                                 and math.isfinite(v) for v in pair) or pair[0] > pair[1]:
        raise ValueError(f"{name} must be a number or a (lower, upper) pair; received {name}={factor!r}")
    return float(pair[0]), float(pair[1])


def _tap(index, size, fill_mode):
    """Indices of a tap after the fill mode ("constant": -1 outside). Most taps fall inside: only
    those outside are mapped (integer division is the slow part)."""
    outside = (index < 0) | (index >= size)
    if not outside.any():
        return index
    mapped = index.copy()
    mapped[outside] = _fill(index[outside], size, fill_mode)
    return mapped


def _fill(index, size, fill_mode):
    if fill_mode == "nearest":
        return np.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return np.mod(index, size)
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        period = np.mod(index, 2 * size)
        return np.where(period < size, period, 2 * size - 1 - period)
    return np.full_like(index, -1)  # constant: every index passed here is outside


class _Affine(_Random):
    """Random affine resampling (rotation, zoom, translation) with Keras's fill modes. Each image's
    output pixel p reads the input at M·p + t (bilinear or nearest): a sparse linear map S of the
    batch's pixels, applied as four weighted gathers; the backward is Sᵀ·dy."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {FILL_MODES}; received fill_mode={fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received interpolation={interpolation!r}")
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, float(fill_value)
        self.data_format = check_data_format(data_format)

    def _transform(self, H, W):
        """(2×2 matrix, offset) mapping output (row, col) to input (row, col) for one image."""
        raise NotImplementedError

    def _taps(self, N, H, W):
        """For every output pixel of the batch (rows of the (N·H·W, C) pixel matrix), the input rows it
        reads and their weights: a list of (index, weight) pairs, one per interpolation tap."""
        transforms = [self._transform(H, W) for _ in range(N)]
        matrices = np.stack([m for m, _ in transforms])
        offsets = np.stack([np.asarray(t, np.float64) for _, t in transforms])
        rows, cols = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
        source = np.einsum("nij,jp->nip", matrices, np.stack([rows.ravel(), cols.ravel()])) + offsets[:, :, None]
        image_start = (np.arange(N, dtype=np.int64) * H * W)[:, None]
        if self.interpolation == "nearest":
            row_taps = [(_tap(np.round(source[:, 0]).astype(np.int64), H, self.fill_mode), 1.0)]
            col_taps = [(_tap(np.round(source[:, 1]).astype(np.int64), W, self.fill_mode), 1.0)]
        else:  # bilinear: two rows × two columns, each mapped by the fill mode once
            r0, c0 = np.floor(source[:, 0]), np.floor(source[:, 1])
            fr, fc = source[:, 0] - r0, source[:, 1] - c0
            r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
            row_taps = [(_tap(r0, H, self.fill_mode), 1 - fr), (_tap(r0 + 1, H, self.fill_mode), fr)]
            col_taps = [(_tap(c0, W, self.fill_mode), 1 - fc), (_tap(c0 + 1, W, self.fill_mode), fc)]
        taps = []
        for r, wr in row_taps:
            for c, wc in col_taps:
                inside = (r >= 0) & (c >= 0)
                index = np.where(inside, image_start + r * W + c, 0).ravel()
                taps.append((index, (np.asarray(wr * wc) * inside).ravel()))
        return taps

    def forward(self, x, training=False):
        self._taps_of_batch = None
        if not self._active(training):
            return x
        N, C, H, W = x.shape
        taps = self._taps(N, H, W)
        planes = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(C, N * H * W)  # a channel per row
        out = np.zeros_like(planes)
        for index, weight in taps:
            out += np.take(planes, index, axis=1) * weight.astype(x.dtype)  # np.take: 4x faster than x[:, index]
        if self.fill_mode == "constant" and self.fill_value:
            out += (self.fill_value * (1 - sum(w for _, w in taps))).astype(x.dtype)
        self._taps_of_batch = taps
        return np.ascontiguousarray(out.reshape(C, N, H, W).transpose(1, 0, 2, 3))

    def backward(self, dy):
        if self._taps_of_batch is None:
            return dy
        N, C, H, W = dy.shape
        size = N * H * W
        index = np.concatenate([i for i, _ in self._taps_of_batch])
        weight = np.concatenate([w for _, w in self._taps_of_batch])
        rows = np.tile(np.arange(size), len(self._taps_of_batch))
        sampling = sparse.csr_matrix((weight, (rows, index)), shape=(size, size))  # the forward's linear map
        dx = (sampling.T @ dy.transpose(1, 0, 2, 3).reshape(C, size).T).T
        return np.ascontiguousarray(dx.astype(dy.dtype, copy=False).reshape(C, N, H, W).transpose(1, 0, 2, 3))

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value, "data_format": self.data_format}


def _about_centre(matrix, H, W, shift=(0.0, 0.0)):
    centre = np.array([(H - 1) / 2, (W - 1) / 2])
    return matrix, centre - matrix @ centre + np.asarray(shift)


class RandomRotation(_Affine):
    """Rotation by a random angle in [lower, upper] × 2π (``factor`` f means [−f, f])."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name, **kwargs)
        self.factor = factor
        self._range = _factor_range("factor", factor)

    def _transform(self, H, W):
        angle = self.rng.uniform(*self._range) * 2 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        # output (row, col) reads input row·cos + col·sin, col·cos − row·sin: Keras's matrix in (x, y)
        return _about_centre(np.array([[cos, sin], [-sin, cos]]), H, W)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_Affine):
    """Zoom by 1 + a random factor in [lower, upper] (positive zooms out, as Keras); ``width_factor``
    None keeps the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _factor_range("height_factor", height_factor)
        self._width = None if width_factor is None else _factor_range("width_factor", width_factor)
        if self._height[0] <= -1 or (self._width and self._width[0] <= -1):
            raise ValueError(f"zoom factors must be > -1; received height_factor={height_factor!r}, "
                             f"width_factor={width_factor!r}")

    def _transform(self, H, W):
        zoom_h = 1 + self.rng.uniform(*self._height)
        zoom_w = zoom_h if self._width is None else 1 + self.rng.uniform(*self._width)
        return _about_centre(np.diag([zoom_h, zoom_w]), H, W)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomTranslation(_Affine):
    """Shift by a random fraction of the height in [lower, upper] (and of the width likewise)."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, name=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, name, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _factor_range("height_factor", height_factor)
        self._width = _factor_range("width_factor", width_factor)

    def _transform(self, H, W):
        shift = (-self.rng.uniform(*self._height) * H, -self.rng.uniform(*self._width) * W)
        return np.eye(2), np.asarray(shift)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomContrast(_Random):
    """(x − mean) · c + mean per image and channel, c random in [1 − lower, 1 + upper], clipped to
    ``value_range`` (Keras's [0, 255] by default)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.factor = factor
        lower, upper = _factor_range("factor", factor, signed=False)
        if not 0 <= lower <= 1 or upper < 0:
            raise ValueError(f"factor must be in [0, 1] (or a pair of such); received factor={factor!r}")
        self._range = (1 - lower, 1 + upper)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or value_range[0] >= value_range[1]:
            raise ValueError(f"value_range must be (low, high); received value_range={value_range!r}")
        self.value_range = (float(value_range[0]), float(value_range[1]))

    def forward(self, x, training=False):
        self._factor = None
        if not self._active(training):
            return x
        self._factor = self.rng.uniform(*self._range, size=(len(x), 1, 1, 1)).astype(x.dtype)
        mean = x.mean(axis=(2, 3), keepdims=True)
        y = (x - mean) * self._factor + mean
        self._inside = (y >= self.value_range[0]) & (y <= self.value_range[1])
        return np.clip(y, *self.value_range).astype(x.dtype, copy=False)

    def backward(self, dy):
        if self._factor is None:
            return dy
        g = dy * self._inside
        c = self._factor
        return g * c + (1 - c) * g.mean(axis=(2, 3), keepdims=True)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": list(self.value_range)}
