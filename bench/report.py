"""Reports of a run's JSON: ``cnnkernels-bench report RUN.json [--markdown FILE] [--html FILE]``.

Markdown (printed when no file is named) for READMEs and issues; HTML as one
self-contained page with the bar chart and the roofline embedded (when
matplotlib is installed).
"""

from __future__ import annotations

import argparse
import base64
import html as html_escape
import io
import json
import sys

from .core import fmt, rank_warnings, summary_rows

HEADER = ("problem", "impl", "fwd ms", "bwd-data ms", "bwd-wt ms", "total ms", "95% interval", "GFLOP/s", "% peak",
          "x torch", "x ref", "mem MB", "max abs diff", "others' CPU", "status")


def _machine_line(result) -> str:
    machine, peaks = result["machine"], result["sgemm_gflops"]
    line = (f"Run {machine['date']} on {machine['cpu']} ({machine['cores']} cores): python {machine['python']}, "
            f"numpy {machine['numpy']}, scipy {machine.get('scipy', '-')}, numba {machine.get('numba', '-')}, "
            f"torch {machine.get('torch', 'not installed')}, cnnkernels {machine['cnnkernels']}. "
            "sgemm peak (NumPy's BLAS, same run): "
            + ", ".join(f"{float(v):.0f} GFLOP/s at {k} thread(s)" for k, v in peaks.items()) + ".")
    ceilings = result.get("ceilings") or {}
    if ceilings.get("fma_gflops_per_core"):
        line += (f" FMA peak {ceilings['fma_gflops_per_core']:.0f} GFLOP/s per core, copy bandwidth "
                 f"{ceilings['copy_gbs']:.0f} GB/s.")
    return line


def table_rows(result):
    """(threads, cells) per implementation and problem, cells in the order of :data:`HEADER`."""
    for threads, problem, impl, total, passes, x_torch, x_ref in summary_rows(result["rows"]):
        if "median_ms" not in total:
            yield threads, (problem, impl, *["-"] * (len(HEADER) - 3), total["status"])
            continue
        data = passes.get("backward-data", passes.get("backward"))
        yield threads, (
            problem, impl, fmt(passes.get("forward"), ".3f"), fmt(data, ".3f"), fmt(passes.get("backward-weights"), ".3f"),
            f"{total['median_ms']:.3f}", f"{total['ci_low_ms']:.3f}-{total['ci_high_ms']:.3f}",
            fmt(total["gflops"], ".1f"), fmt(total["pct_peak"], ".0f"), fmt(x_torch, ".2f"), fmt(x_ref, ".2f"),
            f"{(total['peak_extra_mb'] or 0):.1f}", f"{total['max_abs_diff']:.1e}", fmt(total.get("others_cpu"), ".2f"),
            "ok" if total["status"] == "ok" else f"**WRONG** ({total['status'].removeprefix('wrong: ')})")


def _training_rows(result):
    for row in result.get("training") or []:
        torch_row = next((r for r in result["training"] if r["impl"] == "torch" and r["threads"] == row["threads"]),
                         None)
        speed = f"{torch_row['median_step_ms'] / row['median_step_ms']:.2f}" if torch_row else "-"
        yield (row["impl"], str(row["threads"]), f"{row['images_per_s']:.0f}", f"{row['median_step_ms']:.2f}",
               f"{row['min_step_ms']:.2f}-{row['max_step_ms']:.2f}", speed)


TRAINING_TITLE = "Training step of the tutorial model (batch 32, 20x20x3, 16 classes, RMSprop)"
TRAINING_HEADER = ("impl", "threads", "images/s", "step ms (median)", "min-max ms", "speed vs torch")


def markdown(result) -> str:
    lines, seen = [_machine_line(result)], None
    for threads, cells in table_rows(result):
        if threads != seen:
            lines += ["", f"### {threads} thread(s)", "", "| " + " | ".join(HEADER) + " |",
                      "|---|---|" + "--:|" * (len(HEADER) - 3) + "---|"]
            seen = threads
        lines.append("| " + " | ".join(cells) + " |")
    warnings = rank_warnings(result["rows"])
    if warnings:
        lines += ["", "Cannot be ranked (overlapping intervals):", ""] + [f"- {w}" for w in warnings]
    if result.get("training"):
        lines += ["", f"### {TRAINING_TITLE}", "", "| " + " | ".join(TRAINING_HEADER) + " |",
                  "|---|--:|--:|--:|--:|--:|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in _training_rows(result)]
    return "\n".join(lines)


def _picture(draw, result) -> str:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return ""
    buffer = io.BytesIO()
    draw(result, buffer)
    return f'<img alt="{draw.__name__}" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _html_table(header, rows) -> str:
    def cell(tag, text):
        text = html_escape.escape(str(text)).replace("**WRONG**", "<b class=wrong>WRONG</b>")
        return f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", h) for h in header)
    body = "\n".join("<tr>" + "".join(cell("td", c) for c in cells) + "</tr>" for cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def html(result) -> str:
    from . import plots

    parts = [f"<p>{html_escape.escape(_machine_line(result))}</p>"]
    by_threads = {}
    for threads, cells in table_rows(result):
        by_threads.setdefault(threads, []).append(cells)
    for threads, rows in by_threads.items():
        parts += [f"<h2>{threads} thread(s)</h2>", _html_table(HEADER, rows)]
    warnings = rank_warnings(result["rows"])
    if warnings:
        parts.append("<h3>Cannot be ranked (overlapping intervals)</h3><ul>"
                     + "".join(f"<li>{html_escape.escape(w)}</li>" for w in warnings) + "</ul>")
    if result.get("training"):
        parts += [f"<h2>{TRAINING_TITLE}</h2>", _html_table(TRAINING_HEADER, list(_training_rows(result)))]
    if result["rows"]:
        parts += ["<h2>Pictures</h2>", _picture(plots.bars, result), _picture(plots.roofline, result)]
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:13px} "
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} td:nth-child(-n+2){text-align:left} "
             ".wrong{color:#b00} img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>cnnkernels-bench report</title>"
            f"<style>{style}</style></head><body>\n<h1>Convolution benchmark</h1>\n" + "\n".join(parts)
            + "\n</body></html>\n")


def load(path: str) -> dict:
    """A run's JSON, or a ValueError saying why it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read benchmark run {path!r}: {exc}") from None
    if not isinstance(result, dict) or not {"machine", "rows", "sgemm_gflops"} <= set(result):
        raise ValueError(f"{path!r} is not a cnnkernels-bench --json file (no machine/rows/sgemm_gflops)")
    for row in result["rows"]:  # runs written before intervals and statuses existed
        row.setdefault("status", "ok")
        row.setdefault("ci_low_ms", row.get("min_ms"))
        row.setdefault("ci_high_ms", row.get("max_ms"))
        if row["pass"] == "total" and "passes" not in row:
            row["passes"] = [r["pass"] for r in result["rows"] if r["pass"] != "total" and
                             (r["problem"], r["impl"], r["threads"]) == (row["problem"], row["impl"], row["threads"])]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cnnkernels-bench report", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a file written by --json")
    parser.add_argument("--markdown", metavar="FILE", help="write Markdown here (default: print it)")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML page here")
    args = parser.parse_args(argv)
    try:
        result = load(args.run)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(html(result))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(markdown(result) + "\n")
    if not (args.html or args.markdown):
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
