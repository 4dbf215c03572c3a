"""Unbatched inputs, as PyTorch takes them: an ``x`` of shape (C, H, W) is a batch of one.

The wrapped function sees 4-D arrays (its validation and kernels are untouched); the
batch axis is added to ``x`` and the other named image arrays (``dy``), and removed from
the result (or from the first item of a tuple of gradients: dx).
"""

from __future__ import annotations

import functools
import inspect

import numpy as np


def accepts_unbatched(*image_arguments: str, batched_results: int = 1, optional: tuple = ()):
    """Decorate an op whose ``x`` (and ``image_arguments``, e.g. ``dy``) may be 3-D; of a tuple
    result, the first ``batched_results`` items lose the batch axis ((y, indices); (dx, dw, db)).
    The ``optional`` image arguments may be None (left as they are)."""

    def decorate(function):
        names = list(inspect.signature(function).parameters)
        positions = {name: names.index(name) for name in ("x", *image_arguments)}

        def lookup(name, args, kwargs):
            position = positions[name]
            return args[position] if position < len(args) else kwargs.get(name)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            x = lookup("x", args, kwargs)
            if not (isinstance(x, np.ndarray) and x.ndim == 3):
                return function(*args, **kwargs)
            args = list(args)
            for name in ("x", *image_arguments):
                value = lookup(name, args, kwargs)
                if value is None and name in optional:
                    continue
                if not isinstance(value, np.ndarray) or value.ndim != 3:
                    shape = getattr(value, "shape", None)
                    raise ValueError(f"x is unbatched (3-D), so {name} must be 3-D too; received shape {shape}")
                if positions[name] < len(args):
                    args[positions[name]] = value[np.newaxis]
                else:
                    kwargs[name] = value[np.newaxis]
            result = function(*args, **kwargs)
            if isinstance(result, tuple):
                return (*(None if r is None else r[0] for r in result[:batched_results]), *result[batched_results:])
            return result[0]

        return wrapper

    return decorate
