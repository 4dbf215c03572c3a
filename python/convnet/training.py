"""The trainer: compile, fit, evaluate, predict, train_on_batch for any :class:`convnet.Model`.

Keras's arguments, defaults and history keys. One loss per output (or one for all),
``loss_weights``; logs are "loss" and each metric, and with several outputs also
"<output>_loss" and "<output>_<metric>", where <output> is the name of the layer
that makes it. All data goes through :class:`convnet.batches.Batches`.
"""

from __future__ import annotations

import functools

import numpy as np

from cnnkernels import caching_allocator, numpy_blas_single_threaded

from . import callbacks as callbacks_module
from . import constraints, distributed, losses, optimizers
from .graph import set_activity_scale, take_activity_loss
from .logs import Totals
from . import metrics as metrics_module
from .batches import Batches, Dealt, as_list, combined_weights, is_array_data


def _kernels_own_the_cores(function):
    """NumPy's BLAS single-threaded while the model runs: the parallel kernels own the cores
    (see :func:`cnnkernels.numpy_blas_single_threaded`); and the arrays of its steps from the
    caching allocator, so a step does not fault in again the pages the last one freed
    (:func:`cnnkernels.caching_allocator`; ``convnet.clear_session()`` releases them)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with numpy_blas_single_threaded(), caching_allocator():
            return function(*args, **kwargs)

    return wrapper


def _positive_int(name, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; received {name}={value!r}")
    return int(value)


def _output_names(model):
    return [t.node.layer.name for t in model.outputs]


# ------------------------------------------------------------------------------------- inputs


def ensure_built(model, x):
    """Build a model that has no Input yet from the first data it sees: an array, or a list or dict
    of them (standardize_inputs checks shapes)."""
    if model._graph is None:
        first = next(iter(x.values())) if isinstance(x, dict) else x[0] if isinstance(x, list) else x
        declared = getattr(model, "_declared_shape", lambda: None)()
        model.build(declared or np.asarray(first).shape[1:])


def standardize_inputs(model, x) -> list[np.ndarray]:
    """Input data as a list of float arrays, one per model input, shapes checked."""
    if x is None:
        raise ValueError("x is required")
    ensure_built(model, x)
    tensors = model._graph.inputs
    names = [t.name for t in tensors]
    arrays = as_list(x, names, "input")
    result = []
    for array, tensor in zip(arrays, tensors):
        try:
            array = np.asarray(array, dtype=tensor.dtype)
        except (TypeError, ValueError):
            raise TypeError(f"x must be numeric array-like; received {type(array).__name__}") from None
        if array.shape[1:] != tensor.shape[1:]:
            raise ValueError(f"model {model.name!r} expects input of shape (batch, "
                             f"{', '.join(map(str, tensor.shape[1:]))}); received shape {array.shape}")
        result.append(array)
    return result


def standardize_targets(model, y):
    """Targets as a list, one per output, each checked by its loss."""
    if y is None:
        return None
    targets = as_list(y, _output_names(model), "output")
    return [loss.check_targets(target, tensor.internal_shape[0])
            for loss, target, tensor in zip(model._losses, targets, model._graph.outputs)]


def _batches(model, x, y, sample_weight, batch_size, shuffle=False, steps=None, class_weight=None):
    if is_array_data(x):
        x = standardize_inputs(model, x)
        y = standardize_targets(model, y) if y is not None else None
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, np.float64)
    return Batches(x, y, sample_weight, batch_size, shuffle, steps, class_weight)


# ------------------------------------------------------------------------------------ compile


# compile's options that tune how Keras runs a step, not what it computes: accepted and ignored
EXECUTION_OPTIONS = ("jit_compile", "run_eagerly", "steps_per_execution", "auto_scale_loss")


def compile_model(model, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k not in EXECUTION_OPTIONS}
    if kwargs:
        raise TypeError(f"compile got unrecognized keyword arguments: {sorted(kwargs)}")
    if loss is None:
        raise ValueError("compile needs a loss, e.g. loss='categorical_crossentropy'")
    model.optimizer = optimizers.get(optimizer)
    model.loss = loss if isinstance(loss, list) or isinstance(loss, dict) and "name" not in loss else losses.get(loss)
    model._loss_spec, model._loss_weights_spec, model._metrics_spec = loss, loss_weights, metrics
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in _metric_names(metrics):
        metrics_module.get(name, losses.MeanSquaredError())  # an unknown name fails here, not in fit
    model.metric_names = [] if metrics is None else (list(metrics) if isinstance(metrics, (list, tuple))
                                                     else metrics)
    model.compiled = True
    model._compiled_for = None  # resolved per output once the graph exists (see _resolve)


def _metric_names(metrics):
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        metrics = list(metrics.values())
    if isinstance(metrics, (list, tuple)):
        return [name for item in metrics for name in _metric_names(item)]
    return [metrics]


def _resolve(model):
    """Per-output losses, weights and metrics, once the model's outputs are known."""
    if model._compiled_for is model._graph:
        return
    names = _output_names(model)
    spec = model._loss_spec
    # A dict is one loss per output when keyed by output names, else one loss's config.
    if isinstance(spec, list) or isinstance(spec, dict) and spec and set(spec) <= set(names):
        model._losses = [losses.get(item) for item in as_list(spec, names, "loss")]
    else:
        model._losses = [losses.get(spec)] * len(names)
    weights = model._loss_weights_spec
    model._loss_weight_values = [1.0] * len(names) if weights is None else [float(w) for w in as_list(weights, names,
                                                                                                 "loss weight")]
    metrics = model._metrics_spec or []
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, dict) or (len(names) > 1 and metrics and all(isinstance(m, (list, tuple)) for m in metrics)):
        per_output = as_list(metrics, names, "metric")
        per_output = [[m] if isinstance(m, str) else list(m or []) for m in per_output]
    else:
        per_output = [list(metrics)] * len(names)
    model._metric_fns = [[metrics_module.get(m, loss) for m in ms] for ms, loss in zip(per_output, model._losses)]
    model._compiled_for = model._graph


def _check_compiled(model):
    if not getattr(model, "compiled", False):
        raise RuntimeError("call model.compile(optimizer, loss, metrics) before training or evaluating")
    _resolve(model)


# ---------------------------------------------------------------------------------- the steps


def _losses_and_grads(model, outputs, ys, sample_weight):
    total, per_output, grads = 0.0, [], []
    for loss, weight, y, prediction in zip(model._losses, model._loss_weight_values, ys, outputs):
        value, grad = loss.value_and_grad(y, prediction, sample_weight)
        total += weight * value
        per_output.append(value)
        grads.append(grad if weight == 1 else grad * np.asarray(weight, grad.dtype))
    return total, per_output, grads


def _regularization(model, variables, add_gradients):
    """Σ of the weight penalties (Keras adds them to the loss); their gradients go into ``grads``."""
    total = 0.0
    for owner, key in variables:
        regularizer = owner.regularizers.get(key)
        if regularizer is not None:
            total += regularizer.penalty(owner.params[key])
            if add_gradients:
                owner.grads[key] = owner.grads[key] + regularizer.gradient(owner.params[key])
    return total


def _train_step(model, xs, ys, sample_weight, totals, strategy=None):
    take_activity_loss()
    n = len(xs[0])
    # On MPI ranks each backpropagates the global loss Σ lᵢ / N over its samples: its loss gradient
    # scaled by n / N, so the ranks' gradients add up to the one-process gradient (convnet.distributed).
    scale = n / max(strategy.sum([n])[0], 1) if strategy is not None else 1.0
    set_activity_scale(scale)
    outputs, tape = model._run(xs, training=True)
    total, per_output, grads = _losses_and_grads(model, outputs, ys, sample_weight)
    if strategy is not None:
        grads = [g * g.dtype.type(scale) for g in grads]
    total += take_activity_loss()
    model._backprop(tape, grads)
    variables = [(owner, key) for owner, key in model.trainable_variables() if key in owner.grads]
    if strategy is not None:
        strategy.sum_arrays([owner.grads[key] for owner, key in variables])
    total += _regularization(model, variables, add_gradients=True)  # once, after the sum over ranks
    model.optimizer.apply([owner.params[key] for owner, key in variables],
                          [owner.grads[key] for owner, key in variables])
    for owner, key in variables:  # after the step, as Keras
        constraints.apply(owner, key)
    totals.record(n, total, per_output, outputs, ys, sample_weight)
    return total


def _test_step(model, xs, ys, sample_weight, totals):
    take_activity_loss()
    outputs, _ = model._run(xs, training=False)
    total, per_output, _ = _losses_and_grads(model, outputs, ys, sample_weight)
    total += take_activity_loss()
    total += _regularization(model, model.trainable_variables(), add_gradients=False)
    totals.record(len(xs[0]), total, per_output, outputs, ys, sample_weight)


def _standard_batch(model, x, y, sample_weight):
    xs = standardize_inputs(model, x)
    if y is None:
        raise ValueError("training and evaluating need targets: give y, or batches of (x, y)")
    return xs, standardize_targets(model, y), sample_weight


# ------------------------------------------------------------------------------------ the loop


@_kernels_own_the_cores
def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
        validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
        steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
    if x is not None and is_array_data(x):
        ensure_built(model, x)
    _check_compiled(model)
    epochs = _positive_int("epochs", epochs)
    batch_size = 32 if batch_size is None else _positive_int("batch_size", batch_size)
    validation_freq = _positive_int("validation_freq", validation_freq)
    if steps_per_epoch is not None:
        steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
    if not isinstance(initial_epoch, (int, np.integer)) or isinstance(initial_epoch, bool) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be a non-negative int; received initial_epoch={initial_epoch!r}")
    verbose = 1 if verbose == "auto" else verbose
    if class_weight is not None and len(model.outputs) > 1:
        raise ValueError("class_weight is supported for models with one output only")
    if validation_split:
        if not is_array_data(x):
            raise ValueError("validation_split is only supported for arrays, not datasets or generators; "
                             f"received x of type {type(x).__name__}")
        if validation_data is not None:
            raise ValueError("give validation_data or validation_split, not both")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1); received validation_split={validation_split!r}")
        xs = standardize_inputs(model, x)
        ys = standardize_targets(model, y) if y is not None else None
        cut = int(len(xs[0]) * (1 - validation_split))
        validation_data = ([a[cut:] for a in xs], [a[cut:] for a in ys])
        if sample_weight is not None:
            validation_data = (*validation_data, np.asarray(sample_weight)[cut:])
            sample_weight = np.asarray(sample_weight)[:cut]
        x, y = [a[:cut] for a in xs], [a[:cut] for a in ys]
        x = x if len(x) > 1 else x[0]
        y = y if len(y) > 1 else y[0]
    train = _batches(model, x, y, sample_weight, batch_size, shuffle, steps_per_epoch, class_weight)
    if not train.stream and train.size == 0:
        raise ValueError("fit needs at least one training sample")
    if not train.stream and train.y is None:
        raise ValueError("fit needs targets y")
    strategy = distributed.current()
    reduce_running = strategy is not None and verbose == 1  # the same choice on every rank
    callback_list = list(callbacks or [])
    if strategy is not None and not strategy.is_chief:  # rank 0 alone prints and writes files
        verbose = 0
        callback_list = [c for c in callback_list if not getattr(c, "chief_only", False)]
    # Keras's order: the user's callbacks, then History, then the progress bar (both see the logs the
    # others added, e.g. ReduceLROnPlateau's "learning_rate")
    history = next((c for c in callback_list if isinstance(c, callbacks_module.History)), None)
    if history is None:
        history = callbacks_module.History()
        callback_list.append(history)
    if verbose and not any(isinstance(c, callbacks_module.ProgbarLogger) for c in callback_list):
        callback_list.append(callbacks_module.ProgbarLogger())
    if strategy is not None:  # dealt out to the ranks (the shared seed comes once they agree, below)
        train.shard(strategy, None, lambda: _empty_batch(model), lambda: model.stop_training)
    params = {"verbose": verbose, "epochs": epochs, "steps": len(train) or None}
    for callback in callback_list:
        callback.set_model(model)
        callback.set_params(params)
    model.history = history
    model.stop_training = False
    model._initial_epoch = initial_epoch
    for callback in callback_list:
        callback.on_train_begin({})
    if strategy is not None:  # after BackupAndRestore (rank 0's) restored: every rank starts from rank 0
        train.seed = strategy.start_fit(model, _fingerprint(train))
    logs = {}
    for epoch in range(model._initial_epoch, epochs):  # BackupAndRestore may move the start
        for callback in callback_list:
            callback.on_epoch_begin(epoch, {})
        totals, step = Totals(model), 0
        for step, (xb, yb, wb) in enumerate(train.epoch(), start=1):
            for callback in callback_list:
                callback.on_train_batch_begin(step - 1, {})
            # array batches were checked once, up front; a dataset's are checked as they come
            xs, ys, wb = _standard_batch(model, xb, yb, wb) if train.stream else (xb, yb, wb)
            _train_step(model, xs, ys, wb, totals, strategy)
            running = totals.global_logs(strategy)[0] if reduce_running else totals.logs()
            for callback in callback_list:
                callback.on_train_batch_end(step - 1, running)
            if strategy is not None and step % distributed.CHECK_EVERY == 0:
                strategy.check_weights(model)
            if model.stop_training and strategy is None:
                break  # (ranks stop together, at the next step's lockstep)
        if step == 0:
            raise ValueError("fit received no training batches")
        if strategy is not None:
            logs = totals.global_logs(strategy)[0]
            strategy.average_state(model)
            strategy.check_weights(model)
        else:
            logs = totals.logs()
        if validation_data is not None and (epoch + 1) % validation_freq == 0:
            values = _evaluate(model, validation_data, validation_batch_size or batch_size, validation_steps)
            logs.update({f"val_{k}": v for k, v in values.items()})
        for callback in callback_list:
            callback.on_epoch_end(epoch, logs)
        if strategy is not None:
            model.stop_training = bool(strategy.sum([model.stop_training])[0])
        if model.stop_training:
            break
    for callback in callback_list:
        callback.on_train_end(logs)
    return history


def _fingerprint(batches):
    """What every MPI rank's training data must agree on: shapes, dtypes and a sample of the values."""
    if batches.stream:
        source = batches.source
        return (type(source).__name__, len(batches), getattr(source, "class_names", None),
                len(getattr(source, "file_paths", ())))
    arrays = [*batches.source, *(batches.y or [])]
    return [(a.shape, str(a.dtype), float(np.sum(a[:: max(1, len(a) // 64)], dtype=np.float64))) for a in arrays]


def _empty_batch(model):
    """A batch of no samples, shaped for the model: what an MPI rank that has run out steps with."""
    xs = [np.zeros((0, *t.shape[1:]), t.dtype) for t in model._graph.inputs]
    ys = []
    for loss, tensor in zip(model._losses, model._graph.outputs):
        width = tensor.internal_shape[0]
        try:
            ys.append(loss.check_targets(np.zeros((0, width)), width))
        except ValueError:  # integer labels
            ys.append(loss.check_targets(np.zeros((0,)), width))
    return xs, ys, None


def _evaluate(model, data, batch_size, steps, verbose=0):
    """The logs of one pass over ``data``; on MPI ranks each evaluates its share and the logs are
    reduced (inference needs no step-by-step agreement). ``verbose``: the pass's progress bar."""
    strategy = distributed.current()
    if is_array_data(data):
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(f"validation_data must be (x, y), (x, y, sample_weight) or a dataset; received "
                             f"{type(data).__name__} of length {len(data) if hasattr(data, '__len__') else '?'}")
        x, y, weights = data[0], data[1], data[2] if len(data) == 3 else None
        if strategy is not None:
            xs, ys = standardize_inputs(model, x), standardize_targets(model, y)
            rows = strategy.shard_range(len(xs[0]))
            x, y = [a[rows.start:rows.stop] for a in xs], [a[rows.start:rows.stop] for a in ys]
            weights = None if weights is None else np.asarray(weights)[rows.start:rows.stop]
        batches = _batches(model, x, y, weights, batch_size, steps=steps)
    else:
        source = data if strategy is None else Dealt(data, strategy.rank, strategy.size)
        batches = _batches(model, source, None, None, batch_size, steps=steps)
    totals = Totals(model)
    with callbacks_module.PassProgress(verbose if distributed.is_chief() else 0, len(batches)) as progress:
        for xb, yb, wb in batches.epoch():
            xs, ys, wb = _standard_batch(model, xb, yb, wb) if batches.stream else (xb, yb, wb)
            _test_step(model, xs, ys, wb, totals)
            progress.update(totals.logs)
        logs, seen = totals.global_logs(strategy) if strategy is not None else (totals.logs(), totals.samples)
        progress.finish(lambda: logs)
    if seen == 0:
        raise ValueError("evaluate received no samples")
    return logs


@_kernels_own_the_cores
def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
             return_dict=False, single_batch=False):
    if x is not None and is_array_data(x):
        ensure_built(model, x)
    _check_compiled(model)
    batch_size = 32 if batch_size is None else _positive_int("batch_size", batch_size)
    if single_batch:
        totals = Totals(model)
        xs, ys, wb = _standard_batch(model, x, y, sample_weight)
        _test_step(model, xs, ys, wb, totals)
        result = totals.logs()
    else:
        data = x if not is_array_data(x) else ((x, y) if sample_weight is None else (x, y, sample_weight))
        result = _evaluate(model, data, batch_size, steps, verbose)
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


@_kernels_own_the_cores
def predict(model, x, batch_size=None, verbose="auto", steps=None, single_batch=False):
    batch_size = 32 if batch_size is None else _positive_int("batch_size", batch_size)
    strategy = distributed.current() if not single_batch else None
    if is_array_data(x):
        xs = standardize_inputs(model, x)
        if strategy is not None:  # each rank its contiguous share; gathered in order below
            rows = strategy.shard_range(len(xs[0]))
            xs = [a[rows.start:rows.stop] for a in xs]
        batches = [xs] if single_batch else [[a[i : i + batch_size] for a in xs]
                                             for i in range(0, len(xs[0]), batch_size)]
        total = len(batches)
    else:
        source = x if strategy is None else Dealt(x, strategy.rank, strategy.size)
        stream = Batches(source, steps=steps, batch_size=batch_size)
        batches, total = (item[0] for item in stream.epoch()), len(stream)
    outputs_per_batch = []
    shown = 0 if single_batch or not distributed.is_chief() else verbose
    with callbacks_module.PassProgress(shown, total) as progress:
        for xb in batches:
            outputs_per_batch.append(model._outputs_to_user(model._run(standardize_inputs(model, xb),
                                                                       training=False)[0]))
            progress.update()
        progress.finish()
    if strategy is not None:
        parts = strategy.gather_ordered(outputs_per_batch)
        if is_array_data(x):
            outputs_per_batch = [batch for part in parts for batch in part]
        else:  # a dataset was dealt batch by batch: batch k is rank k % R's (k // R)-th
            outputs_per_batch = [parts[k % len(parts)][k // len(parts)]
                                 for k in range(sum(len(part) for part in parts))]
    if not outputs_per_batch:
        result = [np.empty((0, *t.shape[1:]), t.dtype) for t in model._graph.outputs]
    else:
        result = [np.concatenate(parts) for parts in zip(*outputs_per_batch)]
    return result[0] if model._single_output else result


@_kernels_own_the_cores
def train_on_batch(model, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
    ensure_built(model, x)
    _check_compiled(model)
    xs, ys, sample_weight = _standard_batch(model, x, y, sample_weight)
    sample_weight = combined_weights(ys[0], sample_weight, class_weight)
    totals = Totals(model)
    _train_step(model, xs, ys, sample_weight, totals)
    result = totals.logs()
    if return_dict:
        return result
    values = list(result.values())
    return values[0] if len(values) == 1 else values


@_kernels_own_the_cores
def activations(model, x, layers=None) -> dict:
    """{layer name: its output (user layout)} from one inference pass over ``x``; a layer called
    several times gives its first call's output."""
    from . import graph

    xs = standardize_inputs(model, x)
    known = [layer.name for layer in model.layers]
    wanted = known if layers is None else list(layers)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"no layer named {unknown}; layers: {known}")
    g = model._graph
    values = g.values([graph.array_to_internal(a, t.data_format) for a, t in zip(xs, g.inputs)], False)
    first_output = {}
    for tensor in g.inputs:
        first_output.setdefault(tensor.node.layer.name, tensor)
    for node in g.nodes:
        first_output.setdefault(node.layer.name, node.outputs[0])
    return {name: graph.array_to_user(values[id(first_output[name])], first_output[name].data_format)
            for name in wanted}
