"""Hypothesis fuzzing of every op on every backend, each batch of calls in a child process (a crash is
a counted failure, not a dead test run), with an overflow profile: geometry values each below 2³¹
whose products or sums (stride × size, dilation × kernel, kh × kw, padding + size) overflow 32 bits.

Every call must raise ValueError / TypeError, or return what tests/naive.py computes. The normal
suite runs a short profile; ``CNNKERNELS_FUZZ_CALLS=5000`` (CI, against the debug build) a long one.
"""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnkernels
from tests import naive

CALLS = int(os.environ.get("CNNKERNELS_FUZZ_CALLS", "240"))
PER_CHILD = 100 if CALLS >= 1000 else 60  # calls per child process (its start-up is ~0.4 s)
OPS = ["conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
       "sum_pool2d", "sum_pool2d_backward"]
BIG = [2**31 - 1, 2**31, 2**30 + 1, 2**16, 2**16 + 3, 3 * 2**29, 10**30, 2**62]

small = st.integers(0, 4)
odd_value = st.one_of(st.integers(-3, 9), st.sampled_from(BIG), st.floats(-2, 5), st.none(), st.sampled_from(
    ["same", "valid", "full", "", "2"]), st.lists(st.integers(-1, 5), min_size=0, max_size=3))
geometry = st.one_of(small.map(lambda v: v + 1), st.tuples(st.integers(1, 3), st.integers(1, 3)).map(list),
                     odd_value)  # mostly sane, sometimes anything
overflowing = st.one_of(st.sampled_from(BIG), st.tuples(st.sampled_from(BIG), st.integers(1, 3)).map(list),
                        st.tuples(st.integers(1, 3), st.sampled_from(BIG)).map(list))
padding = st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"]),
                    st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list),
                    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list),
                              st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list)).map(list), odd_value)


@st.composite
def call(draw, overflow=False):
    op = draw(st.sampled_from(OPS))
    unbatched = draw(st.booleans()) and draw(st.booleans())
    shape = [draw(st.integers(0, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 7)), draw(st.integers(1, 7))]
    spec = {"op": op, "x": shape[1:] if unbatched else shape, "seed": draw(st.integers(0, 2**16)),
            "dtype": draw(st.sampled_from(["float32", "float64", "float32", "float64", "int32", "float16"])),
            "layout": draw(st.sampled_from(["c", "c", "fortran", "strided", "negative", "channels_last"])),
            "kwargs": {}}
    grow = overflowing if overflow else geometry
    kwargs = spec["kwargs"]
    if op.startswith("conv"):
        groups = draw(st.sampled_from([1, 1, 1, 2, shape[1]]))
        filters = groups * draw(st.integers(1, 2))
        spec["w"] = [filters, max(shape[1] // groups, 1), draw(st.integers(1, 4)), draw(st.integers(1, 4))]
        kwargs["groups"] = groups
        for key in ("stride", "dilation"):
            if draw(st.booleans()):
                kwargs[key] = draw(grow)
        if draw(st.booleans()):
            kwargs["padding"] = draw(grow if overflow and draw(st.booleans()) else padding)
    else:
        spec["kernel"] = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)).map(list),
                                        grow))
        if draw(st.booleans()):
            kwargs["stride"] = draw(grow)
        if draw(st.booleans()):
            kwargs["padding"] = draw(st.one_of(st.integers(0, 2), grow))
        if op.startswith("max") and draw(st.booleans()):
            kwargs["dilation"] = draw(grow)
        if draw(st.booleans()):
            kwargs["ceil_mode"] = draw(st.booleans())
        if op.startswith("avg") and draw(st.booleans()):
            kwargs["count_include_pad"] = draw(st.booleans())
    return spec


CHILD = r"""
import json, sys
import numpy as np
import cnnkernels as ck
sys.path.insert(0, sys.argv[2])
from tests.kernels.test_fuzz import inputs, tupled

backend = sys.argv[1]
outcomes = []
for spec in json.loads(sys.stdin.read()):
    x, w, dy_seed = inputs(spec)
    kwargs = {k: tupled(v) for k, v in spec["kwargs"].items()}
    op = spec["op"]
    try:
        if op.startswith("conv2d"):
            y = ck.conv2d(x, w, backend=backend, **kwargs)
            if op == "conv2d_backward":
                dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
                y = ck.conv2d_backward(dy, x, w, backend=backend, **kwargs)[:2]
        else:
            forward = getattr(ck, op.replace("_backward", ""))
            kernel = tupled(spec["kernel"])
            y = forward(x, kernel, backend=backend, **kwargs)
            if op.endswith("_backward"):
                dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(y.dtype)
                y = getattr(ck, op)(dy, x, kernel, backend=backend, **kwargs)
        parts = y if isinstance(y, tuple) else (y,)
        outcomes.append(["ok", [[list(p.shape), str(p.dtype), np.asarray(p, np.float64).ravel().tolist()]
                                if p.size <= 20000 else [list(p.shape), str(p.dtype), None] for p in parts]])
    except (ValueError, TypeError) as exc:
        outcomes.append([type(exc).__name__, str(exc)[:300]])
    except BaseException as exc:
        outcomes.append(["other:" + type(exc).__name__, str(exc)[:300]])
print(json.dumps(outcomes))
"""


def tupled(value):
    return tuple(tupled(v) for v in value) if isinstance(value, list) else value


def inputs(spec):
    """The arrays of one call, made from its seed (the child and the oracle make the same ones)."""
    rng = np.random.default_rng(spec["seed"])
    x = rng.standard_normal(spec["x"]).astype(spec["dtype"])
    x = {"c": x, "fortran": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=-1)[..., ::2],
         "negative": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
         "channels_last": np.moveaxis(np.ascontiguousarray(np.moveaxis(x, -3, -1)), -1, -3)}[spec["layout"]]
    w = rng.standard_normal(spec["w"]).astype(spec["dtype"]) if "w" in spec else None
    return x, w, spec["seed"] + 1


def oracle(spec):
    """What tests/naive.py computes for a call the backend accepted."""
    x, w, dy_seed = inputs(spec)
    batched = x.ndim == 4
    x = x if batched else x[None]
    kwargs = {k: tupled(v) for k, v in spec["kwargs"].items()}
    op = spec["op"]
    if op.startswith("conv2d"):
        y = naive.conv2d(x, w, None, **kwargs)
        if op == "conv2d_backward":
            dy = np.random.default_rng(dy_seed).standard_normal(y.shape if batched else y.shape[1:])
            dy = dy.astype(spec["dtype"]).reshape(y.shape)
            parts = naive.conv2d_backward(dy, x, w, **kwargs)[:2]
            return [parts[0] if batched else parts[0][0], parts[1]]
        return [y if batched else y[0]]
    kind = op.split("_")[0]
    pool = {k: kwargs.get(k, d) for k, d in (("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False),
                                             ("count_include_pad", True))}
    y = naive.pool2d(x, kind, tupled(spec["kernel"]), **pool)
    if op.endswith("_backward"):
        dy = np.random.default_rng(dy_seed).standard_normal(y.shape if batched else y.shape[1:])
        dy = dy.astype(spec["dtype"]).reshape(y.shape)
        y = naive.pool2d_backward(dy, x, kind, tupled(spec["kernel"]), **pool)
    return [y if batched else y[0]]


def run_children(backend, specs):
    """Outcomes of ``specs`` on ``backend``, PER_CHILD calls per child process; a batch whose child
    crashed is rerun one call per child, to count and name the calls that crash."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}

    def child(batch):
        done = subprocess.run([sys.executable, "-c", CHILD, backend, root], input=json.dumps(batch),
                              capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return None, done.returncode, done.stderr[-500:]
        return json.loads(done.stdout.strip().splitlines()[-1]), 0, ""

    outcomes, crashes = [], []
    for start in range(0, len(specs), PER_CHILD):
        batch = specs[start:start + PER_CHILD]
        result, code, err = child(batch)
        if result is None:
            result = []
            for spec in batch:
                single, code, err = child([spec])
                if single is None:
                    crashes.append((spec, code, err))
                    single = [["crash", str(code)]]
                result += single
        outcomes += result
    return outcomes, crashes


# Outcomes by kind (ok, ValueError, TypeError, ...) per (profile, backend), printed at the end of the module
# (`pytest -s` or `-rA` shows them: the must-show's "calls, outcomes by exception type").
TALLY = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _print_tally():
    yield
    for (profile, backend), kinds in sorted(TALLY.items()):
        print(f"\nfuzz {profile} on {backend}: {sum(kinds.values())} calls, " + ", ".join(
            f"{kind} {count}" for kind, count in kinds.most_common()))


def check(backend, specs, profile="random"):
    outcomes, crashes = run_children(backend, specs)
    TALLY[profile, backend].update(kind for kind, _ in outcomes)
    assert not crashes, f"{len(crashes)} of {len(specs)} calls crashed the interpreter: {crashes[:3]}"
    kinds = {}
    for spec, (kind, detail) in zip(specs, outcomes):
        kinds[kind] = kinds.get(kind, 0) + 1
        assert not kind.startswith("other"), f"{spec}: {kind}: {detail}"
        if kind != "ok":
            continue
        for (shape, dtype, values), want in zip(detail, oracle(spec)):
            assert tuple(shape) == want.shape and dtype == spec["dtype"], f"{spec}: {shape} vs {want.shape}"
            if values is not None:
                tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=1e-9, atol=1e-9)
                np.testing.assert_allclose(np.asarray(values).reshape(shape), want, err_msg=str(spec), **tolerance)
    return kinds


FUZZ = settings(max_examples=max(1, CALLS // PER_CHILD), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("backend", cnnkernels.backends())
@FUZZ
@given(specs=st.lists(call(), min_size=PER_CHILD, max_size=PER_CHILD))
def test_random_calls_raise_clearly_or_equal_the_oracle(backend, specs):
    check(backend, specs)


@pytest.mark.parametrize("backend", cnnkernels.backends())
@FUZZ
@given(specs=st.lists(call(overflow=True), min_size=PER_CHILD, max_size=PER_CHILD))
def test_overflowing_geometry_is_refused_or_exact(backend, specs):
    check(backend, specs, profile="overflow")
