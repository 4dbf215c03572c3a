"""Markdown tables from a `python -m bench --json FILE` run: ``python -m bench.report FILE``."""

from __future__ import annotations

import json
import sys

from .core import fmt, summary_rows


def markdown(report) -> str:
    machine = report["machine"]
    peaks = report["sgemm_gflops"]
    lines = [f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores): python {machine['python']}, "
             f"numpy {machine['numpy']}, scipy {machine.get('scipy', '-')}, numba {machine.get('numba', '-')}, "
             f"torch {machine.get('torch', 'not installed')}, cnnkernels {machine['cnnkernels']}. "
             "sgemm peak (NumPy's OpenBLAS, same run): "
             + ", ".join(f"{float(v):.0f} GFLOP/s at {k} thread(s)" for k, v in peaks.items()) + "."]
    seen_threads = None
    for threads, problem, impl, total, passes, x_torch, x_ref in summary_rows(report["rows"]):
        if threads != seen_threads:
            lines += ["", f"### {threads} thread(s)", "",
                      "| problem | impl | fwd ms | bwd-data ms | bwd-wt ms | total ms | GFLOP/s | % peak | x torch "
                      "| x ref | mem MB | max abs diff |",
                      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
            seen_threads = threads
        data = passes.get("backward-data", passes.get("backward"))
        weights = passes.get("backward-weights")
        lines.append(
            f"| {problem} | {impl} | {passes['forward']:.3f} | {data:.3f} | "
            f"{fmt(weights, '.3f')} | **{total['median_ms']:.3f}** | {fmt(total['gflops'], '.1f')} | "
            f"{fmt(total['pct_peak'], '.0f')} | {fmt(x_torch, '.2f')} | {fmt(x_ref, '.2f')} | "
            f"{(total['peak_extra_mb'] or 0):.1f} | {total['max_abs_diff']:.1e} |")
    if report.get("training"):
        lines += ["", "### Training step of the tutorial model (batch 32, 20x20x3, 16 classes, RMSprop)", "",
                  "| impl | threads | images/s | step ms (median) | min-max ms | speed vs torch |",
                  "|---|--:|--:|--:|--:|--:|"]
        for row in report["training"]:
            torch_row = next((r for r in report["training"] if r["impl"] == "torch" and r["threads"] == row["threads"]),
                             None)
            speed = f"{torch_row['median_step_ms'] / row['median_step_ms']:.2f}" if torch_row else "-"
            lines.append(f"| {row['impl']} | {row['threads']} | {row['images_per_s']:.0f} | {row['median_step_ms']:.2f} "
                         f"| {row['min_step_ms']:.2f}-{row['max_step_ms']:.2f} | {speed} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bench.report BENCH.json", file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(markdown(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
