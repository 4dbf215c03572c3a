"""Training callbacks with Keras's names, arguments and logs: the base class, History, ProgbarLogger,
EarlyStopping, ModelCheckpoint, TerminateOnNaN, ReduceLROnPlateau, LearningRateScheduler,
CSVLogger, LambdaCallback, BackupAndRestore (:mod:`convnet.backup`) and TensorBoard."""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings


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


def _improved(value, reference, mode, min_delta=0.0) -> bool:
    """Whether ``value`` beats ``reference`` (None: nothing yet) by more than ``min_delta``, in ``mode``."""
    if reference is None:
        return True
    return value < reference - min_delta if mode == "min" else value > reference + min_delta


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
        return _improved(value, reference, self.mode, self.min_delta)

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

    chief_only = True  # on MPI ranks, rank 0 alone writes (convnet.distributed)

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
            if not _improved(value, self.best, self.mode):
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
    """Keras-style per-epoch progress bar: `12/47 [=====>......] - ETA 3s - loss: 0.31` while it runs, then
    `47/47 [==============================] - 1s 21ms/step - loss: 0.29`."""

    def __init__(self, total_steps, stream, width=30):
        self.total, self.stream, self.width = total_steps, stream, width
        self.interactive = hasattr(stream, "isatty") and stream.isatty()
        self.partial = False  # a line is on the terminal without its newline

    def line(self, step, logs, elapsed):
        done = int(self.width * step / self.total)
        bar = "=" * max(done - 1, 0) + (">" if step < self.total else "=") * (done > 0) + "." * (self.width - done)
        per_step = elapsed / max(step, 1)
        if step < self.total:
            timing = f"ETA {_duration(per_step * (self.total - step))}"
        else:
            timing = f"{_duration(elapsed)} {per_step * 1e3:.0f}ms/step"
        metrics = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        digits = len(str(self.total))
        return f"{step:>{digits}}/{self.total} [{bar}] - {timing}" + (f" - {metrics}" if metrics else "")

    def update(self, step, logs, elapsed, final=False):
        if self.interactive:
            self.stream.write("\r" + self.line(step, logs, elapsed) + ("\n" if final else ""))
            self.stream.flush()
            self.partial = not final
        elif final:
            self.stream.write(self.line(step, logs, elapsed) + "\n")
            self.stream.flush()

    def end_line(self):
        """Finish the bar's line, so that what is printed next (a warning) starts on a line of its own."""
        if self.partial:
            self.stream.write("\n")
            self.stream.flush()
            self.partial = False


def _duration(seconds: float) -> str:
    """Keras's way: 42s, 3:05, 1:02:03."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _warnings_below(bar):
    """Show warnings on a line of their own while ``bar`` is on the terminal; returns the
    ``warnings.showwarning`` to put back afterwards."""
    shown = warnings.showwarning

    def below_the_bar(*args, **kwargs):
        bar.end_line()
        shown(*args, **kwargs)

    warnings.showwarning = below_the_bar
    return shown


class PassProgress:
    """The bar of one ``evaluate`` or ``predict`` pass, as Keras shows it: updated per batch at ``verbose=1``
    on a terminal, then `4/4 [====...] - 0s 3ms/step - loss: 0.3000` (``verbose`` 1 or 2; nothing at 0).
    ``logs`` is a callable, so running metrics are worked out only when a line is drawn."""

    def __init__(self, verbose, total_steps, stream=None):
        if verbose not in ("auto", 0, 1, 2):  # True and False are 1 and 0
            raise ValueError(f"verbose must be 'auto', 0, 1 or 2; received {verbose!r}")
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.bar = ProgressBar(total_steps or 0, stream or sys.stdout) if self.verbose else None
        self.step, self.started = 0, time.perf_counter()
        self._shown_warning = _warnings_below(self.bar) if self.bar else None

    def __enter__(self):
        return self

    def update(self, logs=dict):
        self.step += 1
        if self.verbose == 1 and self.step < self.bar.total and self.bar.interactive:  # finish() draws the last
            self.bar.update(self.step, logs(), time.perf_counter() - self.started)

    def finish(self, logs=dict):
        if self.bar and self.step:
            self.bar.total = self.bar.total or self.step
            self.bar.update(self.step, logs(), time.perf_counter() - self.started, final=True)

    def __exit__(self, *exc_info):
        if self.bar:
            self.bar.end_line()
            warnings.showwarning = self._shown_warning


class ProgbarLogger(Callback):
    """The per-epoch progress bar ``fit`` shows (added by ``fit`` when ``verbose`` is on and the
    callbacks hold none): "Epoch 3/10", then `12/47 [====>....] - 1s 21ms/step - loss: 0.31`, with
    the validation metrics on the epoch's last line. ``verbose=2``: that line only."""

    chief_only = True

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        stream = self.stream or sys.stdout
        if self.params.get("verbose"):
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}", file=stream, flush=True)
        self._bar = ProgressBar(self.params.get("steps") or 0, stream)
        self._started, self._step = time.perf_counter(), 0
        self._shown_warning = _warnings_below(self._bar)

    def on_train_batch_end(self, batch, logs=None):
        self._step = batch + 1
        if self.params.get("verbose") == 1 and self._bar.total:
            self._bar.update(self._step, logs or {}, time.perf_counter() - self._started)

    def on_train_end(self, logs=None):  # also after an epoch cut short by an error
        warnings.showwarning = getattr(self, "_shown_warning", warnings.showwarning)

    def on_epoch_end(self, epoch, logs=None):
        warnings.showwarning = self._shown_warning
        if self.params.get("verbose"):
            self._bar.total = self._bar.total or self._step
            self._bar.update(self._step, logs or {}, time.perf_counter() - self._started, final=True)


class LearningRateScheduler(Callback):
    """At each epoch's start, sets the optimizer's learning rate to ``schedule(epoch, lr)``
    (or ``schedule(epoch)``); the rate goes into the logs as "learning_rate", as Keras."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable; received {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            rate = self.schedule(epoch, optimizer.current_learning_rate())
        except TypeError:  # Keras also accepts schedule(epoch)
            rate = self.schedule(epoch)
        optimizer.learning_rate = float(rate)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.current_learning_rate())


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by ``min_delta``
    for ``patience`` epochs; then wait ``cooldown`` epochs; never below ``min_lr``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        if not 0 <= factor < 1:
            raise ValueError(f"factor must be in [0, 1); received factor={factor!r}")
        self.monitor, self.factor, self.patience, self.verbose = monitor, float(factor), int(patience), verbose
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta, self.cooldown, self.min_lr = float(kwargs.pop("epsilon", min_delta)), int(cooldown), min_lr
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unrecognized keyword arguments: {sorted(kwargs)}")

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.current_learning_rate())
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"ReduceLROnPlateau monitors {self.monitor!r}, which is not among the logs "
                          f"{sorted(logs)}", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optimizer.current_learning_rate())
                if old > self.min_lr:
                    optimizer.learning_rate = max(old * self.factor, self.min_lr)
                    if self.verbose:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                              f"{optimizer.learning_rate}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class CSVLogger(Callback):
    """One CSV row per epoch: "epoch" then the logs' keys in sorted order (Keras's columns)."""

    chief_only = True

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, bool(append)
        self._keys = None

    def on_train_begin(self, logs=None):
        self._exists = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch", *self._keys], delimiter=self.separator)
            if not self._exists:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self._keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
             "on_train_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        given["on_train_batch_begin"] = given["on_train_batch_begin"] or kwargs.pop("on_batch_begin", None)
        given["on_train_batch_end"] = given["on_train_batch_end"] or kwargs.pop("on_batch_end", None)
        if kwargs:
            raise TypeError(f"LambdaCallback got unrecognized keyword arguments: {sorted(kwargs)}")
        for hook, function in given.items():
            if function is not None:
                setattr(self, hook, function)


from .callbacks_files import BackupAndRestore, TensorBoard  # noqa: E402  (they subclass Callback)
