"""Both of the Cython forward strategies (channel-major columns, pixel-major rows) against the
reference on a grid, whichever one the shape-based choice would pick."""

import itertools

import numpy as np
import pytest

from cnnkernels import _args, reference
from tests.conftest import assert_close

_conv = pytest.importorskip("cnnkernels._conv")

SHAPES = [(2, 8, 7, 9, 6, 3, 3), (3, 12, 6, 5, 6, 1, 1), (1, 8, 9, 7, 4, 2, 3), (2, 16, 5, 5, 8, 5, 4)]


@pytest.mark.parametrize("strategy", ["conv2d_forward_rows", "conv2d_forward_columns", "conv2d_forward"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cython_forward_strategies_match_reference(strategy, dtype, shape, monkeypatch):
    import cnnkernels._workspace as workspace

    N, C, H, W, K, R, S = shape
    rng = np.random.default_rng(0)
    checked = 0
    for stride, padding, dilation, groups, with_bias, block in itertools.product(
            [1, 2, (1, 3)], [0, 1, "same", ((2, 0), (1, 3))], [1, (2, 1)], [1, 2], [True, False], [None, 1]):
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype) if with_bias else np.empty(0, dtype)
        try:
            g = _args.conv_geometry(x.shape, w.shape, stride, padding, dilation, groups, "zeros")
        except ValueError:
            continue
        args = (*g.stride, g.pad[0], g.pad[2], *g.dilation, groups)
        expected = np.empty((N, K, *g.out_hw), dtype)
        reference.conv2d_forward(x, w, b, *args, 2, expected)
        monkeypatch.setattr(workspace, "BLOCK_COLUMNS", 1 if block else 1024)  # one output row per block
        got = np.full_like(expected, np.nan)
        getattr(_conv, strategy)(x, w, b, *args, 2, got)
        assert_close(got, expected, what=f"{strategy} stride={stride} padding={padding} dilation={dilation} "
                                         f"groups={groups} bias={with_bias} block={block}")
        checked += 1
    assert checked > 20
