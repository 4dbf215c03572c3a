"""``python -m cnnkernels``: which backends load here, and a check that they agree.

Runs one conv2d forward/backward and one max-pool on every backend, compares
each with the NumPy reference and prints the time of each (median of 5).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import cnnkernels
from cnnkernels import _backends


def _median_ms(call, repeats=5):
    call()  # warm-up (and Numba's compile, if not cached)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnkernels", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads for every pool (default: all cores)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        cnnkernels.set_num_threads(args.threads)
    print(f"cnnkernels {cnnkernels.__version__} from {os.path.dirname(os.path.abspath(cnnkernels.__file__))}: "
          f"backends {cnnkernels.backends()}, default {cnnkernels.get_backend()!r}, "
          f"{cnnkernels.get_num_threads()} thread(s)")
    if "cython" not in cnnkernels.backends():  # say which build this is, not just "all agree"
        reason = _backends._failures.get("cython", "not loaded")
        print(f"WARNING: the compiled (cython) backend is missing here ({reason}); this checks the fallbacks only. "
              "Run from outside the source tree, or build it: pip install -e .")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((32, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((32, 32, 20, 20)).astype(np.float32)
    reference = cnnkernels.conv2d(x, w, b, padding="same", backend="numpy")
    reference_grads = cnnkernels.conv2d_backward(dy, x, w, padding="same", backend="numpy")
    print("conv2d 32x3x20x20 -> 32 filters 3x3 'same', float32; max_pool2d 2x2")
    print(f"{'backend':<8} {'forward ms':>11} {'backward ms':>12} {'max-pool ms':>12} {'max |diff|':>11}")
    worst = 0.0
    for name in cnnkernels.backends():
        y = cnnkernels.conv2d(x, w, b, padding="same", backend=name)
        grads = cnnkernels.conv2d_backward(dy, x, w, padding="same", backend=name)
        diff = max(float(np.max(np.abs(y - reference))),
                   *(float(np.max(np.abs(g - r)) / max(1.0, np.max(np.abs(r))))
                     for g, r in zip(grads, reference_grads)))
        worst = max(worst, diff)
        forward = _median_ms(lambda: cnnkernels.conv2d(x, w, b, padding="same", backend=name))
        backward = _median_ms(lambda: cnnkernels.conv2d_backward(dy, x, w, padding="same", backend=name))
        pool = _median_ms(lambda: cnnkernels.max_pool2d(y, 2, backend=name))
        print(f"{name:<8} {forward:>11.2f} {backward:>12.2f} {pool:>12.2f} {diff:>11.1e}")
    ok = worst < 1e-3
    print("all backends agree with the reference" if ok else "MISMATCH against the reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
