"""``model.summary()``: layer, output shape and parameter counts as Keras prints them; a
functional model also lists its InputLayers and, per layer, the tensors it reads
("Connected to", as ``conv2d[0][0]``)."""

from __future__ import annotations

from .graph import InputLayer


def _rows(model):
    g = model._graph
    sequential = type(model).__name__ == "Sequential"
    index_of = {}
    for layer in g.layers:
        for i, node in enumerate(g.nodes_of(layer)):
            index_of[id(node)] = i
    for tensor in g.inputs:
        index_of[id(tensor.node)] = 0
    rows = []
    for layer in model.layers:
        label = f"{layer.name} ({type(layer).__name__})"
        if isinstance(layer, InputLayer):
            rows.append((label, str(layer.output.shape), "0", "-"))
            continue
        nodes = g.nodes_of(layer)
        shape = str(nodes[0].outputs[0].shape) if len(nodes[0].outputs) == 1 else \
            ", ".join(str(t.shape) for t in nodes[0].outputs)
        sources = [f"{t.node.layer.name}[{index_of[id(t.node)]}][{t.index}]" for node in nodes for t in node.inputs]
        rows.append((label, shape, f"{layer.count_params():,}", "-" if sequential else ", ".join(sources)))
    return rows, not sequential


def print_summary(model, print_fn=print) -> None:
    model._require_graph("summary()")
    rows, connected = _rows(model)
    headers = ("Layer (type)", "Output Shape", "Param #", "Connected to")
    columns = 4 if connected else 3
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) + 2 for i in range(columns)]

    def line(cells):
        out = f"{cells[0]:<{widths[0]}}{cells[1]:<{widths[1]}}{cells[2]:>{widths[2] - 2}}"
        return out + (f"  {cells[3]}" if connected else "")

    rule = "─" * (sum(widths) + (2 if connected else -2))
    total = model.count_params()
    trainable = model.count_trainable_params()
    lines = [f'Model: "{model.name}"', rule, line(headers), rule, *(line(r) for r in rows), rule,
             f" Total params: {total:,}", f" Trainable params: {trainable:,}",
             f" Non-trainable params: {total - trainable:,}"]
    print_fn("\n".join(lines))
