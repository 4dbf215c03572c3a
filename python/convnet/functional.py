"""``Model``: a graph of layers from inputs to outputs, Keras's functional API.

``Model(inputs, outputs)`` runs the graph recorded by calling layers on the tensors
of :func:`convnet.Input`: any DAG, several inputs and outputs, shared layers, and
models nested as layers. A subclass may instead define ``call(inputs)`` in terms of
layers; the graph is then traced from it the first time the model is built.

The model holds the graph and the weights; :mod:`convnet.training` runs ``fit``,
``evaluate`` and ``predict``, and :mod:`convnet.io` saves and loads.
"""

from __future__ import annotations

import json

import numpy as np

from . import graph
from . import training as trainer
from .graph import Graph, InputLayer, KerasTensor
from .layers.base import REGISTRY, Layer


class Model(Layer):
    """A model from ``inputs`` to ``outputs`` (KerasTensors from ``convnet.Input`` and layer calls).

    Parameters
    ----------
    inputs : KerasTensor or list of KerasTensor
    outputs : KerasTensor or list of KerasTensor
    name : str, optional
        Defaults to "functional", "functional_1", ... as Keras names them.
    trainable : bool
        False freezes every layer of the model.
    """

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if name is None and type(self) is Model:
            name = Layer._auto_name("functional")
        self._graph: Graph | None = None
        super().__init__(name=name, trainable=trainable, **kwargs)
        self.compiled = False
        self.stop_training = False
        self.optimizer = None
        self.loss = None
        self.history = None
        self.metadata: dict = {}  # saved with the model: e.g. class names, image size (JSON-serialisable)
        self.needs_input_grad = True  # cleared by an outer graph when nothing upstream wants it
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model needs both inputs and outputs (or subclass it and define call())")
            self._set_graph(inputs, outputs)
        elif type(self) is Model:
            raise ValueError("Model(inputs, outputs) needs its inputs and outputs; for a linear stack use "
                             "Sequential, or subclass Model and define call()")

    # -- the graph --------------------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        for what, value in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(value, dict):
                raise TypeError(f"Model {what} given as a dict are not supported; pass a list")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self._graph = Graph(graph.flatten_tensors(inputs), graph.flatten_tensors(outputs))
        self._multi_input = len(self._graph.inputs) > 1
        for layer in self._sublayers():
            if not layer.built:
                raise ValueError(f"layer {layer.name!r} is not built")
        self.input_shape = [t.internal_shape for t in self._graph.inputs]
        self.output_shape = [t.internal_shape for t in self._graph.outputs]
        if self._single_input:
            self.input_shape = self.input_shape[0]
        if self._single_output:
            self.output_shape = self.output_shape[0]
        self.built = True

    def call(self, inputs, training=None):
        """Override in a subclass: the model's computation in terms of layer calls."""
        raise NotImplementedError

    def build(self, input_shape):
        """Trace a subclass's ``call`` for inputs of ``input_shape`` (the user's layout; a leading
        batch axis, as Keras's ``build((None, 28, 28, 1))``, is allowed)."""
        if self._graph is not None:
            return
        shape = tuple(input_shape)
        if len(shape) in (2, 4):
            shape = shape[1:]
        inputs = graph.Input(shape)
        inputs.data_format = self._layers_data_format()
        self._trace([inputs])

    def _build_for_tensors(self, tensors):
        """Build as a layer of another model, for the tensors it is first called on."""
        if self._graph is not None:
            return
        inputs = []
        for tensor in tensors:
            made = graph.Input(tensor.shape[1:], dtype=tensor.dtype)
            made.data_format = tensor.data_format
            inputs.append(made)
        self._trace(inputs)

    def _layers_data_format(self):
        return None

    def _trace(self, inputs):
        if type(self).call is Model.call:
            raise ValueError(f"model {self.name!r} has no inputs to build from")
        self._set_graph(inputs[0] if len(inputs) == 1 else inputs,
                        self.call(inputs[0] if len(inputs) == 1 else inputs))

    def _require_graph(self, what="this"):
        if self._graph is None:
            raise ValueError(f"model {self.name!r} is not built: give it an Input, call build(), or call it on "
                             f"data before {what}")
        return self._graph

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._require_graph("reading inputs").inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._require_graph("reading outputs").outputs)

    @property
    def input(self):
        inputs = self.inputs
        return inputs[0] if self._single_input else inputs

    @property
    def output(self):
        outputs = self.outputs
        return outputs[0] if self._single_output else outputs

    @property
    def layers(self) -> list:
        """The layers in Keras's order (InputLayers first, as Keras lists them for functional models)."""
        return list(self._graph.layers) if self._graph is not None else []

    def _sublayers(self) -> list[Layer]:
        return [layer for layer in self.layers if not isinstance(layer, InputLayer)]

    def get_layer(self, name=None, index=None):
        """A layer by ``name`` or by position ``index`` in :attr:`layers`."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs exactly one of name= or index=")
        layers = self.layers
        if index is not None:
            if not isinstance(index, (int, np.integer)) or not -len(layers) <= index < len(layers):
                raise ValueError(f"index {index!r} is out of range: the model has {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[layer.name for layer in layers]}")

    # -- computing --------------------------------------------------------------------------
    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As Keras: freezing (or unfreezing) a model does the same to every layer in it."""
        self._trainable = bool(value)
        if self._graph is not None:
            for layer in self._sublayers():
                layer.trainable = self._trainable

    def compute_output_shape(self, input_shape):
        self._require_graph()
        return self.output_shape if self._single_output else list(self.output_shape)

    def forward(self, x, training=False):
        """Run on arrays in the kernels' layout (as a layer inside another model)."""
        outputs, self._tape = self._require_graph().forward(x if self._multi_input else [x], training)
        return outputs[0] if self._single_output else outputs

    def backward(self, dy):
        grads = self._graph.backward(self._tape, [dy] if self._single_output else dy, self.needs_input_grad)
        return grads if self._multi_input else grads[0]

    def _run(self, xs, training):
        """Outputs (kernels' layout) for user-layout input arrays, and the tape for :meth:`_backprop`."""
        g = self._require_graph()
        internal = [graph.array_to_internal(x, t.data_format) for x, t in zip(xs, g.inputs)]
        return g.forward(internal, training)

    def _backprop(self, tape, output_grads):
        """Fill every layer's ``grads`` from the gradients of the outputs; no input gradient. A layer
        the loss does not reach is left without gradients (not with the last step's)."""
        for leaf in graph._leaves(self):
            leaf.grads.clear()
        self._graph.backward(tape, output_grads, input_grads=False)

    def _outputs_to_user(self, outputs):
        return [graph.array_to_user(y, t.data_format) for y, t in zip(outputs, self._graph.outputs)]

    def _call_eager(self, inputs, training):
        outputs, _ = self._run(trainer.standardize_inputs(self, inputs), training)
        result = self._outputs_to_user(outputs)
        return result[0] if self._single_output else result

    # -- weights ----------------------------------------------------------------------------
    def _keras_weights(self):
        return [w for layer in self._sublayers() for w in layer._keras_weights()]

    @property
    def weights(self):
        return [w for layer in self._sublayers() for w in layer.weights]

    @property
    def trainable_weights(self):
        return [w for layer in self._sublayers() for w in layer.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self._sublayers() for w in layer.non_trainable_weights]

    def get_weights(self) -> list[np.ndarray]:
        """All weights in Keras's order and shapes (copies)."""
        self._require_graph("get_weights")
        return [w for layer in self._sublayers() for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        self._require_graph("set_weights")
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self._sublayers()]
        if len(weights) != sum(counts):
            raise ValueError(f"model {self.name!r} has {sum(counts)} weight arrays; received {len(weights)}")
        for layer, count in zip(self._sublayers(), counts):
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def trainable_variables(self):
        if not self.trainable:
            return []
        return [variable for layer in self._sublayers() for variable in layer.trainable_variables()]

    def count_params(self) -> int:
        self._require_graph("count_params")
        return sum(layer.count_params() for layer in self._sublayers())

    def count_trainable_params(self) -> int:
        return sum(layer.count_trainable_params() for layer in self._sublayers()) if self.trainable else 0

    # -- training (see convnet.training) ------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, **kwargs):
        """Choose the optimizer, the loss (one, or one per output) and metrics ("accuracy")."""
        trainer.compile_model(self, optimizer, loss, loss_weights, metrics, **kwargs)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a :class:`convnet.callbacks.History` (Keras's arguments)."""
        return trainer.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                            shuffle, class_weight, sample_weight, initial_epoch, steps_per_epoch,
                            validation_steps, validation_batch_size, validation_freq)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics with inference behaviour: a float, a list, or a dict."""
        return trainer.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x`` in batches, with inference behaviour (a list for several outputs)."""
        return trainer.predict(self, x, batch_size, verbose, steps)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; the loss (and metrics, as a list, if any)."""
        return trainer.train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        return trainer.evaluate(self, x, y, None, 0, sample_weight, None, return_dict, single_batch=True)

    def predict_on_batch(self, x):
        return trainer.predict(self, x, None, 0, None, single_batch=True)

    def activations(self, x, layers=None) -> dict:
        """{layer name: its output for ``x`` (user's layout)} for every layer (or those named), in one
        inference pass: the public way to look inside a model (feature maps)."""
        return trainer.activations(self, x, layers)

    # -- summary, config, saving --------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Layer, output shape, parameter counts (and, for a graph, what each layer reads), as Keras."""
        from .summary import print_summary

        print_summary(self, print_fn or print)

    def get_config(self) -> dict:
        from .serialization import functional_config

        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .serialization import functional_from_config

        return functional_from_config(cls, config)

    def to_json(self, **kwargs) -> str:
        """The architecture as Keras's JSON: ``{"class_name": ..., "config": ...}``."""
        return json.dumps({"class_name": type(self).__name__ if type(self) is not Model else "Functional",
                           "config": self.get_config()}, **kwargs)

    def save(self, path) -> None:
        """Architecture (JSON) and weights in one ``.npz`` file, written atomically; no pickle."""
        from . import io

        io.save_model(self, path)

    def save_weights(self, path) -> None:
        from . import io

        io.save_weights(self, path)

    def load_weights(self, path) -> None:
        from . import io

        io.load_weights(self, path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


REGISTRY["Functional"] = Model
