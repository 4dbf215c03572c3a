"""Timing, memory and accuracy measurement shared by the command line and the pytest-benchmark suite."""

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
from .stats import LoadMeter, overlap, total_interval

DTYPE = np.float32


def inputs(problem, seed=0):
    """Random float32 inputs of a problem: (x, w, dy) for conv, (x, dy) for pooling."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((problem.N, problem.C, problem.H, problem.W), dtype=DTYPE)
    if isinstance(problem, Conv):
        w = rng.standard_normal(problem.weight_shape, dtype=DTYPE)
        w /= np.sqrt(problem.C // problem.groups * problem.R * problem.S)
        dy = rng.standard_normal((problem.N, problem.K, *problem.out_hw()), dtype=DTYPE)
        return (x, w, dy), problem.out_hw()
    pool = getattr(cnnkernels, f"{problem.kind}_pool2d")
    y = pool(x[:1], problem.kernel_size, problem.stride, problem.padding)
    dy = rng.standard_normal((problem.N, *y.shape[1:]), dtype=DTYPE)
    return (x, dy), y.shape[2:]


SETTLE_S = 0.2
# Between two calls of an interleaved round at 2+ threads: the previous library's OpenMP or Eigen
# workers stop spinning within milliseconds (OpenBLAS's, see __init__, at once).
SETTLE_BETWEEN_S = 0.01


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
    """Every implementation at ``n`` threads for the block; yields {name: reason} of those that cannot."""
    before = cnnkernels.get_num_threads()
    refused = {}
    for impl in impls:
        try:
            getattr(impl, "set_threads", lambda n: None)(n)
        except NotImplementedError as exc:
            refused[impl.name] = str(exc) or f"cannot run at {n} threads"
    try:
        yield refused
    finally:
        cnnkernels.set_num_threads(before)


# A result differing from the reference by more than this share of the reference's largest value is wrong:
# float32 sums in another order stay near 1e-6, Winograd F(4x4, 3x3) near 1e-4 (see the README's error bounds).
TOLERANCE = 1e-3


def _prepare(impl, problem, arrays, is_conv):
    """The implementation's calls for this problem, or the reason it has none."""
    method = getattr(impl, "conv" if is_conv else "pool", None)
    if method is None:
        return f"unsupported: no {'conv' if is_conv else 'pool'}()"
    try:
        calls = method(problem, *arrays) or {}
    except NotImplementedError as exc:
        return f"unsupported: {exc}"
    except Exception as exc:  # a user's kernel failing must not end the run: say how it failed
        return f"error: {type(exc).__name__}: {exc}"
    return calls


def _first_call(call, expected):
    """(max |difference|, relative difference) of one call's result against the reference, or the error text."""
    try:
        got = np.asarray(call(), dtype=np.float64)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
    if got.shape != expected.shape:
        return f"error: returned shape {got.shape}, the reference's is {expected.shape}"
    if not got.size:
        return 0.0, 0.0
    diff = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected))) or 1.0
    return (diff if np.isfinite(diff) else float("inf")), diff / scale if np.isfinite(diff) else float("inf")


def balanced_orders(n: int) -> list[list[int]]:
    """A Williams design: orders of ``range(n)`` in which each index directly follows every other index equally
    often (n orders for even n, 2n for odd n). Row r is the first row plus r; the first row is 0, 1, n−1, 2, n−2, …"""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    orders = [[(i + r) % n for i in first] for r in range(n)]
    return orders if n % 2 == 0 else orders + [order[::-1] for order in orders]


def interleaved(calls: dict, repeats: int, budget_s: float | None, settle_s: float = 0.0) -> dict:
    """Seconds of ``repeats`` rounds, each timing every call once in turn, so the machine's drift falls on all
    alike. The rounds' orders follow :func:`balanced_orders`, so every call follows every other one equally often:
    the call after the heaviest one finds its data evicted (tutorial conv1 forward after PyTorch's backward: 0.48
    against 0.37 ms), and a fixed cyclic order, rotated or not, would put that on one library every round. A call
    whose runs passed ``budget_s`` leaves the rounds after 3 runs (a slow reference holds nobody)."""
    times = {name: [] for name in calls}
    active = list(calls)
    for round_index in range(repeats if active else 0):
        order = balanced_orders(len(active))
        for index in order[round_index % len(order)]:
            name = active[index]
            if settle_s:
                time.sleep(settle_s)
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
        active = [n for n in active if budget_s is None or len(times[n]) < 3 or sum(times[n]) <= budget_s]
        if not active:
            break
    return times


def _row(problem, impl, threads, pass_name, **fields):
    return {"problem": problem.label(), "name": problem.name, "threads": threads, "impl": impl.name,
            "pass": pass_name, "status": "ok", **fields}


def measure_problem(problem, impls, threads: int, repeats: int, peak: float, budget_s: float,
                    settle_s: float | None = None, tolerance: float = TOLERANCE):
    """Rows of measurements of one problem for every implementation at ``threads`` threads: per pass, the
    implementations run interleaved; then a total per implementation over the passes it has. A call whose result
    is off by more than ``tolerance`` is timed but flagged ``wrong`` (never ranked)."""
    arrays, out_hw = inputs(problem)
    is_conv = isinstance(problem, Conv)
    passes = CONV_PASSES if is_conv else POOL_PASSES
    reference = Cnnkernels("numpy")
    ref_calls = reference.conv(problem, *arrays) if is_conv else reference.pool(problem, *arrays)
    expected = {name: np.asarray(ref_calls[name](), dtype=np.float64) for name in passes}
    flops = problem.flops(out_hw) if is_conv else None
    intensity = flops / problem.bytes_moved() if is_conv else None
    settle_s = (SETTLE_BETWEEN_S if threads > 1 else 0.0) if settle_s is None else settle_s
    rows, prepared = [], {}
    with thread_count(impls, threads) as refused:
        for impl in impls:
            prepared[impl.name] = (f"unsupported: {refused[impl.name]}" if impl.name in refused
                                   else _prepare(impl, problem, arrays, is_conv))
        for pass_name in passes:
            calls, checks = {}, {}
            for impl in impls:
                call = prepared[impl.name].get(pass_name) if isinstance(prepared[impl.name], dict) else None
                if call is not None:
                    checks[impl.name] = _first_call(call, expected[pass_name])
                    if isinstance(checks[impl.name], str):
                        rows.append(_row(problem, impl, threads, pass_name, status=checks[impl.name]))
                    else:
                        calls[impl.name] = call
            time.sleep(SETTLE_S)
            for call in calls.values():  # warm-up: plans, workspaces, JIT compilation, oneDNN primitives
                call()
            with LoadMeter() as load:
                times = interleaved(calls, repeats, budget_s, settle_s)
            for impl in impls:
                if impl.name not in calls:
                    continue
                seconds = times[impl.name]
                median = statistics.median(seconds)
                low, high = total_interval([seconds])
                diff, relative = checks[impl.name]
                rows.append(_row(
                    problem, impl, threads, pass_name,
                    status="ok" if relative <= tolerance else f"wrong: off by {relative:.1e} of the reference's range",
                    algorithm=_algorithm(impl, problem, arrays, pass_name) if is_conv else None,
                    median_ms=1e3 * median, ci_low_ms=1e3 * low, ci_high_ms=1e3 * high,
                    min_ms=1e3 * min(seconds), max_ms=1e3 * max(seconds), runs=len(seconds),
                    times_ms=[round(1e3 * t, 5) for t in seconds],
                    gflops=flops / median / 1e9 if flops else None,
                    pct_peak=100 * flops / median / 1e9 / peak if flops else None, intensity=intensity,
                    peak_extra_mb=peak_extra_memory_mb(calls[impl.name]), max_abs_diff=diff, rel_diff=relative,
                    load1=load.load1, others_cpu=load.others_cpu, steal_cpu=load.steal_cpu))
    for impl in impls:
        mine = [r for r in rows if r["impl"] == impl.name]
        total = _total(problem, impl, threads, [r for r in mine if "median_ms" in r], prepared[impl.name], flops, peak,
                       intensity)
        total["notes"] = [f"{r['pass']}: {r['status']}" for r in mine if "median_ms" not in r]
        rows.append(total)
    return rows


def _algorithm(impl, problem, arrays, pass_name):
    method = getattr(impl, "algorithm", None)
    try:
        return method(problem, arrays[0], arrays[1], pass_name) if method else None
    except Exception:  # a word for the table, never worth a failed run
        return None


def _total(problem, impl, threads, timed, prepared, flops, peak, intensity):
    if not timed:
        reason = prepared if isinstance(prepared, str) else "unsupported: no pass ran"
        return _row(problem, impl, threads, "total", status=reason, passes=[])
    median = sum(r["median_ms"] for r in timed) / 1e3
    low, high = total_interval([r["times_ms"] for r in timed])
    wrong = [r["status"] for r in timed if r["status"] != "ok"]
    algorithms = [r["algorithm"] for r in timed]
    return _row(
        problem, impl, threads, "total", status=wrong[0] if wrong else "ok", passes=[r["pass"] for r in timed],
        algorithm="/".join(a or "-" for a in algorithms) if any(algorithms) else None,
        median_ms=1e3 * median, ci_low_ms=low, ci_high_ms=high,
        min_ms=sum(r["min_ms"] for r in timed), max_ms=sum(r["max_ms"] for r in timed),
        runs=min(r["runs"] for r in timed),
        gflops=len(timed) * flops / median / 1e9 if flops else None,
        pct_peak=100 * len(timed) * flops / median / 1e9 / peak if flops else None, intensity=intensity,
        peak_extra_mb=max((r["peak_extra_mb"] or 0.0) for r in timed),
        max_abs_diff=max(r["max_abs_diff"] for r in timed), rel_diff=max(r["rel_diff"] for r in timed),
        load1=timed[-1]["load1"], others_cpu=max((r["others_cpu"] or 0.0) for r in timed),
        steal_cpu=max((r["steal_cpu"] or 0.0) for r in timed))


def fmt(value, spec) -> str:
    """``value`` formatted by ``spec``, or "-" when there is none (a pass pooling lacks, no PyTorch)."""
    return "-" if value is None else format(value, spec)


def _same_passes_ms(group, impl, passes):
    """Sum of ``impl``'s medians over ``passes``, if it timed all of them correctly."""
    medians = {r["pass"]: r["median_ms"] for r in group if r["impl"] == impl and "median_ms" in r and r["status"] == "ok"}
    return sum(medians[p] for p in passes) if all(p in medians for p in passes) else None


def summary_rows(rows):
    """Each implementation's totals per (threads, problem), in run order: yields (threads, problem, impl, total row,
    {pass: median ms}, total / torch's, total / the reference's), the ratios over the same passes."""
    totals = [r for r in rows if r["pass"] == "total"]
    for threads in sorted({r["threads"] for r in totals}):
        for problem in dict.fromkeys(r["problem"] for r in totals if r["threads"] == threads):
            group = [r for r in rows if r["threads"] == threads and r["problem"] == problem]
            for total in (r for r in group if r["pass"] == "total"):
                passes = {r["pass"]: r["median_ms"] for r in group
                          if r["impl"] == total["impl"] and "median_ms" in r and r["pass"] != "total"}
                ratios = []
                for peer in ("torch", "numpy-ref"):
                    peer_ms = _same_passes_ms(group, peer, total["passes"]) if total.get("median_ms") else None
                    ratios.append(total["median_ms"] / peer_ms if peer_ms else None)
                yield (threads, problem, total["impl"], total, passes, *ratios)


def rank_warnings(rows) -> list[str]:
    """Where the two fastest correct implementations of a problem (same passes) cannot be told apart: their 95 %
    intervals overlap."""
    warnings = []
    totals = [r for r in rows if r["pass"] == "total" and r["status"] == "ok" and r.get("median_ms")]
    for key in dict.fromkeys((r["threads"], r["problem"], tuple(r["passes"])) for r in totals):
        group = sorted((r for r in totals if (r["threads"], r["problem"], tuple(r["passes"])) == key),
                       key=lambda r: r["median_ms"])
        if len(group) >= 2:
            first, second = group[:2]
            if overlap((first["ci_low_ms"], first["ci_high_ms"]), (second["ci_low_ms"], second["ci_high_ms"])):
                warnings.append(f"{key[1]} at {key[0]} thread(s): {first['impl']} and {second['impl']} cannot be "
                                f"ranked: their 95% intervals overlap ({first['ci_low_ms']:.3f}-{first['ci_high_ms']:.3f}"
                                f" vs {second['ci_low_ms']:.3f}-{second['ci_high_ms']:.3f} ms); run more --repeats")
    return warnings


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
