"""``convnet.utils.plot_model``: the layer graph drawn with matplotlib (no graphviz needed).

Layers are placed in rows by their longest distance from an input (top to bottom, or left to
right with ``rankdir="LR"``), each row centred; an arrow joins each layer to the layers that
read its output.
"""

from __future__ import annotations

import os


def _edges(model):
    """(reader layer, source layer) pairs of the model's graph, and its layers in order."""
    g = model._require_graph("plot")
    edges = []
    for node in g.nodes:
        for tensor in node.inputs:
            if tensor.node is not None:
                edges.append((node.layer, tensor.node.layer))
    return g, edges


def _label(layer, g, show_shapes, show_dtype, show_layer_names, show_layer_activations, show_trainable):
    kind = type(layer).__name__
    lines = [f"{layer.name} ({kind})" if show_layer_names else kind]
    if show_layer_activations and getattr(layer, "activation", None) not in (None, "linear"):
        lines.append(f"activation: {layer.activation}")
    if show_shapes:
        nodes = [node for node in g.nodes if node.layer is layer]
        if nodes:
            inputs = [tuple(t.shape) for t in nodes[0].inputs]
            outputs = [tuple(t.shape) for t in nodes[0].outputs]
            lines.append(f"in: {inputs[0] if len(inputs) == 1 else inputs}")
            lines.append(f"out: {outputs[0] if len(outputs) == 1 else outputs}")
        else:  # an InputLayer
            lines.append(f"out: {tuple(layer.output.shape)}")
    if show_dtype:
        lines.append(f"dtype: {layer.output.dtype.name if hasattr(layer, 'output') else 'float32'}")
    if show_trainable:
        lines.append(f"trainable: {getattr(layer, 'trainable', False)}")
    return "\n".join(lines)


def draw(model, to_file, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB", dpi=200,
         show_layer_activations=False, show_trainable=False):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_model draws with matplotlib: pip install matplotlib (or the [viz] extra)") from None
    if rankdir not in ("TB", "LR"):
        raise ValueError(f"rankdir must be 'TB' or 'LR'; received rankdir={rankdir!r}")
    g, edges = _edges(model)
    layers = g.layers
    level = {id(layer): 0 for layer in layers}
    for node in g.nodes:  # nodes run in dependency order, so one pass finds the longest paths
        for tensor in node.inputs:
            if tensor.node is not None:
                level[id(node.layer)] = max(level[id(node.layer)], level.get(id(tensor.node.layer), 0) + 1)
    rows: dict[int, list] = {}
    for layer in layers:
        rows.setdefault(level[id(layer)], []).append(layer)
    position = {}
    for depth, members in rows.items():
        for i, layer in enumerate(members):
            across = i - (len(members) - 1) / 2
            position[id(layer)] = (across * 3.2, -depth * 1.3) if rankdir == "TB" else (depth * 3.6, -across * 1.5)
    labels = {id(layer): _label(layer, g, show_shapes, show_dtype, show_layer_names, show_layer_activations,
                                show_trainable) for layer in layers}
    xs = [p[0] for p in position.values()]
    ys = [p[1] for p in position.values()]
    width = max(xs) - min(xs) + 3.4 + (2.0 if any(level[id(r)] - level[id(q)] > 1 for r, q in edges) else 0)
    height = max(ys) - min(ys) + 1.4
    figure, axes = plt.subplots(figsize=(max(width, 3.5) * 1.1, max(height, 1.5) * 0.9))
    for reader, source in edges:
        (x0, y0), (x1, y1) = position[id(source)], position[id(reader)]
        # an edge that skips rows bends around the boxes between its ends (a residual connection)
        bend = 0.0 if level[id(reader)] - level[id(source)] <= 1 else 0.45
        axes.annotate("", xy=(x1, y1), xytext=(x0, y0),
                      arrowprops=dict(arrowstyle="-|>", color="0.35", shrinkA=16, shrinkB=16, lw=1,
                                      connectionstyle=f"arc3,rad={bend}"))
    for layer in layers:
        x, y = position[id(layer)]
        axes.text(x, y, labels[id(layer)], ha="center", va="center", fontsize=7, family="monospace",
                  bbox=dict(boxstyle="round,pad=0.4", facecolor="#e8eef7", edgecolor="#4a6fa5"))
    margin = 1.9 + (1.0 if any(level[id(r)] - level[id(q)] > 1 for r, q in edges) else 0)
    axes.set_xlim(min(xs) - margin, max(xs) + margin)
    axes.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    axes.axis("off")
    axes.set_title(f"{model.name} ({model.count_params():,} parameters)", fontsize=9)
    figure.tight_layout()
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1].lstrip(".").lower() or "png"
    from .io import atomic_write

    atomic_write(to_file, lambda f: figure.savefig(f, format=extension, dpi=dpi))
    plt.close(figure)
    return to_file
