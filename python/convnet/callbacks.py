"""Training callbacks: the base class, History, EarlyStopping, ModelCheckpoint, TerminateOnNaN."""

from __future__ import annotations

import math


class Callback:
    """Override any of the hooks; ``self.model`` is set before training starts."""

    model = None
    params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        """What fit runs: {"verbose", "epochs", "steps"} (Keras's ``History.params``)."""
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class History(Callback):
    """What ``fit`` returns: ``history.history["loss"]`` etc., one value per epoch."""

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; received mode={mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.mode = _monitor_mode(monitor, mode)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.stopped_epoch = 0

    def _improved(self, value, reference):
        if reference is None:
            return True
        return value < reference - self.min_delta if self.mode == "min" else value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = None
        self.best_weights = None
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not among the logs "
                             f"{sorted(logs or {})}")
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improved(value, self.best):
            self.best = value
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch; ``filepath`` may hold ``{epoch:02d}`` and log keys."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, save_weights_only=False, mode="auto",
                 verbose=0):
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _monitor_mode(monitor, mode)
        self.verbose = verbose
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                raise ValueError(f"ModelCheckpoint monitors {self.monitor!r}, which is not among the logs "
                                 f"{sorted(logs)}")
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better:
                return
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: saved to {path}")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True


class ProgressBar:
    """Keras-style per-epoch progress bar: `12/47 [=====>......] - 1s 21ms/step - loss: 0.31`."""

    def __init__(self, total_steps, stream, width=30):
        self.total, self.stream, self.width = total_steps, stream, width
        self.interactive = hasattr(stream, "isatty") and stream.isatty()

    def line(self, step, logs, elapsed):
        done = int(self.width * step / self.total)
        bar = "=" * max(done - 1, 0) + (">" if step < self.total else "=") * (done > 0) + "." * (self.width - done)
        per_step = elapsed / max(step, 1)
        timing = f"{elapsed:.0f}s {per_step * 1e3:.0f}ms/step"
        metrics = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        digits = len(str(self.total))
        return f"{step:>{digits}}/{self.total} [{bar}] - {timing}" + (f" - {metrics}" if metrics else "")

    def update(self, step, logs, elapsed, final=False):
        if self.interactive:
            self.stream.write("\r" + self.line(step, logs, elapsed) + ("\n" if final else ""))
            self.stream.flush()
        elif final:
            self.stream.write(self.line(step, logs, elapsed) + "\n")
            self.stream.flush()

