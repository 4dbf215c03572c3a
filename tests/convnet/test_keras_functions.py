"""Activations, losses, metrics, optimizers and learning-rate schedules against Keras 3's own (torch
backend) on the same numbers, and every backward pass against central differences in float64."""

import numpy as np
import pytest

import convnet
from convnet import activations, losses, metrics, optimizers, schedules
from tests.convnet.keras_oracle import keras_or_skip
from tests.convnet.test_layers import numerical_gradient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's own, under NumPy 2


# -------------------------------------------------------------------------------- activations

NAMES = sorted(activations.PUBLIC)


@pytest.mark.parametrize("name", NAMES)
def test_activation_backward_is_its_derivative(name):
    x = np.random.default_rng(0).standard_normal((3, 5)) * 2
    x[np.abs(x) < 1e-3] = 0.5  # away from the kinks
    x[np.abs(np.abs(x) - 3) < 1e-3] = 2.0
    x[np.abs(x - 6) < 1e-3] = 5.0
    dy = np.random.default_rng(1).standard_normal(x.shape)
    forward = activations.FORWARD[name]
    y = forward(x)
    analytic = activations.backward(name, y, dy, x if name in activations.NEEDS_INPUT else None)
    numeric = numerical_gradient(lambda: float(np.sum(forward(x) * dy)), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_activation_functions_equal_keras(name):
    keras = keras_or_skip()
    x = np.random.default_rng(2).standard_normal((4, 6)).astype("float32") * 3
    theirs = keras.ops.convert_to_numpy(getattr(keras.activations, name)(x))
    np.testing.assert_allclose(getattr(activations, name)(x), theirs, rtol=1e-5, atol=1e-6)


def test_activations_by_name_alias_and_function_and_refusal():
    assert activations.check("swish") == "silu" and activations.check(activations.gelu) == "gelu"
    assert activations.check(None) == "linear" and activations.get("relu") is activations.relu
    layer = convnet.layers.Dense(3, activation=activations.selu)
    assert layer.get_config()["activation"] == "selu"
    with pytest.raises(ValueError, match="other callables cannot be differentiated"):
        convnet.layers.Dense(3, activation=lambda x: x)


# ---------------------------------------------------------------------------------- losses

LOSSES = ["mean_absolute_error", "huber", "kl_divergence", "categorical_hinge", "poisson", "mse",
          "binary_crossentropy", "categorical_crossentropy"]


def loss_data(name, dtype=np.float64):
    rng = np.random.default_rng(3)
    p = rng.random((6, 4)).astype(dtype) * 0.9 + 0.05
    if name in ("categorical_hinge", "categorical_crossentropy", "kl_divergence"):
        y = np.eye(4, dtype=dtype)[rng.integers(0, 4, 6)]
        p = p / p.sum(axis=1, keepdims=True) if name != "categorical_hinge" else rng.standard_normal((6, 4))
    elif name == "binary_crossentropy":
        y = (rng.random((6, 4)) > 0.5).astype(dtype)
    else:
        y = rng.random((6, 4)).astype(dtype) * 2
        if name == "huber":
            p = p * 4  # errors on both sides of delta
    return y, p


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradient_by_central_differences(name):
    y, p = loss_data(name)
    loss = losses.get(name)
    weights = np.linspace(0.5, 1.5, len(y))
    value, grad = loss.value_and_grad(y, p, weights)
    numeric = numerical_gradient(lambda: loss.value_and_grad(y, p, weights)[0], p)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", LOSSES)
def test_losses_equal_keras(name):
    keras = keras_or_skip()
    y, p = loss_data(name, np.float32)
    theirs = float(keras.ops.convert_to_numpy(keras.losses.get(name)(y, p)).mean())
    np.testing.assert_allclose(losses.get(name).value_and_grad(y, p)[0], theirs, rtol=2e-5)


def test_loss_classes_and_keras_configs():
    assert isinstance(losses.get({"class_name": "Huber", "config": {"delta": 2.0, "name": "huber_loss"}}),
                      losses.Huber)
    assert losses.get("huber").delta == 1.0 and losses.MAE is losses.MeanAbsoluteError
    with pytest.raises(ValueError, match="delta=0"):
        losses.Huber(delta=0)


# --------------------------------------------------------------------------------- metrics

def metric_batches():
    rng = np.random.default_rng(4)
    for _ in range(3):
        y_int = rng.integers(0, 5, 8)
        yield (np.eye(5, dtype=np.float32)[y_int], y_int, rng.random((8, 5)).astype(np.float32),
               rng.random(8).astype(np.float32) + 0.2)


METRICS = {  # ours, Keras's class name and arguments, which targets
    "precision": (lambda: metrics.Precision(), ("Precision", {}), "one_hot"),
    "precision-threshold-class": (lambda: metrics.Precision(thresholds=0.3, class_id=2),
                                  ("Precision", dict(thresholds=0.3, class_id=2)), "one_hot"),
    "recall": (lambda: metrics.Recall(), ("Recall", {}), "one_hot"),
    "auc": (lambda: metrics.AUC(), ("AUC", {}), "one_hot"),
    "auc-50": (lambda: metrics.AUC(num_thresholds=50), ("AUC", dict(num_thresholds=50)), "one_hot"),
    "top-3": (lambda: metrics.TopKCategoricalAccuracy(k=3), ("TopKCategoricalAccuracy", dict(k=3)), "one_hot"),
    "sparse-top-2": (lambda: metrics.SparseTopKCategoricalAccuracy(k=2), ("SparseTopKCategoricalAccuracy",
                                                                           dict(k=2)), "int"),
    "binary-accuracy": (lambda: metrics.BinaryAccuracy(threshold=0.4), ("BinaryAccuracy", dict(threshold=0.4)),
                        "one_hot"),
    "categorical-accuracy": (lambda: metrics.CategoricalAccuracy(), ("CategoricalAccuracy", {}), "one_hot"),
    "sparse-categorical-accuracy": (lambda: metrics.SparseCategoricalAccuracy(),
                                    ("SparseCategoricalAccuracy", {}), "int"),
    "mae": (lambda: metrics.MeanAbsoluteError(), ("MeanAbsoluteError", {}), "one_hot"),
    "mse": (lambda: metrics.MeanSquaredError(), ("MeanSquaredError", {}), "one_hot"),
}


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_metrics_equal_keras_over_several_batches(name, weighted):
    keras = keras_or_skip()
    make, (class_name, arguments), targets = METRICS[name]
    ours, theirs = make(), getattr(keras.metrics, class_name)(**arguments)
    for one_hot, labels, p, w in metric_batches():
        y = one_hot if targets == "one_hot" else labels
        ours.update_state(y, p, w if weighted else None)
        theirs.update_state(y, p, sample_weight=w if weighted else None)
    np.testing.assert_allclose(ours.result(), float(keras.ops.convert_to_numpy(theirs.result())), rtol=1e-5,
                               atol=1e-6)


def test_history_keys_follow_the_names_given():
    x = np.random.default_rng(0).random((16, 4)).astype("float32")
    y = (x.sum(axis=1) > 2).astype("float32")
    model = convnet.Sequential([convnet.Input((4,)), convnet.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd", jit_compile=True,  # Keras's XLA switch: a no-op
                  metrics=["acc", "mae", metrics.Precision(name="prec"), metrics.AUC(), "binary_crossentropy"])
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "acc", "mae", "prec", "auc", "binary_crossentropy", "val_loss",
                                      "val_acc", "val_mae", "val_prec", "val_auc", "val_binary_crossentropy"]
    np.testing.assert_allclose(history.history["binary_crossentropy"], history.history["loss"], rtol=1e-6)


# ------------------------------------------------------------------------------ optimizers

OPTIMIZERS = {
    "AdamW": dict(learning_rate=0.01),
    "Adagrad": dict(learning_rate=0.05),
    "Adadelta": dict(learning_rate=0.5),
    "Adamax": dict(learning_rate=0.01),
    "Nadam": dict(learning_rate=0.01),
    "SGD clipnorm": dict(learning_rate=0.1, momentum=0.9, clipnorm=0.5),
    "RMSprop clipvalue": dict(learning_rate=0.01, clipvalue=0.05),
    "Adam global_clipnorm": dict(learning_rate=0.01, global_clipnorm=0.3),
    "SGD weight_decay": dict(learning_rate=0.1, weight_decay=0.05),
    "Adam exponential": dict(learning_rate=("ExponentialDecay", dict(initial_learning_rate=0.02, decay_steps=2,
                                                                     decay_rate=0.5))),
    "SGD piecewise": dict(learning_rate=("PiecewiseConstantDecay", dict(boundaries=[1, 3], values=[0.1, 0.05, 0.01]))),
    "RMSprop cosine": dict(learning_rate=("CosineDecay", dict(initial_learning_rate=0.01, decay_steps=4,
                                                              warmup_target=0.02, warmup_steps=2))),
    "Adagrad inverse-time": dict(learning_rate=("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=1,
                                                                         decay_rate=0.5, staircase=True))),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_steps_equal_keras(name):
    keras = keras_or_skip()
    class_name = name.split()[0]

    def build(module, schedule_module):
        arguments = dict(OPTIMIZERS[name])
        if isinstance(arguments.get("learning_rate"), tuple):
            schedule_name, schedule_arguments = arguments["learning_rate"]
            arguments["learning_rate"] = getattr(schedule_module, schedule_name)(**schedule_arguments)
        return getattr(module, class_name)(**arguments)

    rng = np.random.default_rng(5)
    start = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(4).astype("float32")]
    gradients = [[rng.standard_normal(w.shape).astype("float32") for w in start] for _ in range(6)]
    ours = [w.copy() for w in start]
    mine = build(optimizers, schedules)
    theirs_variables = [keras.Variable(w.copy()) for w in start]
    theirs = build(keras.optimizers, keras.optimizers.schedules)
    for step in gradients:
        mine.apply(ours, [g.copy() for g in step])
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in step], theirs_variables))
        for a, b in zip(ours, theirs_variables):
            np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", ["ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay", "CosineDecay",
                                  "PolynomialDecay"])
def test_schedules_equal_keras(name):
    keras = keras_or_skip()
    arguments = {"ExponentialDecay": dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.7, staircase=True),
                 "InverseTimeDecay": dict(initial_learning_rate=0.1, decay_steps=4, decay_rate=0.3),
                 "PiecewiseConstantDecay": dict(boundaries=[5, 12], values=[1.0, 0.5, 0.1]),
                 "CosineDecay": dict(initial_learning_rate=0.1, decay_steps=20, alpha=0.1),
                 "PolynomialDecay": dict(initial_learning_rate=0.1, decay_steps=7, power=2.0, cycle=True)}[name]
    ours, theirs = getattr(schedules, name)(**arguments), getattr(keras.optimizers.schedules, name)(**arguments)
    for step in range(30):
        np.testing.assert_allclose(ours(step), float(keras.ops.convert_to_numpy(theirs(step))), rtol=1e-5)


def test_optimizer_configs_round_trip_and_bad_options_are_named():
    optimizer = optimizers.Adam(schedules.ExponentialDecay(0.1, 10, 0.9), clipnorm=1.0)
    again = optimizers.get(optimizer.get_config())
    assert isinstance(again.learning_rate, schedules.ExponentialDecay) and again.clipnorm == 1.0
    assert optimizers.get("adamw").weight_decay == 0.004
    with pytest.raises(ValueError, match="at most one of clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(TypeError, match="use_ema=True"):
        optimizers.Adam(use_ema=True)
    with pytest.raises(ValueError, match="learning_rate=-1"):
        optimizers.Nadam(-1)
