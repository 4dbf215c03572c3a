"""Benchmarks of convolution implementations: `cnnkernels-bench` (`python -m bench` in a checkout), or
`pytest bench/ --benchmark-only`. Installed as the package `cnnkernels_bench`."""

import os

# Numba's default "omp" threading layer shares the libgomp that PyTorch loads, and once it
# has run, PyTorch's 2-thread steps stayed ~1.6x slower for the rest of the process
# (measured: tutorial training step 6.6 -> 10.6 ms). Its "workqueue" layer leaves PyTorch
# alone, so every implementation is timed on equal terms. Set before numba is imported;
# an explicit NUMBA_THREADING_LAYER wins.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
