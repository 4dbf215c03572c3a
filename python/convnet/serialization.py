"""Layer and model configurations: to and from plain JSON-ready dicts.

A functional model's config follows Keras 3's layout: every layer with its
``inbound_nodes``, each node ``{"args": [...], "kwargs": {}}`` whose tensors are
``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
[layer name, node index, tensor index]}}``, plus ``input_layers`` and
``output_layers``. Node indices count a layer's calls within this model.
Nothing in a config is ever executed: classes are looked up by name among
convnet's own layers.
"""

from __future__ import annotations

from .graph import Input, InputLayer
from .layers.base import layer_classes


def layer_config(layer) -> dict:
    """``{"class_name": ..., "config": ...}`` of one layer (or nested model)."""
    from .functional import Model

    class_name = type(layer).__name__
    if type(layer) is Model:
        class_name = "Functional"
    return {"class_name": class_name, "config": layer.get_config()}


def layer_from_config(entry):
    """A layer (or model) from ``{"class_name": ..., "config": ...}``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"a layer entry must be {{'class_name': ..., 'config': {{...}}}}; received {str(entry)[:120]}")
    class_name = entry.get("class_name")
    if class_name == "InputLayer":
        config = entry["config"]
        shape = config.get("batch_shape", [None, *config.get("shape", [])])[1:]
        return Input(tuple(shape), name=config.get("name"), dtype=config.get("dtype")).node.layer
    classes = layer_classes()
    if class_name not in classes:
        raise ValueError(f"unknown layer class {class_name!r}")
    return classes[class_name].from_config(entry["config"])


def _tensor_ref(tensor, node_index) -> dict:
    layer = tensor.node.layer
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(tensor.shape), "dtype": tensor.dtype.name,
                       "keras_history": [layer.name, node_index[id(tensor.node)], tensor.index]}}


def functional_config(model) -> dict:
    g = model._require_graph("get_config")
    node_index = {}
    for tensor in g.inputs:
        node_index[id(tensor.node)] = 0
    for layer in g.layers:
        for i, node in enumerate(g.nodes_of(layer)):
            node_index[id(node)] = i
    layers = []
    for layer in g.layers:
        nodes = []
        for node in g.nodes_of(layer):
            refs = [_tensor_ref(t, node_index) for t in node.inputs]
            nodes.append({"args": [refs if getattr(layer, "_multi_input", False) else refs[0]], "kwargs": {}})
        entry = layer_config(layer) if not isinstance(layer, InputLayer) else {
            "class_name": "InputLayer", "config": layer.get_config()}
        layers.append({**entry, "name": layer.name, "inbound_nodes": nodes})

    def endpoint(tensor):
        return [tensor.node.layer.name, node_index[id(tensor.node)], tensor.index]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": [endpoint(t) for t in g.inputs], "output_layers": [endpoint(t) for t in g.outputs],
            "single_input": model._single_input, "single_output": model._single_output}


def _resolve_ref(ref, made):
    if isinstance(ref, list):
        return [_resolve_ref(r, made) for r in ref]
    if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__":
        name, node, index = ref["config"]["keras_history"]
        key = (name, int(node), int(index))
        if key not in made:
            raise KeyError(key)
        return made[key]
    raise ValueError(f"a node argument must be a tensor reference; received {str(ref)[:120]}")


def functional_from_config(cls, config):
    """Rebuild the layers, then replay their calls in an order where every input already exists."""
    layers = {}
    pending = []  # (layer name, node number, args), in config order
    for entry in config["layers"]:
        layer = layer_from_config(entry)
        name = entry.get("name", layer.name)
        layers[name] = layer
        for number, node in enumerate(entry.get("inbound_nodes", [])):
            pending.append((name, number, node["args"]))
    made = {}
    for name, layer in layers.items():
        if isinstance(layer, InputLayer):
            made[(name, 0, 0)] = layer.output
    done_nodes = {name: 0 for name in layers}
    while pending:
        progressed = False
        for item in list(pending):
            name, number, args = item
            if number != done_nodes[name]:
                continue  # a layer's calls replay in order
            try:
                inputs = _resolve_ref(args[0], made)
            except KeyError:
                continue
            output = layers[name](inputs)
            made[(name, number, 0)] = output
            done_nodes[name] += 1
            pending.remove(item)
            progressed = True
        if not progressed:
            raise ValueError(f"the model config's nodes cannot be connected; stuck at {[p[:2] for p in pending]}")

    def endpoints(key):
        return [made[(n, int(i), int(t))] for n, i, t in config[key]]

    inputs, outputs = endpoints("input_layers"), endpoints("output_layers")
    model = cls(inputs if not config.get("single_input", len(inputs) == 1) else inputs[0],
                outputs if not config.get("single_output", len(outputs) == 1) else outputs[0],
                name=config.get("name"))
    model.trainable = config.get("trainable", True)
    return model
