"""The error of each convolution algorithm against the float64 reference, on the speed set's layers.

For every algorithm that can run a layer (forced, cython backend, float32), the largest absolute
difference of the forward pass, the input gradient and the weight gradient from the numpy backend's
float64 result, divided by the largest sum of absolute products (Σ|x||w| for y, Σ|dy||w| for dx,
Σ|dy||x| for dw) — the scale the tests' tolerances are stated in (Winograd: 1e-5 of it). The batch is cut
to 2 images: the error does not grow with N (each output sums over one image; dw sums over the batch,
hence its own scale).

    python -m bench.accuracy
"""

from __future__ import annotations

import numpy as np

import cnnkernels

from .shapes import SETS

ALGORITHMS = ("winograd", "winograd2x2", "direct", "im2row", "im2col", "gemm")


def _scaled_error(value, reference, scale):
    return float(np.max(np.abs(value.astype(np.float64) - reference))) / scale if value is not None else None


def rows(problems=None):
    """One row per (layer, algorithm that runs it): the scaled errors of y, dx and dw (None: not computed)."""
    rng = np.random.default_rng(0)
    for problem in problems or SETS["speed"].problems:
        shape = (min(problem.N, 2), problem.C, problem.H, problem.W)
        x = rng.standard_normal(shape).astype(np.float32)
        w = (rng.standard_normal(problem.weight_shape) / np.sqrt(problem.C * problem.R * problem.S)).astype(np.float32)
        geometry = dict(stride=problem.stride, padding=problem.padding)
        x8, w8 = x.astype(np.float64), w.astype(np.float64)
        y8 = cnnkernels.conv2d(x8, w8, backend="numpy", **geometry)
        dy = rng.standard_normal(y8.shape).astype(np.float32)
        dy8 = dy.astype(np.float64)
        dx8, dw8, _ = cnnkernels.conv2d_backward(dy8, x8, w8, bias=False, backend="numpy", **geometry)
        y_scale = cnnkernels.conv2d(np.abs(x8), np.abs(w8), backend="numpy", **geometry).max()
        dx_scale, dw_scale, _ = cnnkernels.conv2d_backward(np.abs(dy8), np.abs(x8), np.abs(w8), bias=False,
                                                           backend="numpy", **geometry)
        for algorithm in ALGORITHMS:
            try:
                y = cnnkernels.conv2d(x, w, algorithm=algorithm, backend="cython", **geometry)
            except ValueError:
                continue  # the algorithm does not apply to this layer
            plan = cnnkernels.conv2d_plan(shape, problem.weight_shape, algorithm=algorithm, backend="cython",
                                          **geometry)
            grads = cnnkernels.conv2d_backward(dy, x, w, bias=False, algorithm=algorithm, backend="cython",
                                               **geometry)[:2]
            yield {"layer": problem.label(), "algorithm": algorithm, "isa": plan.isa,
                   "passes": (plan.forward, plan.backward_data, plan.backward_weight),
                   "y": _scaled_error(y, y8, y_scale), "dx": _scaled_error(grads[0], dx8, dx_scale.max()),
                   "dw": _scaled_error(grads[1], dw8, dw_scale.max())}


def main() -> int:
    print("max |float32 − float64 reference| ÷ max Σ|a||b| (the scale of the tests' tolerances), 2 images per layer")
    print(f"{'layer':44s} {'algorithm':11s} {'y':>9s} {'dx':>9s} {'dw':>9s}  passes")
    for row in rows():
        cells = [f"{row[key]:9.1e}" if row[key] is not None else f"{'-':>9s}" for key in ("y", "dx", "dw")]
        print(f"{row['layer']:44s} {row['algorithm']:11s} {' '.join(cells)}  {'/'.join(row['passes'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
