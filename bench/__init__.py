"""Benchmarks of convolution implementations: `cnnkernels-bench` (`python -m bench` in a checkout), or
`pytest bench/ --benchmark-only`. Installed as the package `cnnkernels_bench`."""

import os

# Numba's default "omp" threading layer shares the libgomp that PyTorch loads, and once it
# has run, PyTorch's 2-thread steps stayed ~1.6x slower for the rest of the process
# (measured: tutorial training step 6.6 -> 10.6 ms). Its "workqueue" layer leaves PyTorch
# alone, so every implementation is timed on equal terms. Set before numba is imported;
# an explicit NUMBA_THREADING_LAYER wins.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

# A multi-threaded OpenBLAS (NumPy's, used by numpy-im2col, the reference and most users' kernels)
# keeps its idle threads spinning and yielding for ~0.1-0.2 s after each call; interleaved with it,
# a 2-thread OpenMP kernel on 2 cores ran 15x slower (measured: cnnkernels' 1.3 ms forward at
# 21 ms when started 10-100 ms after a NumPy sgemm). With a 2^4-cycle timeout its threads sleep at
# once, and the sgemm itself stays as fast (64-1024 squared, measured level). Read when OpenBLAS
# loads, so set before numpy is imported; an explicit OPENBLAS_THREAD_TIMEOUT wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
