"""Batch normalisation, as ``torch.nn.functional.batch_norm``, with its backward pass.

Input is (N, C) or (N, C, *spatial): the statistics are per channel, over every other
axis. Three kernels do the work on each backend: the channel moments (two passes in
float64), the per-channel affine map ``x·scale + shift`` and the backward pass (one
reduction pass and one elementwise pass), so a training step reads x and dy twice each
instead of the ten-odd passes of the NumPy expressions.
"""

from __future__ import annotations

import numpy as np

from . import _args, _threads, memory
from ._backends import kernels

# values per thread: measured (channel_moments, float32), 2 threads about even with 1 at 16k values,
# 1.15x faster at 64k, 1.5x at 200k
MIN_VALUES_PER_THREAD = 32_768


def _threads_for(threads, x) -> int:
    n_threads = _threads.for_work(_threads.resolve(threads), float(x.size), MIN_VALUES_PER_THREAD)
    return _threads.under_load(n_threads)


def _as_planes(array):
    """(N, C, L) view of (N, C, *spatial): what the kernels take."""
    return array.reshape(array.shape[0], array.shape[1], int(np.prod(array.shape[2:])))


def _vector(vector, channels, default):
    return np.full(channels, default) if vector is None else np.asarray(vector, np.float64)


def channel_moments(x, *, backend=None, threads=None):
    """Mean and (biased) variance of each channel: over every axis but axis 1.

    ``mean[c] = Σ x[:, c] / m``, ``variance[c] = Σ (x[:, c] − mean[c])² / m`` with m the
    values per channel; summed in float64 in two passes (no cancellation).

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial), float32 or float64
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    mean, variance : ndarrays of shape (C,), dtype of ``x``
    """
    x = _args.as_channels_input("x", x)
    mean, variance = np.empty(x.shape[1]), np.empty(x.shape[1])
    kernels(backend).channel_moments(_as_planes(x), _threads_for(threads, x), mean, variance)
    return mean.astype(x.dtype), variance.astype(x.dtype)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5, *,
               backend=None, threads=None):
    """``y = (x − mean) / sqrt(var + eps) · weight + bias`` per channel, as PyTorch's ``batch_norm``.

    With ``training`` the statistics are the batch's (biased variance), and the running ones,
    when given, are updated in place: ``running = (1 − momentum)·running + momentum·batch``,
    with the unbiased variance for ``running_var`` (PyTorch's rule). Otherwise the running
    statistics normalise. Pass a batch's :func:`channel_moments` as the "running" statistics
    with ``training=False`` to normalise by them without any update (Keras's momentum rule is
    then the caller's).

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial), float32 or float64
    running_mean, running_var : ndarray of shape (C,), or None (only with ``training``)
    weight, bias : ndarray of shape (C,), optional
        γ and β; None means 1 and 0.
    training : bool
    momentum : float in [0, 1]
    eps : float > 0
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    y : ndarray like ``x``
    """
    x = _args.as_channels_input("x", x)
    C = x.shape[1]
    training = _args.check_flag("training", training)
    momentum = _args.check_real("momentum", momentum, 0.0, 1.0)
    eps = _args.check_real("eps", eps, 0.0, open_low=True)
    for name, vector in (("running_mean", running_mean), ("running_var", running_var)):
        if vector is None and not training:
            raise ValueError(f"{name} is needed when training=False (it normalises); received None")
        if vector is not None:
            _args.channel_vector(name, vector, C, writable=training)
    for name, vector in (("weight", weight), ("bias", bias)):
        if vector is not None:
            _args.channel_vector(name, vector, C)
    ops, n_threads = kernels(backend), _threads_for(threads, x)
    planes = _as_planes(x)
    if training:
        count = x.size // C
        if count < 2:
            raise ValueError(f"training needs more than one value per channel; received x of shape {x.shape}")
        mean, variance = np.empty(C), np.empty(C)
        ops.channel_moments(planes, n_threads, mean, variance)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            running_var[...] = (1 - momentum) * running_var + momentum * variance * (count / (count - 1))
    else:
        mean, variance = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    scale = _vector(weight, C, 1.0) / np.sqrt(variance + eps)
    shift = _vector(bias, C, 0.0) - mean * scale
    y = memory.empty(x.shape, x.dtype)
    ops.channel_affine(planes, scale, shift, n_threads, _as_planes(y))
    return y


def batch_norm_backward(dy, x, mean, var, weight=None, eps=1e-5, training=True, *, input_grad=True, backend=None,
                        threads=None):
    """Gradients of :func:`batch_norm` with respect to ``x``, ``weight`` and ``bias``.

    With x̂ = (x − mean)·σ⁻¹, σ⁻¹ = 1/sqrt(var + eps) and m values per channel:
    ``dbias = Σ dy``, ``dweight = Σ dy·x̂`` (sums over every axis but 1), and
    ``dx = weight·σ⁻¹·(dy − dbias/m − x̂·dweight/m)`` when ``training`` (the statistics were
    the batch's, so they move with x), else ``weight·σ⁻¹·dy``.

    Parameters
    ----------
    dy : ndarray like ``x``
        Gradient of the loss with respect to the output of :func:`batch_norm`.
    x : ndarray, shape (N, C) or (N, C, *spatial)
        The forward pass's input.
    mean, var : ndarray of shape (C,)
        The statistics the forward pass normalised with: the batch's (:func:`channel_moments`)
        when it trained, else the running ones.
    weight : ndarray of shape (C,), optional
        γ (None: 1).
    eps : float > 0
    training : bool
        Whether ``mean`` and ``var`` were the batch's own statistics.
    input_grad : bool
        Compute ``dx`` (False returns None for it and skips its pass).
    backend, threads
        As for :func:`cnnkernels.conv2d`.

    Returns
    -------
    dx : ndarray like ``x``, or None
    dweight, dbias : ndarrays of shape (C,), dtype of ``x``
    """
    x = _args.as_channels_input("x", x)
    C = x.shape[1]
    dy = _args.check_like("dy", _args.as_channels_input("dy", dy), x)
    mean, var = _args.channel_vector("mean", mean, C), _args.channel_vector("var", var, C)
    if weight is not None:
        _args.channel_vector("weight", weight, C)
    eps = _args.check_real("eps", eps, 0.0, open_low=True)
    training = _args.check_flag("training", training)
    input_grad = _args.check_flag("input_grad", input_grad)
    dx = memory.empty(x.shape, x.dtype) if input_grad else np.empty((0, *x.shape[1:]), x.dtype)
    sums = np.empty((2, C))
    inv_std = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    kernels(backend).batch_norm_backward(_as_planes(dy), _as_planes(x), np.asarray(mean, np.float64), inv_std,
                                         _vector(weight, C, 1.0), training, _threads_for(threads, x),
                                         _as_planes(dx), sums)
    return (dx if input_grad else None), sums[1].astype(x.dtype), sums[0].astype(x.dtype)
