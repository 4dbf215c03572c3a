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

from cnnkernels import release_cached_memory

_name_counts: defaultdict[str, int] = defaultdict(int)
REGISTRY: dict[str, type] = {}


def layer_classes() -> dict[str, type]:
    """Every layer and model class by name, for loading configs: the modules that define them are imported first
    (``import convnet`` loads its submodules only when they are used)."""
    from .. import functional, sequential  # noqa: F401  (registers Functional and Sequential)
    from . import containers  # noqa: F401  (Residual, Parallel)

    return REGISTRY


def _snake(name: str) -> str:
    """Keras's automatic names: Conv2D → conv2d, LeakyReLU → leaky_re_lu."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def clear_session(free_memory=True) -> None:
    """Keras's ``clear_session``: automatic layer names start afresh (conv2d, conv2d_1, ...), and with
    ``free_memory`` the array blocks the training loop's caching allocator holds go back to the OS
    (:func:`cnnkernels.release_cached_memory`)."""
    _name_counts.clear()
    if free_memory:
        release_cached_memory()


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


def check_image_input(layer, input_shape) -> None:
    """A layer that works on images must be given images (per sample (C, H, W) inside a model)."""
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} expects images (batch, height, width, channels); received "
                         f"per-sample shape {tuple(input_shape)}")


def user_view(layer, x: np.ndarray) -> np.ndarray:
    """``x`` (internal NCHW) as the user sees it: NHWC unless the layer works channels_first.
    A view, for layers whose arguments (axes, dims) are in the user's terms."""
    if x.ndim == 4 and getattr(layer, "_layout", None) != "channels_first":
        return x.transpose(0, 2, 3, 1)
    return x


def internal_array(layer, y: np.ndarray) -> np.ndarray:
    """The inverse of :func:`user_view`, contiguous."""
    if y.ndim == 4 and getattr(layer, "_layout", None) != "channels_first":
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(y)


def user_shape(layer, shape: tuple) -> tuple:
    """A per-sample internal shape in the user's terms (see :func:`user_view`)."""
    if len(shape) == 3 and getattr(layer, "_layout", None) != "channels_first":
        return (shape[1], shape[2], shape[0])
    return tuple(shape)


def internal_shape(layer, shape: tuple) -> tuple:
    if len(shape) == 3 and getattr(layer, "_layout", None) != "channels_first":
        return (shape[2], shape[0], shape[1])
    return tuple(shape)


class Layer:
    """Base class: forward/backward on NCHW or (N, features) arrays of ``convnet.floatx()``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    _multi_input = False  # merge layers take a list of inputs

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None, input_shape=None,
                 input_dim=None, batch_input_shape=None, batch_size=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unrecognized keyword arguments: {sorted(kwargs)}")
        if name is None:
            name = self._auto_name(_snake(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; received name={name!r}")
        self.name = name
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.regularizers: dict = {}  # weight name -> convnet.regularizers.Regularizer or None
        self.constraints: dict = {}  # weight name -> convnet.constraints.Constraint or None
        # a penalty on the layer's output, over the batch size, added to the loss (Keras 3's rule)
        from .. import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = False
        self.input_shape: tuple | None = None  # per sample, the kernels' layout (set by build)
        self.output_shape: tuple | None = None
        self._inbound_nodes: list = []  # one Node per call on symbolic tensors
        # Keras 2's way to start a Sequential model: Conv2D(..., input_shape=(28, 28, 1)).
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._declared_input_shape = None if input_shape is None else tuple(input_shape)

    @staticmethod
    def _auto_name(base: str) -> str:
        """Keras's automatic names: conv2d, conv2d_1, ... (reset by ``convnet.clear_session()``)."""
        count = _name_counts[base]
        _name_counts[base] += 1
        return base if count == 0 else f"{base}_{count}"

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

    def __call__(self, inputs, training=None, **kwargs):
        """On symbolic tensors (from ``convnet.Input``): record the call and return the output
        tensor. On arrays (the user's layout, batch first): build if needed and compute."""
        from .. import graph

        if kwargs:
            raise TypeError(f"{type(self).__name__} call got unrecognized keyword arguments: {sorted(kwargs)}")
        if graph.is_symbolic(inputs):
            return graph.call_symbolic(self, inputs)
        return self._call_eager(inputs, training)  # None: the layer's default (random layers augment)

    def _call_eager(self, inputs, training):
        from .. import graph
        from .._random import floatx

        layout = getattr(self, "data_format", None) or graph.CHANNELS_LAST
        arrays = list(inputs) if self._multi_input else [inputs]
        dtype = self.params[next(iter(self.params))].dtype if self.params else floatx()
        arrays = [graph.array_to_internal(np.asarray(a, dtype=dtype), layout) for a in arrays]
        shapes = [a.shape[1:] for a in arrays]
        if not self.built:
            self.build(shapes if self._multi_input else shapes[0])
        y = self.forward(arrays if self._multi_input else arrays[0], training)
        return graph.array_to_user(y, layout)

    # -- the graph --------------------------------------------------------------------------
    def _only_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has never been called on a symbolic tensor, so it has no {what}")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"layer {self.name!r} has been called {len(self._inbound_nodes)} times, so its "
                                 f"{what} is ambiguous; use the tensors returned by each call")
        return self._inbound_nodes[0]

    @property
    def input(self):
        """The symbolic tensor(s) this layer was called on (one call only), as Keras."""
        inputs = self._only_node("input").inputs
        return inputs if self._multi_input else inputs[0]

    @property
    def output(self):
        """The symbolic tensor this layer made (one call only), as Keras."""
        return self._only_node("output").outputs[0]

    # -- weights ----------------------------------------------------------------------------
    def _keras_weights(self) -> list[np.ndarray]:
        """Weights in Keras's order and shapes (views or copies): each trainable weight through
        :meth:`_keras_layout`, then the non-trainable ones."""
        return [*(self._keras_layout(key, value) for key, value in self.params.items()), *self.state.values()]

    def _assign_keras_weights(self, weights: list[np.ndarray]) -> None:
        for (key, target), value in zip(self.params.items(), weights):
            target[...] = self._internal_layout(key, value)
        for target, value in zip(self.state.values(), weights[len(self.params):]):
            target[...] = value

    def _keras_layout(self, key: str, array: np.ndarray) -> np.ndarray:
        """An array shaped like ``params[key]`` (a gradient, an optimizer slot) in Keras's layout."""
        return array

    def _internal_layout(self, key: str, array: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`_keras_layout`."""
        return array

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

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight in Keras's order and shapes; views, so writing into them changes the layer."""
        return list(self._keras_weights())

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return self.weights[: len(self.params)] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        return self.weights[len(self.params):] if self.trainable else self.weights

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
        from .. import regularizers

        config = {"name": self.name, "trainable": self.trainable}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        trainable = config.pop("trainable", True)
        layer = cls(**config)
        layer.trainable = bool(trainable)
        return layer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
