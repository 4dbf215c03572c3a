"""Symbolic tensors and the layer graph behind Keras's functional API.

``Input(shape)`` returns a :class:`KerasTensor`; calling a layer on KerasTensors
records a :class:`Node` (the layer, the tensors it read, the tensors it made) and
returns new KerasTensors. :class:`Graph` orders the nodes between some inputs
and outputs and runs them forward and backward.

Layouts. A tensor's ``shape`` is the user's: ``(None, H, W, C)`` for channels_last
images. Layers compute on the kernels' layout, per sample ``(C, H, W)``, so every
tensor carries the layout its shape is written in: ``"channels_last"``,
``"channels_first"`` or ``"internal"`` (the graphs inside containers, already NCHW),
or ``None`` until the first layer that reads it decides. Only a model's inputs
and outputs are ever converted.
"""

from __future__ import annotations

import threading

import numpy as np

import cnnkernels

from ._random import floatx

CHANNELS_LAST, CHANNELS_FIRST, INTERNAL = "channels_last", "channels_first", "internal"


def to_internal(shape, data_format) -> tuple:
    """Per-sample shape in the kernels' layout: (H, W, C) → (C, H, W) for channels_last images."""
    shape = tuple(shape)
    if len(shape) == 3 and data_format in (CHANNELS_LAST, None):
        return (shape[2], shape[0], shape[1])
    return shape


def to_user(shape, data_format) -> tuple:
    """Inverse of :func:`to_internal`."""
    shape = tuple(shape)
    if len(shape) == 3 and data_format in (CHANNELS_LAST, None):
        return (shape[1], shape[2], shape[0])
    return shape


def array_to_internal(x: np.ndarray, data_format) -> np.ndarray:
    if x.ndim == 4 and data_format in (CHANNELS_LAST, None):
        return cnnkernels.to_channels_first(x)
    return np.ascontiguousarray(x)


def array_to_user(y: np.ndarray, data_format) -> np.ndarray:
    if y.ndim == 4 and data_format in (CHANNELS_LAST, None):
        return cnnkernels.to_channels_last(y)
    return y


class KerasTensor:
    """A symbolic tensor: a shape (batch axis None) and where it comes from; holds no data."""

    def __init__(self, shape, dtype=None, data_format=None, node=None, index=0, name=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype or floatx())
        self.data_format = data_format
        self.node = node  # the Node that made it
        self.index = index  # which of that node's outputs it is
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def internal_shape(self) -> tuple:
        return to_internal(self.shape[1:], self.data_format)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"


class Node:
    """One call of ``layer`` on ``inputs`` (KerasTensors) that made ``outputs``."""

    def __init__(self, layer, inputs, outputs):
        self.layer, self.inputs, self.outputs = layer, list(inputs), list(outputs)


_ACTIVITY = threading.local()  # the activity penalties of the forward passes since the last take


def set_activity_scale(scale: float) -> None:
    """The factor on activity penalties' gradients (an MPI rank's share n / N of the global batch)."""
    _ACTIVITY.scale = scale


def take_activity_loss() -> float:
    """Σ of the activity regularizers' penalties (each over its batch size) of the forward passes run
    by this Python thread since the last call; the trainer adds it to the loss, as Keras does."""
    loss, _ACTIVITY.loss = getattr(_ACTIVITY, "loss", 0.0), 0.0
    return loss


def is_symbolic(value) -> bool:
    if isinstance(value, KerasTensor):
        return True
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, KerasTensor) for v in value)


def flatten_tensors(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _call_layout(layer, tensors) -> str:
    """The layout a call works in: the layer's own data_format, else its inputs', else channels_last."""
    own = getattr(layer, "data_format", None)
    given = {t.data_format for t in tensors if t.data_format is not None and t.ndim == 4}
    if INTERNAL in given:
        return INTERNAL
    if own and given and given != {own}:
        raise ValueError(f"layer {layer.name!r} (data_format={own!r}) received tensors in {sorted(given)}; "
                         "a model must use one data format")
    if len(given) > 1:
        raise ValueError(f"layer {layer.name!r} received tensors in several data formats: {sorted(given)}")
    return own or (given.pop() if given else CHANNELS_LAST)


def call_symbolic(layer, inputs):
    """Build ``layer`` for ``inputs`` if needed, record the call, and return its output tensor(s)."""
    tensors = flatten_tensors(inputs)
    layout = _call_layout(layer, tensors)
    for tensor in tensors:
        if tensor.data_format is None and tensor.ndim == 4:
            tensor.data_format = layout  # the first reader of an Input decides its layout
    shapes = [t.internal_shape for t in tensors]
    layer._layout = layout
    if not layer.built and hasattr(layer, "_build_for_tensors"):  # a model traces its own graph
        layer._build_for_tensors(tensors)
    multi = getattr(layer, "_multi_input", False)
    if not multi and len(tensors) != 1:
        raise ValueError(f"layer {layer.name!r} takes one input; received {len(tensors)} tensors")
    if multi and not isinstance(inputs, (list, tuple)):
        raise ValueError(f"layer {layer.name!r} takes a list of tensors; received one tensor")
    shape_arg = shapes if multi else shapes[0]
    try:
        if not layer.built:
            layer.build(shape_arg)
        out_shape = layer.compute_output_shape(shape_arg)
    except ValueError as exc:
        raise ValueError(f"layer {layer.name!r}: {exc}") from None
    out_shapes = out_shape if isinstance(out_shape, list) else [out_shape]
    node = Node(layer, tensors, [])
    node.outputs = [KerasTensor((None, *to_user(s, layout)), tensors[0].dtype, layout if len(s) == 3 else None,
                                node, i, name=f"{layer.name}_{len(layer._inbound_nodes)}_{i}")
                    for i, s in enumerate(out_shapes)]
    layer._inbound_nodes.append(node)
    return node.outputs if isinstance(out_shape, list) else node.outputs[0]


def _leaves(layer) -> list:
    """The layers that own weights under ``layer``: itself, or a nested model's layers, recursively."""
    inner = getattr(layer, "_sublayers", None)
    if inner is None:
        return [layer]
    return [leaf for sub in inner() for leaf in _leaves(sub)]


def _has_weights(layer) -> bool:
    return any(leaf.params for leaf in _leaves(layer))


def _cache_of(layer) -> dict:
    """What a forward pass left on the layer for its backward pass: its attributes as that call left them (a
    shared layer's next call replaces them before the first call's backward). The whole dict, copied in C:
    picking the private names out took 4 µs a layer, 40 µs of the tutorial model's training step."""
    return vars(layer).copy()


def _activations_after(nodes, outputs) -> dict:
    """{id(node): the call after it} where a call's one output feeds nothing but a call of an activation layer that
    the first layer can run inside its own (Conv2D, then ReLU or LeakyReLU): the pairs :meth:`Graph._run` fuses
    when both layers' settings allow it at the time (the model's outputs stay as they are)."""
    readers: dict[int, list] = {}
    for node in nodes:
        for tensor in node.inputs:
            readers.setdefault(id(tensor), []).append(node)
    returned = {id(t) for t in outputs}
    pairs = {}
    for node in nodes:
        if len(node.outputs) != 1 or not hasattr(node.layer, "_forward_activated"):
            continue
        after = readers.get(id(node.outputs[0]), [])
        if (id(node.outputs[0]) not in returned and len(after) == 1 and len(after[0].inputs) == 1
                and hasattr(after[0].layer, "_fused_slope")):
            pairs[id(node)] = after[0]
    return pairs


def _fused_slope(layer, activation_layer):
    """The (leaky) ReLU's slope if ``layer`` can apply ``activation_layer`` inside its call now, else None."""
    if not layer._absorbs_activation() or activation_layer.activity_regularizer is not None:
        return None
    return activation_layer._fused_slope()


class Graph:
    """The nodes between ``inputs`` and ``outputs``, ordered as Keras 3 orders them.

    ``nodes`` run in a valid order (each after the nodes it reads); ``layers`` lists each
    layer once, InputLayers included, by decreasing depth and then by first traversal
    from the outputs: Keras's ``Functional.layers``, so weights line up with Keras's.
    """

    def __init__(self, inputs, outputs):
        self.inputs, self.outputs = list(inputs), list(outputs)
        for tensor in [*self.inputs, *self.outputs]:
            if not isinstance(tensor, KerasTensor):
                raise TypeError(f"inputs and outputs must be KerasTensors (from Input() or a layer call); "
                                f"received {type(tensor).__name__}")
        input_ids = {id(t) for t in self.inputs}
        if len(input_ids) != len(self.inputs):
            raise ValueError("the same input tensor is listed twice")
        finished, in_progress = set(), set()
        ordered: list[Node] = []  # inputs -> outputs (DFS post-order)
        traversal: dict[int, int] = {}  # id(layer) -> first traversal index

        def visit(tensor):
            node = tensor.node
            if node is None or id(node) in finished:
                return
            is_input_node = isinstance(node.layer, InputLayer)
            if not is_input_node and id(tensor) in input_ids:
                return  # a declared input made by a layer: the graph starts here
            if is_input_node and id(tensor) not in input_ids:
                raise ValueError(f"Graph disconnected: {tensor.name!r} is needed but is not among the model's "
                                 f"inputs {[t.name for t in self.inputs]}")
            if id(node) in in_progress:
                raise ValueError(f"tensor {tensor.name!r} is part of a cycle")
            traversal.setdefault(id(node.layer), len(traversal))
            in_progress.add(id(node))
            if not is_input_node:
                for parent in node.inputs:
                    visit(parent)
            in_progress.discard(id(node))
            finished.add(id(node))
            ordered.append(node)

        for tensor in self.outputs:
            visit(tensor)
        node_depth: dict[int, int] = {}
        layer_depth: dict[int, int] = {}
        layer_of: dict[int, object] = {}
        in_graph = {id(node) for node in ordered}
        for node in reversed(ordered):
            depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
            layer_depth[id(node.layer)] = node_depth[id(node)] = depth
            layer_of[id(node.layer)] = node.layer
            for parent in node.inputs:
                if parent.node is not None and id(parent.node) in in_graph:
                    node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
        for tensor in self.inputs:  # inputs no output depends on still belong to the model
            if tensor.node is not None and isinstance(tensor.node.layer, InputLayer) \
                    and id(tensor.node.layer) not in layer_depth:
                layer_depth[id(tensor.node.layer)], traversal[id(tensor.node.layer)] = 0, -1
                layer_of[id(tensor.node.layer)] = tensor.node.layer
        self.layers = [layer_of[key] for key in sorted(layer_depth, key=lambda k: (-layer_depth[k], traversal[k]))]
        self.nodes = [node for node in ordered if not isinstance(node.layer, InputLayer)]
        seen = {}
        for layer in self.layers:
            if seen.setdefault(layer.name, layer) is not layer:
                raise ValueError(f"the name {layer.name!r} is used by two layers in the model; names must be unique")
        self._activation_after = _activations_after(self.nodes, self.outputs)

    def nodes_of(self, layer) -> list[Node]:
        return [node for node in self.nodes if node.layer is layer]

    def forward(self, arrays, training):
        """Outputs (internal layout) for ``arrays`` (one per input, internal layout), and the tape
        that :meth:`backward` needs: each node with what its layer cached in that call."""
        values, tape = self._run(arrays, training)
        return [values[id(t)] for t in self.outputs], tape

    def values(self, arrays, training=False) -> dict:
        """{id(tensor): value} of every tensor in one forward pass (internal layout), each layer's own."""
        return self._run(arrays, training, fuse=False)[0]

    def _run(self, arrays, training, fuse=True):
        """With ``fuse``, a Conv2D whose output only a ReLU / LeakyReLU reads applies it in its kernels, while the
        output is in cache (tutorial model, 20x20, 2 threads: LeakyReLU's 0.09 ms forward and 0.08 ms backward
        were its passes over memory); the activation's call then passes the value on, and its gradient back."""
        values = {id(t): a for t, a in zip(self.inputs, arrays)}
        tape = []
        absorbed = set()
        for node in self.nodes:
            args = [values[id(t)] for t in node.inputs]
            if id(node) in absorbed:
                values[id(node.outputs[0])] = args[0]
                tape.append((node, None, None))  # no cache: the gradient passes through
                continue
            after = self._activation_after.get(id(node)) if fuse else None
            slope = None if after is None else _fused_slope(node.layer, after.layer)
            if slope is not None:
                result = node.layer._forward_activated(args[0], training, slope)
                absorbed.add(id(after))
            else:
                result = node.layer.forward(args if getattr(node.layer, "_multi_input", False) else args[0], training)
            outputs = result if isinstance(result, list) else [result]
            for tensor, value in zip(node.outputs, outputs):
                values[id(tensor)] = value
            regularizer = getattr(node.layer, "activity_regularizer", None)
            if regularizer is not None:
                _ACTIVITY.loss = getattr(_ACTIVITY, "loss", 0.0) + sum(
                    regularizer.penalty(value) / len(value) for value in outputs if len(value))
            tape.append((node, _cache_of(node.layer), outputs if regularizer is not None else None))
        return values, tape

    def backward(self, tape, output_grads, input_grads=True):
        """Gradients for the inputs (None where nothing flows), from the tape of one :meth:`forward`.

        Fills each layer's ``grads`` with the sum over its calls (a shared layer). ``output_grads``
        may hold None for outputs that do not feed the loss. With ``input_grads=False`` the layers
        that read only the graph's inputs skip their input gradient (a first Conv2D's dx).
        """
        grads: dict[int, np.ndarray] = {}

        def add(tensor, value):
            known = grads.get(id(tensor))
            grads[id(tensor)] = value if known is None else known + value

        for tensor, value in zip(self.outputs, output_grads):
            if value is not None:
                add(tensor, value)
        # Tensors a gradient must reach: those made from a weight (or from the inputs, when their
        # gradients are wanted). A call none of whose inputs is one needs no dx, and a weightless
        # one (preprocessing at the model's start) is not run backward at all.
        flows = {id(t) for t in self.inputs} if input_grads else set()
        for node, _, _ in tape:
            if _has_weights(node.layer) or any(id(t) in flows for t in node.inputs):
                flows.update(id(t) for t in node.outputs)
        weight_sums: dict[int, tuple] = {}
        for node, cache, regularized in reversed(tape):
            layer = node.layer
            incoming = [grads.pop(id(t), None) for t in node.outputs]
            if regularized is not None:  # the activity penalty's gradient joins what comes from the loss
                scale = getattr(_ACTIVITY, "scale", 1.0)
                incoming = [(0 if g is None else g)
                            + layer.activity_regularizer.gradient(value) * (scale / max(len(value), 1))
                            for g, value in zip(incoming, regularized)]
            if all(g is None for g in incoming):
                continue  # nothing downstream of this call reaches the loss
            wants_dx = any(id(t) in flows for t in node.inputs)
            if not wants_dx and not _has_weights(layer):
                continue
            if cache is None:  # an activation the call before applied: that call's backward takes its gradient
                add(node.inputs[0], incoming[0])
                continue
            dy = incoming if len(node.outputs) > 1 else incoming[0]  # a nested model takes None for unused outputs
            vars(layer).update(cache)
            if hasattr(layer, "needs_input_grad"):
                layer.needs_input_grad = wants_dx
            dx = layer.backward(dy)
            for leaf in _leaves(layer):  # a nested model's layers hold the gradients
                if not leaf.grads:
                    continue
                summed = weight_sums.get(id(leaf))
                if summed is None:
                    weight_sums[id(leaf)] = (leaf, dict(leaf.grads))
                else:
                    for key, value in leaf.grads.items():
                        summed[1][key] = summed[1][key] + value
            for tensor, value in zip(node.inputs, dx if isinstance(dx, list) else [dx]):
                if value is not None:
                    add(tensor, value)
        for layer, sums in weight_sums.values():
            layer.grads.update(sums)
        return [grads.get(id(t)) for t in self.inputs]


class InputLayer:
    """The layer behind :func:`Input`: it makes the input tensor and computes nothing."""

    _multi_input = False

    def __init__(self, shape, dtype=None, name=None, data_format=None):
        from .layers.base import Layer

        self.name = name or Layer._auto_name("input_layer")
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype or floatx())
        self.trainable = False
        self.built = True
        self.params, self.grads, self.state = {}, {}, {}
        self._inbound_nodes = []
        node = Node(self, [], [])
        node.outputs = [KerasTensor((None, *self.shape), self.dtype, data_format, node, 0, name=self.name)]
        self._inbound_nodes.append(node)

    @property
    def output(self):
        return self._inbound_nodes[0].outputs[0]

    def get_weights(self):
        return []

    def set_weights(self, weights):
        if list(weights):
            raise ValueError(f"layer {self.name!r} has no weights")

    def _keras_weights(self):
        return []

    def count_params(self):
        return 0

    def count_trainable_params(self):
        return 0

    def trainable_variables(self):
        return []

    weights = trainable_weights = non_trainable_weights = property(lambda self: [])

    def get_config(self):
        return {"batch_shape": [None, *self.shape], "dtype": self.dtype.name, "name": self.name}

    def __repr__(self):
        return f"<InputLayer {self.name!r}>"


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, **kwargs):
    """A symbolic input of per-sample ``shape`` (the user's layout, e.g. (28, 28, 1)): Keras's ``keras.Input``.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample, without the batch axis: (features,) or (height, width, channels).
    batch_size : int, optional
        Accepted for Keras compatibility; batches of any size are run.
    name : str, optional
    dtype : str, optional
        "float32" or "float64"; defaults to ``convnet.floatx()``.
    batch_shape : tuple, optional
        The shape with the batch axis first (Keras's alternative to ``shape``).
    """
    if kwargs:
        raise TypeError(f"Input got unexpected keyword arguments {sorted(kwargs)}")
    if shape is None and batch_shape is not None:
        if not isinstance(batch_shape, (tuple, list)) or not batch_shape:
            raise ValueError(f"batch_shape must be a tuple; received batch_shape={batch_shape!r}")
        shape = tuple(batch_shape)[1:]
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if (not isinstance(shape, (tuple, list)) or len(shape) not in (1, 3)
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"Input shape must be (features,) or (height, width, channels) of positive ints; "
                         f"received shape={shape!r}")
    if dtype is not None and np.dtype(dtype).name not in ("float32", "float64"):
        raise ValueError(f"Input dtype must be 'float32' or 'float64'; received dtype={dtype!r}")
    return InputLayer(tuple(int(s) for s in shape), dtype, name).output
