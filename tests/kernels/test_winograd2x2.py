"""Winograd F(2×2, 3×3) (``algorithm="winograd2x2"``), forced, against the float64 reference.

Its transforms add at most 9 terms more than the direct sum and scale by 1/2 only, so its float32 results must
be within 2e-6 · Σ|x||w| (the largest direct sum of absolute values; measured: 1.5e-7 of it, as direct), five times
tighter than F(4×4)'s bound. The grid's edges are the vector kernel's: runs of 32 tiles over the flattened tile
grid of a band (one junk tile column a row), runs that span up to 10 tile rows, odd output sizes whose last
tile is cut, filters not a multiple of its block of 8, and bands of few tile rows.
"""

import numpy as np
import pytest

import cnnkernels as ck

CYTHON = ["cython"] if "cython" in ck.backends() else []
BOUND = 2e-6

GRID = [
    # x shape, weight shape, geometry
    ((32, 3, 20, 20), (32, 3, 3, 3), dict(padding="same")),  # the tutorial's conv1: 10 x 11 tiles an image
    ((2, 3, 100, 100), (32, 3, 3, 3), dict(padding=1)),      # 50 x 51 tiles: several runs per tile row
    ((1, 3, 7, 9), (5, 3, 3, 3), dict(padding=0)),           # 5 x 7 outputs: cut tiles on both edges
    ((3, 2, 5, 6), (17, 2, 3, 3), dict(padding=((1, 2), (0, 1)))),  # uneven padding; 17 = 8 + 8 + 1 filters
    ((2, 4, 33, 35), (9, 4, 3, 3), dict(padding=((2, 0), (1, 2)))),
    ((1, 1, 3, 3), (1, 1, 3, 3), dict()),                    # one output: one tile, three lanes of it cut
    ((1, 5, 1, 1), (3, 5, 3, 3), dict(padding=1)),           # 2 tile columns a row: a run spans 10 tile rows
    ((2, 8, 12, 10), (12, 8, 3, 3), dict(padding=1, padding_mode="reflect")),
    ((4, 16, 9, 9), (24, 16, 3, 3), dict(padding=1)),        # more channels than the first layers it is for
]


def reference(x, w, b, **geometry):
    f8 = [a.astype(np.float64) if a is not None else None for a in (x, w, b)]
    y = ck.conv2d(*f8, backend="numpy", **geometry)
    scale = ck.conv2d(np.abs(f8[0]), np.abs(f8[1]), backend="numpy", **geometry).max()
    return y, scale


@pytest.mark.parametrize("backend", CYTHON)
@pytest.mark.parametrize("x_shape,w_shape,geometry", GRID)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("with_bias", [True, False])
def test_winograd2x2_matches_the_reference(backend, x_shape, w_shape, geometry, threads, with_bias):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape) + threads)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if with_bias else None
    expected, scale = reference(x, w, b, **geometry)
    y = ck.conv2d(x, w, b, algorithm="winograd2x2", backend=backend, threads=threads, **geometry)
    assert y.dtype == np.float32 and y.shape == expected.shape
    error = float(np.max(np.abs(y - expected)))
    assert error <= BOUND * scale, f"error {error:.3g} > {BOUND} · Σ|x||w| = {BOUND * scale:.3g}"


@pytest.mark.parametrize("backend", CYTHON)
def test_bands_of_one_tile_row_give_the_same_result(backend, monkeypatch):
    """A work item is a band of tile rows; where the bands end must not change a bit (threads only take bands)."""
    from cnnkernels import _winograd

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 23, 30)).astype(np.float32)
    w = rng.standard_normal((20, 3, 3, 3)).astype(np.float32)
    whole = ck.conv2d(x, w, padding=1, algorithm="winograd2x2", backend=backend, threads=1)
    monkeypatch.setattr(_winograd, "TILE_BAND_FLOATS", 1)  # one tile row a band
    for threads in (1, 2):
        banded = ck.conv2d(x, w, padding=1, algorithm="winograd2x2", backend=backend, threads=threads)
        np.testing.assert_array_equal(banded, whole)


@pytest.mark.parametrize("backend", CYTHON)
def test_winograd2x2_is_forced_only_and_its_gradients_come_from_the_exact_algorithms(backend):
    first_layer = ((32, 3, 20, 20), (32, 3, 3, 3))
    assert ck.conv2d_plan(*first_layer, padding=1, backend=backend).forward == "direct"  # measured faster
    forced = ck.conv2d_plan(*first_layer, padding=1, backend=backend, algorithm="winograd2x2")
    assert (forced.forward, forced.backward_data, forced.backward_weight) == ("winograd2x2", "im2row", "im2col")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 16, 6, 7)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 8, 6, 7)).astype(np.float32)
    dx, dw, db = ck.conv2d_backward(dy, x, w, padding=1, algorithm="winograd2x2", backend=backend)
    exact = ck.conv2d_backward(*(a.astype(np.float64) for a in (dy, x, w)), padding=1, backend="numpy")
    for actual, expected in zip((dx, dw, db), exact):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("call,message", [
    (lambda: ck.conv2d(np.ones((1, 8, 6, 6), np.float32), np.ones((4, 4, 3, 3), np.float32), groups=2,
                       algorithm="winograd2x2"), "needs groups=1; received groups=2"),
    (lambda: ck.conv2d(np.ones((1, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32), stride=2,
                       algorithm="winograd2x2"), "needs stride 1; received stride=(2, 2)"),
    (lambda: ck.conv2d(np.ones((1, 3, 6, 6), np.float32), np.ones((4, 3, 5, 5), np.float32),
                       algorithm="winograd2x2"), "needs a 3x3 kernel; received kernel 5x5"),
    (lambda: ck.conv2d(np.ones((1, 3, 6, 6)), np.ones((4, 3, 3, 3)), algorithm="winograd2x2"), "float32 only"),
    (lambda: ck.conv2d(np.ones((1, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32), dilation=2,
                       algorithm="winograd2x2"), "needs dilation 1"),
    (lambda: ck.conv2d(np.ones((1, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32),
                       algorithm="winograd2x2", backend="numpy"), "cython backend only"),
])
def test_winograd2x2_that_cannot_run_says_why(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()
