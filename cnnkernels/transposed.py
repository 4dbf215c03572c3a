"""Transposed convolution, forward and backward: the adjoint of :func:`cnnkernels.conv2d`,
run by conv2d's own kernels (no third convolution to keep correct).

``conv_transpose2d(x, w)`` is the input gradient of the convolution whose input has the
transposed convolution's output shape and whose filters are ``w``; its input gradient is
that convolution itself, and its weight gradient is that convolution's weight gradient
with the roles of input and output gradient swapped.
"""

from __future__ import annotations

import numpy as np

from . import _args
from ._unbatched import accepts_unbatched
from .api import conv2d, conv2d_backward


def _geometry(x, weight, stride, padding, output_padding, groups, dilation):
    """(x, weight, dtype, conv-shaped output shape, conv keyword arguments), all validated."""
    x = _args.as_input("x", x, 4)
    weight = _args.as_input("weight", weight, 4)
    dtype = _args.check_same_dtype(x=x, weight=weight)
    _args.check_nonempty("x", x)
    N, C, H, W = x.shape
    C_w, out_per_group, R, S = weight.shape
    if 0 in weight.shape:
        raise ValueError(f"weight must have no empty axis; received shape {weight.shape}")
    if C_w != C:
        raise ValueError(f"weight must have shape (in_channels={C}, out_channels/groups, kH, kW); "
                         f"received weight.shape={weight.shape} for x.shape={x.shape}")
    if not _args._is_int(groups) or groups < 1 or C % groups:
        raise ValueError(f"groups must be a positive int dividing the input channels {C}; received groups={groups!r}")
    stride = _args.as_pair("stride", stride, minimum=1)
    dilation = _args.as_pair("dilation", dilation, minimum=1)
    output_padding = _args.as_pair("output_padding", output_padding, minimum=0)
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"output_padding must be smaller than stride; received output_padding={output_padding}, "
                         f"stride={stride}")
    if isinstance(padding, str):
        raise TypeError(f"conv_transpose2d takes padding as ints, as PyTorch does; received padding={padding!r}")
    top, bottom, left, right = _args.normalise_padding(padding, (H, W), (R, S), stride, dilation)
    out_h = (H - 1) * stride[0] - top - bottom + dilation[0] * (R - 1) + output_padding[0] + 1
    out_w = (W - 1) * stride[1] - left - right + dilation[1] * (S - 1) + output_padding[1] + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"the output would be {out_h}x{out_w}: padding={padding!r} removes more than the "
                         f"{(H - 1) * stride[0] + dilation[0] * (R - 1) + 1}x"
                         f"{(W - 1) * stride[1] + dilation[1] * (S - 1) + 1} the input spreads to")
    out_shape = (N, out_per_group * groups, out_h, out_w)
    _args.check_allocation("the output", out_shape, dtype)
    conv = dict(stride=stride, padding=((top, bottom), (left, right)), dilation=dilation, groups=int(groups))
    return x, weight, dtype, out_shape, conv


@accepts_unbatched()
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                     algorithm="auto", backend=None, threads=None):
    """2-D transposed convolution ("deconvolution"), NCHW, as ``torch.nn.functional.conv_transpose2d``.

    ``y[n, g·Og + o, h, w] = b[g·Og + o] + Σ_c,r,s x[n, g·Cg + c, p, q] · w[g·Cg + c, o, r, s]``
    over the (p, q) with ``h = p·sh − pt + r·dh`` and ``w = q·sw − pl + s·dw``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    weight : ndarray, shape (C, out_channels/groups, kH, kW), same dtype
    bias : ndarray, shape (out_channels,), optional
    stride, dilation : int or (int, int)
    padding : int, (ph, pw) or ((top, bottom), (left, right))
        Removed from the output's borders: ``H_out = (H−1)·sh − pt − pb + dh·(kH−1) + oph + 1``.
    output_padding : int or (int, int)
        Rows/columns added at the bottom/right (each smaller than the stride): which of the
        input sizes a strided convolution maps to H the output has.
    groups : int
    algorithm, backend, threads
        As for :func:`cnnkernels.conv2d` (the algorithm is that of its input gradient).

    Returns
    -------
    y : ndarray, shape (N, out_channels, H_out, W_out)
    """
    x, weight, dtype, out_shape, conv = _geometry(x, weight, stride, padding, output_padding, groups, dilation)
    out_channels = out_shape[1]
    if bias is not None:
        bias = _args.as_input("bias", bias, 1)
        if bias.dtype != dtype or bias.shape != (out_channels,):
            raise ValueError(f"bias must be {dtype} of shape ({out_channels},); received {bias.dtype} {bias.shape}")
    # The convolution's input is only read for its shape here: an untouched np.empty costs no memory.
    y, _, _ = conv2d_backward(x, np.empty(out_shape, dtype), weight, **conv, bias=False, weight_grad=False,
                              algorithm=algorithm, backend=backend, threads=threads)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


@accepts_unbatched("dy")
def conv_transpose2d_backward(dy, x, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              bias=True, *, input_grad=True, weight_grad=True, algorithm="auto", backend=None,
                              threads=None):
    """Gradients of :func:`conv_transpose2d` with respect to its input, weight and bias.

    ``dx = conv2d(dy, w)``, ``dw = ∂/∂w of conv2d with input dy and output gradient x``,
    ``db = Σ_n,h,w dy``, with the transposed convolution's stride, padding, dilation and groups.

    Returns
    -------
    dx, dweight, dbias : ndarrays like ``x``, ``weight`` and (out_channels,); None where not asked for
    """
    x, weight, dtype, out_shape, conv = _geometry(x, weight, stride, padding, output_padding, groups, dilation)
    with_bias = _args.check_flag("bias", bias)
    input_grad = _args.check_flag("input_grad", input_grad)
    weight_grad = _args.check_flag("weight_grad", weight_grad)
    dy = _args.check_grad("dy", dy, out_shape, dtype)
    dx = conv2d(dy, weight, None, **conv, algorithm=algorithm, backend=backend, threads=threads) \
        if input_grad else None
    dweight = None
    if weight_grad:
        dweight = conv2d_backward(x, dy, weight, **conv, bias=False, input_grad=False, algorithm=algorithm,
                                  backend=backend, threads=threads)[1]
    dbias = dy.sum(axis=(0, 2, 3)) if with_bias else None
    return dx, dweight, dbias
