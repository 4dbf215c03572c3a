"""pytest-benchmark front door: one benchmark per (problem, implementation, pass).

    pytest bench/ --benchmark-only [--bench-set convnet-benchmarks] [--impl mypkg.conv:MyConv] [--bench-threads 2]
                  [--benchmark-json out.json]

Each benchmark's extra_info carries GFLOP/s (2·N·K·C·R·S·P·Q / median) and the
largest difference from the NumPy reference. A pass an implementation lacks is
skipped; a result off the reference fails. No timing is asserted.
"""

import numpy as np
import pytest

from . import core
from .impls import Cnnkernels
from .shapes import Conv


def test_pass(benchmark, case, threads):
    problem, impl, pass_name = case
    arrays, out_hw = core.inputs(problem)
    is_conv = isinstance(problem, Conv)
    expected = getattr(Cnnkernels("numpy"), "conv" if is_conv else "pool")(problem, *arrays)[pass_name]()
    with core.thread_count([impl], threads) as refused:
        if refused:
            pytest.skip(refused[impl.name])
        calls = core._prepare(impl, problem, arrays, is_conv)
        if isinstance(calls, str) or pass_name not in calls:
            pytest.skip(calls if isinstance(calls, str) else f"{impl.name} has no {pass_name} pass")
        result = np.asarray(benchmark.pedantic(calls[pass_name], rounds=10, warmup_rounds=2, iterations=1))
    assert result.shape == expected.shape
    relative = float(np.max(np.abs(result - expected)) / (np.max(np.abs(expected)) or 1.0)) if result.size else 0.0
    benchmark.extra_info.update(max_abs_diff=float(np.max(np.abs(result - expected))) if result.size else 0.0,
                                threads=threads, rel_diff=relative)
    if is_conv:
        benchmark.extra_info["gflops"] = problem.flops(out_hw) / benchmark.stats.stats.median / 1e9
    assert relative <= core.TOLERANCE, f"{impl.name} {pass_name} is off the reference by {relative:.1e} of its range"
