"""``cnnkernels-bench compare BEFORE.json AFTER.json``: did a change make things faster, beyond noise?

For every (problem, implementation, threads, pass) in both runs, the ratio of
the medians (after / before) with its bootstrap 95 % interval (the runs of
each side resampled). A row is a significant regression when the whole
interval lies above 1 + threshold, a significant improvement when it lies
below 1 / (1 + threshold); in between, nothing can be said. The threshold
(default 10 %, asv's factor) is the noise floor: two runs of the same code
here, even with a control, moved single rows by up to ~15 %, and with many
rows a bare 95 % interval excludes 1 for some of them by chance. With
``--fail-on-regression X`` the exit code is 1 when any significant
regression is larger than X (as ``pytest-benchmark compare`` and ``asv
compare`` do).

A shared machine changes speed between two runs (measured here: every
implementation of a layer 1.2-1.8x slower in the second of two runs of the
same code), and a run's own intervals cannot see that. When all the
implementations of a problem moved together the comparison says so; with
``--control IMPL`` (one you did not change, present in both runs) each ratio
is divided by the control's ratio over the same passes, which were timed in
the same interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from .report import load
from .stats import ratio_interval


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = -1.0
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"expected a share like 5% or 0.05; received {text!r}")
    return value


def _timed(result) -> dict:
    """(problem, impl, threads, pass) -> list of per-pass run lists (one for a pass, several for a total)."""
    rows = [r for r in result["rows"] if r.get("times_ms") and r.get("status", "ok") == "ok"]
    found = {(r["problem"], r["impl"], r["threads"], r["pass"]): [r["times_ms"]] for r in rows}
    for total in (r for r in result["rows"] if r["pass"] == "total" and r.get("status") == "ok"):
        parts = [found.get((total["problem"], total["impl"], total["threads"], p)) for p in total.get("passes", ())]
        if parts and all(parts):
            found[(total["problem"], total["impl"], total["threads"], "total")] = [p[0] for p in parts]
    return found


def _control_parts(timed, key, control, passes):
    """The control's run lists for the passes of ``key`` (a pass, or the passes of a total)."""
    problem, _, threads, pass_name = key
    parts = [timed.get((problem, control, threads, p)) for p in (passes if pass_name == "total" else [pass_name])]
    return [p[0] for p in parts] if parts and all(parts) else None


def compare(before: dict, after: dict, threshold: float, control: str | None = None):
    """Rows (key, before ms, after ms, ratio, (low, high), verdict), verdict "slower", "faster" or ""; with a
    ``control``, ratios are relative to the control's (rows the control lacks are left out)."""
    old, new = _timed(before), _timed(after)
    passes = {(r["problem"], r["impl"], r["threads"]): r.get("passes", ()) for r in after["rows"] if r["pass"] == "total"}
    for key in (k for k in new if k in old and k[1] != control):
        extra = ()
        ratio = 1.0
        if control:
            these = passes.get(key[:3], ())
            extra = (_control_parts(old, key, control, these), _control_parts(new, key, control, these))
            if None in extra:
                continue
            ratio = sum(map(statistics.median, extra[0])) / sum(map(statistics.median, extra[1]))
        low, high = ratio_interval(old[key], new[key], *extra)
        before_ms = sum(statistics.median(times) for times in old[key])
        after_ms = sum(statistics.median(times) for times in new[key])
        verdict = "slower" if low > 1 + threshold else "faster" if high < 1 / (1 + threshold) else ""
        yield key, before_ms, after_ms, after_ms / before_ms * ratio, (low, high), verdict


def moved_together(rows) -> list[str]:
    """(problem, threads) whose implementations (two or more) all moved significantly the same way."""
    groups = {}
    for (problem, impl, threads, pass_name), *_, verdict in rows:
        groups.setdefault((problem, threads, pass_name), []).append(verdict)
    return [f"{problem} at {threads} thread(s)" for (problem, threads, _), verdicts in groups.items()
            if len(verdicts) >= 2 and len(set(verdicts)) == 1 and verdicts[0]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cnnkernels-bench compare", description=__doc__.splitlines()[0])
    parser.add_argument("before", help="a run written by --json")
    parser.add_argument("after", help="a later run written by --json")
    parser.add_argument("--threshold", type=_percent, default=0.10,
                        help="the noise floor: a change is significant when its 95%% interval clears it (default "
                             "10%%, asv's factor 1.1)")
    parser.add_argument("--fail-on-regression", type=_percent, metavar="X", default=None,
                        help="exit 1 if any significant regression is larger than X, e.g. 5%%")
    parser.add_argument("--all", action="store_true", help="print every pass, not only the totals")
    parser.add_argument("--control", metavar="IMPL",
                        help="an implementation left unchanged between the runs: ratios are divided by its ratio")
    args = parser.parse_args(argv)
    try:
        before, after = load(args.before), load(args.after)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.control and not all(any(r["impl"] == args.control for r in run["rows"]) for run in (before, after)):
        print(f"--control {args.control}: not in both runs", file=sys.stderr)
        return 2
    threshold = args.threshold
    rows = [r for r in compare(before, after, threshold, args.control) if args.all or r[0][3] == "total"]
    if not rows:
        print("the two runs have no (problem, implementation, threads, pass) in common", file=sys.stderr)
        return 2
    for side, result in (("before", before), ("after", after)):
        machine = result["machine"]
        print(f"{side:<6}: {machine['date']} {machine['cpu']} cnnkernels {machine['cnnkernels']}")
    if before["machine"].get("cpu") != after["machine"].get("cpu"):
        print("warning: the runs are from different CPUs; ratios compare machines, not code")
    if args.control:
        print(f"ratios relative to {args.control}'s, timed in the same rounds")
    print(f"\n{'problem':<44} {'impl':<13} {'thr':>3} {'pass':<16} {'before ms':>10} {'after ms':>10} "
          f"{'ratio':>6} {'95% interval':>14}")
    failed = []
    for (problem, impl, threads, pass_name), old_ms, new_ms, ratio, (low, high), verdict in rows:
        mark = {"slower": "  SLOWER", "faster": "  faster"}.get(verdict, "")
        print(f"{problem:<44} {impl:<13} {threads:>3} {pass_name:<16} {old_ms:>10.3f} {new_ms:>10.3f} {ratio:>6.2f} "
              f"{low:>6.2f}-{high:<6.2f}{mark}")
        if verdict == "slower" and args.fail_on_regression is not None and low > 1 + args.fail_on_regression:
            failed.append(f"{problem} {impl} {threads}t {pass_name}")
    slower = sum(r[5] == "slower" for r in rows)
    faster = sum(r[5] == "faster" for r in rows)
    together = moved_together(rows) if not args.control else []
    if together:
        print(f"\nwarning: every implementation moved the same way on {len(together)} problem(s) ("
              + "; ".join(together[:4]) + ("; ..." if len(together) > 4 else "") + "): the machine changed between "
              "the runs more than the code did; compare with --control IMPL, an implementation you did not change")
    print(f"\n{len(rows)} rows: {slower} significantly slower, {faster} significantly faster, "
          f"{len(rows) - slower - faster} within noise or below {100 * threshold:.0f}%")
    if failed:
        print(f"FAILED: {len(failed)} significant regression(s) beyond {100 * args.fail_on_regression:.0f}%: "
              + "; ".join(failed), file=sys.stderr)
        return 1
    return 0
