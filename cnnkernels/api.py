"""The public functional API: validate and normalise once, pick the backend, call it.

Signatures mirror ``torch.nn.functional``; layout is NCHW and weights are
(K, C/groups, R, S). Every function takes ``backend=None`` to force one
backend for one call and ``threads=None`` to set its thread count (see
:mod:`cnnkernels._threads`), resolved here once and passed to the kernel.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from . import _args, _threads, activations as _activations, layout, memory, plan as _plan
from ._backends import kernels
from ._bias_gradient import channel_sums, through_relu
from ._unbatched import accepts_unbatched

_NUMPY_PAD_MODE = {"replicate": "edge", "reflect": "reflect", "circular": "wrap"}


def _conv_setup(ops, x, weight, stride, padding, dilation, groups, padding_mode, algorithm, threads):
    """The call's arrays (checked), its geometry, its plan and whether x is channels-last
    (:func:`cnnkernels._args.is_channels_last`): then x comes back as its C-contiguous (N, H, W, C) view."""
    channels_last = _args.is_channels_last(x)
    x = _args.as_input("x", x.transpose(0, 2, 3, 1) if channels_last else x, 4)
    weight = _args.as_input("weight", weight, 4)
    if x.dtype != weight.dtype:
        _args.check_same_dtype(x=x, weight=weight)
    x_shape = _channels_first_shape(x.shape) if channels_last else x.shape
    key = (x_shape, weight.shape, x.dtype, stride, padding, dilation, groups, padding_mode, algorithm, ops.name,
           _threads.resolve(threads))
    checked = _args.cached_if_plain(_checked_geometry_and_plan, (stride, padding, dilation, groups, padding_mode,
                                                                 algorithm))
    geometry, plan = checked(*key)
    return x, weight, x.dtype, geometry, plan, channels_last


def _channels_first_shape(shape):
    return (shape[0], shape[3], shape[1], shape[2])


def _in_place_channels_last(plan, geometry, padding_mode, step="forward"):
    """Whether the kernel of the plan's ``step`` ("forward", "data" or "weight") reads and writes channels-last
    images as they lie: Winograd's three passes; im2row's forward and its adjoint on our micro-kernel, which also
    serve one-group 1x1 layers (a pixel's patch is its channels), whose weight gradient is our kernel's where the
    plan says so (simd_gemm_weight), else one BLAS product per block of pixels; the direct weight gradient; and the
    direct forward, which writes y channels-last from an NCHW copy of x (few channels, mostly). The others (im2col,
    padding copied by another padding_mode) run on NCHW copies."""
    if padding_mode != "zeros" and any(geometry.pad):
        return False
    if step == "weight":
        return plan.backward_weight in ("direct", "winograd") or (plan.backward_weight == "gemm" and plan.simd_gemm)
    algorithm, own_rows = ((plan.forward, plan.simd_im2row) if step == "forward" else
                           (plan.backward_data, plan.backward_data == "im2row"))
    return (own_rows or algorithm == "winograd" or (algorithm == "gemm" and plan.simd_gemm and geometry.groups == 1)
            or (step == "forward" and algorithm == "direct"))


@functools.lru_cache(maxsize=512)
def _checked_geometry_and_plan(x_shape, w_shape, dtype, stride, padding, dilation, groups, padding_mode, algorithm,
                               backend, n_threads):
    """Validation and plan of one geometry, computed once: with cold caches, as between another library's calls,
    the Python of a call took 0.25 ms of the tutorial's first layer (0.36 ms of kernel). Cached only for plain
    arguments (:func:`cnnkernels._args.is_plain`); a call that raises is not cached."""
    if 0 in x_shape[1:]:
        raise ValueError(f"x must have non-empty channel and spatial axes; received shape {x_shape}")
    if 0 in w_shape:
        raise ValueError(f"weight must have no empty axis; received shape {w_shape}")
    geometry = _args.conv_geometry(x_shape, w_shape, stride, padding, dilation, groups, padding_mode)
    _args.check_allocations(x_shape, w_shape[0], geometry, dtype)
    return geometry, _geometry_plan(backend, x_shape, w_shape, geometry, padding_mode, dtype, algorithm, n_threads)


def _geometry_plan(backend, x_shape, w_shape, geometry, padding_mode, dtype, algorithm, n_threads):
    """The plan of a validated geometry, for the shapes the kernels see: replicate/reflect padding is
    materialised in the source (:func:`_pad_explicitly`), zero padding stays implicit."""
    ops = kernels(backend)
    if padding_mode != "zeros" and any(geometry.pad):
        top, bottom, left, right = geometry.pad
        x_shape = (*x_shape[:2], x_shape[2] + top + bottom, x_shape[3] + left + right)
        geometry = geometry._replace(pad=(0, 0, 0, 0))
    isa = ops.simd_isa() if hasattr(ops, "simd_isa") else "numpy"
    return _plan.make_plan(tuple(x_shape), tuple(w_shape), geometry.stride, geometry.pad, geometry.dilation,
                           geometry.groups, np.dtype(dtype).name, ops.name, n_threads, algorithm, isa)


def _source_indices(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each row (or column) of the padded input, the input row it copies."""
    return np.pad(np.arange(size), (before, after), mode=_NUMPY_PAD_MODE[mode])


def _pad_explicitly(x, geometry, padding_mode):
    """Replicate/reflect padding is materialised here, once for every backend;
    zero padding stays implicit in the kernels. Returns (input, top, left)."""
    top, bottom, left, right = geometry.pad
    if padding_mode == "zeros" or not any(geometry.pad):
        return x, top, left
    H, W = x.shape[2:]
    rows = _source_indices(H, top, bottom, padding_mode)
    cols = _source_indices(W, left, right, padding_mode)
    return np.ascontiguousarray(x[:, :, rows][:, :, :, cols]), 0, 0


def _fold_padding(dx_padded, geometry, padding_mode, in_hw):
    """Adjoint of :func:`_pad_explicitly`: add each padded cell's gradient to the cell it copied."""
    top, bottom, left, right = geometry.pad
    dx = dx_padded
    for axis, size, before, after in ((2, in_hw[0], top, bottom), (3, in_hw[1], left, right)):
        source = _source_indices(size, before, after, padding_mode)
        folded = np.take(dx, np.arange(before, before + size), axis=axis)
        for position in [*range(before), *range(before + size, before + size + after)]:
            target = [slice(None)] * 4
            target[axis] = source[position]
            picked = [slice(None)] * 4
            picked[axis] = position
            folded[tuple(target)] += dx[tuple(picked)]
        dx = folded
    return np.ascontiguousarray(dx)


def _running(ops, calls_blas=True):
    """The ``with`` block around a kernel call: the compiled kernels that call SciPy's BLAS do so inside
    their parallel loops, where it must not start threads of its own."""
    return _threads.kernel_blas if calls_blas and ops.name != "numpy" else contextlib.nullcontext()


def _forward_calls_blas(ops, plan):
    """Whether :func:`_run_forward` calls BLAS: all but our own SIMD kernels do."""
    if ops.name != "cython":
        return True
    own = plan.forward in ("winograd", "winograd2x2", "direct") or plan.simd_im2row
    return not (own or (plan.forward == "gemm" and plan.simd_gemm))


def _backward_calls_blas(ops, plan, input_grad, weight_grad):
    """Whether :func:`_run_backward` calls BLAS: all but our own SIMD kernels do."""
    if ops.name != "cython":
        return True
    own_data = plan.backward_data in ("winograd", "im2row") or (plan.backward_data == "gemm" and plan.simd_gemm)
    own_weight = plan.backward_weight in ("winograd", "direct") or (plan.backward_weight == "gemm"
                                                                     and plan.simd_gemm_weight)
    return (input_grad and not own_data) or (weight_grad and not own_weight)


def _threads_now(plan):
    """The plan, on the threads the machine's load leaves free now (see _threads.under_load)."""
    n_threads = _threads.under_load(plan.n_threads)
    return plan if n_threads == plan.n_threads else plan._replace(n_threads=n_threads)


def conv2d_plan(x_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1, dtype="float32",
                padding_mode="zeros", *, algorithm="auto", backend=None, threads=None):
    """How :func:`conv2d` and :func:`conv2d_backward` would run these shapes: a
    :class:`cnnkernels.plan.ConvPlan` naming each pass's algorithm, the Winograd tile block,
    the forward pass's scratch memory, the threads and the SIMD instruction set.

    Parameters
    ----------
    x_shape, weight_shape : tuple of 4 ints
        (N, C, H, W) and (K, C/groups, R, S).
    stride, padding, dilation, groups, padding_mode
        As for :func:`conv2d`.
    dtype : {"float32", "float64"}
    algorithm : {"auto", "winograd", "winograd2x2", "direct", "im2col", "im2row", "gemm"}
        What ``algorithm=`` would force; ValueError if it cannot run these shapes.
    backend : str, optional
    threads : int, optional
        The thread count asked for; the plan's ``n_threads`` is what runs (fewer for small work).
    """
    ops = kernels(backend)
    for name, shape in (("x_shape", x_shape), ("weight_shape", weight_shape)):
        if not (isinstance(shape, (tuple, list)) and len(shape) == 4 and all(_args._is_int(v) and v > 0 for v in shape)):
            received = f"an array of shape {shape.shape}" if isinstance(shape, np.ndarray) else repr(shape)
            raise ValueError(f"{name} must be a tuple of 4 positive ints; received {name}={received}")
    if np.dtype(dtype) not in _args.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64; received dtype={dtype!r}")
    geometry = _args.conv_geometry(tuple(x_shape), tuple(weight_shape), stride, padding, dilation, groups, padding_mode)
    return _geometry_plan(ops.name, x_shape, weight_shape, geometry, padding_mode, dtype, algorithm,
                          _threads.resolve(threads))


def _run_forward(ops, plan, x, weight, bias, geometry, top, left, y, slope=None, channels_last=False):
    """y = the convolution; with a (leaky) ReLU's ``slope``, returns whether the kernel applied it too (else the
    caller does). With ``channels_last`` (:func:`_in_place_channels_last` said so), x and y are NHWC."""
    relu = slope is not None  # the kernels' flag: a (leaky) ReLU on the output
    slope = slope or 0.0
    conv_args = (*geometry.stride, top, left, *geometry.dilation, geometry.groups, plan.n_threads)
    if plan.forward == "winograd":
        ops.winograd_forward(x, weight, bias, top, left, geometry.groups, plan.tile_block, plan.n_threads, y, relu,
                             slope, channels_last=channels_last)
    elif plan.forward == "winograd2x2":
        ops.winograd22_forward(x, weight, bias, top, left, plan.n_threads, y)
    elif plan.forward == "direct":  # its layout reads NCHW planes; with channels_last it writes y NHWC
        source = layout.to_channels_first(x, backend=ops.name, threads=plan.n_threads) if channels_last else x
        ops.direct_forward(source, weight, bias, *geometry.stride, top, left, *geometry.dilation, plan.n_threads, y,
                           relu, slope, y_channels_last=channels_last)
    elif plan.forward == "gemm" and plan.simd_gemm and not channels_last:
        ops.pointwise_forward(x, weight, bias, geometry.groups, plan.n_threads, y)
    elif plan.simd_im2row or channels_last:  # channels-last 1x1 layers too: a pixel's patch is its channels
        ops.rows_forward(x, weight, bias, *geometry.stride, top, left, *geometry.dilation, plan.n_threads, y, relu,
                         slope, channels_last=channels_last)
    elif plan.forward == "im2row":
        ops.conv2d_forward_rows(x, weight, bias, *conv_args, y)
    elif hasattr(ops, "conv2d_forward_columns"):
        ops.conv2d_forward_columns(x, weight, bias, *conv_args, y)
    else:  # numba and numpy: their own im2col / einsum
        ops.conv2d_forward(x, weight, bias, *conv_args, y)
    return relu and (plan.forward in ("winograd", "direct") or plan.simd_im2row or channels_last)


def _flipped_transposed(weight, groups):
    """w'[g·Cg + c, k, r, s] = w[g·Kg + k, c, R−1−r, S−1−s]: the filters of the adjoint convolution."""
    K, Cg, R, S = weight.shape
    grouped = weight.reshape(groups, K // groups, Cg, R, S).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    return np.ascontiguousarray(grouped.reshape(groups * Cg, K // groups, R, S))


@accepts_unbatched()
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", *,
           activation=None, negative_slope=None, algorithm="auto", backend=None, threads=None):
    """2-D convolution (cross-correlation, as in deep learning), NCHW.

    ``y[n,k,p,q] = b[k] + Σ_c,r,s x[n, g·C/G + c, p·sh + r·dh − pt, q·sw + s·dw − pl] · w[k,c,r,s]``

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    weight : ndarray, shape (K, C/groups, R, S), same dtype as ``x``
    bias : ndarray, shape (K,), optional
    stride, dilation : int or (int, int)
    padding : int, (ph, pw), ((top, bottom), (left, right)), "valid" or "same"
        "same" follows TensorFlow: the odd padding pixel goes bottom/right.
    groups : int
        Input channels and filters are split into this many groups
        (``groups == C`` with ``K == C`` is a depthwise convolution).
    padding_mode : {"zeros", "replicate", "reflect", "circular"}
    activation : {None, "relu", "leaky_relu"}
        Fused into the convolution: ``y = max(conv + b, 0)`` (NaN kept, as :func:`relu`), or
        :func:`leaky_relu` of it with ``negative_slope``, in place: no second array. The direct,
        Winograd and im2row kernels apply it to each work item's output as soon as it is written,
        still in cache (to each chunk of images where an item is a block of one); the other
        algorithms in one parallel pass after. Its gradient:
        :func:`conv2d_backward` with the same ``activation`` and ``output=y``.
    negative_slope : float >= 0, optional
        The slope of ``activation="leaky_relu"`` (default 0.01, as :func:`leaky_relu`); a
        negative slope is refused, since the gradient reads the output's sign as the input's.
    algorithm : {"auto", "winograd", "winograd2x2", "direct", "im2col", "im2row", "gemm"}
        Force one algorithm (see :mod:`cnnkernels.plan`); "auto" lets the plan choose
        (:func:`conv2d_plan` says what it chose). Winograd's rounding error is larger than
        the direct sum's: about 1e-6 · Σ|x||w| in float32.
    backend : str, optional
        Force one backend (see :func:`cnnkernels.backends`) for this call.
    threads : int, optional
        Threads for this call (default: :func:`cnnkernels.get_num_threads`); small
        convolutions run on fewer (see :func:`conv2d_plan`).

    Returns
    -------
    y : ndarray, shape (N, K, P, Q), dtype of ``x``
        In x's memory format: given an NCHW view of NHWC memory (PyTorch's ``channels_last``,
        ``to_channels_last(x).transpose(0, 3, 1, 2)``), y is one too. Winograd, im2row (and
        one-group 1x1 layers) read and write it as it lies, with no layout copies, the direct
        kernel writes y so from its threads' caches; im2col and the other padding modes run on
        NCHW copies (see :func:`_in_place_channels_last`).
    """
    ops = kernels(backend)
    x, weight, dtype, geometry, plan, channels_last = _conv_setup(ops, x, weight, stride, padding, dilation, groups,
                                                                  padding_mode, algorithm, threads)
    slope = _args.check_activation(activation, negative_slope)
    K = weight.shape[0]
    if bias is None:
        bias = np.empty(0, dtype)
    else:
        bias = _args.as_input("bias", bias, 1)
        if bias.dtype != dtype:
            raise TypeError(f"bias must have dtype {dtype}, like x; received dtype={bias.dtype}")
        if bias.shape != (K,):
            raise ValueError(f"bias must have shape ({K},); received shape {bias.shape}")
    if x.shape[0] == 0:
        return memory.empty((0, K, *geometry.out_hw), dtype)
    in_place = channels_last and _in_place_channels_last(plan, geometry, padding_mode)
    if channels_last and not in_place:
        x = layout.to_channels_first(x, backend=ops.name, threads=threads)
    y = memory.empty((x.shape[0], *geometry.out_hw, K) if in_place else (x.shape[0], K, *geometry.out_hw), dtype)
    source, top, left = _pad_explicitly(x, geometry, padding_mode)
    with _running(ops, _forward_calls_blas(ops, plan)):
        fused = _run_forward(ops, _threads_now(plan), source, weight, bias, geometry, top, left, y, slope, in_place)
    if slope is not None and not fused:
        _activations.leaky_relu(y, slope, inplace=True, backend=backend, threads=threads)
    if channels_last and not in_place:
        y = layout.to_channels_last(y, backend=ops.name, threads=threads)
    return y.transpose(0, 3, 1, 2) if channels_last else y


@accepts_unbatched("dy", "output", optional=("output",))
def conv2d_backward(
    dy,
    x,
    weight,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    bias=True,
    *,
    input_grad=True,
    weight_grad=True,
    activation=None,
    negative_slope=None,
    output=None,
    algorithm="auto",
    backend=None,
    threads=None,
):
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    ``dx[n,c,h,w] = Σ_k,r,s dy[n,k,p,q] · w[k,c,r,s]`` over the (p, q) that read (h, w);
    ``dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p·sh+r·dh−pt, q·sw+s·dw−pl]``;
    ``db[k] = Σ_n,p,q dy[n,k,p,q]``.

    Parameters
    ----------
    dy : ndarray, shape (N, K, P, Q)
        Gradient of the loss with respect to the output of ``conv2d``.
    x, weight, stride, padding, dilation, groups, padding_mode
        As given to :func:`conv2d`.
    bias : bool
        Whether the forward pass had a bias; if False ``dbias`` is None.
    input_grad, weight_grad : bool
        Compute ``dx`` / ``dweight``; a skipped one is returned as None (a
        network's first layer needs no ``dx``).
    activation : {None, "relu", "leaky_relu"}, optional
        The forward pass's fused activation (see :func:`conv2d`): ``dy`` is then the
        gradient of its output ``y``, given as ``output``, and goes through the activation's
        gradient (ReLU's: 0 where ``y <= 0``; leaky ReLU's: ``negative_slope·dy`` where
        ``y <= 0``) on the way in, together with the bias gradient's sums in one pass.
    negative_slope : float >= 0, optional
        As given to :func:`conv2d` with ``activation="leaky_relu"``.
    output : ndarray like ``dy``, optional
        The forward pass's output ``y``; needed with ``activation``.
    algorithm : {"auto", "winograd", "winograd2x2", "direct", "im2col", "im2row", "gemm"}
        As for :func:`conv2d`; Winograd serves ``dx`` (the adjoint of a stride-1
        3×3 convolution is one too) and ``dweight`` (Gᵀ[Σ (Bᵀ d B) ⊙ (A dy Aᵀ)]G);
        im2row serves ``dx`` in float32 with one group (dy's pixels times the filters,
        each patch's gradient added back), its ``dweight`` is im2col's; direct serves
        ``dweight`` (dy times the forward pass's stride-phase layout, float32, one group), its
        ``dx`` is im2row's (else im2col's).
    backend, threads
        As for :func:`conv2d`.

    Returns
    -------
    dx : ndarray like ``x`` (channels-last memory if ``x`` is, as :func:`conv2d`'s ``y``), or None
    dweight : ndarray like ``weight``, or None
    dbias : ndarray of shape (K,), or None
    """
    ops = kernels(backend)
    x, weight, dtype, geometry, plan, channels_last = _conv_setup(ops, x, weight, stride, padding, dilation, groups,
                                                                  padding_mode, algorithm, threads)
    with_bias = _args.check_flag("bias", bias)
    input_grad = _args.check_flag("input_grad", input_grad)
    weight_grad = _args.check_flag("weight_grad", weight_grad)
    N, K = x.shape[0], weight.shape[0]
    out_shape = (N, K, *geometry.out_hw)
    dy = _gradient("dy", dy, out_shape, dtype, channels_last, ops.name, threads)
    slope = _args.check_activation(activation, negative_slope)
    if slope is not None:
        if output is None:
            raise ValueError(f"activation={activation!r} needs the forward pass's output: pass output=y")
        output = _gradient("output", output, out_shape, dtype, channels_last, ops.name, threads)
        dy, dbias = through_relu(ops, dy, output, slope, with_bias, backend, threads, channels_last)
    elif output is not None:
        raise ValueError("output= is the output of a fused activation; received it with activation=None")
    else:
        dbias = channel_sums(ops, dy, threads, channels_last) if with_bias else None
    dx = dweight = None
    if N == 0:
        dx = memory.zeros(_channels_first_shape(x.shape) if channels_last else x.shape, dtype) if input_grad else None
        dweight = memory.zeros(weight.shape, dtype) if weight_grad else None
        return dx, dweight, dbias
    if channels_last:
        dx, dweight = _backward_channels_last(ops, plan, dy, x, weight, geometry, padding_mode, input_grad,
                                              weight_grad, threads)
        return dx, dweight, dbias
    source, top, left = _pad_explicitly(x, geometry, padding_mode)
    with _running(ops, _backward_calls_blas(ops, plan, input_grad, weight_grad)):
        dx, dweight = _run_backward(ops, _threads_now(plan), dy, x, source, weight, geometry, padding_mode, top, left,
                                    input_grad, weight_grad)
    return dx, dweight, dbias


def _gradient(name, array, shape, dtype, channels_last, backend, threads):
    """A gradient-shaped argument checked as by :func:`cnnkernels._args.check_grad`, C-contiguous: NCHW, or its
    (N, H, W, C) view when x is channels-last; an array lying the other way is transposed by
    :mod:`cnnkernels.layout` (not NumPy's strided copy)."""
    lies_last = _args.is_channels_last(array)
    if not (channels_last or lies_last):
        return _args.check_grad(name, array, shape, dtype)
    _args.check_grad(name, array, shape, dtype, copy=False)
    if not lies_last:
        return layout.to_channels_last(_args.as_input(name, array, 4), backend=backend, threads=threads)
    array = _args.as_input(name, array.transpose(0, 2, 3, 1), 4)
    return array if channels_last else layout.to_channels_first(array, backend=backend, threads=threads)


def _backward_channels_last(ops, plan, dy, x, weight, geometry, padding_mode, input_grad, weight_grad, threads):
    """:func:`conv2d_backward`'s gradients of a channels-last x (dy too, both NHWC here): each as they lie where
    :func:`_in_place_channels_last` says so, else from NCHW copies; dx is returned channels-last, as x came."""
    plan = _threads_now(plan)
    data_in_place = input_grad and _in_place_channels_last(plan, geometry, padding_mode, "data")
    weight_in_place = weight_grad and _in_place_channels_last(plan, geometry, padding_mode, "weight")
    with _running(ops, _backward_calls_blas(ops, plan, data_in_place, weight_in_place)):
        dx, dweight = _run_backward(ops, plan, dy, x, x, weight, geometry, padding_mode, geometry.pad[0],
                                    geometry.pad[2], data_in_place, weight_in_place, channels_last=True)
    input_grad, weight_grad = input_grad and not data_in_place, weight_grad and not weight_in_place
    if input_grad or weight_grad:
        nchw = layout.to_channels_first(x, backend=ops.name, threads=threads)
        dy_first = layout.to_channels_first(dy, backend=ops.name, threads=threads)
        source, top, left = _pad_explicitly(nchw, geometry, padding_mode)
        with _running(ops, _backward_calls_blas(ops, plan, input_grad, weight_grad)):
            dx_first, dweight_first = _run_backward(ops, plan, dy_first, nchw, source, weight, geometry,
                                                    padding_mode, top, left, input_grad, weight_grad)
        dweight = dweight if dweight_first is None else dweight_first
        if input_grad:
            dx = layout.to_channels_last(dx_first, backend=ops.name, threads=threads)
    return (None if dx is None else dx.transpose(0, 3, 1, 2)), dweight


def _run_backward(ops, plan, dy, x, source, weight, geometry, padding_mode, top, left, input_grad, weight_grad,
                  channels_last=False):
    """dx and dweight (each None unless asked for); with ``channels_last`` (:func:`_in_place_channels_last` said
    so), dy, x and dx are NHWC."""
    dtype = x.dtype
    dx = dweight = None
    conv_args = (*geometry.stride, top, left, *geometry.dilation, geometry.groups, plan.n_threads)
    if input_grad:
        dsource = memory.empty(source.shape, dtype)
        if plan.backward_data == "winograd":
            R, S = weight.shape[2:]
            ops.winograd_forward(dy, _flipped_transposed(weight, geometry.groups), np.empty(0, dtype),
                                 R - 1 - top, S - 1 - left, geometry.groups, plan.tile_block, plan.n_threads, dsource,
                                 channels_last=channels_last)
        elif plan.backward_data == "im2row" or channels_last:  # channels-last 1x1 layers too, as in _run_forward
            ops.rows_backward_data(dy, weight, *geometry.stride, top, left, *geometry.dilation, plan.n_threads,
                                   dsource, channels_last)
        elif plan.backward_data == "gemm" and plan.simd_gemm:  # dx[n] = Wᵀ dy[n]: a 1×1 convolution of dy
            ops.pointwise_forward(dy, _flipped_transposed(weight, geometry.groups), np.empty(0, dtype),
                                  geometry.groups, plan.n_threads, dsource)
        else:
            ops.conv2d_backward_data(dy, weight, *conv_args, dsource)
        dx = dsource if source is x else _fold_padding(dsource, geometry, padding_mode, x.shape[2:])
    if weight_grad:
        dweight = memory.empty(weight.shape, dtype)
        if plan.backward_weight == "winograd":
            ops.winograd_backward_weight(dy, source, top, left, geometry.groups, plan.tile_block, plan.n_threads,
                                         dweight, channels_last)
        elif plan.backward_weight == "direct":
            ops.direct_backward_weight(dy, source, *geometry.stride, top, left, *geometry.dilation, plan.n_threads,
                                       dweight, channels_last)
        elif not (plan.backward_weight == "gemm" and plan.simd_gemm_weight  # ours (False where it cannot run)
                  and (ops.pointwise_weight_nhwc if channels_last else ops.pointwise_backward_weight)(
                      dy, source, geometry.groups, plan.n_threads, dweight)):
            if channels_last:  # gemm (the only other in place): one BLAS product per block of pixels
                ops.pointwise_weight_channels_last(dy, source, geometry.groups, plan.n_threads, dweight)
            else:
                ops.conv2d_backward_weight(dy, source, *conv_args, dweight)  # im2col, or gemm on BLAS
    return dx, dweight
