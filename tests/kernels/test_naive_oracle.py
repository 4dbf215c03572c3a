"""Every backend, through the public API, against the loop-level oracle of tests/naive.py (which
shares no code with cnnkernels: not its padding arithmetic, not its validation)."""

import itertools

import numpy as np
import pytest

import cnnkernels
from tests import naive

BACKENDS = cnnkernels.backends()
TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}

CONV_GRID = [  # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1),
    ((1, 3, 7, 6), (4, 3, 3, 3), 2, "same", 1, 1),
    ((2, 4, 8, 5), (4, 2, 3, 2), (2, 1), "same", (1, 2), 2),
    ((1, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, 4),
    ((2, 2, 9, 7), (3, 2, 2, 3), (3, 2), ((1, 2), (0, 3)), 1, 1),
    ((1, 2, 5, 8), (2, 2, 3, 1), 1, (2, 0), (2, 1), 1),
    ((1, 3, 6, 6), (2, 3, 4, 4), 3, "valid", 1, 1),
    ((2, 1, 5, 5), (3, 1, 5, 5), 1, "same", 1, 1),
    ((1, 2, 4, 9), (2, 2, 1, 1), (1, 4), 0, 1, 1),
]


def arrays(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype),
            rng.standard_normal(w_shape[0]).astype(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_GRID, ids=[str(i) for i in range(len(CONV_GRID))])
def test_conv2d_and_its_gradients_equal_the_naive_loops(backend, dtype, case):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x, w, b = arrays(x_shape, w_shape, dtype)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = naive.conv2d(x, w, b, **geometry)
    y = cnnkernels.conv2d(x, w, b, backend=backend, **geometry)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, expected, **TOLERANCE[dtype])
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    for got, want in zip(cnnkernels.conv2d_backward(dy, x, w, backend=backend, **geometry),
                         naive.conv2d_backward(dy, x, w, **geometry)):
        np.testing.assert_allclose(got, want, **TOLERANCE[dtype])


POOL_GRID = [  # (kind, x shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad)
    *[(kind, (2, 3, 7, 6), k, s, p, 1, ceil, True) for kind in ("max", "avg", "sum")
      for k, s, p, ceil in [(2, None, 0, False), (3, 2, 1, False), ((3, 2), (2, 1), (1, 0), True), (2, 3, 1, True)]],
    ("max", (1, 2, 9, 8), 3, 2, 1, 2, False, True),
    ("max", (1, 2, 9, 8), (2, 3), 1, (1, 1), (3, 2), True, True),
    ("avg", (2, 2, 7, 7), 3, 2, 1, 1, False, False),
    ("avg", (2, 2, 8, 7), (3, 2), (2, 2), (1, 1), 1, True, False),
    ("max", (1, 2, 7, 6), 3, 2, "same", 1, False, True),
    ("avg", (1, 2, 7, 6), (3, 2), 2, "same", 1, False, False),
    ("avg", (1, 2, 7, 6), 3, 2, ((1, 2), (0, 1)), 1, True, True),
    ("sum", (1, 2, 6, 7), (2, 3), (1, 2), ((0, 1), (2, 1)), 1, False, True),
]


def pool_call(kind, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad, backend, dy=None):
    arguments = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, backend=backend)
    if kind == "max":
        arguments["dilation"] = dilation
    if kind == "avg":
        arguments["count_include_pad"] = count_include_pad
    name = f"{kind}_pool2d" + ("_backward" if dy is not None else "")
    return getattr(cnnkernels, name)(*([dy] if dy is not None else []), x, kernel, **arguments)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_GRID, ids=[f"{c[0]}{i}" for i, c in enumerate(POOL_GRID)])
def test_pooling_and_its_gradient_equal_the_naive_loops(backend, dtype, case):
    kind, shape, kernel, stride, padding, dilation, ceil_mode, include = case
    x = np.random.default_rng(2).permutation(np.prod(shape)).reshape(shape).astype(dtype)  # no ties
    expected = naive.pool2d(x, kind, kernel, stride, padding, dilation, ceil_mode, include)
    y = pool_call(kind, x, kernel, stride, padding, dilation, ceil_mode, include, backend)
    np.testing.assert_allclose(y, expected, **TOLERANCE[dtype])
    dy = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(pool_call(kind, x, kernel, stride, padding, dilation, ceil_mode, include, backend, dy),
                               naive.pool2d_backward(dy, x, kind, kernel, stride, padding, dilation, ceil_mode,
                                                     include), **TOLERANCE[dtype])


def test_the_oracle_works_out_same_padding_as_tensorflow_says():
    # TensorFlow's documented examples: in 5, k 3, s 2 -> out 3, total pad 2 (1, 1); in 4 -> out 2, pad 1 (0, 1)
    assert naive.same_padding(5, 3, 2, 1) == (1, 1) and naive.same_padding(4, 3, 2, 1) == (0, 1)
    for size, kernel, stride, dilation in itertools.product(range(1, 9), range(1, 5), range(1, 4), range(1, 3)):
        top, bottom = naive.same_padding(size, kernel, stride, dilation)
        out = (size + top + bottom - (kernel - 1) * dilation - 1) // stride + 1
        assert out == -(-size // stride) and bottom - top in (0, 1)
