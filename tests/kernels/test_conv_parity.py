"""Every backend's conv2d and conv2d_backward against the NumPy reference, on a grid.

Grid: dtype × padding form × padding_mode × groups × kernel shape (parametrised)
× stride × dilation × input size × batch × bias (looped inside, named on failure).
"""

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

import cnnkernels
from tests.conftest import assert_close

PADDINGS = [0, 1, (2, 1), ((1, 2), (0, 3)), "valid", "same"]
STRIDES = [1, 2, (1, 3)]
DILATIONS = [1, (2, 1)]
SIZES = [(7, 9), (6, 5)]  # odd and even, non-square, not divisible by the strides
BATCHES = [1, 3]
KERNELS = [(3, 3), (1, 1), (2, 3)]
GROUPS = {"dense": (4, 6, 1), "grouped": (4, 6, 2), "depthwise": (4, 4, 4)}  # C, K, groups


def _cases(C, K, groups, kernel, padding, padding_mode):
    for stride, dilation, (H, W), N, with_bias in itertools.product(STRIDES, DILATIONS, SIZES, BATCHES, (True, False)):
        yield dict(N=N, C=C, H=H, W=W, K=K, groups=groups, kernel=kernel, stride=stride, padding=padding,
                   dilation=dilation, padding_mode=padding_mode, with_bias=with_bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", PADDINGS, ids=repr)
@pytest.mark.parametrize("padding_mode", ["zeros", "replicate", "reflect", "circular"])
@pytest.mark.parametrize("group_kind", list(GROUPS))
@pytest.mark.parametrize("kernel", KERNELS, ids=repr)
def test_conv2d_matches_reference(backend, rng, dtype, padding, padding_mode, group_kind, kernel):
    C, K, groups = GROUPS[group_kind]
    checked = 0
    for case in _cases(C, K, groups, kernel, padding, padding_mode):
        x = rng.standard_normal((case["N"], C, case["H"], case["W"])).astype(dtype)
        w = rng.standard_normal((K, C // groups, *kernel)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype) if case["with_bias"] else None
        geometry = dict(stride=case["stride"], padding=padding, dilation=case["dilation"], groups=groups,
                        padding_mode=padding_mode)
        try:
            expected = cnnkernels.conv2d(x, w, b, **geometry, backend="numpy")
        except ValueError:
            continue  # e.g. reflect padding wider than the input: rejected identically by every backend
        actual = cnnkernels.conv2d(x, w, b, **geometry, backend=backend)
        assert_close(actual, expected, what=f"forward {case}")

        dy = rng.standard_normal(expected.shape).astype(dtype)
        grads = cnnkernels.conv2d_backward(dy, x, w, **geometry, bias=case["with_bias"], backend=backend)
        wanted = cnnkernels.conv2d_backward(dy, x, w, **geometry, bias=case["with_bias"], backend="numpy")
        for name, got, want in zip(("dx", "dweight", "dbias"), grads, wanted):
            if want is None:
                assert got is None, f"{name} should be None without bias"
            else:
                assert_close(got, want, what=f"{name} {case}")
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_blocked_im2col_matches_reference(backend, rng, dtype, monkeypatch):
    """Tiny im2col blocks (one output row each) give the same numbers as one big block."""
    import cnnkernels._workspace as workspace

    x = rng.standard_normal((3, 4, 11, 10)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    dy_shape = cnnkernels.conv2d(x, w, b, 1, 1, 1, 2).shape
    dy = rng.standard_normal(dy_shape).astype(dtype)
    expected = cnnkernels.conv2d(x, w, b, 1, 1, 1, 2, backend="numpy")
    wanted = cnnkernels.conv2d_backward(dy, x, w, 1, 1, 1, 2, backend="numpy")
    monkeypatch.setattr(workspace, "BLOCK_ELEMENTS", 1)
    assert workspace.block_rows(2 * 3 * 2, 11, 10) == 1
    assert_close(cnnkernels.conv2d(x, w, b, 1, 1, 1, 2, backend=backend), expected)
    for got, want in zip(cnnkernels.conv2d_backward(dy, x, w, 1, 1, 1, 2, backend=backend), wanted):
        assert_close(got, want)


def test_workspace_starts_on_a_cache_line():
    """The kernels' scratch memory starts on a 64-byte line, however NumPy aligned the buffer under it (16 bytes):
    the SIMD kernels' 64-byte loads then stay within a line."""
    import cnnkernels._workspace as workspace

    workspace._local.buffer = None
    for count in (1, 100, 4096, 1_000_003):  # each larger than the last: a new buffer every time
        array = workspace.scratch(count, np.float32)
        assert array.ctypes.data % 64 == 0 and array.shape == (count,)
        array[-1] = 1.0  # the whole requested length is there
    assert workspace.scratch(10, np.float64).ctypes.data % 64 == 0  # reused, still aligned


def test_workspace_bounded_whatever_the_batch(rng):
    """The scratch buffer depends on the layer, not on the batch size."""
    import cnnkernels._workspace as workspace

    w = rng.standard_normal((8, 16, 5, 5)).astype(np.float32)
    backend = "cython" if "cython" in cnnkernels.backends() else None
    sizes = []
    for batch in (1, 32):
        workspace._local.buffer = None
        x = rng.standard_normal((batch, 16, 40, 40)).astype(np.float32)
        cnnkernels.conv2d(x, w, algorithm="im2col", backend=backend)
        sizes.append(workspace._local.buffer.nbytes)
    assert sizes[0] == sizes[1]
    crs, q = 16 * 5 * 5, 36
    bound = cnnkernels.get_num_threads() * (max(workspace.BLOCK_ELEMENTS, crs * q) + 8 * 36 * 36) * 4
    assert sizes[1] <= bound
    if backend != "cython":
        return
    # the SIMD algorithms copy images a chunk at a time: past one chunk, the batch no longer counts. A chunk
    # holds the images that give every thread work (the plan's tile block, sized by the L2, decides how many),
    # split evenly over the batch, so its size may round down by an image; it never grows with the batch.
    from cnnkernels import _winograd

    w3 = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    image_bytes = 16 * 40 * 40 * 4
    for algorithm, weight in (("im2row", w), ("winograd", w3)):
        sizes = []
        for batch in (256, 512, 1024):
            workspace._local.buffer = None
            cnnkernels.conv2d(np.ones((batch, 16, 40, 40), np.float32), weight, algorithm=algorithm)
            sizes.append(workspace._local.buffer.nbytes)
        assert max(sizes) - min(sizes) <= image_bytes, (algorithm, sizes)
        block = cnnkernels.conv2d_plan((1024, 16, 40, 40), weight.shape, algorithm=algorithm).tile_block
        busy = 4 * cnnkernels.get_num_threads() * block // 100 + 1  # images whose 100 tiles fill 4 blocks a thread
        assert max(sizes) <= 4 * max(_winograd.CHUNK_FLOATS, busy * image_bytes // 4) + bound, (algorithm, sizes)


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_does_not_change_results(backend, rng, threads):
    x = rng.standard_normal((5, 6, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((5, 4, 9, 8))
    before = cnnkernels.get_num_threads()
    try:
        cnnkernels.set_num_threads(threads)
        assert cnnkernels.get_num_threads() == threads
        y = cnnkernels.conv2d(x, w, padding=1, groups=2, backend=backend)
        grads = cnnkernels.conv2d_backward(dy, x, w, padding=1, groups=2, backend=backend)
    finally:
        cnnkernels.set_num_threads(before)
    assert_close(y, cnnkernels.conv2d(x, w, padding=1, groups=2, backend="numpy"))
    for got, want in zip(grads, cnnkernels.conv2d_backward(dy, x, w, padding=1, groups=2, backend="numpy")):
        assert_close(got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    N=st.integers(1, 3), groups=st.sampled_from([1, 2, 3]), c_per_group=st.integers(1, 3),
    k_per_group=st.integers(1, 3), H=st.integers(1, 12), W=st.integers(1, 12),
    R=st.integers(1, 4), S=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
    dh=st.integers(1, 2), dw=st.integers(1, 2),
    pads=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16),
)
def test_conv2d_random_geometry_matches_reference(backend, N, groups, c_per_group, k_per_group, H, W, R, S,
                                                  sh, sw, dh, dw, pads, dtype, seed):
    """Any geometry the validator accepts gives the reference's numbers; any other is a ValueError."""
    rng = np.random.default_rng(seed)
    C, K = groups * c_per_group, groups * k_per_group
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, c_per_group, R, S)).astype(dtype)
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    geometry = dict(stride=(sh, sw), padding=padding, dilation=(dh, dw), groups=groups)
    try:
        expected = cnnkernels.conv2d(x, w, **geometry, backend="numpy")
    except ValueError as exc:
        assert "larger than the padded input" in str(exc)
        return
    assert_close(cnnkernels.conv2d(x, w, **geometry, backend=backend), expected)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    for got, want in zip(cnnkernels.conv2d_backward(dy, x, w, **geometry, backend=backend),
                         cnnkernels.conv2d_backward(dy, x, w, **geometry, backend="numpy")):
        assert_close(got, want)
