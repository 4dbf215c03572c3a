"""Every convolution algorithm, forced, against the float64 reference; the plan's choices.

Tolerances are keyed by algorithm and dtype. Winograd F(4×4, 3×3) rounds more than a
direct sum (its transforms scale values by up to 8 and divide by 24): its float32
results must be within 1e-5 · Σ|x||w| (the largest of the direct sums of absolute
values; measured errors are 1–2e-6 of it), the unrolled algorithms within the dtype
tolerance of tests.conftest.
"""

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import plan as plan_module
from tests.conftest import assert_close

BACKENDS = ck.backends()
CYTHON = ["cython"] if "cython" in BACKENDS else []


def reference(x, w, b, dy, **geometry):
    f8 = [a.astype(np.float64) if a is not None else None for a in (x, w, b, dy)]
    y = ck.conv2d(f8[0], f8[1], f8[2], backend="numpy", **geometry)
    grads = ck.conv2d_backward(f8[3], f8[0], f8[1], bias=b is not None, backend="numpy", **geometry)
    scale = ck.conv2d(np.abs(f8[0]), np.abs(f8[1]), backend="numpy", **geometry).max()
    scale_dx = ck.conv2d_backward(np.abs(f8[3]), np.abs(f8[0]), np.abs(f8[1]), backend="numpy", **geometry)[0].max()
    return y, grads, scale, scale_dx


def check(actual, expected, dtype, algorithm, scale, what):
    if algorithm == "winograd":
        assert actual.dtype == np.dtype(dtype) and actual.shape == expected.shape, what
        error = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
        assert error <= 1e-5 * scale, f"{what}: winograd error {error:.3g} > 1e-5 · Σ|x||w| = {1e-5 * scale:.3g}"
    else:
        assert_close(actual, expected.astype(dtype), dtype, what)


WINOGRAD_GRID = [
    # x shape, weight shape, geometry
    ((2, 8, 9, 7), (6, 8, 3, 3), dict(padding=1)),
    ((3, 16, 13, 11), (16, 16, 3, 3), dict(padding="same")),
    ((1, 12, 6, 10), (8, 12, 3, 3), dict(padding=0)),
    ((2, 8, 5, 5), (4, 8, 3, 3), dict(padding=2)),
    ((2, 8, 10, 9), (6, 8, 3, 3), dict(padding=((0, 2), (1, 0)))),
    ((2, 12, 9, 9), (8, 3, 3, 3), dict(padding=1, groups=4)),
    ((2, 6, 8, 8), (6, 1, 3, 3), dict(padding=1, groups=6)),
    ((2, 8, 7, 9), (40, 8, 3, 3), dict(padding=1)),  # filters not a multiple of 16
    ((2, 8, 7, 9), (6, 8, 3, 3), dict(padding=1, padding_mode="reflect")),
    ((1, 8, 4, 4), (6, 8, 3, 3), dict(padding=3)),  # more padding than kernel: the adjoint crops
    # the register blocks' edges (AVX-512: 12 tiles x 16 filters, 6 x 32, 6 x 16; 6 filters x 32, 16, 1 channels)
    ((2, 16, 17, 9), (16, 16, 3, 3), dict(padding=1)),   # one panel: 30 tiles = 12 + 12 + 6
    ((2, 40, 11, 13), (48, 40, 3, 3), dict(padding=1)),  # three panels: a pair and one; 40 = 32 + 8 channels
    ((1, 20, 9, 9), (80, 20, 3, 3), dict(padding=1)),    # five panels, packed rows; 20 = 16 + 4 channels
    ((2, 136, 9, 10), (80, 136, 3, 3), dict(padding=1)),  # filters beyond L1: slices of 128 + 8 channels
]


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", WINOGRAD_GRID)
@pytest.mark.parametrize("algorithm", ["winograd", "im2col", "im2row", "auto"])
def test_forced_algorithms_match_the_reference(backend, x_shape, w_shape, geometry, algorithm):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    y_ref = ck.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), backend="numpy", **geometry)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    y_ref, grads_ref, scale, scale_dx = reference(x, w, b, dy, **geometry)
    y = ck.conv2d(x, w, b, algorithm=algorithm, backend=backend, **geometry)
    kind = ck.conv2d_plan(x_shape, w_shape, backend=backend, algorithm=algorithm, **geometry).forward
    check(y, y_ref, np.float32, kind, scale, f"forward ({algorithm} -> {kind})")
    if algorithm == "im2row":
        return
    dx, dw, db = ck.conv2d_backward(dy, x, w, algorithm=algorithm, backend=backend, **geometry)
    planned = ck.conv2d_plan(x_shape, w_shape, backend=backend, algorithm=algorithm, **geometry)
    check(dx, grads_ref[0], np.float32, planned.backward_data, scale_dx, f"dx ({algorithm} -> {planned.backward_data})")
    scale_dw = ck.conv2d_backward(np.abs(dy).astype(np.float64), np.abs(x).astype(np.float64),
                                  np.abs(w).astype(np.float64), backend="numpy", **geometry)[1].max()
    check(dw, grads_ref[1], np.float32, planned.backward_weight, scale_dw,
          f"dweight ({algorithm} -> {planned.backward_weight})")
    assert_close(db, grads_ref[2].astype(np.float32), np.float32, "dbias")


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", [
    ((2, 64, 15, 13), (40, 64, 3, 3), dict(stride=2, padding=1)),
    ((2, 5, 9, 11), (20, 5, 3, 2), dict(stride=(2, 1), padding=(1, 0))),
    ((1, 7, 12, 12), (9, 7, 3, 3), dict(dilation=2, padding="same")),
    ((2, 16, 10, 10), (8, 16, 5, 5), dict(stride=3, padding=2)),
    ((2, 32, 7, 9), (24, 32, 1, 1), dict()),
    ((3, 6, 11, 8), (10, 6, 3, 3), dict(stride=2, padding=((0, 2), (1, 1)))),  # windows past the image's end
    # implicit im2row (AVX-512): 136 channels = slices of 128 + 8, one tap a pass; 70 filters = 4 + 1 panels
    ((1, 136, 9, 9), (70, 136, 3, 3), dict(stride=2, padding=1)),
    # 1600 pixels an image: blocks of 240 and a last one of 160 (26 groups of 6 and one of 4); 8 channels, 9 taps a pass
    ((1, 8, 40, 40), (20, 8, 3, 3), dict(padding=1)),
    # the input gradient: pixels no tap reaches (a 1x1/2 kernel; stride and dilation sharing a factor: odd rows),
    # 136 dy channels, several blocks of pixels
    ((2, 16, 9, 10), (12, 16, 1, 1), dict(stride=2)),
    ((1, 20, 13, 14), (24, 20, 3, 3), dict(stride=2, dilation=2, padding=2)),
    ((1, 18, 17, 16), (136, 18, 3, 2), dict(stride=3, dilation=(2, 1), padding=(2, 1))),
    ((1, 16, 64, 62), (24, 16, 3, 3), dict(stride=2, padding=1)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2row_matches_the_reference(backend, x_shape, w_shape, geometry, dtype):
    """float32: pixel-major patches times the SIMD micro-kernel, and the input gradient as its adjoint (patch
    gradients added back); float64: BLAS."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    expected = ck.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), backend="numpy",
                         **geometry)
    assert_close(ck.conv2d(x, w, b, algorithm="im2row", backend=backend, **geometry), expected.astype(dtype),
                 dtype, "im2row")
    dy = rng.standard_normal(expected.shape).astype(dtype)
    planned = ck.conv2d_plan(x_shape, w_shape, dtype=dtype, backend=backend, algorithm="im2row", **geometry)
    pointwise = w_shape[2:] == (1, 1) and geometry.get("stride", 1) == 1 and not geometry.get("padding")
    simd = dtype == np.float32 and backend == "cython" and not pointwise
    assert (planned.backward_data, planned.backward_weight) == ("im2row" if simd else "im2col", "im2col")
    dx, _, _ = ck.conv2d_backward(dy, x, w, algorithm="im2row", backend=backend, weight_grad=False, bias=False,
                                  **geometry)
    reference_dx = ck.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                      backend="numpy", weight_grad=False, bias=False, **geometry)[0]
    assert_close(dx, reference_dx.astype(dtype), dtype, f"dx ({planned.backward_data})")


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, 3, 5])
def test_im2row_work_split_by_images_or_blocks(backend, threads, batch):
    """With two images or more per thread im2row's work items are images (copied and multiplied by the same
    thread), with fewer (image, block of pixels) after a chunk is copied: both give the reference's result, the
    same bits at any thread count."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((batch, 24, 23, 21)).astype(np.float32)  # 12 x 11 = 132 pixels: blocks of 132
    w = rng.standard_normal((40, 24, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    expected = ck.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=2, padding=1,
                         backend="numpy")
    y = ck.conv2d(x, w, b, stride=2, padding=1, algorithm="im2row", backend=backend, threads=threads)
    assert_close(y, expected.astype(np.float32), np.float32, f"im2row, {threads} threads, batch {batch}")
    np.testing.assert_array_equal(y, ck.conv2d(x, w, b, stride=2, padding=1, algorithm="im2row", backend=backend,
                                               threads=3 - threads))


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_work_split_by_images_or_tiles(backend, threads):
    """Small images in batches are Winograd work items of whole images (each thread copies its own images
    channels-last); one image is split into blocks of tiles after a shared copy: the same bits either way."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 32, 20, 20)).astype(np.float32)  # 25 tiles an image: 4-5 images an item
    w = rng.standard_normal((16, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y = ck.conv2d(x, w, b, padding=1, algorithm="winograd", backend=backend, threads=threads)
    expected, _, scale, _ = reference(x, w, b, np.zeros_like(y), padding=1)
    check(y, expected, np.float32, "winograd", scale, f"winograd by image, {threads} threads")
    one_by_one = [ck.conv2d(x[n:n + 1], w, b, padding=1, algorithm="winograd", backend=backend, threads=threads)
                  for n in range(len(x))]
    np.testing.assert_array_equal(y, np.concatenate(one_by_one))
    # the weight gradient goes image by image too: within Winograd's bound, the same bits run after run
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dw, _ = ck.conv2d_backward(dy, x, w, padding=1, input_grad=False, algorithm="winograd", backend=backend,
                                  threads=threads)
    f8 = [a.astype(np.float64) for a in (dy, x, w)]
    expected = ck.conv2d_backward(*f8, padding=1, input_grad=False, backend="numpy")[1]
    scale = ck.conv2d_backward(*(np.abs(a) for a in f8), padding=1, input_grad=False, backend="numpy")[1].max()
    check(dw, expected, np.float32, "winograd", scale, f"winograd weight gradient by image, {threads} threads")
    again = ck.conv2d_backward(dy, x, w, padding=1, input_grad=False, algorithm="winograd", backend=backend,
                               threads=threads)[1]
    np.testing.assert_array_equal(dw, again)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((3, 10, 7, 5), (6, 5, 1, 1), 2),
    ((2, 20, 9, 11), (30, 20, 1, 1), 1),   # 99 pixels: 32 + 32 + 32 + 3; 30 filters = 12 + 12 + 6 (dx: 20 = 12 + 6 + 2)
    ((1, 7, 4, 4), (13, 7, 1, 1), 1),      # fewer pixels than one register block
    ((2, 64, 20, 20), (24, 32, 1, 1), 2),  # 400 pixels: two work items of 384 and 16
    ((1, 16, 70, 70), (24, 16, 1, 1), 1),  # one image at 2 threads: runs of 640 pixels, the last of 420
])
def test_pointwise_gemm_matches_the_reference(backend, dtype, x_shape, w_shape, groups):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    dy = rng.standard_normal((x_shape[0], w_shape[0], *x_shape[2:])).astype(dtype)
    y_ref, grads_ref, _, _ = reference(x, w, b, dy, groups=groups)
    assert ck.conv2d_plan(x.shape, w.shape, groups=groups, dtype=dtype, backend=backend).forward == "gemm"
    assert_close(ck.conv2d(x, w, b, groups=groups, algorithm="gemm", backend=backend), y_ref.astype(dtype), dtype,
                 "gemm")
    dx, dw, _ = ck.conv2d_backward(dy, x, w, groups=groups, bias=False, algorithm="gemm", backend=backend)
    assert_close(dx, grads_ref[0].astype(dtype), dtype, "dx")
    assert_close(dw, grads_ref[1].astype(dtype), dtype, "dweight")


@pytest.mark.parametrize("backend", CYTHON)
def test_winograd_on_random_layers_of_real_sizes(backend):
    """Error of Winograd on a ResNet-like layer stays where its docstring says."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 64, 14, 14)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32) / 24
    y = ck.conv2d(x, w, padding=1, algorithm="winograd", backend=backend)
    y_ref = ck.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, backend="numpy")
    scale = ck.conv2d(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), padding=1, backend="numpy").max()
    assert np.abs(y - y_ref).max() < 1e-5 * scale


@pytest.mark.parametrize("call,message", [
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 3, 3), np.float32), stride=2,
                       algorithm="winograd"), "needs stride 1; received stride=(2, 2)"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 5, 5), np.float32),
                       algorithm="winograd"), "needs a 3x3 kernel; received kernel 5x5"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6)), np.ones((4, 8, 3, 3)), algorithm="winograd"),
     "float32 only"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 3, 3), np.float32), dilation=2,
                       algorithm="winograd"), "needs dilation 1"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 3, 3), np.float32),
                       algorithm="winograd", backend="numpy"), "cython backend only"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 3, 3), np.float32), algorithm="gemm"),
     "gemm needs a 1x1 kernel"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 4, 3, 3), np.float32), groups=2,
                       algorithm="direct"), "needs groups=1; received groups=2"),
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 8, 3, 3), np.float32), algorithm="fft"),
     "received algorithm='fft'"),
    (lambda: ck.conv2d_backward(np.ones((1, 4, 4, 4), np.float32), np.ones((1, 8, 6, 6), np.float32),
                                np.ones((4, 8, 3, 3), np.float32), algorithm="direct", backend="numpy"),
     "cython backend only"),
    (lambda: ck.conv2d_plan((1, 8, 6), (4, 8, 3, 3)), "x_shape must be a tuple of 4 positive ints"),
    # an array where its shape belongs is described, not printed
    (lambda: ck.conv2d_plan(np.ones((1, 8, 6, 6), np.float32), (4, 8, 3, 3)),
     "received x_shape=an array of shape (1, 8, 6, 6)$"),
])
def test_an_algorithm_that_cannot_run_says_why(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("backend", CYTHON)
def test_the_plan_picks_by_shape(backend):
    def chosen(x_shape, w_shape, **geometry):
        return ck.conv2d_plan(x_shape, w_shape, backend=backend, **geometry)

    resnet = chosen((8, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert (resnet.forward, resnet.backward_data, resnet.backward_weight) == ("winograd", "winograd", "winograd")
    assert resnet.tile_block % 6 == 0 and resnet.workspace_bytes > 0
    assert chosen((16, 384, 13, 13), (384, 384, 3, 3), padding=1).forward == "winograd"
    assert chosen((32, 32, 20, 20), (16, 32, 3, 3), padding="same").forward == "winograd"
    assert chosen((32, 3, 20, 20), (32, 3, 3, 3), padding="same").forward != "winograd"  # 3 channels
    assert chosen((32, 3, 20, 20), (32, 3, 3, 3), padding="same").backward_data == "im2col"
    assert chosen((8, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1).backward_data == "im2row"
    # strided: the direct kernel over stride phases on AVX-512 for fewer than 64 channels or one tap, while the
    # filters fit in half the L2; else im2row
    strided = chosen((8, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1)
    assert strided.forward == "im2row"
    avx512 = strided.isa == "avx512f"
    assert chosen((8, 32, 56, 56), (64, 32, 3, 3), stride=2, padding=1).forward == ("direct" if avx512 else "im2row")
    assert chosen((8, 256, 56, 56), (128, 256, 1, 1), stride=2).forward == ("direct" if avx512 else "im2row")
    assert strided.backward_weight == ("direct" if strided.isa == "avx512f" else "im2col")
    # 27 taps: the direct kernel's pixel lanes on AVX-512
    assert chosen((32, 3, 20, 20), (32, 3, 3, 3), padding="same").backward_weight == ("direct" if avx512 else "im2col")
    assert chosen((8, 256, 14, 14), (256, 256, 3, 3), stride=2, padding=1).forward == "im2row"  # 2.4 MB of filters
    assert chosen((8, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3).forward == "direct"  # 3 channels, any ISA
    assert chosen((8, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1, dtype="float64").forward == "im2col"
    assert chosen((8, 64, 56, 56), (128, 32, 3, 3), stride=2, padding=1, groups=2).forward == "im2col"
    assert chosen((8, 256, 56, 56), (64, 256, 1, 1)).forward == "gemm"
    assert chosen((8, 64, 56, 56), (64, 64, 3, 3), padding=1, dtype="float64").forward != "winograd"
    assert chosen((2, 64, 9, 9), (64, 1, 3, 3), padding=1, groups=64).forward != "winograd"  # depthwise
    assert chosen((32, 3, 20, 20), (32, 3, 3, 3), padding="same").forward == "direct"
    assert chosen((16, 3, 100, 100), (32, 3, 3, 3), padding="same").forward == "direct"
    assert plan_module.ALGORITHMS == ("auto", "winograd", "winograd2x2", "direct", "im2col", "im2row", "gemm")


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", [
    ((2, 3, 20, 20), (32, 3, 3, 3), dict(padding="same")),
    ((3, 1, 9, 23), (5, 1, 3, 3), dict(padding=1)),
    ((2, 4, 7, 17), (8, 4, 5, 5), dict(padding=2)),
    ((1, 3, 6, 40), (7, 3, 2, 3), dict(padding=((1, 0), (0, 2)))),
    ((2, 2, 8, 8), (6, 2, 3, 3), dict(padding=0)),
    ((2, 8, 9, 31), (13, 8, 1, 1), dict(padding=1)),
    ((1, 3, 5, 5), (4, 3, 3, 3), dict(padding=1, padding_mode="replicate")),
    ((1, 3, 7, 37), (30, 3, 3, 3), dict(padding=1)),  # 12 + 12 + 6 filters; 16 + 16 + 5 pixels
    # the flat runs' (AVX-512, short rows) last filter block: 12 + 8 at 20, 12 + 12 at 21, 12 + 4 at 16
    ((2, 3, 10, 14), (20, 3, 3, 3), dict(padding=1)),
    ((2, 3, 10, 14), (21, 3, 3, 3), dict(padding=1)),
    ((1, 2, 12, 12), (16, 2, 3, 3), dict(padding=1)),
    # strides and dilations: the image split into the phases its taps read (simd/direct.c)
    ((2, 64, 15, 13), (20, 64, 3, 3), dict(stride=2, padding=1)),
    ((2, 3, 23, 21), (16, 3, 7, 7), dict(stride=2, padding=3)),  # a ResNet stem
    ((1, 5, 11, 12), (8, 5, 3, 3), dict(stride=(2, 3), padding=(1, 0))),
    ((2, 4, 13, 13), (12, 4, 3, 3), dict(dilation=2, padding=2)),
    ((1, 4, 17, 16), (9, 4, 3, 2), dict(stride=3, dilation=(2, 1), padding=((2, 0), (1, 1)))),
    ((2, 8, 9, 9), (16, 8, 1, 1), dict(stride=2)),
    ((1, 2, 10, 10), (4, 2, 2, 2), dict(stride=3)),  # stride beyond the kernel: some phases never read
    ((1, 3, 8, 64), (8, 3, 3, 3), dict(stride=2, padding=1)),  # 32-pixel rows: whole rows, not flat runs
    ((1, 3, 9, 9), (4, 3, 3, 3), dict(stride=2, padding=1, padding_mode="reflect")),
    ((3, 6, 7, 40), (28, 6, 3, 3), dict(stride=2, padding=(0, 1))),  # 12 + 12 + 4 filters; odd row length
    # the phase rows (masked loads at stride 2 on AVX-512, copies at stride 1): padding past a 16-float chunk, long rows
    ((1, 2, 6, 5), (4, 2, 3, 3), dict(stride=2, padding=(1, 19))),
    ((1, 2, 5, 7), (4, 2, 3, 3), dict(padding=(0, 18))),
    ((1, 3, 5, 75), (6, 3, 3, 3), dict(stride=(1, 2), padding=(1, 2))),
])
def test_direct_kernel_matches_the_reference(backend, x_shape, w_shape, geometry):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    expected = ck.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), backend="numpy",
                         **geometry)
    assert_close(ck.conv2d(x, w, b, algorithm="direct", backend=backend, **geometry), expected.astype(np.float32),
                 np.float32, "direct")


@pytest.mark.parametrize("backend", CYTHON)
def test_plan_names_the_kernels_the_cap_allows(backend):
    import os

    allowed = {"portable": {"portable"}, "avx2": {"avx2+fma", "portable"}}
    isa = ck.conv2d_plan((1, 8, 8, 8), (8, 8, 3, 3), backend=backend).isa
    assert isa in allowed.get(os.environ.get("CNNKERNELS_SIMD"), {"avx512f", "avx2+fma", "portable"})


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("cap", ["portable", "avx2"])
def test_capped_simd_kernels_in_a_child_process(backend, cap):
    """CNNKERNELS_SIMD=portable / =avx2: this module's kernel tests (and the direct weight gradient's, F(2x2)'s,
    the poolings' and channels-last's) again on the kernels a CPU without AVX2, or without AVX-512, runs (this
    process runs the best this CPU has)."""
    import os
    import subprocess
    import sys

    here = os.path.dirname(__file__)
    others = [os.path.join(here, name) for name in ("test_direct_weight.py", "test_winograd2x2.py",
                                                    "test_pool_parity.py", "test_channels_last.py")]
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, *others,
                            "-k", "not capped and not torch"], capture_output=True, text=True,
                           env={**os.environ, "CNNKERNELS_SIMD": cap}, timeout=600)
    assert child.returncode == 0 and " passed" in child.stdout, child.stdout[-3000:] + child.stderr[-2000:]


@pytest.mark.parametrize("backend", CYTHON)
def test_batches_larger_than_one_chunk(backend, monkeypatch):
    """Images are copied a chunk at a time (bounded scratch); results must not depend on where
    the chunks end, for every SIMD algorithm and the weight-gradient sums across chunks."""
    from cnnkernels import _winograd

    rng = np.random.default_rng(17)
    x = rng.standard_normal((5, 8, 9, 10)).astype(np.float32)
    w = rng.standard_normal((12, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 12, 9, 10)).astype(np.float32)
    results = {}
    # everything at once; 2 images a chunk (3 chunks), and the direct kernel's bands one output row each
    # (its layout of 8 channels x 3 rows x (10 + 2) floats) or 1 and 2 rows of stride-2 output
    for chunk_floats, band_floats in ((1 << 22, 1 << 20), (2 * 8 * 9 * 10 + 5, 8 * 3 * 12)):
        monkeypatch.setattr(_winograd, "CHUNK_FLOATS", chunk_floats)
        monkeypatch.setattr(_winograd, "BAND_FLOATS", band_floats)
        results[chunk_floats] = [ck.conv2d(x, w, padding=1, algorithm=alg, backend=backend)
                                 for alg in ("winograd", "im2row", "direct")]
        results[chunk_floats].append(ck.conv2d(x, w, stride=2, padding=1, algorithm="direct", backend=backend))
        results[chunk_floats] += list(ck.conv2d_backward(dy, x, w, padding=1, bias=False, algorithm="winograd",
                                                         backend=backend)[:2])
    # Chunking only regroups float32 sums (the weight gradient adds per-chunk partial sums), so the
    # two runs agree within the rounding bound of those sums: 1e-5 · Σ|a||b| of each output.
    f8 = [np.abs(a).astype(np.float64) for a in (x, w, dy)]
    scale_y = ck.conv2d(f8[0], f8[1], padding=1, backend="numpy").max()
    scale_dx, scale_dw = (g.max() for g in ck.conv2d_backward(f8[2], f8[0], f8[1], padding=1, bias=False,
                                                               backend="numpy")[:2])
    scale_strided = ck.conv2d(f8[0], f8[1], stride=2, padding=1, backend="numpy").max()
    scales = [scale_y] * 3 + [scale_strided, scale_dx, scale_dw]
    for whole, chunked, scale in zip(*results.values(), scales):
        assert chunked.shape == whole.shape
        assert np.max(np.abs(chunked - whole)) <= 1e-5 * scale
