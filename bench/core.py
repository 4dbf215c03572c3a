"""Timing, memory and accuracy measurement shared by `python -m bench` and the pytest-benchmark suite."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import time

import numpy as np

import cnnkernels

from .impls import CONV_PASSES, POOL_PASSES, Cnnkernels
from .shapes import Conv

DTYPE = np.float32


def inputs(problem, seed=0):
    """Random float32 inputs of a problem: (x, w, dy) for conv, (x, dy) for pooling."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((problem.N, problem.C, problem.H, problem.W), dtype=DTYPE)
    if isinstance(problem, Conv):
        w = rng.standard_normal((problem.K, problem.C, problem.R, problem.S), dtype=DTYPE)
        w /= np.sqrt(problem.C * problem.R * problem.S)
        y = cnnkernels.conv2d(x[:1], w, stride=problem.stride, padding=problem.padding)
        dy = rng.standard_normal((problem.N, *y.shape[1:]), dtype=DTYPE)
        return (x, w, dy), y.shape[2:]
    pool = getattr(cnnkernels, f"{problem.kind}_pool2d")
    y = pool(x[:1], problem.kernel_size, problem.stride, problem.padding)
    dy = rng.standard_normal((problem.N, *y.shape[1:]), dtype=DTYPE)
    return (x, dy), y.shape[2:]


SETTLE_S = 0.2


def time_call(call, repeats: int, warmup: int = 2, budget_s: float | None = None) -> list[float]:
    """Seconds of ``repeats`` calls after ``warmup`` untimed ones; stops early (>= 3 runs)
    once ``budget_s`` is spent, so a slow reference cannot hold a run hostage.

    It first pauses: the worker threads of whatever ran before (OpenBLAS, another
    OpenMP runtime) keep spinning for a while after their last call, and on 2 cores
    they would take the cores from the call being timed (seen here: PyTorch's
    2-thread training step at 12 ms instead of 6)."""
    time.sleep(SETTLE_S)
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if budget_s is not None and len(times) >= 3 and sum(times) > budget_s:
            break
    return times


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_extra_memory_mb(call) -> float | None:
    """Peak resident memory one call adds above what was resident before it (Linux only:
    the high-water mark is reset through /proc/self/clear_refs). Counts every allocator,
    NumPy's and PyTorch's alike."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    result = call()
    peak = _status_kib("VmHWM")
    del result
    if before is None or peak is None:
        return None
    return max(0.0, (peak - before) / 1024)


def sgemm_gflops(threads: int, size: int = 1024, repeats: int = 10) -> float:
    """This machine's practical float32 peak: NumPy's BLAS sgemm at ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size), dtype=DTYPE)
    b = rng.standard_normal((size, size), dtype=DTYPE)
    with threadpool_limits(threads, user_api="blas"):
        best = statistics.median(time_call(lambda: a @ b, repeats))
    return 2.0 * size**3 / best / 1e9


def fma_peak_gflops() -> float | None:
    """One core's FMA throughput (independent vector FMA chains), or None without the compiled backend."""
    try:
        from cnnkernels import _winograd
    except ImportError:
        return None
    return max(_winograd.fma_peak_gflops() for _ in range(3))


@contextlib.contextmanager
def thread_count(impls, n):
    before = cnnkernels.get_num_threads()
    for impl in impls:
        impl.set_threads(n)
    try:
        yield
    finally:
        cnnkernels.set_num_threads(before)


def measure_problem(problem, impls, threads: int, repeats: int, peak: float, budget_s: float):
    """Rows of measurements of one problem for every implementation at ``threads`` threads."""
    arrays, out_hw = inputs(problem)
    is_conv = isinstance(problem, Conv)
    passes = CONV_PASSES if is_conv else POOL_PASSES
    reference = Cnnkernels("numpy")
    ref_calls = reference.conv(problem, *arrays) if is_conv else reference.pool(problem, *arrays)
    expected = {name: ref_calls[name]() for name in passes}
    flops = problem.flops(out_hw) if is_conv else None
    rows = []
    with thread_count(impls, threads):
        for impl in impls:
            calls = impl.conv(problem, *arrays) if is_conv else impl.pool(problem, *arrays)
            for name in passes:
                got = calls[name]()
                diff = float(np.max(np.abs(got - expected[name]))) if got.size else 0.0
                times = time_call(calls[name], repeats, budget_s=budget_s)
                median = statistics.median(times)
                rows.append({
                    "problem": problem.label(), "name": problem.name, "threads": threads, "impl": impl.name,
                    "algorithm": impl.algorithm(problem, arrays[0], arrays[1], name) if is_conv else None,
                    "pass": name, "median_ms": 1e3 * median, "min_ms": 1e3 * min(times),
                    "max_ms": 1e3 * max(times), "runs": len(times),
                    "gflops": flops / median / 1e9 if flops else None,
                    "pct_peak": 100 * flops / median / 1e9 / peak if flops else None,
                    "peak_extra_mb": peak_extra_memory_mb(calls[name]),
                    "max_abs_diff": diff,
                })
            total = [r for r in rows[-len(passes):]]
            median_total = sum(r["median_ms"] for r in total) / 1e3
            rows.append({
                "problem": problem.label(), "name": problem.name, "threads": threads, "impl": impl.name,
                "algorithm": "/".join(r["algorithm"] for r in total) if is_conv else None,
                "pass": "total", "median_ms": 1e3 * median_total, "min_ms": sum(r["min_ms"] for r in total),
                "max_ms": sum(r["max_ms"] for r in total), "runs": min(r["runs"] for r in total),
                "gflops": len(passes) * flops / median_total / 1e9 if flops else None,
                "pct_peak": 100 * len(passes) * flops / median_total / 1e9 / peak if flops else None,
                "peak_extra_mb": max((r["peak_extra_mb"] or 0.0) for r in total),
                "max_abs_diff": max(r["max_abs_diff"] for r in total),
            })
    return rows


def fmt(value, spec) -> str:
    """``value`` formatted by ``spec``, or "-" when there is none (a pass pooling lacks, no PyTorch)."""
    return "-" if value is None else format(value, spec)


def summary_rows(rows):
    """Each implementation's totals per (threads, problem), in run order: yields
    (threads, problem, impl, total row, {pass: median ms}, total / torch's, total / the reference's)."""
    totals = [r for r in rows if r["pass"] == "total"]
    for threads in sorted({r["threads"] for r in totals}):
        for problem in dict.fromkeys(r["problem"] for r in totals if r["threads"] == threads):
            group = [r for r in rows if r["threads"] == threads and r["problem"] == problem]
            by_impl = {r["impl"]: r for r in group if r["pass"] == "total"}
            torch_ms = by_impl.get("torch", {}).get("median_ms")
            ref_ms = by_impl.get("numpy-ref", {}).get("median_ms")
            for impl, total in by_impl.items():
                passes = {r["pass"]: r["median_ms"] for r in group if r["impl"] == impl}
                yield (threads, problem, impl, total, passes,
                       total["median_ms"] / torch_ms if torch_ms else None,
                       total["median_ms"] / ref_ms if ref_ms else None)


def machine_info() -> dict:
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cnnkernels": cnnkernels.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if models:
            info["cpu"] = models[0]
    for module in ("scipy", "numba", "torch"):
        with contextlib.suppress(ImportError):
            info[module] = __import__(module).__version__
    return info
