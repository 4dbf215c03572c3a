"""Branching containers for ResNet- and Inception-style blocks inside a Sequential model."""

from __future__ import annotations

import numpy as np

from .base import REGISTRY, Layer


def _as_layers(name, block) -> list[Layer]:
    layers = [block] if isinstance(block, Layer) else list(block) if isinstance(block, (list, tuple)) else None
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise ValueError(f"{name} must be a layer or a non-empty list of layers; received {block!r}")
    return layers


def _run_forward(layers, x, training):
    for layer in layers:
        x = layer.forward(x, training)
    return x


def _run_backward(layers, dy):
    for layer in reversed(layers):
        dy = layer.backward(dy)
    return dy


def _build_chain(layers, shape):
    for layer in layers:
        layer.build(shape)
        shape = layer.output_shape
    return shape


def _layer_config(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(entry):
    """A layer from ``{"class_name": ..., "config": ...}``."""
    if not isinstance(entry, dict) or entry.get("class_name") not in REGISTRY:
        raise ValueError(f"unknown layer entry {entry!r}")
    return REGISTRY[entry["class_name"]].from_config(entry["config"])


class _Container(Layer):
    """A layer made of sub-layers; their weights are its weights, in order."""

    def sublayers(self) -> list[Layer]:
        raise NotImplementedError

    def _keras_weights(self):
        return [w for layer in self.sublayers() for w in layer._keras_weights()]

    def get_weights(self):
        return [w for layer in self.sublayers() for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        expected = sum(len(layer._expected_shapes()) for layer in self.sublayers())
        if len(weights) != expected:
            raise ValueError(f"layer {self.name!r} expects {expected} weight arrays; received {len(weights)}")
        for layer in self.sublayers():
            count = len(layer._expected_shapes())
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def trainable_variables(self):
        if not self.trainable:
            return []
        return [variable for layer in self.sublayers() for variable in layer.trainable_variables()]

    def count_trainable_params(self):
        return sum(layer.count_trainable_params() for layer in self.sublayers()) if self.trainable else 0


class Residual(_Container):
    """output = block(x) + shortcut(x): a ResNet block.

    ``shortcut`` is None (identity: block must keep the shape) or a layer / list of
    layers, e.g. a 1×1 ``Conv2D`` projection when the block changes channels or size.
    """

    def __init__(self, block, shortcut=None, name=None):
        super().__init__(name=name)
        self.block = _as_layers("block", block)
        self.shortcut = None if shortcut is None else _as_layers("shortcut", shortcut)

    def sublayers(self):
        return self.block + (self.shortcut or [])

    def build(self, input_shape):
        block_shape = _build_chain(self.block, input_shape)
        shortcut_shape = input_shape if self.shortcut is None else _build_chain(self.shortcut, input_shape)
        if tuple(block_shape) != tuple(shortcut_shape):
            raise ValueError(f"Residual {self.name!r}: the block's output {tuple(block_shape)} does not match the "
                             f"shortcut's {tuple(shortcut_shape)}; give a projection shortcut (e.g. a 1x1 Conv2D)")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return self.block[-1].output_shape

    def forward(self, x, training=False):
        main = _run_forward(self.block, x, training)
        side = x if self.shortcut is None else _run_forward(self.shortcut, x, training)
        return main + side

    def backward(self, dy):
        dx = _run_backward(self.block, dy)
        return dx + (dy if self.shortcut is None else _run_backward(self.shortcut, dy))

    def get_config(self):
        return {"name": self.name, "block": [_layer_config(layer) for layer in self.block],
                "shortcut": None if self.shortcut is None else [_layer_config(layer) for layer in self.shortcut]}

    @classmethod
    def from_config(cls, config):
        shortcut = config.get("shortcut")
        return cls([layer_from_config(e) for e in config["block"]],
                   None if shortcut is None else [layer_from_config(e) for e in shortcut], name=config.get("name"))


class Parallel(_Container):
    """Runs branches side by side on the same input and concatenates their outputs
    along channels (features): an Inception block. Branches must agree on the other axes."""

    def __init__(self, branches, name=None):
        super().__init__(name=name)
        if not isinstance(branches, (list, tuple)) or len(branches) < 2:
            raise ValueError(f"Parallel needs a list of at least two branches; received {branches!r}")
        self.branches = [_as_layers(f"branch {i}", branch) for i, branch in enumerate(branches)]

    def sublayers(self):
        return [layer for branch in self.branches for layer in branch]

    def build(self, input_shape):
        shapes = [tuple(_build_chain(branch, input_shape)) for branch in self.branches]
        if len({shape[1:] for shape in shapes}) != 1:
            raise ValueError(f"Parallel {self.name!r}: branch outputs {shapes} differ beyond the channel axis")
        self._channels = [shape[0] for shape in shapes]
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        first = self.branches[0][-1].output_shape
        return (sum(self._channels), *first[1:])

    def forward(self, x, training=False):
        return np.concatenate([_run_forward(branch, x, training) for branch in self.branches], axis=1)

    def backward(self, dy):
        bounds = np.cumsum([0, *self._channels])
        dx = None
        for branch, start, stop in zip(self.branches, bounds[:-1], bounds[1:]):
            grad = _run_backward(branch, np.ascontiguousarray(dy[:, start:stop]))
            dx = grad if dx is None else dx + grad
        return dx

    def get_config(self):
        return {"name": self.name, "branches": [[_layer_config(layer) for layer in branch] for branch in self.branches]}

    @classmethod
    def from_config(cls, config):
        return cls([[layer_from_config(e) for e in branch] for branch in config["branches"]], name=config.get("name"))
