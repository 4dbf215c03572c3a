"""ConvPlan: how one convolution runs, decided once per geometry and cached.

The plan names the algorithm of each pass, the Winograd tile block, the scratch
memory and the thread count. ``algorithm="auto"`` picks by the rules below, which
come from measurements on this project's machines (AMD EPYC, AVX2+FMA, 1 and 2
threads; ``python -m bench --set core``); a forced algorithm that cannot run the
geometry raises ``ValueError`` saying why.

Algorithms
----------
winograd
    F(4×4, 3×3) (:mod:`cnnkernels._winograd`): 3×3 kernels, stride 1, dilation 1,
    float32, cython backend. 2.25 multiplies per output instead of 9; its
    rounding error is larger than the direct sum's (see that module).
winograd2x2
    F(2×2, 3×3) with one output tile per SIMD lane (:func:`cnnkernels._winograd.winograd22_forward`): the
    same geometry, one group; for few input channels, where F(4×4)'s channel lanes would stand mostly empty.
    4 multiplies per output and channel instead of 9, with an error close to the direct sum's; AVX-512,
    elsewhere a portable version. Only run when forced: with 1-3 channels the output transform per filter
    costs about what the multiplies save, and it measured 1.06-1.8x slower than ``direct`` (20x20 to
    224x224 images, 1 and 2 threads, interleaved).
direct
    a register-blocked direct kernel over the image's stride phases
    (:func:`cnnkernels._winograd.direct_forward`): any stride and dilation, one group, float32,
    cython backend; chosen for few input channels (first layers) and, on AVX-512, for strided layers
    with fewer than 64 channels or a 1×1 kernel whose filters fit in half the L2 cache. Its weight gradient
    (:func:`cnnkernels._winograd.direct_backward_weight`) sums dy times the same layout, with filters as
    lanes, or with output pixels as lanes where few channels leave too few items for the threads (AVX-512);
    also chosen there for layers of 16 to 64 channels x taps.
im2col
    channel-major unrolling + BLAS (every geometry, every backend).
im2row
    pixel-major unrolling: the forward pass in float32 with one group multiplied by the Winograd
    product's register-blocked kernel (:func:`cnnkernels._winograd.rows_forward`; on AVX-512 reading
    the patches in place, never written out), else by BLAS; and
    in float32 with one group on the cython backend also the input gradient, as its adjoint
    (:func:`cnnkernels._winograd.rows_backward_data`: dy's pixels times the filters, added back).
gemm
    1×1, stride-1, unpadded: the image already is the column matrix (no copy). In float32 on the
    cython backend the forward and backward-data products run on our register-blocked kernel
    (:func:`cnnkernels._winograd.pointwise_forward`, NCHW as it lies), else on BLAS.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from . import _threads

ALGORITHMS = ("auto", "winograd", "winograd2x2", "direct", "im2col", "im2row", "gemm")


class ConvPlan(NamedTuple):
    """What :func:`cnnkernels.conv2d` / :func:`cnnkernels.conv2d_backward` will do."""

    forward: str
    backward_data: str
    backward_weight: str
    tile_block: int  # Winograd: output tiles per work item
    workspace_bytes: int  # Winograd scratch of the forward pass (0 for the others: see _workspace)
    n_threads: int  # the call's thread count, capped so each thread gets enough work (_threads.for_work)
    isa: str  # the instruction set the SIMD kernels run with
    simd_im2row: bool  # im2row multiplies with our micro-kernel (float32, one group, cython), else BLAS
    simd_gemm: bool = False  # gemm's forward and backward-data products on our micro-kernel (float32, cython)
    simd_gemm_weight: bool = False  # gemm's weight gradient on the direct weight gradient's kernel, else BLAS


@functools.lru_cache(maxsize=1)
def l2_cache_bytes() -> int:
    """One core's L2 cache in bytes, as Linux reports it (1 MiB where it does not say)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            text = f.read().strip().upper()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        size = int(text.rstrip("KM")) * scale
        return size if size >= 1 << 16 else 1 << 20
    except (OSError, ValueError):
        return 1 << 20


def _winograd_block(Cg: int, Kg: int, l2_bytes: int) -> int:
    """Tiles per work item, a multiple of the 6-tile register block (36·block·(Cg + Kp) floats of
    transformed tiles). Measured with a cold cache, as between other libraries' calls (1 thread,
    2 MiB L2): while the 36 transformed filter panels fit in the L2, a block whose tiles fill
    about half of it ran fastest (64 -> 64 channels: 48 tiles 7.0 ms, 108 tiles 8.9 ms; its weight
    gradient 9.7 vs 10.4 ms); larger filters stream from memory once per block, so bigger blocks
    amortise them (128 -> 128: 240 tiles 5.7 ms, 48 tiles 6.1 ms; 384 -> 384 best at 48-96)."""
    per_tile = 36 * (Cg + max(16, Kg)) * 4
    filters = 36 * Cg * max(16, Kg) * 4
    budget = 0.45 * l2_bytes if filters <= l2_bytes else 8 << 20
    return max(36, min(240, int(budget) // per_tile // 6 * 6))


def winograd_reason(dtype, kernel, stride, dilation, backend) -> str | None:
    """Why Winograd F(4×4, 3×3) cannot run this convolution, or None if it can."""
    if backend != "cython":
        return f"it is implemented by the cython backend only; received backend={backend!r}"
    if str(dtype) != "float32":
        return f"it runs in float32 only (float64 keeps the exact algorithms); received dtype={dtype}"
    if tuple(kernel) != (3, 3):
        return f"it needs a 3x3 kernel; received kernel {kernel[0]}x{kernel[1]}"
    if tuple(stride) != (1, 1):
        return f"it needs stride 1; received stride={tuple(stride)}"
    if tuple(dilation) != (1, 1):
        return f"it needs dilation 1; received dilation={tuple(dilation)}"
    return None


def winograd2x2_reason(dtype, kernel, stride, dilation, groups, backend) -> str | None:
    """Why Winograd F(2×2, 3×3) cannot run this convolution, or None if it can."""
    if groups != 1:
        return f"it needs groups=1; received groups={groups}"
    return winograd_reason(dtype, kernel, stride, dilation, backend)


def direct_reason(dtype, groups, backend) -> str | None:
    """Why the direct kernel cannot run this convolution, or None if it can."""
    if backend != "cython":
        return f"it is implemented by the cython backend only; received backend={backend!r}"
    if str(dtype) != "float32":
        return f"it runs in float32 only; received dtype={dtype}"
    if groups != 1:
        return f"it needs groups=1; received groups={groups}"
    return None


def _pointwise(kernel, stride, pad) -> bool:
    return tuple(kernel) == (1, 1) and tuple(stride) == (1, 1) and not any(pad)


def _worth_winograd(Cg: int, Kg: int) -> bool:
    """Measured: with fewer than 8 channels or filters per group the transforms cost more than
    the multiplies they save (a 3-channel first layer runs faster unrolled)."""
    return Cg >= 8 and Kg >= 8


def _check(name, algorithm, allowed, why):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; received algorithm={algorithm!r}")
    if algorithm != "auto" and algorithm not in allowed:
        raise ValueError(f"algorithm={algorithm!r} cannot run this convolution's {name}: {why}")


@functools.lru_cache(maxsize=512)
def make_plan(x_shape, w_shape, stride, pad, dilation, groups, dtype, backend, n_threads, algorithm, isa):
    """The plan for validated arguments (see :func:`cnnkernels.conv2d_plan` for the public face)."""
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    Kg = K // groups
    kernel = (R, S)
    P = (H + pad[0] + pad[1] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + pad[2] + pad[3] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    n_threads = _threads.for_work(n_threads, 2.0 * N * K * Cg * R * S * P * Q)
    not_winograd = winograd_reason(dtype, kernel, stride, dilation, backend)
    not_direct = direct_reason(dtype, groups, backend)
    not_winograd2x2 = winograd2x2_reason(dtype, kernel, stride, dilation, groups, backend)
    pointwise = _pointwise(kernel, stride, pad)

    # forward
    allowed = {"im2col"}
    if backend == "cython":
        allowed.add("im2row")
    if pointwise:
        allowed.add("gemm")
    if not_winograd is None:
        allowed.add("winograd")
    if not_direct is None:
        allowed.add("direct")
    if not_winograd2x2 is None:
        allowed.add("winograd2x2")
    why = {"winograd": not_winograd, "winograd2x2": not_winograd2x2, "direct": not_direct}.get(algorithm) or (
        "gemm needs a 1x1 kernel, stride 1 and no padding" if algorithm == "gemm" else
        f"im2row is a forward algorithm of the cython backend; received backend={backend!r}")
    _check("forward pass", algorithm, allowed, why)
    if algorithm != "auto":
        forward = algorithm
    elif not_winograd is None and _worth_winograd(Cg, Kg):
        forward = "winograd"
    elif not_direct is None and C <= 4 and not pointwise:
        forward = "direct"  # measured: the 3-channel first layers, 2-2.5x faster than im2col (7x7/2: 1.7-2x)
    elif (not_direct is None and max(stride) > 1 and isa == "avx512f" and 4 * C * R * S * K <= l2_cache_bytes() // 2
          and (C < 64 or R * S == 1)):
        # strided layers with few channels or one tap, whose filters stay in L2 (each run of 32 output pixels reads
        # them all), measured (Xeon, interleaved, 1 / 2 threads), direct ÷ im2row: 32 -> 64 3x3/2 1.01 / 0.89, 256
        # -> 512 1x1/2 0.74 / 0.88; with 64 channels or more im2row (reading its patches in place) wins: the strided
        # ResNet layer (8x64x56x56 -> 128, 3x3/2) 1.13 / 1.02, 64 -> 64 5x5/2 1.13 / 1.08. With 2.4 MB of filters
        # (256 -> 256, 3x3/2) direct ran 1.30 against im2row's 1.09 (EPYC); on AVX2 (16 x 6 blocks) 1.3 against 1.04.
        forward = "direct"
    elif pointwise:
        forward = "gemm"
    elif backend == "cython" and str(dtype) == "float32" and groups == 1:
        # patches times our micro-kernel: measured 1.14x faster than im2col + OpenBLAS on the strided
        # ResNet layer (8x64x56x56 -> 128, 3x3/2), 1.05x on a 5x5 layer (1 thread)
        forward = "im2row"
    elif backend == "cython" and Cg * R * S >= 64 and Kg <= 32:
        forward = "im2row"  # OpenBLAS's faster orientation for few filters (tutorial conv2: 4.2 -> 2.3 ms)
    else:
        forward = "im2col"

    # backward data: the adjoint of a stride-1 convolution is a convolution of dy with the rotated,
    # transposed filters, so Winograd serves it with the roles of channels and filters swapped;
    # backward weight: dw = Gᵀ[Σ_tiles (Bᵀ d B) ⊙ (A dy Aᵀ)]G
    simd = backend == "cython" and str(dtype) == "float32"
    rows_adjoint = simd and groups == 1 and not pointwise
    if algorithm in ("winograd", "gemm", "im2col"):
        backward_data = algorithm
    elif algorithm in ("im2row", "direct", "winograd2x2"):  # (forward kernels only: im2row's adjoint serves them)
        backward_data = "im2row" if rows_adjoint else "im2col"
    elif not_winograd is None and _worth_winograd(Kg, Cg):
        backward_data = "winograd"
    elif pointwise:
        backward_data = "gemm"
    else:
        # measured (1 thread, AVX-512): 1.8x faster than im2col + OpenBLAS's col2im on the strided ResNet layer
        # (64 channels), 1.1-1.2x on 5x5 layers with 16-32 channels, but 2-5x slower with 3 (its patch
        # gradients are added back C floats at a time)
        backward_data = "im2row" if rows_adjoint and Cg >= 16 else "im2col"
    if algorithm in ("winograd", "gemm", "im2col", "direct"):
        backward_weight = algorithm
    elif algorithm in ("im2row", "winograd2x2"):
        backward_weight = "im2col"
    elif not_winograd is None and _worth_winograd(Cg, Kg) and Cg * Kg <= 128 * 128:
        # measured (1 thread): Winograd 2.4x faster than im2col with 32 channels -> 16 filters, 1.3x at
        # 64 -> 64, 1.14x at 128 -> 128, but 0.6x at 256 -> 256 and 384 -> 384 (its per-thread
        # 36·K·C partial sums and the reduction over tiles outgrow the caches)
        backward_weight = "winograd"
    elif (not_direct is None and not_winograd is not None and isa == "avx512f" and R * S >= 9 and Q >= 16
          and 100 <= Cg * R * S and Cg <= 128):
        # dy times the stride-phase layout (simd/direct_weight.c), measured ÷ im2col + BLAS at 1 / 2 threads: the
        # strided ResNet layer (64 -> 128, 3x3/2) 0.90-1.00 / 0.86, a 7x7/2 stem 0.64 / 0.78, 5x5 (32 -> 64) 0.67 /
        # 0.80, dilation 2 (64 -> 64) 0.88 / 0.98; but 1.05-1.6 with 3 channels and 3x3 (too little work per dy
        # value for its transpose), 2.9-6 for 1x1/2 (one tap: a broadcast per 2 FMAs), 1.0-1.4 below 16 columns,
        # and 1.0-1.16 on stride-1 3x3 layers of 128-256 channels (Winograd's or im2col's there)
        backward_weight = "direct"
    elif not_direct is None and isa == "avx512f" and 16 <= Cg * R * S <= 64 and not pointwise:
        # few channels (first layers): filter lanes on 1 thread, pixel lanes on more (_direct.pxi), measured ÷
        # im2col + BLAS at 1 / 2 threads: 32x3x20x20 -> 32 3x3 0.82 / 0.90, 16x3x100x100 -> 32 0.89 / 0.84, 3 ->
        # 64 3x3/2 0.63 / 0.65, 1 -> 32 5x5 (28x28) 0.83 / 1.03; but 1 -> 32 3x3 1.10 / 1.05 (9 taps)
        backward_weight = "direct"
    else:
        backward_weight = "gemm" if pointwise else "im2col"

    block = _winograd_block(Cg, Kg, l2_cache_bytes()) if "winograd" in (forward, backward_data, backward_weight) else 0
    workspace = 0
    if forward == "winograd":
        from . import _winograd

        workspace = 4 * _winograd.workspace_floats(N, C, H, W, K, Cg, groups, P, Q, block, n_threads)
    simd_im2row = forward == "im2row" and simd and groups == 1
    # 1x1 weight gradients whose dy is small beside x (its channels-last copy costs little) and fills the kernel's
    # 64 filter lanes (_winograd.pointwise_backward_weight), measured ÷ OpenBLAS (Xeon, 1 / 2 threads): 256 -> 64
    # at 56x56 0.75 / 0.90, 512 -> 64 at 28x28 0.85 / 0.56, 1024 -> 64 at 14x14 0.89 / 0.92, 384 -> 64 at 14x14
    # 0.83 / 0.91; but 128 -> 64 0.82 / 1.09 and 64 -> 64 0.92 / 1.33 (dy's copy as large as x), 256 -> 48 0.96 /
    # 1.06 (a quarter of the lanes empty), 2048 -> 64 at 7x7 1.15 / 0.98 (49-pixel rows), 256 -> 128 and up 1.0-3.
    # Channels-last (pointwise_weight_nhwc, no copy) ÷ OpenBLAS's per block of pixels: 256 -> 64 0.78 / 0.82, 512 ->
    # 64 0.78 / 0.83, 384 -> 64 0.72 / 0.74; with x out of the caches 0.71 / 0.78, 0.67 / 0.68, 0.72 / 0.78
    simd_gemm_weight = (simd and pointwise and isa == "avx512f" and 48 < Kg <= 64 and Cg >= 4 * Kg
                        and 128 <= H * W and Cg * H * W < 2 ** 31)
    return ConvPlan(forward, backward_data, backward_weight, block, workspace, n_threads, isa, simd_im2row,
                    simd and pointwise, simd_gemm_weight)
