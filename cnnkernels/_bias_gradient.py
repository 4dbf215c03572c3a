"""The bias gradient's per-channel sums of dy for :func:`cnnkernels.conv2d_backward`, alone or through a fused
(leaky) ReLU's gradient, for NCHW and channels-last (NHWC) dy."""

from __future__ import annotations

import numpy as np

from . import _threads, activations as _activations, memory

# values per thread of the bias gradient's sums (as cnnkernels.normalization's channel moments, measured)
MIN_SUMMED_PER_THREAD = 32_768


def _summing_threads(dy, threads):
    """The threads a pass over dy's values takes now: enough values each, and what the machine's load leaves."""
    return _threads.under_load(_threads.for_work(_threads.resolve(threads), float(dy.size), MIN_SUMMED_PER_THREAD))


def channel_sums(ops, dy, threads, channels_last=False):
    """Σ dy over all axes but the channels' (the bias gradient): in float64, on the backend's threads (NumPy's sum
    took 0.1 ms of a 0.5 ms weight gradient on the tutorial's first layer); an NHWC dy (``channels_last``) down
    its rows of pixels (NumPy's sum in float64 took 0.33 ms of the strided ResNet layer's dy, on one thread)."""
    channels = dy.shape[-1] if channels_last else dy.shape[1]
    sums = np.zeros(channels)
    if dy.size:
        n_threads = _summing_threads(dy, threads)
        if not channels_last:
            ops.channel_sums(dy.reshape(dy.shape[0], channels, -1), n_threads, sums)
        elif dy.dtype == np.float32 and hasattr(ops, "pixel_sums"):
            ops.pixel_sums(dy.reshape(-1, channels), n_threads, sums)
        else:
            sums = np.add.reduce(dy.reshape(-1, channels), axis=0, dtype=np.float64)
    return sums.astype(dy.dtype)


def through_relu(ops, dy, y, slope, with_bias, backend, threads, channels_last=False):
    """dz = dy where y > 0, else slope·dy (leaky ReLU's gradient; ReLU's, 0, at slope 0) and, with the bias, Σ dz
    per channel: one pass where the backend has the fused kernel, else leaky_relu_backward and channel_sums."""
    if not (with_bias and hasattr(ops, "relu_gradient_sums")) or channels_last:
        dz = _activations.leaky_relu_backward(dy, y, slope, backend=backend, threads=threads)
        return dz, (channel_sums(ops, dz, threads, channels_last) if with_bias else None)
    dz = memory.empty(dy.shape, dy.dtype)
    sums = np.zeros(dy.shape[1])
    if dy.size:
        planes = (dy.shape[0], dy.shape[1], -1)
        ops.relu_gradient_sums(dy.reshape(planes), y.reshape(planes), slope, _summing_threads(dy, threads),
                               dz.reshape(planes), sums)
    return dz, sums.astype(dy.dtype)
