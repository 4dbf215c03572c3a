"""Residual and Parallel: ResNet- and Inception-style blocks for Sequential models.

Conveniences over the functional API: each is a small :class:`convnet.Model` whose
graph (the block's layers, then ``Add`` or ``Concatenate``) is traced the first time
it is called. Their weights keep the order of the block's layers, then the shortcut's
(or the branches' in turn), as files saved by earlier versions expect.
"""

from __future__ import annotations

from .. import graph
from ..functional import Model
from .base import Layer
from .merging import Add, Concatenate


def _as_layers(name, block) -> list[Layer]:
    layers = [block] if isinstance(block, Layer) else list(block) if isinstance(block, (list, tuple)) else None
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise ValueError(f"{name} must be a layer or a non-empty list of layers; received {block!r}")
    return layers


def _chain(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def _configs(layers):
    from ..serialization import layer_config

    return [layer_config(layer) for layer in layers]


def _from_configs(entries):
    from ..serialization import layer_from_config

    return [layer_from_config(entry) for entry in entries]


class _Block(Model):
    """A layer made of layers: ``build`` takes one sample's shape in the kernels' layout, as any
    layer's does (inside a model it is built from the tensors it is called on instead)."""

    def build(self, input_shape):
        if self._graph is not None:
            return
        inputs = graph.Input(tuple(input_shape))
        inputs.data_format = graph.INTERNAL
        self._trace([inputs])


class Residual(_Block):
    """output = block(x) + shortcut(x): a ResNet block.

    ``shortcut`` is None (identity: block must keep the shape) or a layer / list of
    layers, e.g. a 1×1 ``Conv2D`` projection when the block changes channels or size.
    """

    def __init__(self, block, shortcut=None, name=None):
        self.block = _as_layers("block", block)
        self.shortcut = None if shortcut is None else _as_layers("shortcut", shortcut)
        self._add = Add()
        super().__init__(name=name)

    def call(self, x, training=None):
        main = _chain(self.block, x)
        side = x if self.shortcut is None else _chain(self.shortcut, x)
        if main.shape != side.shape:
            raise ValueError(f"Residual {self.name!r}: the block's output {main.shape[1:]} does not match the "
                             f"shortcut's {side.shape[1:]}; give a projection shortcut (e.g. a 1x1 Conv2D)")
        return self._add([main, side])

    def _sublayers(self):
        return [*self.block, *(self.shortcut or []), self._add]

    def get_config(self):
        return {"name": self.name, "block": _configs(self.block),
                "shortcut": None if self.shortcut is None else _configs(self.shortcut)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        shortcut = config.get("shortcut")
        return cls(_from_configs(config["block"]), None if shortcut is None else _from_configs(shortcut),
                   name=config.get("name"))


class Parallel(_Block):
    """Runs branches side by side on the same input and concatenates their outputs
    along channels (features): an Inception block. Branches must agree on the other axes."""

    def __init__(self, branches, name=None):
        if not isinstance(branches, (list, tuple)) or len(branches) < 2:
            raise ValueError(f"Parallel needs a list of at least two branches; received {branches!r}")
        self.branches = [_as_layers(f"branch {i}", branch) for i, branch in enumerate(branches)]
        self._concatenate = None
        super().__init__(name=name)

    def call(self, x, training=None):
        outputs = [_chain(branch, x) for branch in self.branches]
        channels_axis = 1 if x.data_format in (graph.CHANNELS_FIRST, graph.INTERNAL) else -1
        self._concatenate = Concatenate(axis=channels_axis)
        try:
            return self._concatenate(outputs)
        except ValueError:
            raise ValueError(f"Parallel {self.name!r}: branch outputs {[o.shape[1:] for o in outputs]} differ "
                             f"beyond the channel axis") from None

    def _sublayers(self):
        return [layer for branch in self.branches for layer in branch] + \
            ([self._concatenate] if self._concatenate is not None else [])

    def get_config(self):
        return {"name": self.name, "branches": [_configs(branch) for branch in self.branches]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls([_from_configs(branch) for branch in config["branches"]], name=config.get("name"))
