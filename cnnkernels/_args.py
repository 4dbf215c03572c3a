"""Argument checks and output-size arithmetic: the one place arguments are validated.

Every public op in :mod:`cnnkernels.api` calls in here before any backend runs,
so the compiled kernels only ever see C-contiguous float32/float64 arrays whose
shapes agree and whose geometry yields a non-empty output.

Legend used throughout: N images, C input channels, H×W input, K filters,
R×S kernel, P×Q output, G groups.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
PADDING_WORDS = ("valid", "same")
PADDING_MODES = ("zeros", "replicate", "reflect", "circular")

# Integer ranges. The compiled kernels index with C ``int`` and form sums such as
# p·stride + r·dilation − pad and −offset + stride − 1; every term is bounded by the padded
# extent of its axis, so capping that extent at 2**30 keeps every such sum below 2**31.
# A padded (image, channel) plane, and the C/G·R·S rows of one unrolled patch, must also fit
# in an ``int``. Real layers sit many orders of magnitude below these limits.
INT32_MAX = 2**31 - 1
MAX_EXTENT = 2**30
MAX_PLANE = INT32_MAX


class ConvGeometry(NamedTuple):
    """Normalised convolution geometry; pads are explicit per side."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    groups: int
    out_hw: tuple[int, int]


class PoolGeometry(NamedTuple):
    """Normalised pooling geometry; pads are explicit per side."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    # End of the padded input (H + bottom pad, W + right pad): windows that ceil_mode lets run
    # past it count only the cells before it in an average's divisor, as PyTorch's do.
    padded_end: tuple[int, int] = (0, 0)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_plain(value) -> bool:
    """Whether ``value`` is made of plain ``int``, ``str`` and ``None`` in tuples only: an argument that
    validates as any equal value does, so its validation can be cached by value (True == 1 and 1.0 == 1
    hash alike, but are not valid alike)."""
    kind = type(value)
    if kind is int or kind is str or value is None:
        return True
    return kind is tuple and all(is_plain(v) for v in value)


def cached_if_plain(cached, arguments):
    """``cached`` (an ``functools.lru_cache`` function) when every one of ``arguments`` :func:`is_plain`, else the
    function it wraps: a validation is looked up by value only where equal values validate alike."""
    return cached if is_plain(arguments) else cached.__wrapped__


def as_pair(name: str, value, *, minimum: int) -> tuple[int, int]:
    """Return ``value`` as a pair of ints ``>= minimum`` (an int, or a 1-tuple as PyTorch expands it, means both)."""
    if _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 1 and _is_int(value[0]):
        pair = (int(value[0]), int(value[0]))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints; received {name}={value!r}")
    if min(pair) < minimum:
        qualifier = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {qualifier}; received {name}={value!r}")
    return pair


def check_array(name: str, array, ndim: int) -> np.ndarray:
    """``array`` must be a float32/float64 ndarray of rank ``ndim``; no copy is made."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(array).__name__}")
    if array.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; received dtype={array.dtype}")
    if array.ndim != ndim:
        forms = " (N, C, H, W), or 3-D (C, H, W) unbatched" if ndim == 4 and name in ("x", "dy") else ""
        raise ValueError(
            f"{name} must be {ndim}-D{forms}; received {name}.ndim={array.ndim} with shape {array.shape}"
        )
    return array


def as_input(name: str, array, ndim: int) -> np.ndarray:
    """Return ``array`` checked as by :func:`check_array`, C-contiguous and in native byte order.

    Non-contiguous, Fortran-ordered and negative-stride arrays are copied; a
    contiguous array (read-only or not) is passed through without a copy.
    """
    if type(array) is np.ndarray and array.ndim == ndim and array.dtype in FLOAT_DTYPES and array.flags.c_contiguous:
        return array  # every check at once: this runs before each kernel, often with cold caches
    array = check_array(name, array, ndim)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array)


def check_same_dtype(**arrays: np.ndarray) -> np.dtype:
    """All arrays must share one dtype; return it."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) != 1:
        listed = ", ".join(f"{name}.dtype={dt}" for name, dt in dtypes.items())
        raise TypeError(f"arrays must share one dtype; received {listed}")
    return next(iter(dtypes.values()))


def check_nonempty(name: str, array: np.ndarray) -> None:
    """Spatial and channel axes must be non-empty (a batch of 0 images is allowed)."""
    if 0 in array.shape[1:]:
        raise ValueError(f"{name} must have non-empty channel and spatial axes; received shape {array.shape}")


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": the odd pixel goes to the bottom/right."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def normalise_padding(padding, in_hw, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right) from any accepted form.

    Accepted: int, (ph, pw), ((top, bottom), (left, right)), "valid", "same".
    """
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0, 0, 0)
        if word == "same":
            top, bottom = _same_pads(in_hw[0], kernel[0], stride[0], dilation[0])
            left, right = _same_pads(in_hw[1], kernel[1], stride[1], dilation[1])
            return (top, bottom, left, right)
        raise ValueError(f"padding must be one of {PADDING_WORDS}, an int or pairs; received padding={padding!r}")
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(p, (tuple, list)) for p in padding)
    ):
        if not all(len(p) == 2 and all(_is_int(v) for v in p) for p in padding):
            raise TypeError(
                f"padding pairs must be ((top, bottom), (left, right)) of ints; received padding={padding!r}"
            )
        pads = (int(padding[0][0]), int(padding[0][1]), int(padding[1][0]), int(padding[1][1]))
    else:
        try:
            ph, pw = as_pair("padding", padding, minimum=-(2**62))
        except TypeError:
            raise TypeError(
                "padding must be an int, (ph, pw), ((top, bottom), (left, right)), 'valid' or 'same'; "
                f"received padding={padding!r}"
            ) from None
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ValueError(f"padding must be non-negative; received padding={padding!r}")
    return pads


def memory_limit() -> int:
    """Bytes one call may allocate for one array: this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no stated limit but the address space
        return 2**47


def check_allocation(what: str, shape, dtype) -> None:
    """An array of ``shape`` and ``dtype`` must fit in :func:`memory_limit`; checked before allocating."""
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    if nbytes > memory_limit():
        raise ValueError(
            f"{what} of shape {tuple(int(s) for s in shape)} would need {nbytes / 2**30:,.1f} GiB, "
            f"more than this machine's memory ({memory_limit() / 2**30:,.1f} GiB)"
        )


def check_dims(name: str, shape) -> None:
    """Every axis the kernels index with a C ``int`` must fit in one."""
    if max(shape, default=0) > INT32_MAX:
        raise ValueError(f"{name} has an axis longer than 2**31 - 1; received shape {tuple(shape)}")


def _check_extent(in_hw, pad, padding, what) -> tuple[int, int]:
    """The padded input must stay within :data:`MAX_EXTENT` per axis and :data:`MAX_PLANE` in all."""
    height = in_hw[0] + pad[0] + pad[1]
    width = in_hw[1] + pad[2] + pad[3]
    if max(height, width) > MAX_EXTENT or height * width > MAX_PLANE:
        raise ValueError(
            f"{what}: the padded input {height}x{width} (input {in_hw[0]}x{in_hw[1]}, pads {pad} from "
            f"padding={padding!r}) exceeds the supported {MAX_EXTENT} per axis and {MAX_PLANE} cells per plane"
        )
    return height, width


def _effective_stride(stride, extent) -> tuple[int, int]:
    """A stride at least the padded extent yields one output position, as does that extent itself:
    the kernels get the smaller one, which keeps their index sums in range."""
    return (min(stride[0], extent[0]), min(stride[1], extent[1]))


def _out_size(size, pad_before, pad_after, kernel, stride, dilation) -> int:
    return (size + pad_before + pad_after - (kernel - 1) * dilation - 1) // stride + 1


def conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode) -> ConvGeometry:
    """Validate a convolution's arguments against the shapes and return its geometry."""
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    stride = as_pair("stride", stride, minimum=1)
    dilation = as_pair("dilation", dilation, minimum=1)
    if not _is_int(groups):
        raise TypeError(f"groups must be an int; received groups={groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be positive; received groups={groups!r}")
    if C % groups or K % groups:
        raise ValueError(
            f"input channels and filters must both divide by groups; "
            f"received C={C}, K={K}, groups={groups}"
        )
    if Cg * groups != C:
        raise ValueError(
            f"weight expects {Cg * groups} input channels (weight.shape[1]={Cg} × groups={groups}); "
            f"received x with C={C} (x.shape={tuple(x_shape)})"
        )
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}; received padding_mode={padding_mode!r}")
    pad = normalise_padding(padding, (H, W), (R, S), stride, dilation)
    if padding_mode == "reflect" and (max(pad[0], pad[1]) >= H or max(pad[2], pad[3]) >= W):
        raise ValueError(
            f"reflect padding must be smaller than the input; received padding={padding!r} "
            f"(pads {pad}) for input {H}x{W}"
        )
    if padding_mode == "circular" and (max(pad[0], pad[1]) > H or max(pad[2], pad[3]) > W):
        raise ValueError(
            f"circular padding must not exceed the input (it wraps around once, as in PyTorch); "
            f"received padding={padding!r} (pads {pad}) for input {H}x{W}"
        )
    check_dims("x", x_shape)
    check_dims("weight", w_shape)
    extent = _check_extent((H, W), pad, padding, "conv2d")
    P = _out_size(H, pad[0], pad[1], R, stride[0], dilation[0])
    Q = _out_size(W, pad[2], pad[3], S, stride[1], dilation[1])
    if P < 1 or Q < 1:
        raise ValueError(
            f"kernel {R}x{S} with dilation {dilation} is larger than the padded input "
            f"{extent[0]}x{extent[1]} (input {H}x{W}, padding={padding!r})"
        )
    if Cg * R * S > INT32_MAX:
        raise ValueError(f"weight's C/groups·R·S = {Cg * R * S} exceeds 2**31 - 1; received weight shape {tuple(w_shape)}")
    # A kernel axis of size 1 reads one row whatever its dilation.
    dilation = (dilation[0] if R > 1 else 1, dilation[1] if S > 1 else 1)
    return ConvGeometry(_effective_stride(stride, extent), dilation, pad, groups, (P, Q))


def _pool_out_size(size, pad_before, pad_after, kernel, stride, dilation, ceil_mode) -> int:
    """PyTorch's pooling output size: with ceil_mode the last window may run past the padded
    input, but must start inside the input or its left padding."""
    span = size + pad_before + pad_after - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def pool_geometry(x_shape, kernel_size, stride, padding, dilation=1, ceil_mode=False) -> PoolGeometry:
    """Validate a pooling's arguments against the input shape and return its geometry."""
    H, W = x_shape[2:]
    kernel = as_pair("kernel_size", kernel_size, minimum=1)
    stride = kernel if stride is None else as_pair("stride", stride, minimum=1)
    dilation = as_pair("dilation", dilation, minimum=1)
    ceil_mode = check_flag("ceil_mode", ceil_mode)
    pad = normalise_padding(padding, (H, W), kernel, stride, dilation)
    if max(pad[0], pad[1]) >= kernel[0] or max(pad[2], pad[3]) >= kernel[1]:
        # A window made only of padding would have no maximum and no average.
        raise ValueError(
            f"pooling padding must be smaller than kernel_size on each side; "
            f"received padding={padding!r} (pads {pad}) with kernel_size={kernel_size!r}"
        )
    if (dilation[0] > H and max(pad[:2]) > 0) or (dilation[1] > W and max(pad[2:]) > 0):
        raise ValueError(
            f"dilation={dilation} is larger than the input {H}x{W} on a padded side, so a window could hold "
            f"padding only; received padding={padding!r}"
        )
    check_dims("x", x_shape)
    extent = _check_extent((H, W), pad, padding, "pooling")
    P = _pool_out_size(H, pad[0], pad[1], kernel[0], stride[0], dilation[0], ceil_mode)
    Q = _pool_out_size(W, pad[2], pad[3], kernel[1], stride[1], dilation[1], ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError(
            f"kernel_size={kernel_size!r} with dilation {dilation} is larger than the padded input "
            f"{extent[0]}x{extent[1]} (input {H}x{W}, padding={padding!r})"
        )
    # The window fits in the padded plane (plus, with ceil_mode, less than one stride past
    # it), so every index the kernels form stays below 2**31.
    # A kernel axis of size 1 reads one row whatever its dilation.
    dilation = (dilation[0] if kernel[0] > 1 else 1, dilation[1] if kernel[1] > 1 else 1)
    return PoolGeometry(kernel, _effective_stride(stride, extent), pad, (P, Q), dilation,
                        (H + pad[1], W + pad[3]))


def check_allocations(x_shape, channels_out, geometry, dtype) -> None:
    """The output, and the padded copy of the input that the numpy backend and the replicate/reflect
    modes make, must each fit in memory; checked before anything is allocated."""
    N, C, H, W = x_shape
    top, bottom, left, right = geometry.pad
    check_allocation("the output", (N, channels_out, *geometry.out_hw), dtype)
    check_allocation("the padded input", (N, C, H + top + bottom, W + left + right), dtype)


def is_channels_last(array) -> bool:
    """Whether an (N, C, H, W) array lies in memory as (N, H, W, C): PyTorch's channels_last memory format
    (``to_channels_last(x).transpose(0, 3, 1, 2)``). An array that is both (one channel, or one pixel) is
    NCHW."""
    return (isinstance(array, np.ndarray) and array.ndim == 4 and not array.flags.c_contiguous
            and array.transpose(0, 2, 3, 1).flags.c_contiguous)


def check_grad(name: str, dy, expected_shape, dtype, *, copy: bool = True) -> np.ndarray:
    """The incoming gradient must match the forward output's shape and dtype; returned as by :func:`as_input`
    (with ``copy=False``: checked only, as it lies)."""
    dy = as_input(name, dy, 4) if copy else check_array(name, dy, 4)
    if dy.dtype.newbyteorder("=") != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, like the input; received dtype={dy.dtype}")
    if dy.shape != tuple(expected_shape):
        raise ValueError(f"{name} must have shape {tuple(expected_shape)}; received shape {dy.shape}")
    return dy


def check_activation(activation, negative_slope=None) -> float | None:
    """A convolution's fused activation as its negative slope: None for none, 0.0 for "relu", ``negative_slope``
    (default 0.01, PyTorch's) for "leaky_relu". The slope must be >= 0: the gradient reads the output's sign as
    the input's, which a negative slope flips."""
    if isinstance(activation, str) and activation == "leaky_relu":
        return 0.01 if negative_slope is None else check_real("negative_slope", negative_slope, 0.0)
    if activation is not None and not (isinstance(activation, str) and activation == "relu"):
        raise ValueError(f"activation must be None, 'relu' or 'leaky_relu'; received activation={activation!r}")
    if negative_slope is not None:
        raise ValueError(f"negative_slope is the slope of activation='leaky_relu'; received "
                         f"negative_slope={negative_slope!r} with activation={activation!r}")
    return None if activation is None else 0.0


def check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; received {name}={value!r}")
    return bool(value)


def as_channels_input(name: str, array) -> np.ndarray:
    """A float32/float64 array of shape (N, C, *spatial) (2-D to 5-D, as PyTorch's batch_norm takes),
    C-contiguous and native, with at least one value per channel."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(array).__name__}")
    if not 2 <= array.ndim <= 5:
        raise ValueError(f"{name} must be (N, C) or (N, C, *spatial) with 1-3 spatial axes; received "
                         f"{name}.ndim={array.ndim} with shape {array.shape}")
    array = as_input(name, array, array.ndim)
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one value per channel; received shape {array.shape}")
    if array.size // array.shape[1] >= 2**53:  # the float64 count of each channel's values stays exact
        raise ValueError(f"{name} has too many values per channel; received shape {array.shape}")
    return array


def check_like(name: str, array: np.ndarray, reference: np.ndarray, reference_name: str = "x") -> np.ndarray:
    """``array`` (a gradient) must have ``reference``'s dtype and shape."""
    if array.dtype != reference.dtype:
        raise TypeError(f"{name} must have dtype {reference.dtype}, like {reference_name}; "
                        f"received dtype={array.dtype}")
    if array.shape != reference.shape:
        raise ValueError(f"{name} must have {reference_name}'s shape {reference.shape}; received shape {array.shape}")
    return array


def channel_vector(name: str, vector, channels: int, *, writable: bool = False) -> np.ndarray:
    """A float32/float64 ndarray of shape (channels,); a running statistic that is updated in place
    must be a writable ndarray itself (no copy could carry the update back)."""
    if not isinstance(vector, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; received {type(vector).__name__}")
    if vector.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; received dtype={vector.dtype}")
    if vector.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},), one value per channel; received shape "
                         f"{vector.shape}")
    if writable and not vector.flags.writeable:
        raise ValueError(f"{name} is updated in place and must be writable; received a read-only array")
    return vector


def check_real(name: str, value, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    """A real number in [low, high] (or (low, high] with ``open_low``), as a float."""
    if type(value) is float and low < value and (high is None or value <= high) and value != math.inf:
        return value  # the common case at once: an optimizer step checks three of these per variable
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; received {name}={value!r}")
    if not math.isfinite(value) or value < low or (open_low and value == low) or (high is not None and value > high):
        bounds = f"{'(' if open_low else '['}{low}, {'inf)' if high is None else f'{high}]'}"
        raise ValueError(f"{name} must lie in {bounds}; received {name}={value!r}")
    return float(value)
