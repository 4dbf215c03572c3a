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
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], metrics):
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
