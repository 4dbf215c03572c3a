"""Sequential: compile / fit / evaluate / predict / summary, as Keras.

The user's images are channels_last (N, H, W, C) unless the layers say
``data_format="channels_first"``; they are converted to the kernels' NCHW once
per batch, on the way in, and image outputs are converted back on the way out.
"""

from __future__ import annotations

import functools
import math
import sys
import time

import numpy as np

from cnnkernels.threads import numpy_blas_single_threaded

from . import callbacks as callbacks_module
from . import losses, optimizers
from . import metrics as metrics_module
from ._random import floatx, generator
from .layers.base import Layer
from .layers.conv import Conv2D
from .layers.core import Input


def _kernels_own_the_cores(method):
    """NumPy's BLAS single-threaded while the model runs: the parallel kernels own the cores
    (see :func:`cnnkernels.threads.numpy_blas_single_threaded`)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with numpy_blas_single_threaded():
            return method(*args, **kwargs)

    return wrapper


def _as_float_batch(name, x, dtype) -> np.ndarray:
    try:
        x = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be numeric array-like; received {type(x).__name__}") from None
    return x


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        May start with ``layers.Input(shape)``; otherwise the shape is taken
        from the first batch the model sees (or from :meth:`build`).
    name : str, optional
    """

    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self._layers: list[Layer] = []
        self._input_shape: tuple | None = None  # per sample, user's format
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.optimizer = self.loss = None
        self.metric_names: list[str] = []
        self._metric_functions = []
        self.metadata: dict = {}
        self.dtype = None  # floatx() when the model is built; inputs are cast to it  # saved with the model: e.g. class names, image size (JSON-serialisable)
        for layer in layers or []:
            self.add(layer)

    # -- construction -----------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer) -> None:
        if isinstance(layer, Input):
            if self._layers:
                raise ValueError("Input must be the first layer of a Sequential model")
            self._input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer; received {type(layer).__name__}")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"a layer named {layer.name!r} is already in the model")
        self._layers.append(layer)
        self.built = False

    @property
    def data_format(self) -> str:
        formats = {f for f in (getattr(layer, "data_format", None) for layer in self._all_layers()) if f}
        if len(formats) > 1:
            raise ValueError(f"layers disagree on data_format: {sorted(formats)}")
        return formats.pop() if formats else "channels_last"

    def _all_layers(self):
        for layer in self._layers:
            yield layer
            if hasattr(layer, "sublayers"):
                yield from layer.sublayers()

    def _internal_shape(self, shape):
        if len(shape) == 3 and self.data_format == "channels_last":
            H, W, C = shape
            return (C, H, W)
        return tuple(shape)

    def _user_shape(self, shape):
        if len(shape) == 3 and self.data_format == "channels_last":
            C, H, W = shape
            return (H, W, C)
        return tuple(shape)

    def build(self, input_shape) -> None:
        """Create every layer's weights for per-sample ``input_shape`` (user's format, no batch axis)."""
        if not self._layers:
            raise ValueError("the model has no layers")
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) not in (1, 3):
            raise ValueError(f"input shape must be (features,) or an image (H, W, C); received {input_shape}")
        shape = self._internal_shape(input_shape)
        for layer in self._layers:
            try:
                layer.build(shape)
            except ValueError as exc:
                raise ValueError(f"layer {layer.name!r}: {exc}") from None
            shape = layer.output_shape
        first = self._layers[0]
        if isinstance(first, Conv2D):
            first.needs_input_grad = False  # nothing upstream wants the input's gradient
        self._input_shape = input_shape
        self.dtype = floatx()
        self.built = True

    def _build_from_input(self) -> bool:
        """Build from the Input layer's shape if not built yet; False if there is none."""
        if not self.built and self._input_shape is not None and self._layers:
            self.build(self._input_shape)
        return self.built

    def _ensure_built(self, x):
        if not self.built:
            self.build(self._input_shape or x.shape[1:])
        if tuple(x.shape[1:]) != tuple(self._input_shape):
            raise ValueError(f"model {self.name!r} expects input of shape (batch, "
                             f"{', '.join(map(str, self._input_shape))}); received shape {tuple(x.shape)}")

    # -- computing --------------------------------------------------------------------------
    def _to_internal(self, x):
        if x.ndim == 4 and self.data_format == "channels_last":
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return np.ascontiguousarray(x)

    def _to_user(self, y):
        if y.ndim == 4 and self.data_format == "channels_last":
            return np.ascontiguousarray(y.transpose(0, 2, 3, 1))
        return y

    def _forward(self, x, training):
        x = self._to_internal(x)
        for layer in self._layers:
            x = layer.forward(x, training)
        return x

    def _backward(self, dy):
        for layer in reversed(self._layers):
            dy = layer.backward(dy)

    @_kernels_own_the_cores
    def __call__(self, x, training=False):
        x = _as_float_batch("x", x, self.dtype or floatx())
        self._ensure_built(x)
        return self._to_user(self._forward(x, training))

    @_kernels_own_the_cores
    def predict(self, x, batch_size=32, verbose=0) -> np.ndarray:
        """Outputs for ``x`` (N, ...), computed in batches with inference behaviour."""
        x = _as_float_batch("x", x, self.dtype or floatx())
        self._ensure_built(x)
        batch_size = _check_batch_size(batch_size)
        outputs = [self._to_user(self._forward(x[i : i + batch_size], False)) for i in range(0, len(x), batch_size)]
        if not outputs:
            return np.empty((0, *self._user_shape(self._layers[-1].output_shape)), self.dtype)
        return np.concatenate(outputs)

    # -- training ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Choose the optimizer, loss and metrics ("accuracy") for :meth:`fit` and :meth:`evaluate`."""
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        resolved = [metrics_module.get(m, self.loss) for m in metrics]
        self.metric_names = [name for name, _ in resolved]
        self._metric_functions = [function for _, function in resolved]
        self.compiled = True

    def _check_compiled(self):
        if not self.compiled:
            raise RuntimeError("call model.compile(optimizer, loss, metrics) before training or evaluating")

    def _prepare(self, x, y, what):
        x = _as_float_batch("x", x, self.dtype or floatx())
        self._ensure_built(x)
        y = self.loss.check_targets(y, self._layers[-1].output_shape[0])
        if len(x) != len(y):
            raise ValueError(f"{what}: x and y must have the same number of samples; received {len(x)} and {len(y)}")
        return x, y

    def _variables(self):
        return [variable for layer in self._layers for variable in layer.trainable_variables()]

    def _train_step(self, x, y):
        prediction = self._forward(x, training=True)
        loss, grad = self.loss.value_and_grad(y, prediction)
        self._backward(grad)
        variables = self._variables()
        self.optimizer.apply([owner.params[key] for owner, key in variables],
                             [owner.grads[key] for owner, key in variables])
        return loss, [float(f(y, prediction).mean()) for f in self._metric_functions]

    @_kernels_own_the_cores
    def train_on_batch(self, x, y):
        """One optimizer step on one batch; returns the loss (and metrics, as a list, if any)."""
        self._check_compiled()
        x, y = self._prepare(x, y, "train_on_batch")
        loss, values = self._train_step(x, y)
        return [loss, *values] if values else loss

    @_kernels_own_the_cores
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` epochs; returns a :class:`convnet.callbacks.History`.

        ``x`` may also be an iterable of (x_batch, y_batch) pairs that can be iterated
        once per epoch (e.g. :func:`convnet.data.image_dataset_from_directory`), in
        which case ``y``, ``batch_size``, ``shuffle`` and ``validation_split`` do not apply.
        """
        self._check_compiled()
        epochs = _check_positive("epochs", epochs)
        verbose = 1 if verbose == "auto" else verbose
        if validation_data is not None and validation_split:
            raise ValueError("give validation_data or validation_split, not both")
        if _is_batch_stream(x):
            if y is not None:
                raise ValueError("when x yields (x, y) batches, y must be None")
            batches_for_epoch, steps = (lambda: iter(x)), _length_or_none(x)
        else:
            x, y = self._prepare(x, y, "fit")
            batch_size = _check_batch_size(batch_size)
            if not 0 <= validation_split < 1:
                raise ValueError(f"validation_split must be in [0, 1); received validation_split={validation_split!r}")
            if validation_split:
                cut = int(len(x) * (1 - validation_split))
                x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
            if len(x) == 0:
                raise ValueError("fit needs at least one training sample")
            steps = math.ceil(len(x) / batch_size)

            def batches_for_epoch():
                order = generator().permutation(len(x)) if shuffle else np.arange(len(x))
                for start in range(0, len(x), batch_size):
                    index = order[start : start + batch_size]
                    yield x[index], y[index]

        history = callbacks_module.History()
        callback_list = [history, *(callbacks or [])]
        for callback in callback_list:
            callback.set_model(self)
        self.stop_training = False
        for callback in callback_list:
            callback.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
            for callback in callback_list:
                callback.on_epoch_begin(epoch)
            started = time.perf_counter()
            progress = callbacks_module.ProgressBar(steps or 0, sys.stdout)
            logs, steps_done = self._run_epoch(batches_for_epoch(), callback_list, progress if verbose == 1 else None)
            if validation_data is not None:
                values = self.evaluate(*_validation_pair(validation_data), verbose=0, return_dict=True)
                logs.update({f"val_{k}": v for k, v in values.items()})
            if verbose:
                progress.total = steps or steps_done
                progress.update(steps_done, logs, time.perf_counter() - started, final=True)
            for callback in callback_list:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for callback in callback_list:
            callback.on_train_end()
        return history

    def _run_epoch(self, batches, callback_list, progress=None):
        """Train on every batch once; returns (logs, number of steps)."""
        started = time.perf_counter()
        seen, loss_sum, metric_sums = 0, 0.0, [0.0] * len(self._metric_functions)
        logs: dict[str, float] = {}
        step = 0
        for step, (xb, yb) in enumerate(batches, start=1):
            for callback in callback_list:
                callback.on_train_batch_begin(step - 1)
            xb, yb = self._prepare(xb, yb, "fit")
            loss, values = self._train_step(xb, yb)
            # Keras's running means, weighted by batch size
            seen += len(xb)
            loss_sum += loss * len(xb)
            metric_sums = [total + value * len(xb) for total, value in zip(metric_sums, values)]
            logs = {"loss": loss_sum / seen, **{n: s / seen for n, s in zip(self.metric_names, metric_sums)}}
            for callback in callback_list:
                callback.on_train_batch_end(step - 1, {**logs, "loss": loss})
            if progress is not None and progress.total:
                progress.update(step, logs, time.perf_counter() - started)
            if self.stop_training:
                break
        if step == 0:
            raise ValueError("fit received no training batches")
        return logs, step

    @_kernels_own_the_cores
    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, return_dict=False):
        """Loss and metrics on (x, y) with inference behaviour; a float, a list, or a dict."""
        self._check_compiled()
        if _is_batch_stream(x):
            pairs = iter(x)
        else:
            x, y = self._prepare(x, y, "evaluate")
            batch_size = _check_batch_size(batch_size)
            pairs = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
        seen, loss_sum, metric_sums = 0, 0.0, [0.0] * len(self._metric_functions)
        for xb, yb in pairs:
            xb, yb = self._prepare(xb, yb, "evaluate")
            prediction = self._forward(xb, training=False)
            loss, _ = self.loss.value_and_grad(yb, prediction)
            seen += len(xb)
            loss_sum += loss * len(xb)
            metric_sums = [total + float(f(yb, prediction).sum()) for total, f in zip(metric_sums, self._metric_functions)]
        if seen == 0:
            raise ValueError("evaluate received no samples")
        result = {"loss": loss_sum / seen, **{n: s / seen for n, s in zip(self.metric_names, metric_sums)}}
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        if return_dict:
            return result
        values = list(result.values())
        return values[0] if len(values) == 1 else values

    # -- weights ----------------------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """All weights in Keras's order and shapes."""
        self._build_from_input()
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        if not self._build_from_input():
            raise ValueError("build the model (or call it once) before set_weights")
        weights = list(weights)
        expected = sum(len(layer.get_weights()) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"model {self.name!r} has {expected} weight arrays; received {len(weights)}")
        for layer in self._layers:
            count = len(layer.get_weights())
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def count_params(self) -> int:
        self._build_from_input()
        return sum(layer.count_params() for layer in self._layers)

    def summary(self, print_fn=print) -> None:
        """Layer, output shape and parameter counts, as Keras prints them."""
        if not self._build_from_input():
            raise ValueError("the model is not built: give it an Input, call build(), or call it on data")
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *self._user_shape(layer.output_shape))),
                 f"{layer.count_params():,}") for layer in self._layers]
        widths = [max(len("Layer (type)"), *(len(r[0]) for r in rows)) + 2,
                  max(len("Output Shape"), *(len(r[1]) for r in rows)) + 2,
                  max(len("Param #"), *(len(r[2]) for r in rows))]
        rule = "─" * sum(widths)
        total = self.count_params()
        trainable = sum(layer.count_trainable_params() for layer in self._layers)
        lines = [f'Model: "{self.name}"', rule,
                 f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}", rule]
        lines += [f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}" for a, b, c in rows]
        lines += [rule, f" Total params: {total:,}", f" Trainable params: {trainable:,}",
                  f" Non-trainable params: {total - trainable:,}"]
        print_fn("\n".join(lines))

    # -- saving -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        from .layers.containers import _layer_config

        return {"name": self.name, "input_shape": list(self._input_shape) if self._input_shape else None,
                "layers": [_layer_config(layer) for layer in self._layers]}

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


def _check_positive(name, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={value!r}")
    return int(value)


def _check_batch_size(batch_size) -> int:
    return _check_positive("batch_size", batch_size)


def _is_batch_stream(x) -> bool:
    return x is not None and not isinstance(x, (np.ndarray, list, tuple)) and hasattr(x, "__iter__")


def _length_or_none(x):
    try:
        return len(x)
    except TypeError:
        return None


def _validation_pair(validation_data):
    if _is_batch_stream(validation_data):
        return (validation_data,)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return tuple(validation_data)
    raise ValueError(f"validation_data must be (x, y) or a batch stream; received {type(validation_data).__name__}")
