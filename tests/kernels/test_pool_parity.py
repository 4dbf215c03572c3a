"""Every backend's pooling against the NumPy reference, with ReLU-style ties."""

import itertools

import numpy as np
import pytest

import cnnkernels
from tests.conftest import assert_close

POOLS = {
    "max": (cnnkernels.max_pool2d, cnnkernels.max_pool2d_backward, {}),
    "avg": (cnnkernels.avg_pool2d, cnnkernels.avg_pool2d_backward, {}),
    "avg_exclude_pad": (cnnkernels.avg_pool2d, cnnkernels.avg_pool2d_backward, {"count_include_pad": False}),
    "sum": (cnnkernels.sum_pool2d, cnnkernels.sum_pool2d_backward, {}),
}


def relu_ties(rng, shape, dtype):
    """Small integers through a ReLU: many zeros and repeated maxima in every window."""
    return np.maximum(rng.integers(-3, 3, size=shape), 0).astype(dtype)


@pytest.mark.parametrize("kind", list(POOLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_size", [2, 3, (2, 3)], ids=repr)
@pytest.mark.parametrize("stride", [None, 1, 2, (1, 2)], ids=repr)
@pytest.mark.parametrize("padding", [0, 1, "same", ((0, 1), (1, 0))], ids=repr)
def test_pool_matches_reference(backend, rng, kind, dtype, kernel_size, stride, padding):
    forward, backward, extra = POOLS[kind]
    checked = 0
    for (H, W), N, data in itertools.product([(7, 9), (6, 6)], [1, 2], ["ties", "normal"]):
        shape = (N, 3, H, W)
        x = relu_ties(rng, shape, dtype) if data == "ties" else rng.standard_normal(shape).astype(dtype)
        case = dict(shape=shape, data=data)
        try:
            expected = forward(x, kernel_size, stride, padding, **extra, backend="numpy")
        except ValueError:
            continue  # padding as wide as the kernel: rejected identically by every backend
        assert_close(forward(x, kernel_size, stride, padding, **extra, backend=backend), expected, what=f"{case}")
        dy = rng.standard_normal(expected.shape).astype(dtype)
        wanted = backward(dy, x, kernel_size, stride, padding, **extra, backend="numpy")
        got = backward(dy, x, kernel_size, stride, padding, **extra, backend=backend)
        assert_close(got, wanted, what=f"backward {case}")
        checked += 1
    assert checked > 0


def test_max_pool_backward_routes_to_first_maximum(backend):
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 0.0]]]])
    dy = np.array([[[[10.0, 20.0]]]])
    dx = cnnkernels.max_pool2d_backward(dy, x, 2, backend=backend)
    expected = np.array([[[[0.0, 10.0, 20.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, expected)


def test_max_pool_all_zero_window_routes_to_its_first_cell(backend):
    x = np.zeros((1, 1, 3, 3), np.float32)
    dx = cnnkernels.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), x, 2, 1, backend=backend)
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_padding_never_wins_a_max(backend):
    x = -np.ones((1, 1, 2, 2))  # every real value is below the zero a padded cell would hold
    y = cnnkernels.max_pool2d(x, 2, 1, 1, backend=backend)
    np.testing.assert_array_equal(y, -np.ones((1, 1, 3, 3)))
    dx = cnnkernels.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 2, 1, 1, backend=backend)
    assert dx.sum() == 9.0  # all nine gradients land on real cells


def test_avg_pool_count_include_pad(backend):
    x = np.ones((1, 1, 2, 2))
    included = cnnkernels.avg_pool2d(x, 2, 1, 1, count_include_pad=True, backend=backend)
    excluded = cnnkernels.avg_pool2d(x, 2, 1, 1, count_include_pad=False, backend=backend)
    np.testing.assert_allclose(included[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    np.testing.assert_allclose(excluded, np.ones((1, 1, 3, 3)))


def test_nan_propagates_through_max_pool(backend):
    x = np.array([[[[1.0, np.nan, 5.0, 2.0]]]])
    y = cnnkernels.max_pool2d(x, (1, 2), backend=backend)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1] == 5.0
    dx = cnnkernels.max_pool2d_backward(np.ones_like(y), x, (1, 2), backend=backend)
    np.testing.assert_array_equal(dx[0, 0, 0], [0.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_2x2_window_of_special_values_matches_the_reference(backend, dtype):
    """The 2×2, stride-2 windows have a loop of their own: every one of the 5⁴ windows over
    {0, 1, NaN, inf, −inf} (ties, NaN in each cell, NaN after a tie) must give the reference's
    maximum, first-maximum index and gradient route. One odd row and column are left over."""
    values = np.array([0.0, 1.0, np.nan, np.inf, -np.inf])
    windows = np.array(list(itertools.product(range(5), repeat=4)))  # (625, 4): cells a, b / c, d
    x = np.zeros((1, 2, 5, 2 * len(windows) + 1), dtype)
    x[0, :, 0, 0:-1:2], x[0, :, 0, 1:-1:2] = values[windows[:, 0]], values[windows[:, 1]]
    x[0, :, 1, 0:-1:2], x[0, :, 1, 1:-1:2] = values[windows[:, 2]], values[windows[:, 3]]
    x[0, 1, 2:4] = x[0, 0, :2]  # the second row of windows, in another channel
    dy = np.arange(1, 1 + 2 * 2 * len(windows), dtype=dtype).reshape(1, 2, 2, len(windows))
    y, indices = cnnkernels.max_pool2d(x, 2, return_indices=True, backend=backend)
    want_y, want_indices = cnnkernels.max_pool2d(x, 2, return_indices=True, backend="numpy")
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(cnnkernels.max_pool2d(x, 2, backend=backend), want_y)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_array_equal(cnnkernels.max_pool2d_backward(dy, x, 2, backend=backend),
                                  cnnkernels.max_pool2d_backward(dy, x, 2, backend="numpy"))
