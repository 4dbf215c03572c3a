"""When is a second thread worth it? 1 vs 2 threads on a ladder of small layers.

The measurement behind ``cnnkernels._threads.MIN_FLOPS_PER_THREAD`` and
``MIN_POOL_CELLS_PER_THREAD``: 3x3 convolutions (forward, and backward) and 2x2 max
pooling of growing size, each at 1 and 2 threads with the thresholds and the load
adaptation switched off, interleaved, medians in µs; a ratio below 1 means the second
thread helps.

    python -m bench.split [--rounds 300]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import cnnkernels
from cnnkernels import _threads, plan

from .versus import _interleaved

CONVS = [(2, 8, 8, 8), (8, 8, 8, 8), (8, 16, 8, 16), (16, 16, 8, 16), (16, 16, 10, 16), (32, 16, 10, 16),
         (32, 32, 10, 32)]  # N, C, H=W, K
POOLS = [(4, 8, 8), (8, 16, 8), (8, 16, 16), (16, 16, 16), (32, 16, 20)]  # N, C, H=W


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.split", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="interleaved rounds (default 300)")
    args = parser.parse_args(argv)
    os.environ["CNNKERNELS_DYNAMIC_THREADS"] = "0"
    _threads.MIN_FLOPS_PER_THREAD = _threads.MIN_POOL_CELLS_PER_THREAD = 1
    plan.make_plan.cache_clear()
    rng = np.random.default_rng(0)
    print(f"{'3x3 convolution':<22} {'MFLOP':>7} {'fwd 1t':>8} {'fwd 2t':>8} {'ratio':>6} {'bwd 1t':>8} "
          f"{'bwd 2t':>8} {'ratio':>6}")
    for N, C, H, K in CONVS:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
        dy = rng.standard_normal((N, K, H, H)).astype(np.float32)
        m = _interleaved({t: (lambda t=t: cnnkernels.conv2d(x, w, padding=1, threads=t)) for t in (1, 2)}, args.rounds)
        b = _interleaved({t: (lambda t=t: cnnkernels.conv2d_backward(dy, x, w, padding=1, threads=t)) for t in (1, 2)},
                         args.rounds)
        print(f"{f'{N}x{C}x{H}x{H}->{K}':<22} {2 * N * K * C * 9 * H * H / 1e6:>7.2f} {1e3 * m[1]:>8.1f} {1e3 * m[2]:>8.1f} "
              f"{m[2] / m[1]:>6.2f} {1e3 * b[1]:>8.1f} {1e3 * b[2]:>8.1f} {b[2] / b[1]:>6.2f}")
    print(f"\n{'2x2 max pooling':<22} {'cells':>7} {'1t':>8} {'2t':>8} {'ratio':>6}")
    for N, C, H in POOLS:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        m = _interleaved({t: (lambda t=t: cnnkernels.max_pool2d(x, 2, threads=t)) for t in (1, 2)}, args.rounds)
        print(f"{f'{N}x{C}x{H}x{H}':<22} {N * C * H * H:>7} {1e3 * m[1]:>8.1f} {1e3 * m[2]:>8.1f} {m[2] / m[1]:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
