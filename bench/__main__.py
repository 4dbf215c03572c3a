"""``python -m bench``: time convolution implementations on published shape sets.

Prints one table per thread count: per problem and implementation, the
forward, backward-data and backward-weights medians (ms), their total, the
total's GFLOP/s and its share of this machine's sgemm peak (measured in the
same run), the ratios to PyTorch and to the NumPy reference, the peak extra
memory of a call and the largest difference from the reference.
"""

from __future__ import annotations

import argparse
import json
import sys

import cnnkernels

from . import core, impls, training
from .shapes import DEFAULT_SETS, SETS, TRAINING


def _parse_threads(text: str) -> list[int]:
    try:
        threads = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads takes numbers like 1,2; received {text!r}") from None
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes positive numbers; received {text!r}")
    return threads


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", choices=sorted([*SETS, TRAINING]), dest="sets",
                        help=f"shape set (repeatable; default: {', '.join(DEFAULT_SETS)})")
    parser.add_argument("--threads", type=_parse_threads, default=[1], help="thread counts, e.g. 1,2 (default 1)")
    parser.add_argument("--impl", action="append", dest="impls",
                        help="implementation (repeatable): cython, numba, numpy-ref, torch, torch-nhwc")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per pass after warm-up (default 10)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds one pass may take before it stops early (at >= 3 runs; default 3)")
    parser.add_argument("--json", metavar="FILE", help="write every measurement and the machine facts as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="plot GFLOP/s per problem per implementation")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 3 runs: a smoke test in seconds")
    return parser.parse_args(argv)


def format_table(rows, peaks) -> str:
    """One block per (threads, problem); ratios are of total medians."""
    lines, seen_threads, seen_problem = [], None, None
    header = (f"{'implementation':<12} {'fwd ms':>9} {'bwd-data':>9} {'bwd-wt':>9} {'total ms':>9} "
              f"{'min-max':>15} {'GFLOP/s':>8} {'%peak':>6} {'x torch':>8} {'x ref':>7} {'mem MB':>7} "
              f"{'max|diff|':>9}  algorithm (fwd/bwd-data/bwd-wt)")
    for threads, problem, impl, total, passes, x_torch, x_ref in core.summary_rows(rows):
        if threads != seen_threads:
            lines.append(f"\n== {threads} thread(s); sgemm peak {peaks[threads]:.1f} GFLOP/s ==")
            seen_threads, seen_problem = threads, None
        if problem != seen_problem:
            lines += ["", problem, header]
            seen_problem = problem
        data = passes.get("backward-data", passes.get("backward"))
        lines.append(
            f"{impl:<12} {passes['forward']:>9.3f} {core.fmt(data, '9.3f'):>9} "
            f"{core.fmt(passes.get('backward-weights'), '9.3f'):>9} {total['median_ms']:>9.3f} "
            f"{total['min_ms']:>7.2f}-{total['max_ms']:<7.2f} {core.fmt(total['gflops'], '8.1f'):>8} "
            f"{core.fmt(total['pct_peak'], '6.1f'):>6} {core.fmt(x_torch, '8.2f'):>8} {core.fmt(x_ref, '7.3f'):>7} "
            f"{core.fmt(total['peak_extra_mb'], '7.1f'):>7} {total['max_abs_diff']:>9.1e}  {total.get('algorithm') or ''}")
    return "\n".join(lines)


def plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    totals = [r for r in rows if r["pass"] == "total" and r["gflops"] is not None]
    threads = sorted({r["threads"] for r in totals})
    fig, axes = plt.subplots(len(threads), 1, figsize=(14, 4.5 * len(threads)), squeeze=False)
    for ax, n in zip(axes[:, 0], threads):
        subset = [r for r in totals if r["threads"] == n]
        problems = list(dict.fromkeys(r["name"] for r in subset))
        names = list(dict.fromkeys(r["impl"] for r in subset))
        width = 0.8 / len(names)
        for i, impl in enumerate(names):
            values = [next((r["gflops"] for r in subset if r["name"] == p and r["impl"] == impl), 0) for p in problems]
            ax.bar(np.arange(len(problems)) + i * width, values, width, label=impl)
        ax.set_xticks(np.arange(len(problems)) + 0.4 - width / 2, problems, rotation=30, ha="right")
        ax.set_ylabel("GFLOP/s (fwd + bwd-data + bwd-weights)")
        ax.set_title(f"convolution throughput, float32, {n} thread(s)")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    sets = ["quick", TRAINING] if args.quick else (args.sets or list(DEFAULT_SETS))
    repeats = 3 if args.quick else args.repeats
    if repeats < 1:
        print(f"--repeats must be positive; received {repeats}", file=sys.stderr)
        return 2
    try:
        chosen = impls.available(args.impls)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    info = core.machine_info()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    peaks = {n: core.sgemm_gflops(n, repeats=3 if args.quick else 10) for n in args.threads}
    fma = core.fma_peak_gflops()
    if fma is not None:
        print(f"FMA peak {fma:.1f} GFLOP/s per core (measured; SIMD kernels: {cnnkernels.conv2d_plan((1, 8, 8, 8), (8, 8, 3, 3)).isa})")
    rows, training_rows = [], []
    for name in sets:
        if name == TRAINING:
            print(f"\n# set {TRAINING}: {training.DESCRIPTION}", flush=True)
            training_rows = [row for n in args.threads
                             for row in training.measure(n, steps=3 if args.quick else 30, warmup=1 if args.quick else 5)]
            print(training.format_rows(training_rows), flush=True)
            continue
        shape_set = SETS[name]
        print(f"\n# set {name}: {shape_set.source} ({shape_set.note})", flush=True)
        for threads in args.threads:
            for problem in shape_set.problems:
                for row in core.measure_problem(problem, chosen, threads, repeats, peaks[threads], args.budget):
                    row["set"] = name
                    rows.append(row)
        print(format_table([r for r in rows if r["set"] == name], peaks), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "sgemm_gflops": peaks, "rows": rows, "training": training_rows}, f, indent=1)
        print(f"\nwrote {args.json}")
    if args.plot and rows:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
