"""Metrics: "accuracy" in Keras's sense, picked from the loss."""

from __future__ import annotations

import numpy as np

from . import losses


def accuracy_for(loss: losses.Loss):
    """Per-sample correctness (0/1) for ``loss``'s kind of targets."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return lambda y, p: (p.argmax(axis=1) == y).astype(np.float64)
    if isinstance(loss, losses.CategoricalCrossentropy):
        return lambda y, p: (p.argmax(axis=1) == y.argmax(axis=1)).astype(np.float64)
    threshold = 0.0 if loss.from_logits else 0.5
    return lambda y, p: ((p > threshold) == (y > 0.5)).mean(axis=1)


def get(name, loss: losses.Loss):
    """(name, per-sample function) for a metric name."""
    if isinstance(name, str) and name.lower() in ("accuracy", "acc"):
        return name, accuracy_for(loss)  # logged under the name given, as Keras ("acc" -> "acc", "val_acc")
    raise ValueError(f"unknown metric; expected 'accuracy'; received metric={name!r}")
