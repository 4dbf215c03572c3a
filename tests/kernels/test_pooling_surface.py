"""The rest of torch.nn.functional's pooling: dilation, ceil_mode, return_indices, divisor_override,
max_unpool2d and adaptive pooling — every backend against the NumPy reference, and PyTorch where installed."""

import itertools

import numpy as np
import pytest

import cnnkernels as ck
from tests.conftest import assert_close

torch = None
try:  # the comparisons with PyTorch run where it is installed
    import torch
except ImportError:  # pragma: no cover
    pass
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

MAX_GRID = [  # (H, W), kernel, stride, padding, dilation, ceil_mode
    ((9, 8), 3, 2, 1, 1, True), ((9, 8), 3, 2, 1, 1, False), ((55, 55), 3, 2, 0, 1, True),  # AlexNet's
    ((10, 7), (3, 2), (2, 3), (1, 0), (2, 1), True), ((8, 8), 2, 1, 1, 3, False), ((7, 9), 3, 3, 1, 2, True),
    ((5, 5), 4, 3, 2, 1, True), ((6, 6), 2, None, 0, 1, True),
]
AVG_GRID = [  # (H, W), kernel, stride, padding, ceil_mode
    ((9, 8), 3, 2, 1, True), ((7, 7), 2, 2, 1, True), ((10, 7), (3, 2), (2, 3), (1, 0), True), ((5, 6), 3, 2, 0, False),
    ((6, 6), 4, 3, 2, True),
]


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("hw,kernel,stride,padding,dilation,ceil_mode", MAX_GRID)
def test_max_pool_arguments_match_the_reference(backend, hw, kernel, stride, padding, dilation, ceil_mode):
    x = _x((2, 3, *hw), np.float32)
    args = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    y, where = ck.max_pool2d(x, **args, return_indices=True, backend=backend)
    y_ref, where_ref = ck.max_pool2d(x, **args, return_indices=True, backend="numpy")
    assert_close(y, y_ref)
    np.testing.assert_array_equal(where, where_ref)
    assert_close(ck.max_pool2d(x, **args, backend=backend), y_ref)
    dy = _x(y.shape, np.float32, 1)
    assert_close(ck.max_pool2d_backward(dy, x, **args, backend=backend),
                 ck.max_pool2d_backward(dy, x, **args, backend="numpy"))


@needs_torch
@pytest.mark.parametrize("hw,kernel,stride,padding,dilation,ceil_mode", MAX_GRID)
def test_max_pool_arguments_match_torch(backend, hw, kernel, stride, padding, dilation, ceil_mode):
    x = _x((2, 3, *hw))
    args = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    tx = torch.from_numpy(x).requires_grad_()
    ty, twhere = torch.nn.functional.max_pool2d(tx, **args, return_indices=True)
    dy = _x(tuple(ty.shape), seed=1)
    ty.backward(torch.from_numpy(dy))
    y, where = ck.max_pool2d(x, **args, return_indices=True, backend=backend)
    assert_close(y, ty.detach().numpy())
    np.testing.assert_array_equal(where, twhere.numpy())
    assert_close(ck.max_pool2d_backward(dy, x, **args, backend=backend), tx.grad.numpy())


@pytest.mark.parametrize("hw,kernel,stride,padding,ceil_mode", AVG_GRID)
@pytest.mark.parametrize("count_include_pad,divisor_override", [(True, None), (False, None), (True, 5), (False, -3)])
def test_avg_pool_arguments_match_the_reference_and_torch(backend, hw, kernel, stride, padding, ceil_mode,
                                                          count_include_pad, divisor_override):
    x = _x((2, 3, *hw))
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                count_include_pad=count_include_pad, divisor_override=divisor_override)
    y = ck.avg_pool2d(x, **args, backend=backend)
    assert_close(y, ck.avg_pool2d(x, **args, backend="numpy"))
    dy = _x(y.shape, seed=1)
    dx = ck.avg_pool2d_backward(dy, x, **args, backend=backend)
    assert_close(dx, ck.avg_pool2d_backward(dy, x, **args, backend="numpy"))
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        ty = torch.nn.functional.avg_pool2d(tx, **args)
        ty.backward(torch.from_numpy(dy))
        assert_close(y, ty.detach().numpy())
        assert_close(dx, tx.grad.numpy())


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_sum_pool_takes_ceil_mode(backend, ceil_mode):
    x = _x((1, 2, 7, 7))
    got = ck.sum_pool2d(x, 3, 2, 1, ceil_mode, backend=backend)
    want = ck.avg_pool2d(x, 3, 2, 1, ceil_mode, divisor_override=1, backend="numpy")
    assert_close(got, want)


def test_max_unpool_inverts_pooling_where_it_can(backend):
    x = _x((2, 3, 8, 7))
    y, where = ck.max_pool2d(x, 2, return_indices=True, backend=backend)
    restored = ck.max_unpool2d(y, where, 2, output_size=(8, 7))
    assert restored.shape == x.shape
    np.testing.assert_array_equal(restored[restored != 0], x[restored != 0])
    assert np.count_nonzero(restored) == y.size
    dy = _x(restored.shape, seed=2)
    np.testing.assert_array_equal(ck.max_unpool2d_backward(dy, y, where, 2, output_size=(8, 7)),
                                  np.take_along_axis(dy.reshape(2, 3, -1), where.reshape(2, 3, -1), 2).reshape(y.shape))
    if torch is not None:
        theirs = torch.nn.functional.max_unpool2d(torch.from_numpy(y), torch.from_numpy(where), 2, output_size=(8, 7))
        np.testing.assert_array_equal(restored, theirs.numpy())
        y, where = ck.max_pool2d(x[..., :6], 2, return_indices=True, backend=backend)  # the default size: 8x6
        theirs = torch.nn.functional.max_unpool2d(torch.from_numpy(y), torch.from_numpy(where), 2)
        np.testing.assert_array_equal(ck.max_unpool2d(y, where, 2), theirs.numpy())


ADAPTIVE = [((7, 7), 1), ((7, 7), (3, 2)), ((10, 9), (4, None)), ((8, 6), (4, 3)), ((5, 5), 7), ((6, 5), (1, 5))]


@pytest.mark.parametrize("hw,output_size", ADAPTIVE)
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_pooling_matches_torch_and_every_backend_agrees(backend, hw, output_size, kind):
    x = _x((2, 3, *hw))
    forward = getattr(ck, f"adaptive_{kind}_pool2d")
    backward = getattr(ck, f"adaptive_{kind}_pool2d_backward")
    y = forward(x, output_size, backend=backend)
    dy = _x(y.shape, seed=4)
    dx = backward(dy, x, output_size, backend=backend)
    assert_close(y, forward(x, output_size, backend="numpy"))
    assert_close(dx, backward(dy, x, output_size, backend="numpy"))
    if kind == "max":
        _, where = forward(x, output_size, return_indices=True, backend=backend)
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_()
        theirs = getattr(torch.nn.functional, f"adaptive_{kind}_pool2d")
        ty = theirs(tx, output_size)
        ty.backward(torch.from_numpy(dy))
        assert_close(y, ty.detach().numpy())
        assert_close(dx, tx.grad.numpy())
        if kind == "max":
            np.testing.assert_array_equal(where, theirs(torch.from_numpy(x), output_size, return_indices=True)[1].numpy())


def test_adaptive_max_propagates_nan():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 4, 4] = np.nan
    y = ck.adaptive_max_pool2d(x, 3)
    assert np.isnan(y[0, 0, 2, 2]) and not np.isnan(y[0, 0, 0, 0])


BAD = {
    "ceil_mode not bool": (lambda: ck.max_pool2d(np.ones((1, 1, 4, 4)), 2, ceil_mode=1), TypeError, "ceil_mode=1"),
    "dilation zero": (lambda: ck.max_pool2d(np.ones((1, 1, 4, 4)), 2, dilation=0), ValueError, "dilation=0"),
    "dilation past the input": (lambda: ck.max_pool2d(np.ones((1, 1, 2, 2)), 2, padding=1, dilation=3), ValueError,
                                "dilation=(3, 3)"),
    "divisor_override zero": (lambda: ck.avg_pool2d(np.ones((1, 1, 4, 4)), 2, divisor_override=0), ValueError,
                              "divisor_override=0"),
    "return_indices not bool": (lambda: ck.max_pool2d(np.ones((1, 1, 4, 4)), 2, return_indices="yes"), TypeError,
                                "return_indices='yes'"),
    "output_size zero": (lambda: ck.adaptive_avg_pool2d(np.ones((1, 1, 4, 4)), 0), ValueError, "output_size=0"),
    "output_size negative": (lambda: ck.adaptive_max_pool2d(np.ones((1, 1, 4, 4)), (2, -1)), ValueError,
                             "output_size=(2, -1)"),
    "unpool indices of floats": (lambda: ck.max_unpool2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), 2),
                                 TypeError, "indices must be an integer ndarray"),
    "unpool index out of range": (lambda: ck.max_unpool2d(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16), 2),
                                  ValueError, "from 16 to 16"),
    "unpool output_size too far": (lambda: ck.max_unpool2d(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2,
                                                           output_size=(9, 4)), ValueError, "output_size=(9, 4)"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_pooling_arguments_are_named(case):
    call, error, text = BAD[case]
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value), str(info.value)


def test_cached_pool_geometry_still_checks_every_call():
    """A pooling's geometry is cached per shape and plain arguments: a later call whose arguments are equal but
    not valid (ceil_mode=1 is not a bool, 2.0 is not an int) or whose input differs is still checked."""
    x = np.ones((1, 2, 6, 6), np.float32)
    assert ck.max_pool2d(x, 2, ceil_mode=True).shape == (1, 2, 3, 3)
    with pytest.raises(TypeError, match="ceil_mode"):
        ck.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises((TypeError, ValueError), match="kernel_size"):
        ck.max_pool2d(x, 2.0)
    with pytest.raises(ValueError, match="padding"):
        ck.max_pool2d(x, 2, padding=2)  # twice: a call that raises is not cached
    with pytest.raises(ValueError, match="padding"):
        ck.max_pool2d(x, 2, padding=2)
    assert ck.max_pool2d(np.ones((1, 2, 8, 8), np.float32), 2, ceil_mode=True).shape == (1, 2, 4, 4)
