"""Training-step throughput of the tutorial model (forward + backward + update), ours vs PyTorch.

The Keras fruit-classifier tutorial's CNN on 20x20x3 inputs (or ``size`` x ``size``: the issue
also measures 100x100x3), 16 classes, batch 32,
RMSprop: conv 32 (relu) → conv 16 → LeakyReLU(0.5) → BatchNorm → max-pool 2 →
dropout → dense 100 (relu) → dropout → dense 16 (softmax). Images per second,
median over timed steps after warm-up steps, at the given thread count.
"""

from __future__ import annotations

import statistics

import numpy as np

BATCH, SIZE, CLASSES = 32, 20, 16
DESCRIPTION = "training step (forward + backward + RMSprop update) of the tutorial model, batch 32, 20x20x3, 16 classes"


def _batch(seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, size, size, 3), dtype=np.float32)
    y = rng.integers(0, CLASSES, BATCH)
    return x, y


def convnet_step(size=SIZE):
    """A callable doing one training step of the convnet model on size x size x 3 images."""
    import convnet
    from convnet.cli import tutorial_model

    convnet.set_seed(0)
    model = tutorial_model((size, size, 3), CLASSES)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=convnet.optimizers.RMSprop(1e-4))
    x, y = _batch(size=size)
    return lambda: model.train_on_batch(x, y)


def torch_step(channels_last=False, size=SIZE):
    """A callable doing one training step of the same model in PyTorch (NCHW input, or channels_last)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 16, 3, padding=1), nn.LeakyReLU(0.5),
        nn.BatchNorm2d(16, eps=1e-3, momentum=0.01), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
        nn.Linear(16 * (size // 2) ** 2, 100), nn.ReLU(), nn.Dropout(0.5), nn.Linear(100, CLASSES))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, eps=1e-7)
    loss_function = nn.CrossEntropyLoss()
    x, y = _batch(size=size)
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        tx = tx.contiguous(memory_format=torch.channels_last)
    ty = torch.from_numpy(y)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(tx), ty)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def measure(threads: int, steps: int = 30, warmup: int = 5):
    """[{impl, threads, images_per_s, median_step_ms}] for convnet and torch (if importable)."""
    import cnnkernels

    from .core import interleaved
    from .stats import total_interval

    candidates = [("convnet", convnet_step)]
    try:
        import torch

        torch.set_num_threads(threads)
        candidates += [("torch", torch_step), ("torch-nhwc", lambda: torch_step(channels_last=True))]
    except ImportError:
        pass
    rows = []
    before = cnnkernels.get_num_threads()
    try:
        cnnkernels.set_num_threads(threads)
        steps_of = {name: make() for name, make in candidates}
        for step in steps_of.values():
            for _ in range(warmup):
                step()
        for name, times in interleaved(steps_of, steps, budget_s=None).items():  # round after round, all alike
            median = statistics.median(times)
            low, high = total_interval([times])
            rows.append({"impl": name, "threads": threads, "images_per_s": BATCH / median,
                         "median_step_ms": 1e3 * median, "ci_low_ms": 1e3 * low, "ci_high_ms": 1e3 * high,
                         "min_step_ms": 1e3 * min(times), "max_step_ms": 1e3 * max(times), "steps": len(times)})
    finally:
        cnnkernels.set_num_threads(before)
    return rows


def format_rows(rows) -> str:
    lines = [f"{'implementation':<12} {'threads':>7} {'images/s':>9} {'step ms':>8} {'min-max':>15} "
             f"{'speed/torch':>11}"]
    for row in rows:
        torch_row = next((r for r in rows if r["impl"] == "torch" and r["threads"] == row["threads"]), None)
        ratio = f"{torch_row['median_step_ms'] / row['median_step_ms']:11.2f}" if torch_row else f"{'-':>11}"
        lines.append(f"{row['impl']:<12} {row['threads']:>7} {row['images_per_s']:>9.0f} {row['median_step_ms']:>8.2f} "
                     f"{row['min_step_ms']:>7.2f}-{row['max_step_ms']:<7.2f} {ratio}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(format_rows([row for n in (1, 2) for row in measure(n)]))
