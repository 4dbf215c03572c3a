"""Sequential: a linear stack of layers, a :class:`convnet.Model` whose graph is a chain.

The user's images are channels_last (N, H, W, C) unless the layers say
``data_format="channels_first"``; they are converted to the kernels' NCHW once
per batch on the way in, and image outputs are converted back on the way out.
"""

from __future__ import annotations

from . import graph
from .functional import Model
from .graph import InputLayer, KerasTensor
from .layers.base import Layer


class Sequential(Model):
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        May start with ``convnet.Input(shape)`` (or a first layer given ``input_shape=``);
        the model is then built at once. Otherwise it is built from the first data it
        sees, or by :meth:`build`.
    name : str, optional
        Defaults to "sequential", "sequential_1", ... as Keras names them.
    """

    def __init__(self, layers=None, trainable=True, name=None):
        self._stack: list[Layer] = []
        self._input_layer: InputLayer | None = None
        super().__init__(name=name, trainable=trainable)
        names: set[str] = set()
        for layer in layers or []:  # stacked, then built once: one build per layer was quadratic (20,000: 73 s)
            self._append(layer, names)
        if self._stack and self._input_layer is not None:
            self._rebuild()

    # -- the stack --------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The layers, without the input (as Keras lists a Sequential model's layers)."""
        return list(self._stack)

    def _sublayers(self):
        return list(self._stack)

    def add(self, layer) -> None:
        """Append ``layer``; a built model stays built, its existing weights untouched."""
        if self._append(layer, {existing.name for existing in self._stack}) and self._input_layer is not None:
            try:
                self._rebuild()
            except Exception:
                self._stack.pop()
                raise

    def _append(self, layer, names: set[str]) -> bool:
        """Put ``layer`` on the stack, unbuilt (an Input becomes the model's input instead); True if it was stacked.
        ``names`` holds the names already on the stack and gets this one."""
        if isinstance(layer, KerasTensor) and layer.node is not None and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("Input must be the first layer of a Sequential model")
            self._input_layer = layer
            return False
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {type(layer).__name__}")
        if layer.name in names:
            raise ValueError(f"a layer named {layer.name!r} is already in the model")
        if not self._stack and self._input_layer is None:
            shape = layer._declared_input_shape
            if shape is None and isinstance(layer, Model) and layer._graph is not None and len(layer.inputs) == 1:
                shape = layer.inputs[0].shape[1:]  # a built model as the first layer: its input starts this one
            if shape is not None:
                self._input_layer = graph.Input(shape).node.layer
        self._stack.append(layer)
        names.add(layer.name)
        return True

    def pop(self) -> Layer:
        """Remove and return the last layer; the others keep their weights."""
        if not self._stack:
            raise TypeError("there are no layers in the model")
        layer = self._stack.pop()
        self._drop_graph()
        if self._stack and self._input_layer is not None:
            self._rebuild()
        return layer

    def _layers_data_format(self):
        formats = set()
        for layer in self._stack:
            inner = layer._sublayers() if hasattr(layer, "_sublayers") else []
            formats |= {f for f in (getattr(item, "data_format", None) for item in [layer, *inner]) if f}
        if len(formats) > 1:
            raise ValueError(f"layers disagree on data_format: {sorted(formats)}")
        return formats.pop() if formats else graph.CHANNELS_LAST

    def _drop_graph(self):
        """Forget the chain's nodes (the layers keep their weights)."""
        if self._graph is not None:
            for node in self._graph.nodes:
                if node in node.layer._inbound_nodes:
                    node.layer._inbound_nodes.remove(node)
        self._graph = None
        self.built = False

    def _rebuild(self, data_format=None):
        """(Re)make the chain from the input: built layers keep their weights, new ones are built."""
        if not self._stack:
            return
        counts = [len(layer._inbound_nodes) for layer in self._stack]
        self._drop_graph()
        inputs = self._input_layer.output
        inputs.data_format = data_format or self._layers_data_format()
        x = inputs
        try:
            for layer in self._stack:
                x = layer(x)
        except Exception:
            for layer, count in zip(self._stack, counts):
                del layer._inbound_nodes[count:]
            raise
        self._set_graph(inputs, x)

    def build(self, input_shape=None) -> None:
        """Create every layer's weights for ``input_shape``: one sample's shape in the user's layout,
        e.g. (20, 20, 3), or Keras's (None, 20, 20, 3)."""
        if not self._stack:
            raise ValueError("the model has no layers")
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("build needs input_shape (the model has no Input)")
            self._rebuild()
            return
        shape = tuple(input_shape)
        if len(shape) in (2, 4):
            shape = shape[1:]
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"input shape must be (features,) or an image (H, W, C); received {input_shape}") \
                from None
        if self._input_layer is None or self._input_layer.shape != shape:
            if len(shape) not in (1, 3):
                raise ValueError(f"input shape must be (features,) or an image (H, W, C); received {input_shape}")
            self._input_layer = graph.Input(shape).node.layer
        self._rebuild()

    def _declared_shape(self):
        return self._input_layer.shape if self._input_layer is not None else None

    def _build_for_tensors(self, tensors):
        if self._graph is not None:
            return
        if len(tensors) != 1:
            raise ValueError(f"a Sequential model takes one input; received {len(tensors)}")
        if self._input_layer is None:
            self._input_layer = graph.Input(tensors[0].shape[1:], dtype=tensors[0].dtype).node.layer
        self._rebuild(tensors[0].data_format)

    # -- configuration ----------------------------------------------------------------------
    def get_config(self) -> dict:
        from .serialization import layer_config

        return {"name": self.name, "trainable": self.trainable,
                "input_shape": list(self._input_layer.shape) if self._input_layer is not None else None,
                "layers": [layer_config(layer) for layer in self._stack]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .serialization import layer_from_config

        model = cls([layer_from_config(entry) for entry in config["layers"]], name=config.get("name"))
        if config.get("input_shape"):
            model.build(config["input_shape"])
        model.trainable = config.get("trainable", True)
        return model
