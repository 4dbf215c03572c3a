"""Metrics with Keras 3's names, formulas and history keys.

A metric accumulates over an epoch (``update_state`` per batch, ``result``, ``reset_state``), as
Keras's do: mean metrics weight each sample by its sample weight; Precision, Recall and AUC
sum their confusion counts. ``metrics=["accuracy"]`` (or ``"acc"``) picks the accuracy that fits
the loss, and is logged under the name given, as in Keras.
"""

from __future__ import annotations

import numpy as np

from . import losses

EPSILON = 1e-7


class Metric:
    """Base class: subclass and define ``update_state`` and ``result``."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.reset_state()

    def reset_state(self) -> None: ...

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def fresh(self) -> "Metric":
        """A new metric of the same kind and settings, with empty state."""
        clone = object.__new__(type(self))
        clone.__dict__.update({k: v for k, v in self.__dict__.items()})
        clone.reset_state()
        return clone

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    # the accumulated state as one vector, for summing over MPI ranks (convnet.distributed)
    _state_names: tuple = ()

    def state(self) -> np.ndarray:
        if not self._state_names:
            raise NotImplementedError(f"metric {self.name!r} ({type(self).__name__}) cannot be combined across MPI "
                                      "ranks: give it _state_names (attributes that add up)")
        return np.concatenate([np.atleast_1d(np.asarray(getattr(self, n), np.float64)) for n in self._state_names])

    def set_state(self, values) -> "Metric":
        start = 0
        for name in self._state_names:
            size = np.atleast_1d(np.asarray(getattr(self, name))).size
            part = np.asarray(values[start:start + size], np.float64)
            setattr(self, name, float(part[0]) if np.isscalar(getattr(self, name)) else part)
            start += size
        return self

    def get_config(self) -> dict:
        return {"name": self.name}


def _snake(name):
    from .layers.base import _snake as snake

    return snake(name)


def _weights(sample_weight, n):
    return np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64).reshape(-1)


class MeanMetricWrapper(Metric):
    """The weighted mean over samples of ``fn(y_true, y_pred)`` (one value per sample)."""

    def __init__(self, fn, name=None, dtype=None, **fn_kwargs):
        self._fn, self._fn_kwargs = fn, fn_kwargs
        super().__init__(name or fn.__name__, dtype)

    _state_names = ("_total", "_count")

    def reset_state(self):
        self._total = self._count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.asarray(self._fn(np.asarray(y_true), np.asarray(y_pred), **self._fn_kwargs), np.float64)
        values = values.reshape(len(values), -1).mean(axis=1) if values.ndim > 1 else values
        w = _weights(sample_weight, len(values))
        self._total += float((values * w).sum())
        self._count += float(w.sum())

    def result(self):
        return self._total / self._count if self._count else 0.0


def _labels(y_true, n_classes):
    """Integer labels from one-hot (N, K) targets or from labels (N,) / (N, 1)."""
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        return y.argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true = np.asarray(y_true).reshape(len(y_pred), -1)
    return ((np.asarray(y_pred) > threshold) == (y_true > 0.5)).mean(axis=1)


def categorical_accuracy(y_true, y_pred):
    return (np.asarray(y_pred).argmax(axis=1) == _labels(y_true, np.shape(y_pred)[1])).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    return (np.asarray(y_pred).argmax(axis=1) == np.asarray(y_true).reshape(len(y_pred))).astype(np.float64)


def accuracy(y_true, y_pred):
    """Exact equality of targets and predictions (Keras's plain ``Accuracy``)."""
    return (np.asarray(y_true).reshape(np.shape(y_pred)) == y_pred).reshape(len(y_pred), -1).mean(axis=1)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = np.asarray(y_pred)
    labels = _labels(y_true, y_pred.shape[1])
    # a hit when fewer than k classes score above the true one (Keras's in_top_k)
    true_score = y_pred[np.arange(len(labels)), labels]
    return ((y_pred > true_score[:, None]).sum(axis=1) < k).astype(np.float64)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return top_k_categorical_accuracy(np.asarray(y_true).reshape(len(y_pred)), y_pred, k)


def mean_absolute_error(y_true, y_pred):
    return np.abs(np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred))).mean(axis=1)


def mean_squared_error(y_true, y_pred):
    return np.square(np.asarray(y_pred) - np.asarray(y_true).reshape(np.shape(y_pred))).mean(axis=1)


def _wrapper_class(fn, default_name, **defaults):
    def __init__(self, name=default_name, dtype=None, **kwargs):
        MeanMetricWrapper.__init__(self, fn, name, dtype, **{**defaults, **kwargs})

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}

    return __init__, get_config


class Accuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(accuracy, "accuracy")


class BinaryAccuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(binary_accuracy, "binary_accuracy", threshold=0.5)


class CategoricalAccuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(categorical_accuracy, "categorical_accuracy")


class SparseCategoricalAccuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(sparse_categorical_accuracy, "sparse_categorical_accuracy")


class TopKCategoricalAccuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(top_k_categorical_accuracy, "top_k_categorical_accuracy", k=5)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(sparse_top_k_categorical_accuracy, "sparse_top_k_categorical_accuracy",
                                          k=5)


class MeanAbsoluteError(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(mean_absolute_error, "mean_absolute_error")


class MeanSquaredError(MeanMetricWrapper):
    __init__, get_config = _wrapper_class(mean_squared_error, "mean_squared_error")


class _Confusion(Metric):
    """True/false positives and negatives of ``y_pred > threshold`` over every element (multi-label
    outputs count each label), for the thresholds given; ``class_id`` keeps one column."""

    def __init__(self, thresholds=None, class_id=None, name=None, dtype=None):
        values = [0.5] if thresholds is None else list(np.atleast_1d(thresholds))
        if not all(0 <= t <= 1 for t in values):
            raise ValueError(f"thresholds must be in [0, 1]; received thresholds={thresholds!r}")
        self.thresholds, self.class_id = np.asarray(values, np.float64), class_id
        self._given_thresholds = thresholds
        super().__init__(name, dtype)

    _state_names = ("tp", "fp", "tn", "fn")

    def reset_state(self):
        self.tp = self.fp = self.tn = self.fn = np.zeros(len(self.thresholds))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float64)
        y_true = np.asarray(y_true, np.float64)
        if y_true.size == len(y_pred) and y_pred.ndim == 2 and y_pred.shape[1] > 1:  # integer labels: one-hot
            y_true = y_true.reshape(-1)[:, None] == np.arange(y_pred.shape[1])
        y_true = y_true.reshape(y_pred.shape)
        w = _weights(sample_weight, len(y_pred))[:, None] * np.ones_like(y_pred)
        if self.class_id is not None:
            y_pred, y_true, w = y_pred[:, [self.class_id]], y_true[:, [self.class_id]], w[:, [self.class_id]]
        positive = (y_true > 0.5).ravel()
        w = w.ravel()
        predicted = y_pred.ravel()[None, :] > self.thresholds[:, None]
        self.tp = self.tp + (predicted * (positive * w)).sum(axis=1)
        self.fp = self.fp + (predicted * (~positive * w)).sum(axis=1)
        self.fn = self.fn + (~predicted * (positive * w)).sum(axis=1)
        self.tn = self.tn + (~predicted * (~positive * w)).sum(axis=1)

    def get_config(self):
        return {"name": self.name, "thresholds": self._given_thresholds, "class_id": self.class_id}


def _ratio(a, b):
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


class Precision(_Confusion):
    """tp / (tp + fp) of ``y_pred > thresholds`` (0.5 by default)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"Precision supports top_k=None only; received top_k={top_k!r}")
        super().__init__(thresholds, class_id, name, dtype)

    def result(self):
        values = _ratio(self.tp, self.tp + self.fp)
        return float(values[0]) if len(values) == 1 else values.tolist()


class Recall(_Confusion):
    """tp / (tp + fn) of ``y_pred > thresholds`` (0.5 by default)."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"Recall supports top_k=None only; received top_k={top_k!r}")
        super().__init__(thresholds, class_id, name, dtype)

    def result(self):
        values = _ratio(self.tp, self.tp + self.fn)
        return float(values[0]) if len(values) == 1 else values.tolist()


class AUC(_Confusion):
    """Area under the ROC curve from ``num_thresholds`` evenly spaced thresholds, by the
    trapezoidal rule (Keras's default ``summation_method="interpolation"``)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if curve != "ROC" or summation_method != "interpolation" or multi_label or label_weights is not None:
            raise ValueError("AUC supports curve='ROC', summation_method='interpolation', multi_label=False; received "
                             f"curve={curve!r}, summation_method={summation_method!r}, multi_label={multi_label!r}")
        if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 2:
            raise ValueError(f"num_thresholds must be an int > 1; received num_thresholds={num_thresholds!r}")
        self.num_thresholds, self.curve, self.from_logits = int(num_thresholds), curve, bool(from_logits)
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] if thresholds is None \
            else sorted(thresholds)
        super().__init__([0.0], None, name or "auc", dtype)
        self.thresholds = np.asarray([-EPSILON, *inner, 1 + EPSILON])
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float64)
        if self.from_logits:
            y_pred = 1 / (1 + np.exp(-y_pred))
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        tp_rate = _ratio(self.tp, self.tp + self.fn)
        fp_rate = _ratio(self.fp, self.fp + self.tn)
        return float(np.sum((fp_rate[:-1] - fp_rate[1:]) * (tp_rate[:-1] + tp_rate[1:]) / 2))

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "from_logits": self.from_logits}


def accuracy_for(loss: losses.Loss):
    """The per-sample accuracy for ``loss``'s kind of targets (Keras's reading of "accuracy")."""
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, losses.CategoricalCrossentropy):
        return categorical_accuracy
    threshold = 0.0 if loss.from_logits else 0.5
    return lambda y, p: binary_accuracy(y, p, threshold)


_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
CLASSES = {cls.__name__: cls for cls in (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                         TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanAbsoluteError,
                                         MeanSquaredError, Precision, Recall, AUC)}


def get(identifier, loss: losses.Loss) -> Metric:
    """A fresh :class:`Metric` for a name, a config or an instance, given the loss it goes with."""
    if isinstance(identifier, Metric):
        return identifier.fresh()
    if isinstance(identifier, dict) and identifier.get("class_name") in CLASSES:
        return CLASSES[identifier["class_name"]](**(identifier.get("config") or {}))
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):  # logged under the name given, as Keras ("acc" -> "acc", "val_acc")
            return MeanMetricWrapper(accuracy_for(loss), name=identifier)
        if key in _BY_NAME:
            metric = _BY_NAME[key]()
            metric.name = identifier
            return metric
        if key in losses.NAMES:  # a loss as a metric: its per-sample values, averaged
            loss_fn = losses.get(key)
            return MeanMetricWrapper(lambda y, p: loss_fn.per_sample(loss_fn.check_targets(y, p.shape[1]), p)[0],
                                     name=identifier)
    raise ValueError(f"unknown metric; expected 'accuracy', one of {sorted(_BY_NAME)}, a loss name or a "
                     f"convnet.metrics.Metric; received metric={identifier!r}")


__all__ = ["AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "MeanAbsoluteError", "MeanMetricWrapper",
           "MeanSquaredError", "Metric", "Precision", "Recall", "SparseCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "binary_accuracy", "categorical_accuracy",
           "get", "mean_absolute_error", "mean_squared_error", "sparse_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "top_k_categorical_accuracy"]
