"""Geometry whose values each fit in 32 bits but whose products or sums do not.

Each backend runs the whole corpus in a child process, so a crash is a failed
test, not a dead test run. Every call must either raise ValueError/TypeError or
return what the numpy backend returns (tiny arrays: its Python-int arithmetic
cannot overflow).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnkernels

BIG = 2**31 - 1

# (op, input shape, weight shape or pooling kernel, keyword arguments)
CORPUS = [
    # the hardening issue's reproducers
    ("conv2d", (1, 32, 4, 4), (8, 32, 2, 1), {"dilation": (BIG, 1), "padding": "same"}),
    ("conv2d", (1, 1, 1, 1), (1, 1, 1, 1), {"stride": (1, BIG), "padding": ((0, 0), (2, 0))}),
    ("conv2d_backward", (1, 1, 1, 1), (1, 1, 1, 1), {"stride": (1, BIG), "padding": ((0, 0), (2, 0))}),
    ("conv2d", (1, 64, 8, 1), (1, 64, 3, 1), {"stride": (BIG, 1), "dilation": (BIG, 1), "padding": "same"}),
    # products and sums of each geometry value with another
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"stride": BIG}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"stride": (BIG, BIG), "padding": 1}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"stride": 10**30}),
    ("conv2d_backward", (1, 2, 5, 5), (2, 2, 3, 3), {"stride": (3, BIG), "padding": (1, 2)}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 1, 1), {"dilation": BIG}),
    ("conv2d_backward", (1, 2, 5, 5), (2, 2, 1, 3), {"dilation": (BIG, 2)}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 2, 2), {"dilation": 2**30}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"padding": BIG}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"padding": 2**29}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"padding": ((2**30, 0), (0, 0))}),
    ("conv2d", (1, 2, 5, 5), (2, 2, 3, 3), {"padding": 10**30}),
    ("conv2d", (1, 1, 3, 3), (1, 1, 3, 3), {"stride": BIG, "dilation": BIG, "padding": "same"}),
    ("conv2d_backward", (2, 1, 4, 4), (1, 1, 2, 2), {"stride": (BIG, 1), "padding": ((1, 1), (0, 0))}),
    ("max_pool2d", (1, 1, 3, 3), 2**62, {}),
    ("max_pool2d", (1, 1, 3, 3), (2**16, 2**16), {"padding": 2**16 - 1}),
    ("avg_pool2d", (1, 1, 3, 3), (2**16, 2**15), {"padding": (2**15, 2**14)}),
    ("avg_pool2d", (1, 1, 3, 3), 2, {"stride": BIG}),
    ("avg_pool2d_backward", (1, 1, 3, 3), 2, {"stride": (BIG, 1), "padding": 1}),
    ("sum_pool2d", (1, 1, 3, 3), 3, {"stride": 10**30, "padding": 1}),
    ("max_pool2d_backward", (1, 2, 5, 5), (3, 2), {"stride": (BIG, BIG), "padding": (1, 1)}),
]

CHILD = r"""
import json, sys
import numpy as np
import cnnkernels as ck

backend = sys.argv[1]
outcomes = []
for op, x_shape, second, kwargs in json.loads(sys.stdin.read()):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    kwargs = {k: (tuple(tuple(p) if isinstance(p, list) else p for p in v) if isinstance(v, list) else v)
              for k, v in kwargs.items()}
    second = tuple(second) if isinstance(second, list) else second
    w = rng.standard_normal(second).astype(np.float32) if op.startswith("conv2d") else None
    results = {}
    for name in (backend, "numpy"):
        try:
            if op.startswith("conv2d"):
                y = ck.conv2d(x, w, backend=name, **kwargs)
                if op == "conv2d_backward":
                    dy = np.ones_like(y)
                    y = np.concatenate([g.ravel() for g in ck.conv2d_backward(dy, x, w, backend=name, **kwargs)])
            else:
                forward = getattr(ck, op.replace("_backward", ""))
                y = forward(x, second, backend=name, **kwargs)
                if op.endswith("_backward"):
                    y = getattr(ck, op)(np.ones_like(y), x, second, backend=name, **kwargs)
            results[name] = ["ok", np.asarray(y, np.float64).ravel().tolist()]
        except (ValueError, TypeError) as exc:
            results[name] = [type(exc).__name__, str(exc)]
        except Exception as exc:
            results[name] = ["other:" + type(exc).__name__, str(exc)]
    outcomes.append(results)
print(json.dumps(outcomes))
"""


@pytest.mark.parametrize("backend", [b for b in cnnkernels.backends() if b != "numpy"] or ["numpy"])
def test_overflow_corpus_is_refused_or_exact(backend):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    child = subprocess.run([sys.executable, "-c", CHILD, backend], input=json.dumps(CORPUS),
                           capture_output=True, text=True, env=env, timeout=600)
    assert child.returncode == 0, f"child crashed (exit {child.returncode}): {child.stderr[-2000:]}"
    outcomes = json.loads(child.stdout.strip().splitlines()[-1])
    for case, results in zip(CORPUS, outcomes):
        mine, reference = results[backend], results["numpy"]
        assert not mine[0].startswith("other"), f"{case}: {mine}"
        assert not reference[0].startswith("other"), f"{case} on numpy: {reference}"
        if mine[0] == "ok" or reference[0] == "ok":
            assert mine[0] == reference[0] == "ok", f"{case}: {backend} {mine} vs numpy {reference}"
            np.testing.assert_allclose(mine[1], reference[1], rtol=1e-5, atol=1e-5, err_msg=str(case))
        else:
            assert "received" in mine[1] or "padding=" in mine[1] or "exceeds" in mine[1], mine[1]


def test_the_reproducers_say_why():
    x = np.zeros((1, 32, 4, 4), np.float32)
    with pytest.raises(ValueError, match="padded input 2147483651x4"):
        cnnkernels.conv2d(x, np.zeros((8, 32, 2, 1), np.float32), dilation=(BIG, 1), padding="same")


def test_output_larger_than_memory_is_refused_before_allocating():
    x = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"the output of shape \(1, 64, 32769, 32769\) would need 256.0 GiB"):
        cnnkernels.conv2d(x, np.zeros((64, 1, 1, 1), np.float32), padding=2**14)
    with pytest.raises(ValueError, match="padded input 65537x65537 .* exceeds"):
        cnnkernels.conv2d(x, np.zeros((1, 1, 1, 1), np.float32), padding=2**15)


def test_backend_name_is_checked_before_an_empty_batch_returns():
    empty = np.zeros((0, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="backend='cuda'"):
        cnnkernels.conv2d(empty, np.zeros((1, 1, 1, 1), np.float32), backend="cuda")
    with pytest.raises(ValueError, match="backend='cuda'"):
        cnnkernels.max_pool2d(empty, 2, backend="cuda")
