"""Pictures of what a CNN learns, as PNG files (matplotlib, Agg backend: no screen needed).

Needs matplotlib: ``pip install "cnnkernels[viz]"``.
"""

from __future__ import annotations

import os


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install matplotlib (or the [viz] extra)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> str:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    _pyplot().close(fig)
    return path


def plot_history(history, path, title="training") -> str:
    """Loss and accuracy per epoch, training and validation, side by side; returns the PNG's path.

    ``history`` is a :class:`convnet.callbacks.History` or its ``history`` dict
    (as written to ``history.json`` by ``convnet train``).
    """
    plt = _pyplot()
    values = getattr(history, "history", history)
    if not isinstance(values, dict) or "loss" not in values:
        raise ValueError(f"history must hold a 'loss' series; received keys {sorted(values) if isinstance(values, dict) else type(values).__name__}")
    metrics = [name for name in ("loss", "accuracy") if name in values]
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], metrics):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        epochs = range(1, len(values[name]) + 1)
        ax.plot(epochs, values[name], "o-", label=f"training {name}")
        if f"val_{name}" in values:
            ax.plot(range(1, len(values[f"val_{name}"]) + 1), values[f"val_{name}"], "s--", label=f"validation {name}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ the image as numbers


def image_matrix_report(path, window=(0, 0, 6)) -> str:
    """Text showing an image as the tutorial does: its shape, its grayscale version's shape, and a
    ``size``×``size`` window at (``row``, ``col``) of pixel values, scaled 0–1 and raw 0–255."""
    from .data import load_image

    row, col, size = window
    rgb = load_image(path)
    gray = load_image(path, grayscale=True)
    H, W = gray.shape[:2]
    if not (0 <= row < H and 0 <= col < W) or size < 1:
        raise ValueError(f"window (row={row}, col={col}, size={size}) is outside the {H}x{W} image")
    patch = gray[row : row + size, col : col + size, 0]
    lines = [f"image: {os.fspath(path)}", f"shape (height, width, channels): {rgb.shape}",
             f"grayscale shape: {gray.shape}",
             f"grayscale pixels [{row}:{row + patch.shape[0]}, {col}:{col + patch.shape[1]}] scaled to 0-1:"]
    lines += ["  " + " ".join(f"{v:4.2f}" for v in r) for r in patch]
    lines.append("the same pixels, raw 0-255:")
    lines += ["  " + " ".join(f"{int(round(v * 255)):4d}" for v in r) for r in patch]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ classic kernels

CLASSIC_KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
    "gaussian blur": [[1 / 16, 2 / 16, 1 / 16], [2 / 16, 4 / 16, 2 / 16], [1 / 16, 2 / 16, 1 / 16]],
    "sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "edge (laplacian)": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def apply_kernel(image, kernel, stride=1, padding="same"):
    """Convolve an (H, W, C) image with one 2-D kernel, each channel alike, through
    :func:`cnnkernels.conv2d` (a depthwise convolution); returns (P, Q, C) float32."""
    import numpy as np

    import cnnkernels

    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be (height, width, channels); received shape {image.shape}")
    kernel = np.asarray(kernel, np.float32)
    channels = image.shape[2]
    weights = np.ascontiguousarray(np.broadcast_to(kernel, (channels, 1, *kernel.shape)))
    out = cnnkernels.conv2d(image.transpose(2, 0, 1)[None], weights, stride=stride, padding=padding, groups=channels)
    return out[0].transpose(1, 2, 0)


def plot_classic_filters(image_path, path, grayscale=True) -> str:
    """One PNG grid: for each classic kernel, the original beside the filtered image with padding
    "same" and "valid" at stride 1, and "same" at stride 2 (titles give each output's size)."""
    import numpy as np

    from .data import load_image

    plt = _pyplot()
    image = load_image(image_path, grayscale=grayscale)
    variants = [("same", 1), ("valid", 1), ("same", 2)]
    fig, axes = plt.subplots(len(CLASSIC_KERNELS), 1 + len(variants), layout="constrained",  # room for the title
                             figsize=(3 * (1 + len(variants)), 2.6 * len(CLASSIC_KERNELS) + 0.4), dpi=80)
    for row, (name, kernel) in enumerate(CLASSIC_KERNELS.items()):
        panels = [("original", image)]
        panels += [(f"{padding}, stride {stride}", apply_kernel(image, kernel, stride, padding))
                   for padding, stride in variants]
        for ax, (label, picture) in zip(axes[row], panels):
            shown = np.clip(picture, 0, 1) if name in ("identity", "box blur", "gaussian blur", "sharpen") \
                else _normalise(picture)
            ax.imshow(shown[:, :, 0] if shown.shape[2] == 1 else shown, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name}: {label}\n{picture.shape[0]}x{picture.shape[1]}" if label != "original"
                         else f"original {picture.shape[0]}x{picture.shape[1]}", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"classic 3x3 kernels on {os.path.basename(os.fspath(image_path))}")
    return _save(fig, path)


def _normalise(array):
    import numpy as np

    low, high = float(np.min(array)), float(np.max(array))
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


# ------------------------------------------------------------------------------ what a model learned


def _conv_layer(model, layer):
    from .layers import Conv2D

    if not model.built:
        raise ValueError("the model is not built: give it an Input layer or train it first")
    convs = [candidate for candidate in model.layers if isinstance(candidate, Conv2D)]
    if not convs:
        raise ValueError("the model has no Conv2D layer")
    if layer is None:
        return convs[0]
    for candidate in model.layers:
        if candidate.name == layer or (isinstance(layer, int) and model.layers.index(candidate) == layer):
            if not isinstance(candidate, Conv2D):
                raise ValueError(f"layer {layer!r} is a {type(candidate).__name__}, not a Conv2D")
            return candidate
    raise ValueError(f"no layer {layer!r}; Conv2D layers: {[c.name for c in convs]}")


def plot_filters(model, path, layer=None) -> str:
    """The learned kernels of a Conv2D layer (default: the first) as a tile grid: in colour when
    the layer reads 3 channels, else each filter's mean over its input channels in gray."""
    import numpy as np

    plt = _pyplot()
    conv = _conv_layer(model, layer)
    kernel = conv.get_weights()[0]  # (kh, kw, in, out)
    filters = kernel.shape[3]
    columns = min(8, filters)
    rows = int(np.ceil(filters / columns))
    colour = kernel.shape[2] == 3
    fig, axes = plt.subplots(rows, columns, figsize=(1.5 * columns + (0 if colour else 1.2), 1.7 * rows + 0.6), dpi=80,
                             squeeze=False, layout="constrained")  # gray: 1.2 in for the colour bar
    # colour filters: each tile stretched to its own range; gray ones on one scale shared by all, zero in the middle
    bound = float(np.max(np.abs(kernel.mean(axis=2)))) or 1.0
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= filters:
            continue
        tile = kernel[:, :, :, index]
        if colour:
            image = ax.imshow(_normalise(tile), vmin=0, vmax=1, interpolation="nearest")
        else:
            image = ax.imshow(tile.mean(axis=2), cmap="gray", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(f"{index}", fontsize=7)
    if not colour:
        fig.colorbar(image, ax=axes, shrink=0.8, label="weight")
    mode = "RGB, each filter scaled to its own range" if colour else f"mean over {kernel.shape[2]} input channels"
    fig.suptitle(f"{conv.name}: {filters} filters {kernel.shape[0]}x{kernel.shape[1]} ({mode})", fontsize=10)
    return _save(fig, path)


def feature_maps(model, image, layers=None):
    """[(layer, maps (H, W, C))] after each Conv2D / pooling layer (or the named ``layers``) for one image."""
    import numpy as np

    from .layers import Conv2D
    from .layers.pooling import _Pooling2D

    x = np.asarray(image, np.float32)
    if x.ndim == 3:
        x = x[None]
    if layers:
        names = list(layers)
        known = {layer.name for layer in model.layers}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"no layer named {sorted(unknown)}; layers: {[layer.name for layer in model.layers]}")
    else:
        if not model.built:
            model.build(x.shape[1:])
        names = [layer.name for layer in model.layers if isinstance(layer, (Conv2D, _Pooling2D))]
    outputs = model.activations(x, layers=names)
    by_name = {layer.name: layer for layer in model.layers}
    return [(by_name[name], outputs[name][0]) for name in names if outputs[name].ndim == 4]


def plot_feature_maps(model, image, out_dir, layers=None, max_maps=64):
    """One PNG per layer with the activation maps of one image; at most ``max_maps`` panels a
    figure (a note in the title says how many were left out). Returns [(path, panels, channels)]."""
    import numpy as np

    plt = _pyplot()
    written = []
    for number, (layer, maps) in enumerate(feature_maps(model, image, layers)):
        channels = maps.shape[2]
        shown = min(channels, max_maps)
        columns = min(8, shown)
        rows = int(np.ceil(shown / columns))
        fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns + 1.2, 1.6 * rows + 0.7), dpi=80, squeeze=False,
                                 layout="constrained")
        low, high = float(maps[:, :, :shown].min()), float(maps[:, :, :shown].max())  # one scale for the layer
        for index, ax in enumerate(axes.flat):
            ax.axis("off")
            if index < shown:
                image = ax.imshow(maps[:, :, index], cmap="viridis", vmin=low, vmax=high if high > low else low + 1,
                                  interpolation="nearest")
                ax.set_title(str(index), fontsize=7)
        fig.colorbar(image, ax=axes, shrink=0.8, label="activation")
        note = f" — showing {shown} of {channels} channels" if shown < channels else ""
        fig.suptitle(f"{layer.name} ({type(layer).__name__}): {maps.shape[0]}x{maps.shape[1]}x{channels}{note}",
                     fontsize=10)
        path = _save(fig, os.path.join(os.fspath(out_dir), f"featuremaps_{number:02d}_{layer.name}.png"))
        written.append((path, shown, channels))
    return written
