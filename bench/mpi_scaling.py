"""Data-parallel scaling on MPI: images/s of a training step, and the share of it spent in Allreduce.

Run it in one process and under mpiexec, with the same global batch:

    python -m bench.mpi_scaling --threads 2                 # 1 rank x 2 threads
    mpiexec -n 2 python -m bench.mpi_scaling --threads 1    # 2 ranks x 1 thread

It trains the tutorial CNN on synthetic 100x100x3 images (global batch 32 by default), times
``--steps`` steps after a warm-up, and reports images/s, the gradient bytes each step sums,
the time in ``Allreduce``, and a model of R ranks on a network: a ring allreduce moves
2(R-1)/R x bytes per rank, so a step costs compute(local batch) + that / bandwidth + 2(R-1)
latencies.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mpi_scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100, help="image height and width (default 100)")
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="kernel threads per rank")
    parser.add_argument("--latency-us", type=float, default=5.0, help="network latency per message (model)")
    args = parser.parse_args(argv)
    import cnnkernels
    import convnet
    from convnet import distributed
    from convnet.cli import tutorial_model

    if args.threads:
        cnnkernels.set_num_threads(args.threads)
    strategy = distributed.current()
    ranks = strategy.size if strategy else 1
    local_batch = args.global_batch // ranks
    spent = {"allreduce": 0.0, "calls": 0}
    if strategy is not None:
        summing = strategy.sum_arrays

        def timed(arrays):
            started = time.perf_counter()
            summing(arrays)
            spent["allreduce"] += time.perf_counter() - started
            spent["calls"] += 1

        strategy.sum_arrays = timed
    convnet.set_seed(0)
    model = tutorial_model((args.size, args.size, 3), 16, rescale=True)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=convnet.optimizers.RMSprop(1e-4))
    rng = np.random.default_rng(0)
    n = args.global_batch * args.steps
    x = (rng.random((n, args.size, args.size, 3)) * 255).astype("float32")
    y = rng.integers(0, 16, n)
    model.fit(x[: args.global_batch * 2], y[: args.global_batch * 2], batch_size=local_batch, epochs=1,
              shuffle=False, verbose=0)  # warm-up: plans, workspaces
    spent.update(allreduce=0.0, calls=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=local_batch, epochs=1, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started
    step = seconds / args.steps
    parameter_bytes = sum(w.nbytes for w in model.trainable_weights)
    if distributed.is_chief():
        threads = cnnkernels.get_num_threads()
        print(f"{ranks} rank{'s' if ranks > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}, "
              f"{args.size}x{args.size}x3, global batch {args.global_batch} (local {local_batch}): "
              f"{args.global_batch / step:.0f} images/s, {1e3 * step:.1f} ms/step")
        print(f"gradient bytes summed per step: {parameter_bytes / 2**20:.1f} MiB "
              f"({sum(w.size for w in model.trainable_weights):,} float32)")
        if strategy is not None:
            share = spent["allreduce"] / seconds
            print(f"Allreduce: {1e3 * spent['allreduce'] / args.steps:.2f} ms/step ({100 * share:.1f} % of the step, "
                  f"{spent['calls'] // args.steps} call(s) a step)")
        compute_per_image = step / local_batch - (spent["allreduce"] / args.steps / local_batch if strategy else 0)
        print(f"\nmodel: local batch {local_batch}, compute {1e3 * compute_per_image * local_batch:.1f} ms/step "
              "measured")
        print(f"{'ranks':>6} {'10 Gbit/s: comm ms':>19} {'images/s':>9} {'100 Gbit/s: comm ms':>20} {'images/s':>9}")
        for r in (2, 4, 8, 16, 64, 256):
            row = f"{r:>6}"
            for gbit in (10, 100):
                comm = 2 * (r - 1) / r * parameter_bytes / (gbit * 1e9 / 8) + 2 * (r - 1) * args.latency_us * 1e-6
                row += f" {1e3 * comm:>19.1f} {r * local_batch / (compute_per_image * local_batch + comm):>9.0f}"
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
