"""The Layer base class.

Inside a model every image tensor is NCHW (the kernels' layout) and every flat
tensor is (N, features); the model converts the user's channels_last input
once per batch. Shapes given to :meth:`Layer.build` are per-sample internal
shapes: (C, H, W) or (features,).

A layer keeps its trainable weights in ``params`` and their gradients (after
:meth:`backward`) in ``grads``, under the same names; non-trainable weights
(BatchNormalization's moving statistics) live in ``state``. ``get_weights``
returns them in Keras's order and shapes.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

_name_counts: defaultdict[str, int] = defaultdict(int)
REGISTRY: dict[str, type] = {}


def _snake(name: str) -> str:
    """Keras's automatic names: Conv2D → conv2d, LeakyReLU → leaky_re_lu."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def reset_names() -> None:
    """Start automatic layer names afresh (conv2d, conv2d_1, ...); ``convnet.clear_session()``."""
    _name_counts.clear()


def check_positive_int(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={value!r}")
    return int(value)


def check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1); received {name}={value!r}")
    return float(value)


def check_data_format(value) -> str | None:
    if value in (None, "channels_last", "channels_first"):
        return value
    raise ValueError(f"data_format must be 'channels_last' or 'channels_first'; received data_format={value!r}")


class Layer:
    """Base class: forward/backward on NCHW or (N, features) arrays of ``convnet.floatx()``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    def __init__(self, name: str | None = None, trainable: bool = True):
        if name is None:
            base = _snake(type(self).__name__)
            count = _name_counts[base]
            _name_counts[base] += 1
            name = base if count == 0 else f"{base}_{count}"
        elif not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; received name={name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.built = False
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None

    # -- building ---------------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        """Create weights for a per-sample internal ``input_shape``."""
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    # -- computing --------------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradient with respect to the last forward's input; fills ``grads``."""
        raise NotImplementedError

    def __call__(self, x, training=False):
        return self.forward(x, training)

    # -- weights ----------------------------------------------------------------------------
    def _keras_weights(self) -> list[np.ndarray]:
        """Weights in Keras's order and shapes (views or copies)."""
        return [*self.params.values(), *self.state.values()]

    def _assign_keras_weights(self, weights: list[np.ndarray]) -> None:
        for target, value in zip([*self.params.values(), *self.state.values()], weights):
            target[...] = value

    def _expected_shapes(self) -> list[tuple]:
        return [w.shape for w in self._keras_weights()]

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(w, copy=True) for w in self._keras_weights()]

    def set_weights(self, weights) -> None:
        expected = self._expected_shapes()
        weights = list(weights)
        if len(weights) != len(expected):
            raise ValueError(f"layer {self.name!r} expects {len(expected)} weight arrays; received {len(weights)}")
        for index, (value, shape) in enumerate(zip(weights, expected)):
            value = np.asarray(value)
            if value.shape != shape:
                raise ValueError(
                    f"layer {self.name!r} weight {index} must have shape {shape}; received shape {value.shape}")
        self._assign_keras_weights([np.asarray(w) for w in weights])  # cast to each weight's dtype on assignment

    def trainable_variables(self) -> list[tuple["Layer", str]]:
        """(layer, name) of each weight the optimizer updates: ``layer.params[name]``
        with gradient ``layer.grads[name]``, in a stable order."""
        return [(self, key) for key in self.params] if self.trainable else []

    def count_params(self) -> int:
        return int(sum(w.size for w in self._keras_weights()))

    def count_trainable_params(self) -> int:
        return int(sum(w.size for w in self.params.values())) if self.trainable else 0

    # -- configuration ----------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        trainable = config.pop("trainable", True)
        layer = cls(**config)
        layer.trainable = bool(trainable)
        return layer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
