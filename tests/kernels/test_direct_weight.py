"""The direct kernel's weight gradient (conv2d_backward(..., algorithm="direct")) against the float64 reference:
strides, dilations and kernels whose taps come in blocks of 9, filter counts around its 16- and 32-filter blocks,
rows shorter than 16 pixels (its plain loops), images split into chunks; and the same bits at any thread count.
Also 1x1 layers, whose weight gradient runs on the same kernel (algorithm "gemm" on AVX-512)."""

import numpy as np
import pytest

import cnnkernels as ck
from tests.conftest import assert_close

CYTHON = ["cython"] if "cython" in ck.backends() else []

GRID = [
    # x shape, weight shape, geometry
    ((2, 8, 33, 31), (70, 8, 3, 3), dict(stride=2, padding=1)),  # 32 + 32 + 6 filters
    ((2, 3, 40, 37), (16, 3, 7, 7), dict(stride=2, padding=3)),  # 49 taps: 5 blocks of 9 and one of 4
    ((1, 4, 20, 22), (33, 4, 3, 3), dict(dilation=2, padding=2)),
    ((2, 5, 30, 34), (20, 5, 5, 5), dict(padding=2)),
    ((1, 6, 19, 50), (12, 6, 3, 2), dict(stride=(3, 1), padding=((2, 0), (1, 1)))),
    ((1, 3, 9, 9), (4, 3, 3, 3), dict(padding=1)),  # 9-pixel rows
    ((2, 4, 20, 20), (8, 4, 3, 3), dict(stride=2, padding=1, padding_mode="reflect")),
    ((2, 2, 16, 18), (48, 2, 1, 1), dict(stride=2)),
]


def random_problem(seed, x_shape, w_shape, geometry):
    """x, w and a dy of y's shape, float32 normals"""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    return x, w, rng.standard_normal(ck.conv2d(x, w, **geometry).shape).astype(np.float32)


def reference_weight_grad(dy, x, w, geometry):
    f8 = [a.astype(np.float64) for a in (dy, x, w)]
    return ck.conv2d_backward(*f8, bias=False, backend="numpy", **geometry)[1]


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", GRID)
def test_direct_weight_gradient_matches_the_reference(backend, x_shape, w_shape, geometry):
    x, w, dy = random_problem(5, x_shape, w_shape, geometry)
    dx, dw, db = ck.conv2d_backward(dy, x, w, algorithm="direct", backend=backend, **geometry)
    expected = ck.conv2d_backward(*(a.astype(np.float64) for a in (dy, x, w)), backend="numpy", **geometry)
    assert_close(dw, expected[1].astype(np.float32), np.float32, "direct weight gradient")
    assert_close(dx, expected[0].astype(np.float32), np.float32, "its input gradient (im2row's)")
    assert_close(db, expected[2].astype(np.float32), np.float32, "bias gradient")


@pytest.mark.parametrize("backend", CYTHON)
def test_chunks_and_threads_do_not_change_the_bits(backend, monkeypatch):
    """Each work item owns its filters and channel and sums the images in order: chunks regroup the sums (so
    they agree within rounding), threads do not change them at all."""
    from cnnkernels import _winograd

    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 6, 34, 34)).astype(np.float32)
    w = rng.standard_normal((40, 6, 3, 3)).astype(np.float32)
    geometry = dict(stride=2, padding=1)
    dy = rng.standard_normal(ck.conv2d(x, w, **geometry).shape).astype(np.float32)

    def weight_grad(threads):
        return ck.conv2d_backward(dy, x, w, input_grad=False, bias=False, algorithm="direct", backend=backend,
                                  threads=threads, **geometry)[1]

    whole = weight_grad(1)
    assert np.array_equal(weight_grad(2), whole)
    monkeypatch.setattr(_winograd, "WEIGHT_CHUNK_FLOATS", 1)  # one image a chunk
    chunked = weight_grad(2)
    assert np.array_equal(weight_grad(1), chunked)
    scale = reference_weight_grad(np.abs(dy), np.abs(x), np.abs(w), geometry).max()
    assert np.max(np.abs(chunked - whole)) <= 1e-5 * scale


# pixel lanes (AVX-512, more than one thread, few channels): filter counts around its 8-filter blocks, taps around
# its 3-tap blocks, more images than its groups, rows shorter than one vector of lanes
LANES_GRID = [  # large enough for 2 threads (MIN_FLOPS_PER_THREAD)
    ((19, 3, 20, 20), (32, 3, 3, 3), dict(padding=1)),  # the tutorial's first layer; 19 images: 7 groups of 3
    ((12, 1, 28, 28), (20, 1, 5, 5), dict()),  # 25 taps: 8 blocks of 3 and 1; 20 filters: 8 + 8 + 4
    ((32, 3, 33, 35), (13, 3, 3, 3), dict(stride=2, padding=1)),  # stride phases
    ((72, 2, 9, 11), (40, 2, 3, 2), dict(dilation=(2, 1), padding=((2, 1), (0, 1)))),  # 12 taps, short rows
    ((48, 4, 9, 64), (24, 4, 2, 2), dict(stride=(1, 3))),
    ((1, 3, 64, 64), (32, 3, 3, 3), dict(padding=1)),  # one image, one group; 4224 flat pixels: passes of 512
]


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", LANES_GRID)
def test_pixel_lanes_match_the_reference_and_their_bits_hold(backend, x_shape, w_shape, geometry):
    x, w, dy = random_problem(11, x_shape, w_shape, geometry)

    def weight_grad(threads):
        return ck.conv2d_backward(dy, x, w, input_grad=False, bias=False, algorithm="direct", backend=backend,
                                  threads=threads, **geometry)[1]

    assert ck.conv2d_plan(x_shape, w_shape, backend=backend, threads=2, **geometry).n_threads == 2
    dw = weight_grad(2)
    expected = reference_weight_grad(dy, x, w, geometry).astype(np.float32)
    assert_close(dw, expected, np.float32, "pixel lanes")
    assert np.array_equal(weight_grad(3), dw)  # the images' groups depend on N alone
    assert_close(weight_grad(1), expected, np.float32, "filter lanes")


@pytest.mark.parametrize("backend", CYTHON)
def test_pixel_lanes_past_a_row_never_reach_a_sum(backend):
    """The lanes past each row's end read the next row's inputs (times dy's zeros): an inf there, which no tap of
    the true sum multiplies, must leave those weights finite, as in the reference."""
    geometry = dict(padding=1)
    x, w, dy = random_problem(12, (40, 3, 12, 20), (16, 3, 3, 3), geometry)
    x[1, 2, 5, 0] = np.inf  # column 0: read by the taps s = 0 and 1 only (padding 1)
    assert ck.conv2d_plan(x.shape, w.shape, backend=backend, threads=2, **geometry).n_threads == 2
    dw = ck.conv2d_backward(dy, x, w, input_grad=False, bias=False, algorithm="direct", backend=backend,
                            threads=2, **geometry)[1]
    expected = reference_weight_grad(dy, x, w, geometry)
    assert np.array_equal(np.isfinite(dw), np.isfinite(expected))
    assert np.isfinite(dw[:, 2, :, 2]).all()
    finite = np.isfinite(expected)
    assert_close(np.where(finite, dw, 0), np.where(finite, expected, 0).astype(np.float32), np.float32, "finite")


# 1x1 layers (algorithm "gemm", on AVX-512 where dy is small beside x): the same kernel with the channels as its
# taps, x read in place (channels-last too: cnnk_pointwise_weight_nhwc), NCHW dy copied in slabs of 64 filters (4
# vectors, 6 channels a block) or, with at most 32 a group, of 32 (9 channels a block); the kernel called directly,
# also on shapes the plan gives BLAS, for its edges
POINTWISE_GRID = [
    # x shape, weight shape, groups
    ((2, 13, 5, 7), (70, 13, 1, 1), 1),  # a slab of 64 and one of 6; channel blocks of 6, 6 and 1
    ((3, 20, 4, 9), (40, 20, 1, 1), 1),  # 40 filters: the slab's third vector 8 wide, its fourth empty
    ((2, 9, 6, 6), (32, 9, 1, 1), 1),  # 32-filter slabs, 9 channels a block
    ((2, 12, 3, 5), (100, 6, 1, 1), 2),  # groups: 50 filters and 6 channels each
    ((1, 7, 1, 1), (17, 7, 1, 1), 1),  # one pixel: no pair of pixels
    ((3, 8, 32, 32), (64, 8, 1, 1), 1),  # dy's copy split in parts of the pixels
]


def pointwise_kernel(dy, x, groups, threads):
    """_winograd.pointwise_backward_weight's dw, or a skip where it does not run (no AVX-512)"""
    from cnnkernels import _winograd

    dw = np.empty((dy.shape[1], x.shape[1] // groups, 1, 1), np.float32)
    if not _winograd.pointwise_backward_weight(dy, x, groups, threads, dw):
        assert _winograd.simd_isa() != "avx512f"
        pytest.skip("the 1x1 weight gradient runs on BLAS without AVX-512")
    return dw


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,groups", POINTWISE_GRID)
def test_pointwise_weight_gradient_matches_the_reference_and_its_bits_hold(backend, x_shape, w_shape, groups):
    x, w, dy = random_problem(13, x_shape, w_shape, dict(groups=groups))
    dw = pointwise_kernel(dy, x, groups, 1)
    assert_close(dw, reference_weight_grad(dy, x, w, dict(groups=groups)).astype(np.float32), np.float32, "1x1")
    assert np.array_equal(pointwise_kernel(dy, x, groups, 2), dw)
    assert np.array_equal(pointwise_kernel(dy, x, groups, 3), dw)


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,groups", POINTWISE_GRID)
def test_channels_last_pointwise_weight_gradient_matches_the_reference_and_its_bits_hold(backend, x_shape, w_shape,
                                                                                         groups):
    """The same kernel over channels-last rows in place, with its sums carried between blocks of pixels (at most 64
    filters a group)"""
    from cnnkernels import _winograd

    x, w, dy = random_problem(15, x_shape, w_shape, dict(groups=groups))
    rows = [ck.to_channels_last(a) for a in (dy, x)]

    def weight_grad(threads):
        dw = np.empty(w.shape, np.float32)
        return dw if _winograd.pointwise_weight_nhwc(*rows, groups, threads, dw) else None

    dw = weight_grad(1)
    if w_shape[0] // groups > 64 or _winograd.simd_isa() != "avx512f":
        assert dw is None  # refused: BLAS's
        return
    assert_close(dw, reference_weight_grad(dy, x, w, dict(groups=groups)).astype(np.float32), np.float32, "1x1")
    assert np.array_equal(weight_grad(2), dw)
    assert np.array_equal(weight_grad(3), dw)


@pytest.mark.parametrize("backend", CYTHON)
def test_pointwise_weight_gradient_is_planned_where_dy_is_small_and_chunks_agree(backend, monkeypatch):
    from cnnkernels import _winograd

    avx512 = _winograd.simd_isa() == "avx512f"
    for x_shape, w_shape, ours in [((8, 256, 56, 56), (64, 256, 1, 1), avx512),  # the ResNet 1x1 layer
                                   ((8, 64, 56, 56), (64, 64, 1, 1), False),  # dy as large as x
                                   ((8, 256, 28, 28), (48, 256, 1, 1), False),  # a quarter of the lanes empty
                                   ((8, 2048, 7, 7), (64, 2048, 1, 1), False)]:  # 49-pixel rows
        plan = ck.conv2d_plan(x_shape, w_shape, backend=backend)
        assert (plan.backward_weight, plan.simd_gemm_weight) == ("gemm", ours), (x_shape, w_shape)
    x, w, dy = random_problem(14, (5, 256, 12, 12), (64, 256, 1, 1), {})
    assert ck.conv2d_plan(x.shape, w.shape, backend=backend).simd_gemm_weight == avx512
    expected = reference_weight_grad(dy, x, w, {}).astype(np.float32)
    whole = ck.conv2d_backward(dy, x, w, input_grad=False, backend=backend, threads=2)[1]
    assert_close(whole, expected, np.float32, "all images a chunk")
    last = [ck.to_channels_last(a).transpose(0, 3, 1, 2) for a in (dy, x)]  # PyTorch's channels_last format
    assert_close(ck.conv2d_backward(*last, w, input_grad=False, backend=backend, threads=2)[1], expected, np.float32,
                 "channels-last")
    monkeypatch.setattr(_winograd, "POINTWISE_DY_FLOATS", 1)  # one image a chunk
    chunked = ck.conv2d_backward(dy, x, w, input_grad=False, backend=backend, threads=2)[1]
    assert_close(chunked, expected, np.float32, "one image a chunk")
