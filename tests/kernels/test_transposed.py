"""conv_transpose2d and its gradients on every backend: against a naive scatter loop in
float64, the adjoint identities of its backward pass, and PyTorch where installed."""

import itertools

import numpy as np
import pytest

import cnnkernels
from tests.conftest import assert_close


def naive(x, w, b, stride, padding, output_padding, groups, dilation):
    """y[n, g·Og + o, p·sh − pt + r·dh, q·sw − pl + s·dw] += x[n, g·Cg + c, p, q] · w[g·Cg + c, o, r, s]"""
    N, C, H, W = x.shape
    _, Og, R, S = w.shape
    (sh, sw), (pt, pl), (oh, ow), (dh, dw) = stride, padding, output_padding, dilation
    full = np.zeros((N, Og * groups, (H - 1) * sh + dh * (R - 1) + 1 + oh, (W - 1) * sw + dw * (S - 1) + 1 + ow))
    Cg = C // groups
    for n, c, p, q, r, s in itertools.product(range(N), range(C), range(H), range(W), range(R), range(S)):
        g = c // Cg
        full[n, g * Og:(g + 1) * Og, p * sh + r * dh, q * sw + s * dw] += x[n, c, p, q] * w[c, :, r, s]
    y = full[:, :, pt:full.shape[2] - pt, pl:full.shape[3] - pl]
    return y + (b.reshape(1, -1, 1, 1) if b is not None else 0)


GRID = [  # x shape, out channels per group, kernel, stride, padding, output_padding, groups, dilation
    ((2, 4, 5, 6), 3, (3, 3), (1, 1), (0, 0), (0, 0), 1, (1, 1)),
    ((2, 4, 5, 6), 3, (3, 3), (2, 2), (1, 1), (1, 1), 1, (1, 1)),
    ((1, 6, 4, 4), 2, (4, 4), (2, 2), (1, 1), (0, 0), 2, (1, 1)),  # the U-Net/DCGAN 4x4/2 upsampler
    ((2, 4, 3, 5), 2, (2, 3), (3, 2), (0, 1), (2, 1), 2, (1, 1)),
    ((1, 3, 4, 4), 2, (3, 2), (1, 2), (2, 0), (0, 1), 1, (2, 3)),
    ((2, 2, 1, 1), 4, (1, 1), (1, 1), (0, 0), (0, 0), 1, (1, 1)),
]


@pytest.mark.parametrize("x_shape,out_per_group,kernel,stride,padding,output_padding,groups,dilation", GRID)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_the_naive_loop_and_its_adjoints(backend, x_shape, out_per_group, kernel, stride, padding,
                                                 output_padding, groups, dilation, dtype):
    rng = np.random.default_rng(sum(x_shape) + sum(kernel))
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((x_shape[1], out_per_group, *kernel))
    b = rng.standard_normal(out_per_group * groups)
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    expected = naive(x, w, b, stride, padding, output_padding, groups, dilation)
    y = cnnkernels.conv_transpose2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), backend=backend, **args)
    assert_close(y, expected.astype(dtype))
    # The backward pass is the adjoint of the forward in x and in w (y is bilinear): for any dy,
    # <y(x, w), dy> = <x, dx> = <w, dw>, exactly up to rounding in float64.
    dy = rng.standard_normal(expected.shape)
    dx, dw, db = cnnkernels.conv_transpose2d_backward(dy.astype(dtype), x.astype(dtype), w.astype(dtype),
                                                      backend=backend, **args)
    inner = float(np.sum((expected - b.reshape(1, -1, 1, 1)) * dy))
    tolerance = 1e-9 if dtype == np.float64 else 2e-4
    assert abs(float(np.sum(x * dx)) - inner) <= tolerance * (1 + abs(inner) + np.abs(x * dx).sum())
    assert abs(float(np.sum(w * dw)) - inner) <= tolerance * (1 + abs(inner) + np.abs(w * dw).sum())
    assert_close(db, dy.sum(axis=(0, 2, 3)).astype(dtype))
    assert dx.shape == x.shape and dw.shape == w.shape and dx.dtype == dw.dtype == np.dtype(dtype)


@pytest.mark.parametrize("x_shape,out_per_group,kernel,stride,padding,output_padding,groups,dilation", GRID)
def test_matches_torch(backend, x_shape, out_per_group, kernel, stride, padding, output_padding, groups, dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((x_shape[1], out_per_group, *kernel))
    b = rng.standard_normal(out_per_group * groups)
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **args)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    assert_close(cnnkernels.conv_transpose2d(x, w, b, backend=backend, **args), ty.detach().numpy())
    for got, want in zip(cnnkernels.conv_transpose2d_backward(dy, x, w, backend=backend, **args),
                         (tx.grad, tw.grad, tb.grad)):
        assert_close(got, want.numpy())


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(output_padding=2, stride=2), ValueError, "output_padding must be smaller than stride"),
    (dict(output_padding=-1), ValueError, "output_padding"),
    (dict(padding="same"), TypeError, "padding as ints"),
    (dict(padding=9), ValueError, "the output would be"),
    (dict(groups=3), ValueError, "groups"),
    (dict(stride=(1,)), None, None),  # a 1-tuple means both, as in PyTorch
])
def test_bad_arguments_are_named(kwargs, error, message):
    x, w = np.ones((1, 4, 3, 3)), np.ones((4, 2, 3, 3))
    if error is None:
        assert cnnkernels.conv_transpose2d(x, w, **kwargs).shape == (1, 2, 5, 5)
        return
    with pytest.raises(error, match=message):
        cnnkernels.conv_transpose2d(x, w, **kwargs)
    with pytest.raises(ValueError, match=r"weight must have shape \(in_channels=4"):
        cnnkernels.conv_transpose2d(x, np.ones((3, 2, 3, 3)))
