"""Losses with Keras 3's formulas: per-sample values and gradients, reduced to the batch loss
Σ wᵢ·lossᵢ / N (sample weights w, default 1) and its gradient with respect to the predictions.

Probabilities are clipped to [1e-7, 1 − 1e-7] as Keras does (the gradient is zero
where clipping bites); with ``from_logits=True`` the softmax / sigmoid is folded
in and computed stably (log-sum-exp).
"""

from __future__ import annotations

import numpy as np

from . import activations
from ._random import floatx

EPSILON = 1e-7


def _log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Loss:
    name = ""

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        return self.value_and_grad(y_true, y_pred)[0]

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """The batch loss Σ wᵢ·lossᵢ / N (Keras's "sum_over_batch_size"; w = 1 by default) and its
        gradient with respect to ``y_pred``."""
        values, grad = self.per_sample(y_true, y_pred)
        n = len(values)
        if sample_weight is not None:
            weights = np.asarray(sample_weight, np.float64).reshape(-1)
            if weights.shape != (n,):
                raise ValueError(f"sample_weight must have one weight per sample ({n}); received shape "
                                 f"{np.shape(sample_weight)}")
            values = values * weights
            grad = grad * weights.astype(grad.dtype).reshape(-1, *[1] * (grad.ndim - 1))
        return float(values.sum() / n) if n else 0.0, (grad / n).astype(y_pred.dtype)

    def per_sample(self, y_true, y_pred):
        """(lossᵢ for each sample, d lossᵢ / d y_pred[i])."""
        raise NotImplementedError

    def check_targets(self, y, n_outputs):
        """Targets as an (N, n_outputs) array (a 1-D y for a single output), or a ValueError."""
        y = np.asarray(y, floatx())
        if y.ndim == 1 and n_outputs == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(f"{self.name} needs targets of shape (N, {n_outputs}); received shape {y.shape}")
        return y

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    """−Σ_k y_k log p_k per sample, y one-hot (N, K)."""

    name = "categorical_crossentropy"

    def check_targets(self, y, n_outputs):
        y = np.asarray(y, floatx())
        if y.ndim != 2 or y.shape[1] != n_outputs:
            raise ValueError(f"{self.name} needs one-hot targets of shape (N, {n_outputs}); received shape "
                             f"{y.shape} (use sparse_categorical_crossentropy for integer labels)")
        return y

    def per_sample(self, y_true, y_pred):
        if self.from_logits:
            log_p = _log_softmax(y_pred)
            loss = -(y_true * log_p).sum(axis=1)
            grad = np.exp(log_p) * y_true.sum(axis=1, keepdims=True) - y_true
            return loss, grad
        total = y_pred.sum(axis=1, keepdims=True)
        normalised = y_pred / total
        clipped = np.clip(normalised, EPSILON, 1 - EPSILON)
        loss = -(y_true * np.log(clipped)).sum(axis=1)
        d_clipped = -y_true / clipped * ((normalised >= EPSILON) & (normalised <= 1 - EPSILON))
        # through the normalisation p / Σp
        grad = (d_clipped - (d_clipped * normalised).sum(axis=1, keepdims=True)) / total
        return loss, grad


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer labels (N,)."""

    name = "sparse_categorical_crossentropy"

    def check_targets(self, y, n_outputs):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or not np.all(np.equal(np.mod(y, 1), 0)) or (y.size and (y.min() < 0 or y.max() >= n_outputs)):
            raise ValueError(f"{self.name} needs integer labels in [0, {n_outputs}) of shape (N,); received "
                             f"shape {y.shape}" + (f" with values in [{y.min()}, {y.max()}]" if y.size else ""))
        return y.astype(np.int64)

    def per_sample(self, y_true, y_pred):
        one_hot = np.zeros(y_pred.shape, y_pred.dtype)
        one_hot[np.arange(len(y_true)), y_true] = 1
        return super().per_sample(one_hot, y_pred)


class BinaryCrossentropy(Loss):
    """−mean_k [y log p + (1−y) log(1−p)] per sample."""

    name = "binary_crossentropy"

    def per_sample(self, y_true, y_pred):
        k = y_pred.shape[1]
        if self.from_logits:
            # log(1 + e^x) - y x, stably
            loss = np.maximum(y_pred, 0) - y_pred * y_true + np.log1p(np.exp(-np.abs(y_pred)))
            grad = activations.FORWARD["sigmoid"](y_pred) - y_true
        else:
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            loss = -(y_true * np.maximum(np.log(p), -100) + (1 - y_true) * np.maximum(np.log(1 - p), -100))
            inside = (y_pred >= EPSILON) & (y_pred <= 1 - EPSILON)
            grad = (-(y_true / p) + (1 - y_true) / (1 - p)) * inside
        return loss.mean(axis=1), grad / k


class MeanSquaredError(Loss):
    """mean_k (y − p)² per sample."""

    name = "mse"

    def __init__(self, from_logits: bool = False):
        super().__init__(False)

    def per_sample(self, y_true, y_pred):
        diff = y_pred - y_true
        return (diff**2).mean(axis=1), 2 * diff / y_pred.shape[1]

    def get_config(self):
        return {"name": self.name}


class MeanAbsoluteError(MeanSquaredError):
    """mean_k |y − p| per sample."""

    name = "mean_absolute_error"

    def per_sample(self, y_true, y_pred):
        diff = y_pred - y_true
        return np.abs(diff).mean(axis=1), np.sign(diff) / y_pred.shape[1]


class Huber(MeanSquaredError):
    """mean_k ½·min(|e|, δ)² + δ·(|e| − min(|e|, δ)), e = p − y."""

    name = "huber_loss"

    def __init__(self, delta=1.0, from_logits: bool = False):
        super().__init__()
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating)) or not delta > 0:
            raise ValueError(f"delta must be a positive number; received delta={delta!r}")
        self.delta = float(delta)

    def per_sample(self, y_true, y_pred):
        error = y_pred - y_true
        magnitude = np.abs(error)
        quadratic = np.minimum(magnitude, self.delta)
        loss = 0.5 * quadratic**2 + self.delta * (magnitude - quadratic)
        grad = np.where(magnitude <= self.delta, error, self.delta * np.sign(error))
        return loss.mean(axis=1), grad / y_pred.shape[1]

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class KLDivergence(MeanSquaredError):
    """Σ_k y log(y / p), both clipped to [ε, 1]."""

    name = "kl_divergence"

    def per_sample(self, y_true, y_pred):
        y = np.clip(y_true, EPSILON, 1)
        p = np.clip(y_pred, EPSILON, 1)
        grad = -y / p * ((y_pred >= EPSILON) & (y_pred <= 1))
        return (y * np.log(y / p)).sum(axis=1), grad


class CategoricalHinge(MeanSquaredError):
    """max(max_k (1 − y)·p − Σ_k y·p + 1, 0), y one-hot."""

    name = "categorical_hinge"

    def per_sample(self, y_true, y_pred):
        positive = (y_true * y_pred).sum(axis=1)
        others = (1 - y_true) * y_pred
        strongest = others.argmax(axis=1)
        loss = np.maximum(others[np.arange(len(y_pred)), strongest] - positive + 1, 0)
        grad = -y_true.astype(y_pred.dtype)
        grad[np.arange(len(y_pred)), strongest] += 1 - y_true[np.arange(len(y_pred)), strongest]
        return loss, grad * (loss > 0)[:, None]


class Poisson(MeanSquaredError):
    """mean_k p − y·log(p + ε)."""

    name = "poisson"

    def per_sample(self, y_true, y_pred):
        loss = (y_pred - y_true * np.log(y_pred + EPSILON)).mean(axis=1)
        return loss, (1 - y_true / (y_pred + EPSILON)) / y_pred.shape[1]


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    "kld": KLDivergence,
    "kl_divergence": KLDivergence,
    "categorical_hinge": CategoricalHinge,
    "poisson": Poisson,
}
NAMES = frozenset(_BY_NAME)
# Keras's function names: loss=keras.losses.mean_absolute_error works like the string
categorical_crossentropy = "categorical_crossentropy"
sparse_categorical_crossentropy = "sparse_categorical_crossentropy"
binary_crossentropy, mean_squared_error, mean_absolute_error = "binary_crossentropy", "mse", "mean_absolute_error"
huber, kl_divergence, categorical_hinge, poisson = "huber", "kl_divergence", "categorical_hinge", "poisson"
MSE, MAE, KLD = MeanSquaredError, MeanAbsoluteError, KLDivergence


def get(identifier) -> Loss:
    """A loss from a Keras name, a config dict or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        config = dict(identifier)
        if isinstance(config.get("config"), dict):  # Keras's {"class_name": ..., "config": {...}}
            cls = next((c for c in _BY_NAME.values() if c.__name__ == config.get("class_name")), None)
            if cls is None:
                raise ValueError(f"unknown loss config {identifier!r}")
            options = {k: v for k, v in config["config"].items() if k in ("from_logits", "delta")}
            return cls(**options)
        return get(config.pop("name", None)).__class__(**config)
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"unknown loss; expected one of {sorted(_BY_NAME)}; received loss={identifier!r}")
