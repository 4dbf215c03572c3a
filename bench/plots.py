"""Pictures of a run: GFLOP/s per problem (bars) and the roofline (GFLOP/s against arithmetic intensity).

The roofline's ceilings are measured in the same run: one core's FMA
throughput (independent vector FMA chains in the compiled backend) times the
thread count (or NumPy's sgemm rate where that is higher: the probe is AVX2),
and memory bandwidth as a large NumPy copy (bytes read + written per second). A point's intensity is the forward pass's multiply-adds
over the least traffic of a pass (x and w read once, y written once, float32).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from .core import fma_peak_gflops


def copy_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """Memory bandwidth as NumPy sees it: a ``megabytes`` copy, bytes read + written per second (median)."""
    source = np.ones(megabytes * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - start)
    return 2 * source.nbytes / statistics.median(times[1:]) / 1e9


def ceilings(quick: bool = False) -> dict:
    return {"fma_gflops_per_core": fma_peak_gflops(), "copy_gbs": copy_bandwidth_gbs(32 if quick else 256)}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("pictures need matplotlib: pip install \"cnnkernels[bench]\"") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _totals(result):
    return [r for r in result["rows"] if r["pass"] == "total" and r.get("gflops") and r["status"] == "ok"]


def bars(result, path) -> None:
    plt = _pyplot()
    totals = _totals(result)
    threads = sorted({r["threads"] for r in totals}) or [1]
    fig, axes = plt.subplots(len(threads), 1, figsize=(14, 4.5 * len(threads)), squeeze=False)
    for ax, n in zip(axes[:, 0], threads):
        subset = [r for r in totals if r["threads"] == n]
        problems = list(dict.fromkeys(r["name"] for r in subset))
        names = list(dict.fromkeys(r["impl"] for r in subset)) or ["-"]
        width = 0.8 / len(names)
        for i, impl in enumerate(names):
            found = [next((r for r in subset if r["name"] == p and r["impl"] == impl), None) for p in problems]
            values = [r["gflops"] if r else 0 for r in found]
            # the 95 % interval of the total time, as GFLOP/s below and above the median's
            errors = [[r["gflops"] * (1 - r["median_ms"] / r["ci_high_ms"]) if r else 0 for r in found],
                      [r["gflops"] * (r["median_ms"] / r["ci_low_ms"] - 1) if r else 0 for r in found]]
            ax.bar(np.arange(len(problems)) + i * width, values, width, yerr=np.abs(errors), capsize=2, label=impl)
        ax.set_xticks(np.arange(len(problems)) + 0.4 - width / 2, problems, rotation=30, ha="right")
        ax.set_ylabel("GFLOP/s over the passes timed")
        ax.set_title(f"convolution throughput, float32, {n} thread(s) (bars: median; whiskers: 95% interval)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def roofline(result, path) -> None:
    plt = _pyplot()
    totals = [r for r in _totals(result) if r.get("intensity")]
    threads = sorted({r["threads"] for r in totals}) or [1]
    limits = result.get("ceilings") or {}
    fig, axes = plt.subplots(1, len(threads), figsize=(7.5 * len(threads), 6.5), squeeze=False)
    markers = "os^Dv<>Ph*X"
    for ax, n in zip(axes[0], threads):
        subset = [r for r in totals if r["threads"] == n]
        intensities = [r["intensity"] for r in subset] or [1.0]
        sgemm = (result.get("sgemm_gflops") or {}).get(str(n)) or (result.get("sgemm_gflops") or {}).get(n)
        sgemm = float(sgemm) if sgemm else 0.0
        # the compiled FMA probe is AVX2; on an AVX-512 machine the BLAS sgemm runs above it: the roof is the higher
        compute = max((limits.get("fma_gflops_per_core") or 0) * n, sgemm)
        bandwidth = limits.get("copy_gbs") or 0
        ridge = compute / bandwidth if compute and bandwidth else min(intensities)
        x = np.geomspace(min(min(intensities), ridge) / 4, max(intensities) * 3, 200)
        if compute and bandwidth:
            ax.plot(x, np.minimum(compute, bandwidth * x), "k-", lw=2,
                    label=f"roof: {compute:.0f} GFLOP/s (FMA probe x {n} or sgemm), {bandwidth:.0f} GB/s copy")
            ax.axvline(ridge, color="k", ls=":", lw=0.8)
        if sgemm:
            ax.axhline(sgemm, color="grey", ls="--", lw=1, label=f"sgemm (NumPy BLAS) {sgemm:.0f} GFLOP/s")
        for i, impl in enumerate(dict.fromkeys(r["impl"] for r in subset)):
            points = [r for r in subset if r["impl"] == impl]
            ax.scatter([r["intensity"] for r in points], [r["gflops"] for r in points], marker=markers[i % len(markers)],
                       s=36, label=impl, alpha=0.85)
        for name in dict.fromkeys(r["name"] for r in subset):  # each problem named once, above its best point
            best = max((r for r in subset if r["name"] == name), key=lambda r: r["gflops"])
            ax.annotate(name, (best["intensity"], best["gflops"]), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=7, color="dimgrey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte of x, w and y)")
        ax.set_ylabel("GFLOP/s (direct-convolution FLOPs / median time)")
        ax.set_title(f"roofline, float32, {n} thread(s); Winograd and FFT do fewer FLOPs and may pass the roof",
                     fontsize=10)
        ax.grid(which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
