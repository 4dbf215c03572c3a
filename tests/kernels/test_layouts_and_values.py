"""Memory layouts, empty batches, NaN/inf and the exact padding arithmetic."""

import numpy as np
import pytest

import cnnkernels
from cnnkernels import _args
from tests.conftest import assert_close


def _layouts(a):
    """The same values as a Fortran-ordered, a strided, a negative-stride and a read-only array."""
    fortran = np.asfortranarray(a)
    strided = np.repeat(a, 2, axis=3)[..., ::2]
    flipped = np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    readonly = a.copy()
    readonly.flags.writeable = False
    return {"fortran": fortran, "strided": strided, "negative-stride": flipped, "read-only": readonly}


@pytest.mark.parametrize("layout", ["fortran", "strided", "negative-stride", "read-only"])
def test_any_layout_gives_the_same_numbers(backend, rng, layout):
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 4, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    xs, ws, dys = _layouts(x)[layout], _layouts(w)[layout], _layouts(dy)[layout]
    assert np.array_equal(xs, x) and np.array_equal(dys, dy)
    assert_close(cnnkernels.conv2d(xs, ws, padding=1, backend=backend), cnnkernels.conv2d(x, w, padding=1))
    for got, want in zip(cnnkernels.conv2d_backward(dys, xs, ws, padding=1, backend=backend),
                         cnnkernels.conv2d_backward(dy, x, w, padding=1)):
        assert_close(got, want)
    assert_close(cnnkernels.max_pool2d(xs, 2, backend=backend), cnnkernels.max_pool2d(x, 2))
    pool_dy = _layouts(rng.standard_normal((2, 4, 3, 3)).astype(np.float32))[layout]
    assert_close(cnnkernels.avg_pool2d_backward(pool_dy, xs, 2, backend=backend),
                 cnnkernels.avg_pool2d_backward(np.ascontiguousarray(pool_dy), x, 2, backend="numpy"))


def test_non_native_byte_order_is_accepted(backend, rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 2, 3, 3))
    swapped = x.astype(x.dtype.newbyteorder())
    assert_close(cnnkernels.conv2d(swapped, w, backend=backend), cnnkernels.conv2d(x, w, backend="numpy"))


def test_empty_batch(backend):
    x = np.zeros((0, 3, 5, 5), np.float32)
    w = np.zeros((2, 3, 3, 3), np.float32)
    assert cnnkernels.conv2d(x, w, backend=backend).shape == (0, 2, 3, 3)
    dx, dw, db = cnnkernels.conv2d_backward(np.zeros((0, 2, 3, 3), np.float32), x, w, backend=backend)
    assert dx.shape == x.shape and not dw.any() and db.shape == (2,)
    assert cnnkernels.max_pool2d(x, 2, backend=backend).shape == (0, 3, 2, 2)


def test_nan_and_inf_propagate_like_numpy(backend):
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    y = cnnkernels.conv2d(x, np.ones((1, 1, 2, 2)), backend=backend)
    assert np.isnan(y[0, 0, 0, 0]) and np.isinf(y[0, 0, 2, 2])
    assert np.isfinite(y[0, 0, 1, 1])
    s = cnnkernels.sum_pool2d(x, 2, backend=backend)
    assert np.isnan(s[0, 0, 0, 0]) and s[0, 0, 1, 1] == np.inf and s[0, 0, 0, 1] == 4.0


@pytest.mark.parametrize(
    "size,kernel,stride,dilation,expected",
    [
        (7, 3, 1, 1, (1, 1)),
        (6, 4, 1, 1, (1, 2)),  # odd total: the extra pixel goes to the bottom/right
        (7, 3, 2, 1, (1, 1)),
        (8, 3, 2, 1, (0, 1)),
        (5, 3, 1, 2, (2, 2)),
        (5, 1, 3, 1, (0, 0)),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, dilation, expected):
    pads = _args.normalise_padding("same", (size, size), (kernel, kernel), (stride, stride), (dilation, dilation))
    assert pads == (*expected, *expected)
    out = -(-size // stride)
    geometry = _args.conv_geometry((1, 1, size, size), (1, 1, kernel, kernel), stride, "same", dilation, 1, "zeros")
    assert geometry.out_hw == (out, out)


def test_padding_forms_agree():
    shape, kernel = (1, 1, 6, 6), (1, 1, 3, 3)
    geometry = lambda p: _args.conv_geometry(shape, kernel, 1, p, 1, 1, "zeros").pad  # noqa: E731
    assert geometry(1) == geometry((1, 1)) == geometry(((1, 1), (1, 1))) == geometry("same") == (1, 1, 1, 1)
    assert geometry("valid") == geometry(0) == (0, 0, 0, 0)
    assert geometry(((0, 2), (1, 0))) == (0, 2, 1, 0)


def test_replicate_and_reflect_padding_values(backend):
    x = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    identity = np.ones((1, 1, 1, 1))
    replicate = cnnkernels.conv2d(x, identity, padding=((0, 0), (2, 1)), padding_mode="replicate", backend=backend)
    reflect = cnnkernels.conv2d(x, identity, padding=((0, 0), (2, 1)), padding_mode="reflect", backend=backend)
    np.testing.assert_array_equal(replicate[0, 0, 0], [1, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(reflect[0, 0, 0], [3, 2, 1, 2, 3, 2])
    dx, _, _ = cnnkernels.conv2d_backward(np.ones((1, 1, 1, 6)), x, identity, padding=((0, 0), (2, 1)),
                                          padding_mode="reflect", backend=backend)
    np.testing.assert_array_equal(dx[0, 0, 0], [1, 3, 2])  # each padded copy sends its gradient home
    circular = cnnkernels.conv2d(x, identity, padding=((0, 0), (2, 1)), padding_mode="circular", backend=backend)
    np.testing.assert_array_equal(circular[0, 0, 0], [2, 3, 1, 2, 3, 1])
    dx, _, _ = cnnkernels.conv2d_backward(np.ones((1, 1, 1, 6)), x, identity, padding=((0, 0), (2, 1)),
                                          padding_mode="circular", backend=backend)
    np.testing.assert_array_equal(dx[0, 0, 0], [2, 2, 2])


def test_output_dtype_follows_input(backend, rng):
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((1, 2, 5, 5)).astype(dtype)
        w = rng.standard_normal((2, 2, 3, 3)).astype(dtype)
        assert cnnkernels.conv2d(x, w, backend=backend).dtype == dtype
        assert cnnkernels.avg_pool2d(x, 2, backend=backend).dtype == dtype


def test_backward_can_skip_input_or_weight_gradient(backend, rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    dx, dw, db = cnnkernels.conv2d_backward(dy, x, w, backend="numpy")
    only_w = cnnkernels.conv2d_backward(dy, x, w, input_grad=False, backend=backend)
    only_x = cnnkernels.conv2d_backward(dy, x, w, weight_grad=False, bias=False, backend=backend)
    assert only_w[0] is None and only_x[1] is None and only_x[2] is None
    assert_close(only_w[1], dw)
    assert_close(only_w[2], db)
    assert_close(only_x[0], dx)
