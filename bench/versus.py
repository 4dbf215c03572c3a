"""Ours ÷ PyTorch, interleaved: the speed issue's acceptance measurement.

For each layer of the ``speed`` set, the forward pass and forward + backward (input and
weight gradients) of cnnkernels (cython backend, the plan's algorithms) and of PyTorch in
NCHW and channels_last run in turn, round after round, in one process, so the machine's
load drifts over all of them alike; the medians are compared with the faster PyTorch
layout. Then the tutorial model's training step, the same way, on 20x20x3 and 100x100x3 images: step by step, and in
runs of consecutive steps, as a training loop runs them (each run's first step starts in the caches the other library
left). PyTorch's thread count is set before each of its calls (another library in the process may have moved it).

    python -m bench.versus --threads 1,2 [--rounds 15] [--json FILE]
    python -m bench.versus --layers resnet-3x3-s2,tut-conv1 --no-training   # some rows only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np

import cnnkernels

from .core import interleaved
from .shapes import SETS


def _interleaved(calls: dict, rounds: int) -> dict:
    """Median ms of each call over ``rounds`` interleaved rounds, after two warm-up calls each."""
    for call in calls.values():  # warm-up: plans, workspaces, oneDNN primitives
        call()
        call()
    times = interleaved(calls, rounds, budget_s=None)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def conv_rows(threads: int, rounds: int, names=None):
    """The speed set's layers (those named, if ``names`` is given), one result row each."""
    import torch

    rng = np.random.default_rng(0)
    for problem in SETS["speed"].problems:
        if names is not None and problem.name not in names:
            continue
        x = rng.standard_normal((problem.N, problem.C, problem.H, problem.W)).astype(np.float32)
        w = rng.standard_normal((problem.K, problem.C, problem.R, problem.S)).astype(np.float32) / problem.C
        b = np.zeros(problem.K, np.float32)
        geometry = dict(stride=problem.stride, padding=problem.padding)
        dy = rng.standard_normal(cnnkernels.conv2d(x, w, b, **geometry).shape).astype(np.float32)
        plan = cnnkernels.conv2d_plan(x.shape, w.shape, backend="cython", **geometry)

        def ours_calls(x, dy):
            def forward():
                cnnkernels.conv2d(x, w, b, backend="cython", **geometry)

            def both():
                cnnkernels.conv2d(x, w, b, backend="cython", **geometry)
                cnnkernels.conv2d_backward(dy, x, w, backend="cython", **geometry)

            return forward, both

        ours = ours_calls(x, dy)
        # channels_last as PyTorch's: NCHW views of NHWC memory
        ours_nhwc = ours_calls(*(cnnkernels.to_channels_last(a).transpose(0, 3, 1, 2) for a in (x, dy)))

        def torch_calls(channels_last):
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            tx = torch.from_numpy(x).contiguous(memory_format=fmt).requires_grad_()
            tw = torch.from_numpy(w).contiguous(memory_format=fmt).requires_grad_()
            tb = torch.from_numpy(b).requires_grad_()
            tdy = torch.from_numpy(dy).contiguous(memory_format=fmt)

            def forward():
                torch.set_num_threads(threads)
                with torch.no_grad():
                    torch.nn.functional.conv2d(tx, tw, tb, **geometry)

            def both():
                torch.set_num_threads(threads)
                torch.nn.functional.conv2d(tx, tw, tb, **geometry).backward(tdy)
                tx.grad = tw.grad = tb.grad = None

            return forward, both

        nchw, nhwc = torch_calls(False), torch_calls(True)
        m = _interleaved({"ours": ours[0], "ours-nhwc": ours_nhwc[0], "torch": nchw[0], "torch-nhwc": nhwc[0],
                          "ours+b": ours[1], "ours-nhwc+b": ours_nhwc[1], "torch+b": nchw[1], "torch-nhwc+b": nhwc[1]},
                         rounds)
        flops = problem.flops(dy.shape[2:])
        yield {"layer": problem.label(), "threads": threads,
               "algorithm": f"{plan.forward}/{plan.backward_data}/{plan.backward_weight}",
               "forward_ms": m["ours"], "torch_forward_ms": m["torch"], "torch_nhwc_forward_ms": m["torch-nhwc"],
               "forward_ratio": m["ours"] / min(m["torch"], m["torch-nhwc"]),
               "nhwc_forward_ms": m["ours-nhwc"],
               "best_forward_ratio": min(m["ours"], m["ours-nhwc"]) / min(m["torch"], m["torch-nhwc"]),
               "both_ms": m["ours+b"], "torch_both_ms": m["torch+b"], "torch_nhwc_both_ms": m["torch-nhwc+b"],
               "both_ratio": m["ours+b"] / min(m["torch+b"], m["torch-nhwc+b"]),
               "nhwc_both_ms": m["ours-nhwc+b"],
               "best_both_ratio": min(m["ours+b"], m["ours-nhwc+b"]) / min(m["torch+b"], m["torch-nhwc+b"]),
               "forward_gflops": flops / m["ours"] / 1e6}


# A training loop runs its steps back to back. Step by step, interleaved, each step starts after the other
# library's, in caches that library has filled: ours took 1.10x its back-to-back time after PyTorch's, PyTorch's
# 1.06x after ours. In runs of consecutive steps only a run's first step pays that.
STEPS_PER_RUN = 10


def training_row(threads: int, rounds: int, size: int):
    """The tutorial model's training step on size x size x 3 images, batch 32: images/s and ours ÷ the faster torch,
    interleaved step by step, and in runs of STEPS_PER_RUN consecutive steps (a training loop's throughput)."""
    import torch

    from . import training

    ours = training.convnet_step(size)
    nchw, nhwc = training.torch_step(size=size), training.torch_step(channels_last=True, size=size)

    def pinned(step):
        def call():
            torch.set_num_threads(threads)
            step()
        return call

    def run_of(step, steps):
        def call():
            for _ in range(steps):
                step()
        return call

    small = size <= 32
    steps = 3 * rounds if small else rounds  # a 100x100 step takes ~25 of the 20x20's
    m = _interleaved({"convnet": ours, "torch": pinned(nchw), "torch-nhwc": pinned(nhwc)}, steps)
    per_run = STEPS_PER_RUN if small else 3
    runs = _interleaved({"convnet": run_of(ours, per_run), "torch": run_of(pinned(nchw), per_run),
                         "torch-nhwc": run_of(pinned(nhwc), per_run)}, rounds if small else max(5, rounds // 3))
    per_second = {k: training.BATCH / v * 1e3 for k, v in m.items()}
    in_runs = {k: training.BATCH * per_run / v * 1e3 for k, v in runs.items()}
    return {"threads": threads, "size": size, "images_per_s": per_second,
            "ratio": per_second["convnet"] / max(per_second["torch"], per_second["torch-nhwc"]),
            "steps_per_run": per_run, "images_per_s_in_runs": in_runs,
            "ratio_in_runs": in_runs["convnet"] / max(in_runs["torch"], in_runs["torch-nhwc"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per layer (default 15)")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    known = [problem.name for problem in SETS["speed"].problems]
    parser.add_argument("--layers", help=f"comma-separated layers to run (default all: {','.join(known)})")
    parser.add_argument("--no-training", action="store_true", help="skip the training-step row")
    args = parser.parse_args(argv)
    names = None if args.layers is None else args.layers.split(",")
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        parser.error(f"unknown layers {unknown}; the speed set has {known}")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: nothing to compare with", file=sys.stderr)
        return 2
    cnnkernels.backends()  # load every backend first: loading Numba's can move other libraries' thread counts
    results = {"conv": [], "training": []}
    for threads in [int(t) for t in args.threads.split(",")]:
        cnnkernels.set_num_threads(threads)
        print(f"\n== {threads} thread(s): ours ÷ the faster of PyTorch NCHW and channels_last, medians of "
              f"{args.rounds} interleaved rounds ==")
        print("(÷torch: ours NCHW; best÷: the faster of our NCHW and channels_last, as for PyTorch)")
        print(f"{'layer':<44} {'fwd ms':>7} {'÷torch':>6} {'best÷':>6} {'fwd+bwd ms':>10} {'÷torch':>6} "
              f"{'best÷':>6} {'GFLOP/s':>7}  algorithm")
        for row in conv_rows(threads, args.rounds, names):
            results["conv"].append(row)
            print(f"{row['layer']:<44} {row['forward_ms']:>7.2f} {row['forward_ratio']:>6.2f} "
                  f"{row['best_forward_ratio']:>6.2f} {row['both_ms']:>10.2f} {row['both_ratio']:>6.2f} "
                  f"{row['best_both_ratio']:>6.2f} {row['forward_gflops']:>7.1f}  {row['algorithm']}", flush=True)
        if args.no_training:
            continue
        for size in (20, 100):
            row = training_row(threads, args.rounds, size)
            results["training"].append(row)
            rates = row["images_per_s"]
            runs = row["images_per_s_in_runs"]
            print(f"training step (tutorial model, batch 32, {size}x{size}x3): convnet {rates['convnet']:.0f} img/s, "
                  f"torch {rates['torch']:.0f}, torch-nhwc {rates['torch-nhwc']:.0f}: ratio {row['ratio']:.2f}; "
                  f"in runs of {row['steps_per_run']} steps: convnet {runs['convnet']:.0f}, torch {runs['torch']:.0f}, "
                  f"torch-nhwc {runs['torch-nhwc']:.0f}: ratio {row['ratio_in_runs']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
