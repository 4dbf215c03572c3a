"""Optimizer steps in place, Keras's formulas: RMSprop and Adam, one compiled pass each.

NumPy's expressions for one step read and write the arrays six or seven times, with
temporaries; these run one vectorised, parallel loop, with the same operations and roundings
(so a backend change does not change a training run). Any shape; float32 or float64; the
arrays updated must be writable, C-contiguous and distinct.
"""

from __future__ import annotations

import numpy as np

from . import _args, _threads
from ._backends import kernels

# values per thread (for_work: 2 threads from twice as many), measured (RMSprop, float32, in cache), 1 / 2 threads:
# 20k values 13 / 15 µs, 50k 24 / 21, 100k 45 / 33, 160k (the tutorial model's first dense kernel) 70 / 40
MIN_VALUES_PER_THREAD = 50_000


def _owners_alike(arrays) -> bool:
    """Whether every array is a distinct, C-contiguous, writable ndarray owning its memory (so none overlaps
    another), of one float dtype and shape: what _arrays checks one by one, at once."""
    first = arrays[0]
    if type(first) is not np.ndarray:
        return False
    dtype, shape = first.dtype, first.shape
    if dtype not in _args.FLOAT_DTYPES or not dtype.isnative or len(set(map(id, arrays))) != len(arrays):
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.base is not None or a.dtype != dtype or a.shape != shape:
            return False
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            return False
    return True


def _arrays(variable, gradient, **state):
    """The flat views of the step's arrays, checked: one shape and dtype, the updated ones writable and
    C-contiguous (a copy could not carry the update back), none overlapping another."""
    given = (gradient, variable, *state.values())
    if _owners_alike(given):  # distinct arrays that own their memory, as an optimizer's are at each step
        return [a.reshape(-1) for a in given]
    arrays = {"variable": variable, "gradient": gradient, **state}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray; received {type(array).__name__}")
        if array.dtype not in _args.FLOAT_DTYPES or not array.dtype.isnative:
            raise TypeError(f"{name} must be float32 or float64 (native byte order); received dtype={array.dtype}")
        _args.check_like(name, array, variable, "variable")
        if name != "gradient" and not (array.flags.writeable and array.flags.c_contiguous):
            raise ValueError(f"{name} is updated in place, so it must be writable and C-contiguous; received "
                             f"writeable={array.flags.writeable}, c_contiguous={array.flags.c_contiguous}")
    names = list(arrays)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if np.may_share_memory(arrays[first], arrays[second]):
                raise ValueError(f"{first} and {second} must be distinct arrays; received overlapping ones")
    gradient = np.ascontiguousarray(gradient)
    return [a.reshape(-1) for a in (gradient, variable, *state.values())]


def _threads_for(size, threads):
    return _threads.under_load(_threads.for_work(_threads.resolve(threads), float(size), MIN_VALUES_PER_THREAD))


def rmsprop_update(variable, gradient, velocity, learning_rate, rho=0.9, epsilon=1e-7, *, backend=None,
                   threads=None):
    """One RMSprop step in place (Keras's, not centered, without momentum).

    ``velocity ← ρ·velocity + (1 − ρ)·g²``;  ``variable ← variable − lr·g / √(velocity + ε)``

    Parameters
    ----------
    variable, velocity : ndarray, float32 or float64, writable, C-contiguous
        Updated in place; ``velocity`` starts at zeros.
    gradient : ndarray like ``variable``
    learning_rate, rho, epsilon : float
        ``rho`` in [0, 1]; the others >= 0.
    backend, threads
        As for :func:`cnnkernels.conv2d`.
    """
    flat = _arrays(variable, gradient, velocity=velocity)
    lr = _args.check_real("learning_rate", learning_rate, 0.0)
    rho = _args.check_real("rho", rho, 0.0, 1.0)
    epsilon = _args.check_real("epsilon", epsilon, 0.0)
    if variable.size:
        kernels(backend).rmsprop_update(flat[0], lr, rho, epsilon, _threads_for(variable.size, threads), *flat[1:])


def adam_update(variable, gradient, momentum, velocity, step_size, beta_1=0.9, beta_2=0.999, epsilon=1e-7, *,
                backend=None, threads=None):
    """One Adam step in place (Keras's).

    ``m ← m + (g − m)(1 − β₁)``;  ``v ← v + (g² − v)(1 − β₂)``;  ``variable ← variable − α·m / (√v + ε)``,
    the last term in float64. ``α`` is the bias-corrected rate Keras uses at step t (from 1):
    ``learning_rate · √(1 − β₂ᵗ) / (1 − β₁ᵗ)``.

    Parameters
    ----------
    variable, momentum, velocity : ndarray, float32 or float64, writable, C-contiguous
        Updated in place; the moments start at zeros.
    gradient : ndarray like ``variable``
    step_size : float
        α above, >= 0.
    beta_1, beta_2 : float in [0, 1]
    epsilon : float >= 0
    backend, threads
        As for :func:`cnnkernels.conv2d`.
    """
    flat = _arrays(variable, gradient, momentum=momentum, velocity=velocity)
    step_size = _args.check_real("step_size", step_size, 0.0)
    beta_1 = _args.check_real("beta_1", beta_1, 0.0, 1.0)
    beta_2 = _args.check_real("beta_2", beta_2, 0.0, 1.0)
    epsilon = _args.check_real("epsilon", epsilon, 0.0)
    if variable.size:
        kernels(backend).adam_update(flat[0], step_size, beta_1, beta_2, epsilon, _threads_for(variable.size, threads),
                                     *flat[1:])
