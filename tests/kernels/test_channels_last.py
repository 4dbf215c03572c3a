"""PyTorch's channels_last memory format: conv2d and conv2d_backward given x as an NCHW view of NHWC memory return
the same values as for NCHW x, y and dx in x's format, on every backend and algorithm, with every mix of dy's and
output's formats, at any thread count; the kernels that read it in place (im2row and its adjoint, 1x1 layers, the
direct weight gradient) against the reference."""

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import _args
from tests.conftest import assert_close


def channels_last(a):
    """The values of a, laid out as (N, H, W, C) in memory: PyTorch's x.contiguous(memory_format=channels_last)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


# (x shape, K, R, S, geometry, algorithm): the in-place kernels (im2row strided, dilated and rectangular, 1x1 gemm,
# Winograd's three passes, with groups, the direct weight gradient) and the ones that take NCHW copies (direct
# forward, im2col with groups, reflect padding)
CASES = [
    ((2, 64, 33, 31), 40, 3, 3, dict(stride=2, padding=1), "auto"),  # im2row / im2row / direct, as ResNet's
    ((2, 16, 12, 12), 33, 3, 3, dict(stride=2, padding=1), "im2row"),
    ((2, 7, 10, 9), 17, 3, 2, dict(padding=(1, 0), dilation=(2, 1)), "im2row"),
    ((2, 20, 6, 7), 24, 1, 1, dict(), "auto"),
    ((2, 20, 6, 7), 24, 1, 1, dict(groups=2), "auto"),  # the weight gradient in place, the rest on copies
    ((2, 20, 9, 9), 12, 1, 1, dict(stride=2), "auto"),
    ((2, 8, 10, 10), 16, 3, 3, dict(padding=1), "winograd"),  # image by image
    ((3, 24, 41, 38), 20, 3, 3, dict(padding=1), "winograd"),  # a chunk of images shared by the threads
    ((2, 16, 24, 19), 34, 3, 3, dict(padding=(0, 1), groups=2), "winograd"),
    ((2, 3, 12, 12), 8, 3, 3, dict(padding=1), "direct"),
    ((2, 18, 13, 11), 16, 3, 3, dict(stride=2, padding=1), "direct"),
    ((2, 8, 10, 10), 16, 3, 3, dict(padding=1, groups=2), "auto"),
    ((2, 6, 9, 8), 5, 3, 3, dict(padding=1), "im2col"),
    ((2, 8, 10, 10), 16, 3, 3, dict(padding=1, stride=2, padding_mode="reflect"), "auto"),
]


def _case(rng, case, dtype="float32"):
    shape, K, R, S, geometry, algorithm = case
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((K, shape[1] // geometry.get("groups", 1), R, S)).astype(dtype) / 4
    b = rng.standard_normal(K).astype(dtype)
    return x, w, b, geometry, algorithm


def _runs(backend, algorithm, dtype):
    forced_float32 = algorithm in ("im2row", "winograd", "direct")
    return not (forced_float32 and (backend != "cython" or dtype != "float32"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-k{c[1]}-{c[2]}x{c[3]}-{c[5]}-{c[4]}")
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
def test_same_values_as_nchw_and_its_format_kept(backend, rng, case, activation):
    x, w, b, geometry, algorithm = _case(rng, case)
    if not _runs(backend, algorithm, "float32"):
        pytest.skip(f"{algorithm} runs float32 on the cython backend only")
    options = dict(geometry, algorithm=algorithm, backend=backend, activation=activation)
    y = ck.conv2d(x, w, b, **options)
    y_last = ck.conv2d(channels_last(x), w, b, **options)
    assert _args.is_channels_last(y_last)
    # the 1x1 layer runs im2row's product in place of gemm's: the same sums, added in another order
    assert_close(y_last, y, what="y")
    reference = ck.conv2d(x, w, b, **geometry, backend="numpy")
    reference = ck.leaky_relu(reference, {None: 1.0, "relu": 0.0, "leaky_relu": 0.01}[activation])
    assert_close(y_last, reference, what="y vs the reference")

    dy = rng.standard_normal(y.shape).astype(np.float32)
    backward = dict(geometry, algorithm=algorithm, backend=backend, activation=activation)
    expected = ck.conv2d_backward(dy, x, w, **backward, output=y if activation else None)
    for dy_given in (dy, channels_last(dy)):
        for y_given in (y, y_last):
            got = ck.conv2d_backward(dy_given, channels_last(x), w, **backward, output=y_given if activation else None)
            assert _args.is_channels_last(got[0])
            for name, a, e in zip(("dx", "dweight", "dbias"), got, expected):
                assert_close(a, e, what=name)
            if not activation:
                break
    # NCHW x with a channels-last dy: NCHW gradients, the same values
    got = ck.conv2d_backward(channels_last(dy), x, w, **backward, output=y_last if activation else None)
    assert got[0].flags.c_contiguous
    for name, a, e in zip(("dx", "dweight", "dbias"), got, expected):
        assert_close(a, e, what=name)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_in_place_kernels_at_any_thread_count(rng, threads):
    x, w, b, geometry, _ = _case(rng, ((5, 64, 33, 35), 40, 3, 3, dict(stride=2, padding=1), "auto"))
    # the strided ResNet layer's plan on AVX-512: im2row forward, its adjoint for dx, the direct weight gradient
    plan = ck.conv2d_plan(x.shape, w.shape, **geometry, backend="cython", algorithm="direct")
    assert (plan.backward_data, plan.backward_weight) == ("im2row", "direct")
    y = ck.conv2d(channels_last(x), w, b, **geometry, backend="cython", threads=threads, algorithm="im2row")
    assert_close(y, ck.conv2d(x, w, b, **geometry, backend="numpy"), what="y")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ck.conv2d_backward(channels_last(dy), channels_last(x), w, **geometry, backend="cython", threads=threads,
                             algorithm="direct")
    expected = ck.conv2d_backward(dy, x, w, **geometry, backend="numpy")
    for name, a, e in zip(("dx", "dweight", "dbias"), got, expected):
        assert_close(a, e, what=name)


def test_float64_and_the_few_channel_weight_gradient(backend, rng):
    # float64 runs the exact algorithms on NCHW copies; 3 channels x 32 filters on 2 threads take the direct
    # weight gradient's pixel lanes (AVX-512), which read NCHW
    for dtype, shape, K in (("float64", (2, 8, 9, 9), 6), ("float32", (2, 3, 20, 20), 32)):
        x, w, b, geometry, _ = _case(rng, (shape, K, 3, 3, dict(padding=1), "auto"), dtype)
        dy = rng.standard_normal((shape[0], K, *shape[2:])).astype(dtype)
        got = ck.conv2d_backward(channels_last(dy), channels_last(x), w, **geometry, backend=backend, threads=2)
        expected = ck.conv2d_backward(dy, x, w, **geometry, backend="numpy")
        assert _args.is_channels_last(got[0]) and got[0].dtype == dtype
        for name, a, e in zip(("dx", "dweight", "dbias"), got, expected):
            assert_close(a, e, what=name)


def test_what_counts_as_channels_last():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert not _args.is_channels_last(x)
    assert _args.is_channels_last(channels_last(x))
    # one channel or one pixel: both layouts at once, taken as NCHW
    assert not _args.is_channels_last(channels_last(np.zeros((2, 1, 4, 5), np.float32)))
    assert not _args.is_channels_last(channels_last(np.zeros((2, 3, 1, 1), np.float32)))
    # other strides (a channel slice of NHWC memory) are copied to NCHW as before
    sliced = np.zeros((2, 4, 5, 6), np.float32).transpose(0, 3, 1, 2)[:, ::2]
    assert not _args.is_channels_last(sliced)
    assert not _args.is_channels_last(x.tolist())


def test_bad_gradients_are_reported_in_nchw_terms(rng):
    x, w, b, geometry, _ = _case(rng, ((2, 16, 8, 8), 16, 3, 3, dict(stride=2, padding=1), "auto"))
    y = ck.conv2d(channels_last(x), w, b, **geometry)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 16, 4, 4\); received shape \(2, 16, 4, 3\)"):
        ck.conv2d_backward(channels_last(np.zeros((2, 16, 4, 3), np.float32)), channels_last(x), w, **geometry)
    with pytest.raises(TypeError, match="dy must have dtype float32, like the input; received dtype=float64"):
        ck.conv2d_backward(channels_last(np.zeros(y.shape)), channels_last(x), w, **geometry)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64; received dtype=float16"):
        ck.conv2d(channels_last(x.astype(np.float16)), w, b, **geometry)
    with pytest.raises(ValueError, match=r"output must have shape \(2, 16, 4, 4\)"):
        ck.conv2d_backward(y, channels_last(x), w, **geometry, activation="relu", output=y[:, :, :3])


def test_an_unbatched_hwc_image(backend, rng):
    # one image as (H, W, C) memory, e.g. from Pillow, shown as (C, H, W): an unbatched channels-last input
    image = rng.standard_normal((12, 11, 16)).astype(np.float32)
    x = image.transpose(2, 0, 1)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    y = ck.conv2d(x, w, padding=1, backend=backend)
    assert y.shape == (8, 12, 11) and y.transpose(1, 2, 0).flags.c_contiguous
    assert_close(y, ck.conv2d(np.ascontiguousarray(x), w, padding=1, backend="numpy"), what="y")
    dx, dw, _ = ck.conv2d_backward(np.ones_like(y), x, w, padding=1, backend=backend)
    assert dx.shape == x.shape and dx.transpose(1, 2, 0).flags.c_contiguous
    expected = ck.conv2d_backward(np.ones(y.shape, np.float32), np.ascontiguousarray(x), w, padding=1,
                                  backend="numpy")
    assert_close(dx, expected[0], what="dx")
    assert_close(dw, expected[1], what="dw")


def test_byte_swapped_channels_last(rng):
    x, w, b, geometry, _ = _case(rng, ((2, 16, 8, 8), 16, 3, 3, dict(stride=2, padding=1), "auto"))
    swapped = channels_last(x).astype(">f4")
    assert _args.is_channels_last(swapped)
    y = ck.conv2d(swapped, w, b, **geometry)
    assert _args.is_channels_last(y) and y.dtype == np.float32
    assert_close(y, ck.conv2d(x, w, b, **geometry, backend="numpy"), what="y")


def test_pixel_sums(rng):
    pixel_sums = ck._backends.kernels("cython").pixel_sums
    for rows, channels, threads in ((0, 5, 1), (7, 5, 2), (300, 16, 1), (301, 40, 3)):
        x = rng.standard_normal((rows, channels)).astype(np.float32)
        sums = np.full(channels, np.nan)
        pixel_sums(x, threads, sums)
        np.testing.assert_allclose(sums, x.astype(np.float64).sum(axis=0), rtol=1e-12, atol=1e-12)
