"""Ours and PyTorch at 1 and 2 threads, on an idle machine and beside CPU-bound processes.

The threads issue's acceptance measurement. For the tutorial model's two conv layers
(forward + backward) and its training step, cnnkernels (cython backend) and PyTorch run at
1 and 2 threads, interleaved round after round in one process; then ``--busy`` CPU-bound
processes of our own are started and the same rounds run again; then they are stopped.
Printed per row: the medians idle and busy, the busy slowdown (busy ÷ idle) and whether
2 threads beat 1 under load.

    python -m bench.busy [--busy 2] [--rounds 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys

import numpy as np

import cnnkernels

from .shapes import SETS
from .versus import _interleaved

THREADS = (1, 2)


def _spin(stop) -> None:  # a CPU-bound neighbour: pure Python arithmetic until told to stop
    value = 0
    while not stop.is_set():
        for i in range(100_000):
            value ^= i


class Neighbours:
    """``count`` CPU-bound processes for the duration of a ``with`` block."""

    def __init__(self, count: int):
        self.count = count
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.processes = [context.Process(target=_spin, args=(self.stop,), daemon=True) for _ in range(count)]

    def __enter__(self):
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()


def _calls():
    """name -> callable, for ours and torch at each thread count."""
    import torch

    from . import training

    rng = np.random.default_rng(0)
    calls = {}
    for problem in [p for p in SETS["speed"].problems if p.name.startswith("tut-conv")]:
        x = rng.standard_normal((problem.N, problem.C, problem.H, problem.W)).astype(np.float32)
        w = rng.standard_normal((problem.K, problem.C, problem.R, problem.S)).astype(np.float32) / problem.C
        geometry = dict(stride=problem.stride, padding=problem.padding)
        dy = rng.standard_normal(cnnkernels.conv2d(x, w, **geometry).shape).astype(np.float32)
        tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
        tdy = torch.from_numpy(dy)
        for n in THREADS:
            def ours(n=n, x=x, w=w, dy=dy, geometry=geometry):
                cnnkernels.conv2d(x, w, threads=n, backend="cython", **geometry)
                cnnkernels.conv2d_backward(dy, x, w, threads=n, backend="cython", **geometry)

            def theirs(n=n, tx=tx, tw=tw, tdy=tdy, geometry=geometry):
                torch.set_num_threads(n)
                torch.nn.functional.conv2d(tx, tw, **geometry).backward(tdy)
                tx.grad = tw.grad = None

            calls[(problem.label(), "ours", n)] = ours
            calls[(problem.label(), "torch", n)] = theirs
    ours_step, torch_step = training.convnet_step(), training.torch_step()
    for n in THREADS:
        def ours(n=n):
            with cnnkernels.threads(n):
                ours_step()

        def theirs(n=n):
            torch.set_num_threads(n)
            torch_step()

        calls[("training step (tutorial model, batch 32)", "ours", n)] = ours
        calls[("training step (tutorial model, batch 32)", "torch", n)] = theirs
    return calls


def measure(busy: int, rounds: int) -> list[dict]:
    calls = _calls()
    idle = _interleaved(calls, rounds)
    with Neighbours(busy):
        loaded = _interleaved(calls, rounds)
    rows = []
    for (layer, impl, n) in calls:
        rows.append({"row": layer, "impl": impl, "threads": n, "idle_ms": idle[(layer, impl, n)],
                     "busy_ms": loaded[(layer, impl, n)], "slowdown": loaded[(layer, impl, n)] / idle[(layer, impl, n)]})
    return rows


def format_rows(rows, busy: int) -> str:
    lines = [f"medians (ms), idle and beside {busy} CPU-bound processes; slowdown = busy ÷ idle",
             f"{'row':<48} {'impl':<6} {'thr':>3} {'idle':>9} {'busy':>9} {'slowdown':>9}"]
    for row in rows:
        lines.append(f"{row['row']:<48} {row['impl']:<6} {row['threads']:>3} {row['idle_ms']:>9.2f} "
                     f"{row['busy_ms']:>9.2f} {row['slowdown']:>9.2f}")
    by_key = {(r["row"], r["impl"], r["threads"]): r for r in rows}
    lines.append("\nunder load, 2 threads ÷ 1 thread (below 1: the second thread helps)")
    for layer in dict.fromkeys(r["row"] for r in rows):
        parts = [f"{impl} {by_key[(layer, impl, 2)]['busy_ms'] / by_key[(layer, impl, 1)]['busy_ms']:.2f}"
                 for impl in ("ours", "torch")]
        lines.append(f"{layer:<48} {'   '.join(parts)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.busy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes to start (default 2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.busy < 1 or args.rounds < 1:
        parser.error(f"--busy and --rounds must be positive; received {args.busy}, {args.rounds}")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: nothing to compare with", file=sys.stderr)
        return 2
    rows = measure(args.busy, args.rounds)
    print(format_rows(rows, args.busy))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
