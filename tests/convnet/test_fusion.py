"""A Conv2D whose output only a ReLU / LeakyReLU reads applies the activation in its kernels (convnet.graph):
the same bits as the two layers run one after the other, forward, backward and over training steps; not where
anything else reads the convolution's output or the layers' settings forbid it."""

import numpy as np
import pytest

import convnet
from convnet import layers
from tests.conftest import numerical_gradient


class Unfused(layers.Conv2D):
    """Conv2D with a forward of its own: the graph does not fuse what follows it."""

    def forward(self, x, training=False):
        return super().forward(x, training)


ACTIVATION_LAYERS = [lambda: layers.LeakyReLU(0.5), lambda: layers.ReLU(), lambda: layers.Activation("relu"),
                     lambda: layers.Activation("leaky_relu"), lambda: layers.LeakyReLU(0.0)]


def tutorial_like(conv, activation):
    convnet.set_seed(0)
    model = convnet.Sequential([
        convnet.Input((10, 10, 3)), conv(8, 3, padding="same"), activation(), layers.BatchNormalization(),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dense(5, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=convnet.optimizers.RMSprop(1e-3))
    return model


def batch(dtype=np.float32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 10, 10, 3)).astype(dtype), rng.integers(0, 5, 6)


@pytest.mark.parametrize("activation", ACTIVATION_LAYERS)
def test_training_steps_have_the_unfused_bits(activation):
    x, y = batch()
    fused, plain = tutorial_like(layers.Conv2D, activation), tutorial_like(Unfused, activation)
    for _ in range(3):
        assert fused.train_on_batch(x, y) == plain.train_on_batch(x, y)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fused.predict(x, verbose=0), plain.predict(x, verbose=0))
    assert fused.layers[0]._fused["activation"] == "leaky_relu" and plain.layers[0]._fused is None


def calls_of(layer):
    """Count the calls of ``layer``'s forward (an instance attribute: the class's forward stays fusable)."""
    forward, calls = layer.forward, []

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    layer.forward = counted
    return calls


def test_the_activation_layer_is_not_run_and_its_gradient_is_the_convolutions():
    x, y = batch()
    model = tutorial_like(layers.Conv2D, lambda: layers.LeakyReLU(0.5))
    calls = calls_of(model.layers[1])
    model.train_on_batch(x, y)
    assert calls == []
    assert model.layers[0]._fused == dict(activation="leaky_relu", negative_slope=0.5)


def functional(conv_kwargs=None, activation=lambda: layers.ReLU(), wiring="chain"):
    convnet.set_seed(0)
    inputs = convnet.Input((8, 8, 2))
    conv = layers.Conv2D(4, 3, padding="same", **(conv_kwargs or {}))
    act = activation()
    z = conv(inputs)
    a = act(z)
    if wiring == "also_output":  # the convolution's own output is one of the model's
        outputs = [layers.GlobalAveragePooling2D()(a), z]
    elif wiring == "read_twice":  # another layer reads the convolution's output too
        outputs = layers.GlobalAveragePooling2D()(layers.Add()([a, z]))
    else:
        outputs = layers.GlobalAveragePooling2D()(a)
    return convnet.Model(inputs, outputs), conv, act


@pytest.mark.parametrize("conv_kwargs,wiring", [
    (dict(activation="tanh"), "chain"),             # an activation of its own first
    (dict(activity_regularizer="l2"), "chain"),      # the penalty is on the convolution's output
    (None, "also_output"),
    (None, "read_twice"),
])
def test_not_fused_where_the_output_is_needed_as_it_is(conv_kwargs, wiring):
    model, conv, act = functional(conv_kwargs, wiring=wiring)
    calls = calls_of(act)
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 2)).astype(np.float32)
    outputs, tape = model._run([x], training=True)
    model._backprop(tape, [np.ones_like(o) for o in outputs])
    assert calls == [1] and conv._fused is None


def test_not_fused_after_an_activation_layer_of_its_own_kind():
    class Clipped(layers.ReLU):
        def forward(self, x, training=False):
            return np.minimum(super().forward(x, training), 1.0)

    model, conv, act = functional(activation=Clipped)
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 2)).astype(np.float32)
    model._run([x], training=False)
    assert conv._fused is None


def test_activations_report_the_convolutions_own_output():
    model, conv, act = functional()
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 2)).astype(np.float32)
    seen = model.activations(x)
    assert (seen[conv.name] < 0).any()
    np.testing.assert_array_equal(seen[act.name], np.maximum(seen[conv.name], 0))
    assert conv._fused is None


@pytest.mark.parametrize("activation", [lambda: layers.LeakyReLU(0.3), lambda: layers.ReLU()])
def test_fused_gradients_against_central_differences(activation):
    convnet.set_floatx("float64")
    try:
        model, conv, _ = functional(activation=activation)
        x = np.random.default_rng(2).standard_normal((2, 8, 8, 2))
        outputs, _ = model._run([x], training=False)
        dy = np.random.default_rng(3).standard_normal(outputs[0].shape)

        def loss():
            return float(np.sum(model._run([x], training=False)[0][0] * dy))

        _, tape = model._run([x], training=False)
        model._backprop(tape, [dy])
        assert conv._fused is not None
        for owner, key in model.trainable_variables():
            np.testing.assert_allclose(owner.grads[key], numerical_gradient(loss, owner.params[key]),
                                       rtol=1e-5, atol=1e-7, err_msg=f"{owner.name}.{key}")
    finally:
        convnet.set_floatx("float32")


def test_a_nested_model_fuses_inside_and_keeps_the_bits():
    def build(conv):
        convnet.set_seed(0)
        inner = convnet.Sequential([convnet.Input((8, 8, 3)), conv(4, 3, padding="same"), layers.LeakyReLU(0.2)])
        inputs = convnet.Input((8, 8, 3))
        model = convnet.Model(inputs, layers.Dense(3, activation="softmax")(layers.Flatten()(inner(inputs))))
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        return model, inner.layers[0]

    x = np.random.default_rng(0).standard_normal((5, 8, 8, 3)).astype(np.float32)
    y = np.arange(5) % 3
    (fused, conv), (plain, _) = build(layers.Conv2D), build(Unfused)
    for _ in range(3):
        assert fused.train_on_batch(x, y) == plain.train_on_batch(x, y)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert conv._fused == dict(activation="leaky_relu", negative_slope=0.2)
