"""``cnnkernels-bench`` (or ``python -m bench`` in a checkout): time convolution implementations.

    cnnkernels-bench [--set NAME | --shapes FILE] [--impl NAME | --impl module:Object] [--threads 1,2]
                     [--json FILE] [--markdown FILE] [--html FILE] [--plot FILE.png] [--roofline FILE.png]
    cnnkernels-bench compare BEFORE.json AFTER.json [--threshold 5%] [--fail-on-regression 5%]
    cnnkernels-bench report RUN.json [--html FILE] [--markdown FILE]

A run prints one table per thread count: per problem and implementation, the
forward, backward-data and backward-weights medians (ms), their total with its
bootstrap 95 % interval, the total's GFLOP/s and share of this machine's sgemm
peak (measured in the same run), the ratios to PyTorch and to the NumPy
reference, the peak extra memory of a call, the largest difference from the
reference (a result off by more than --tolerance is flagged WRONG, never
ranked) and the other processes' CPU share while it ran.
"""

from __future__ import annotations

import argparse
import json
import sys

import cnnkernels

from . import compare, core, plots, plugins, report, shapefiles, training
from .shapes import DEFAULT_SETS, SETS, TRAINING


def _parse_threads(text: str) -> list[int]:
    try:
        threads = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads takes numbers like 1,2; received {text!r}") from None
    if not threads or min(threads) < 1:
        raise argparse.ArgumentTypeError(f"--threads takes positive numbers; received {text!r}")
    return threads


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; received {text!r}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="cnnkernels-bench", description=__doc__.split("\n\n")[0],
                                     epilog="Subcommands: compare BEFORE.json AFTER.json; report RUN.json "
                                            "(each with --help).")
    parser.add_argument("--set", action="append", choices=sorted([*SETS, TRAINING]), dest="sets",
                        help=f"shape set (repeatable; default: {', '.join(DEFAULT_SETS)})")
    parser.add_argument("--shapes", action="append", metavar="FILE", default=[],
                        help="problems from a CSV, JSON or DeepBench conv_problems.h file (repeatable)")
    parser.add_argument("--threads", type=_parse_threads, default=[1], help="thread counts, e.g. 1,2 (default 1)")
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME|module:Object",
                        help="implementation (repeatable): a built-in name, all, or module:Object following the "
                             "protocol (see bench/README.md); default: cnnkernels, PyTorch and installed engines")
    parser.add_argument("--list", action="store_true", help="list the implementations available here and exit")
    parser.add_argument("--repeats", type=_positive, default=10, help="interleaved timed rounds per pass (default 10)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of runs after which an implementation leaves the rounds (at >= 3; default 3)")
    parser.add_argument("--tolerance", type=float, default=core.TOLERANCE,
                        help=f"largest difference from the reference, relative to its range (default {core.TOLERANCE})")
    parser.add_argument("--json", metavar="FILE", help="write every measurement, its runs and the machine as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    parser.add_argument("--html", metavar="FILE", help="write the report as HTML (pictures embedded)")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart: GFLOP/s per problem per implementation")
    parser.add_argument("--roofline", metavar="FILE.png", help="roofline: GFLOP/s against arithmetic intensity")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 3 runs: a smoke test in seconds")
    return parser.parse_args(argv)


def format_table(rows, peaks) -> str:
    """One block per (threads, problem); ratios are of total medians over the same passes."""
    lines, seen_threads, seen_problem = [], None, None
    header = (f"{'implementation':<14} {'fwd ms':>9} {'bwd-data':>9} {'bwd-wt':>9} {'total ms':>9} "
              f"{'95% interval':>17} {'GFLOP/s':>8} {'%peak':>6} {'x torch':>8} {'x ref':>7} {'mem MB':>7} "
              f"{'max|diff|':>9} {'others':>6}  algorithm (fwd/bwd-data/bwd-wt)")
    for threads, problem, impl, total, passes, x_torch, x_ref in core.summary_rows(rows):
        if threads != seen_threads:
            lines.append(f"\n== {threads} thread(s); sgemm peak {peaks[threads]:.1f} GFLOP/s ==")
            seen_threads, seen_problem = threads, None
        if problem != seen_problem:
            lines += ["", problem, header]
            seen_problem = problem
        if "median_ms" not in total:
            lines.append(f"{impl:<14} {total['status']}")
            continue
        data = passes.get("backward-data", passes.get("backward"))
        flag = "" if total["status"] == "ok" else f"  WRONG ({total['status'].removeprefix('wrong: ')})"
        lines.append(
            f"{impl:<14} {core.fmt(passes.get('forward'), '9.3f'):>9} {core.fmt(data, '9.3f'):>9} "
            f"{core.fmt(passes.get('backward-weights'), '9.3f'):>9} {total['median_ms']:>9.3f} "
            f"{total['ci_low_ms']:>8.3f}-{total['ci_high_ms']:<8.3f} {core.fmt(total['gflops'], '8.1f'):>8} "
            f"{core.fmt(total['pct_peak'], '6.1f'):>6} {core.fmt(x_torch, '8.2f'):>8} {core.fmt(x_ref, '7.3f'):>7} "
            f"{core.fmt(total['peak_extra_mb'], '7.1f'):>7} {total['max_abs_diff']:>9.1e} "
            f"{core.fmt(total['others_cpu'], '6.2f'):>6}  {total.get('algorithm') or ''}{flag}")
        lines += [f"{'':<14} {note[:160]}" for note in total.get("notes", ())]
    return "\n".join(lines)


def _shape_sets(args):
    if args.quick:
        return [SETS["quick"], TRAINING]
    chosen = [SETS[name] if name != TRAINING else TRAINING for name in args.sets or ()]
    chosen += [shapefiles.load(path) for path in args.shapes]
    return chosen or [SETS[name] if name != TRAINING else TRAINING for name in DEFAULT_SETS]


def run(args) -> int:
    repeats = 3 if args.quick else args.repeats
    try:
        shape_sets = _shape_sets(args)
        chosen = plugins.resolve(args.impls)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(impl.name for impl in chosen))
        return 0
    info = core.machine_info()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    peaks = {n: core.sgemm_gflops(n, repeats=3 if args.quick else 10) for n in args.threads}
    ceilings = plots.ceilings(quick=args.quick)
    if ceilings["fma_gflops_per_core"]:
        print(f"FMA peak {ceilings['fma_gflops_per_core']:.1f} GFLOP/s per core, memory {ceilings['copy_gbs']:.1f} "
              f"GB/s (NumPy copy), measured; SIMD kernels: {cnnkernels.conv2d_plan((1, 8, 8, 8), (8, 8, 3, 3)).isa}")
    rows, training_rows = [], []
    for shape_set in shape_sets:
        if shape_set == TRAINING:
            print(f"\n# set {TRAINING}: {training.DESCRIPTION}", flush=True)
            training_rows = [row for n in args.threads
                             for row in training.measure(n, steps=3 if args.quick else 30, warmup=1 if args.quick else 5)]
            print(training.format_rows(training_rows), flush=True)
            continue
        print(f"\n# set {shape_set.name}: {shape_set.source} ({shape_set.note})", flush=True)
        for threads in args.threads:
            for problem in shape_set.problems:
                for row in core.measure_problem(problem, chosen, threads, repeats, peaks[threads], args.budget,
                                                tolerance=args.tolerance):
                    row["set"] = shape_set.name
                    rows.append(row)
        mine = [r for r in rows if r["set"] == shape_set.name]
        print(format_table(mine, peaks), flush=True)
        for warning in core.rank_warnings(mine):
            print(f"warning: {warning}")
    result = {"machine": info, "sgemm_gflops": peaks, "ceilings": ceilings, "rows": rows, "training": training_rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {args.json}")
    return _write_reports(result, args)


def _write_reports(result, args) -> int:
    for path, draw in ((args.plot, plots.bars), (args.roofline, plots.roofline)):
        if path and result["rows"]:
            draw(result, path)
            print(f"wrote {path}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report.markdown(result) + "\n")
        print(f"wrote {args.markdown}")
    if args.html:
        with open(args.html, "w") as f:
            f.write(report.html(result))
        print(f"wrote {args.html}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "compare":
        return compare.main(argv[1:])
    if argv and argv[0] == "report":
        return report.main(argv[1:])
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
