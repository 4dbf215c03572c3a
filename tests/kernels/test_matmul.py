"""cnnkernels.matmul: a @ b against float64 NumPy on a grid of shapes and layouts (transposed views, columns
not a multiple of 16, one row), both ways round the kernel takes, the same bits at any thread count, NumPy's call
where the kernel does not pay, and clear errors for bad operands."""

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import linalg

KERNEL = hasattr(ck._backends._load("cython"), "rows_matmul")
AVX512 = KERNEL and ck._backends._load("cython").simd_isa() == "avx512f"
# (M, K, N): a dense layer's forward, its two gradients, a row, columns past a panel, a 16-multiple (written in place)
SHAPES = [(32, 1600, 100), (1600, 64, 100), (32, 100, 1600), (1, 3000, 700), (77, 300, 17), (48, 512, 128),
          (6, 4096, 16), (64, 200, 33)]


def operands(M, K, N, a_transposed, b_transposed, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if a_transposed else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if b_transposed else (K, N)).astype(dtype)
    return (a.T if a_transposed else a), (b.T if b_transposed else b)


def relative_error(out, a, b):
    exact = a.astype(np.float64) @ b.astype(np.float64)
    return np.abs(out - exact).max() / (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("b_transposed", [False, True])
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("backend", ck.backends())
def test_matmul_matches_float64(backend, shape, a_transposed, b_transposed, threads):
    a, b = operands(*shape, a_transposed, b_transposed)
    out = ck.matmul(a, b, threads=threads, backend=backend)
    assert out.shape == (shape[0], shape[2]) and out.dtype == np.float32 and out.flags.c_contiguous
    # float32 sums of K products: a few ulps of Σ|a||b|
    assert relative_error(out, a, b) < 1e-6


@pytest.mark.skipif(not KERNEL, reason="the compiled backend is not built")
@pytest.mark.parametrize("way", ["straight", "turned"])
def test_both_ways_round_match_on_cython(way):
    # straight: a's rows streamed, b packed; turned: (bᵀ·aᵀ)ᵀ, the product written transposed
    a, b = operands(40, 700, 50, a_transposed=False, b_transposed=way == "turned")
    assert linalg._way(a, b) == way
    ops = ck._backends.kernels("cython")
    out = np.empty((40, 50), np.float32)
    if way == "turned":
        ops.rows_matmul(np.ascontiguousarray(b.T), a.T, 2, out, True)
    else:
        ops.rows_matmul(a, b, 2, out, False)
    assert relative_error(out, a, b) < 1e-6


@pytest.mark.skipif(not KERNEL, reason="the compiled backend is not built")
@pytest.mark.parametrize("shape", [(32, 1600, 100), (1600, 64, 96), (250, 700, 40)])
def test_the_same_bits_at_any_thread_count_on_cython(shape):
    a, b = operands(*shape, a_transposed=False, b_transposed=True)
    results = [ck.matmul(a, b, threads=n, backend="cython") for n in (1, 2, 3)]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.skipif(not KERNEL, reason="the compiled backend is not built")
def test_the_kernel_runs_where_it_pays_on_cython(monkeypatch):
    ops = ck._backends.kernels("cython")
    calls = []
    for name in ("rows_matmul", "stream_matmul"):
        def spy(*args, real=getattr(ops, name), name=name):
            calls.append(name if name == "stream_matmul" else args[-1])
            return real(*args)
        monkeypatch.setattr(ops, name, spy)
    streams = AVX512  # else stream_matmul declines and the packed kernel or NumPy serves
    a, b = operands(32, 1600, 100, False, False)
    for threads in (2, 1):  # few rows, b as it lies and in L2: b's rows streamed
        calls.clear()
        ck.matmul(a, b, threads=threads, backend="cython")
        assert calls == (["stream_matmul"] if streams else ["stream_matmul", False] if threads == 2
                         else ["stream_matmul"])
    calls.clear()
    ck.matmul(*operands(128, 1600, 100, False, False), threads=2, backend="cython")
    assert calls == [False]  # more rows: b packed once pays
    calls.clear()
    dz, w = operands(32, 100, 1600, False, True)
    ck.matmul(dz, w, threads=1, backend="cython")
    assert calls == [True]  # b a transposed view: the packed kernel, turned round
    calls.clear()
    ck.matmul(*operands(8, 64, 8, False, False), threads=2, backend="cython")  # tiny: NumPy
    ck.matmul(*operands(1600, 32, 100, True, False), threads=2, backend="cython")  # many rows, short sums: NumPy
    ck.matmul(*operands(4, 20000, 64, False, False), threads=2, backend="cython")  # b past L2: NumPy
    assert calls == []


@pytest.mark.skipif(not AVX512, reason="needs the compiled backend on AVX-512")
@pytest.mark.parametrize("a_transposed", [False, True])
@pytest.mark.parametrize("shape", [(1, 70, 1), (5, 33, 17), (6, 300, 64), (13, 129, 65), (64, 200, 100),
                                   (31, 16, 250), (7, 1, 3)])
def test_streamed_product_every_block_shape(shape, a_transposed):
    """Rows around the 6-row blocks, columns around the 4-vector blocks and the masked last vector, one-term sums."""
    a, b = operands(*shape, a_transposed, False)
    ops = ck._backends.kernels("cython")
    for threads in (1, 2, 3):
        out = np.full((shape[0], shape[2]), np.nan, np.float32)
        assert ops.stream_matmul(a, b, threads, out)
        assert relative_error(out, a, b) < 1e-6


@pytest.mark.parametrize("backend", ck.backends())
def test_every_backend_and_float64(backend):
    a, b = operands(20, 300, 30, True, True, dtype=np.float64)
    np.testing.assert_allclose(ck.matmul(a, b, backend=backend), a @ b, rtol=1e-12, atol=1e-12)
    a, b = operands(20, 300, 30, False, True)
    assert relative_error(ck.matmul(a, b, backend=backend, threads=2), a, b) < 1e-6


def test_mixed_float_dtypes_give_numpys_promoted_result():
    # a float64 loss gradient may meet a float32 layer's kernel: NumPy's rule, float64
    a, b = operands(20, 300, 30, False, True)
    out = ck.matmul(a.astype(np.float64), b)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-12, atol=1e-12)


def test_empty_operands():
    assert ck.matmul(np.zeros((0, 5), np.float32), np.zeros((5, 3), np.float32)).shape == (0, 3)
    np.testing.assert_array_equal(ck.matmul(np.zeros((4, 0), np.float32), np.zeros((0, 3), np.float32)),
                                  np.zeros((4, 3), np.float32))


@pytest.mark.parametrize("a, b, error, words", [
    (np.zeros((3, 4), np.float32), np.zeros((5, 2), np.float32), ValueError, "received a of shape (3, 4)"),
    (np.zeros((3, 4), np.int32), np.zeros((4, 2), np.int32), TypeError, "dtype=int32"),
    (np.zeros((2, 3, 4), np.float32), np.zeros((4, 2), np.float32), ValueError, "a.ndim=3"),
    ([[1.0]], np.zeros((1, 1), np.float32), TypeError, "received list"),
])
def test_bad_operands_are_refused(a, b, error, words):
    with pytest.raises(error) as raised:
        ck.matmul(a, b)
    assert words in str(raised.value)
