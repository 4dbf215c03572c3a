"""pytest-benchmark front door: one benchmark per (problem, implementation, pass).

    pytest bench/ --benchmark-only [--bench-set convnet-benchmarks] [--bench-threads 2] [--benchmark-json out.json]

Each benchmark's extra_info carries GFLOP/s (2·N·K·C·R·S·P·Q / median) and the
largest difference from the NumPy reference. No timing is asserted.
"""

import numpy as np

from bench import core
from bench.impls import Cnnkernels
from bench.shapes import Conv


def test_pass(benchmark, case, threads):
    problem, impl, pass_name = case
    arrays, out_hw = core.inputs(problem)
    prepare = "conv" if isinstance(problem, Conv) else "pool"
    call = getattr(impl, prepare)(problem, *arrays)[pass_name]
    expected = getattr(Cnnkernels("numpy"), prepare)(problem, *arrays)[pass_name]()
    with core.thread_count([impl], threads):
        result = benchmark.pedantic(call, rounds=10, warmup_rounds=2, iterations=1)
    benchmark.extra_info["max_abs_diff"] = float(np.max(np.abs(result - expected)))
    benchmark.extra_info["threads"] = threads
    if isinstance(problem, Conv):
        benchmark.extra_info["gflops"] = problem.flops(out_hw) / benchmark.stats.stats.median / 1e9
    assert result.shape == expected.shape
