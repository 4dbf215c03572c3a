"""Functional models written once, run by both convnet and Keras 3 (torch backend).

Each builder takes the library (``convnet`` or ``keras``) as its argument, as a script
ported with ``import convnet as keras`` would: same code, two engines. With the same
weights the numbers must agree, layer order and weight order included.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("keras must run on the torch backend here", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

import convnet  # noqa: E402
from tests.convnet.test_keras_parity import OPTIMIZERS, float64_everywhere  # noqa: E402,F401


def branchy(lib):
    """A skip connection, a Concatenate branch and a layer shared by two calls."""
    inputs = lib.Input((12, 12, 3), name="img")
    x = lib.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    shared = lib.layers.Conv2D(8, 3, padding="same", activation="tanh", name="shared")
    y = shared(shared(x))
    skip = lib.layers.add([x, y], name="skip")
    branch = lib.layers.Conv2D(4, 1, use_bias=False, name="branch")(x)  # feeds BatchNorm: no bias
    merged = lib.layers.concatenate([skip, branch], name="merge")
    z = lib.layers.BatchNormalization(name="bn")(merged)
    z = lib.layers.MaxPooling2D(2, name="pool")(z)
    z = lib.layers.GlobalAveragePooling2D(name="gap")(z)
    outputs = lib.layers.Dense(5, activation="softmax", name="head")(z)
    return lib.Model(inputs, outputs, name="branchy")


def toy_resnet(lib):
    """The keras.io functional-API guide's toy ResNet for CIFAR-10, verbatim but for ``lib``."""
    layers = lib.layers
    inputs = lib.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    return lib.Model(inputs, outputs, name="toy_resnet")


def resnet20(lib):
    """ResNet v1, depth 20, as in the keras.io CIFAR-10 ResNet example (he_normal, l2(1e-4))."""
    layers = lib.layers

    def resnet_layer(inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                     batch_normalization=True):
        x = layers.Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                          kernel_initializer="he_normal", kernel_regularizer=lib.regularizers.l2(1e-4))(inputs)
        if batch_normalization:
            x = layers.BatchNormalization()(x)
        if activation is not None:
            x = layers.Activation(activation)(x)
        return x

    inputs = lib.Input(shape=(32, 32, 3))
    num_filters = 16
    x = resnet_layer(inputs)
    for stack in range(3):
        for res_block in range(3):
            strides = 2 if stack > 0 and res_block == 0 else 1
            y = resnet_layer(x, num_filters, strides=strides)
            y = resnet_layer(y, num_filters, activation=None)
            if stack > 0 and res_block == 0:
                x = resnet_layer(x, num_filters, kernel_size=1, strides=strides, activation=None,
                                 batch_normalization=False)
            x = layers.add([x, y])
            x = layers.Activation("relu")(x)
        num_filters *= 2
    x = layers.AveragePooling2D(pool_size=8)(x)
    y = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax", kernel_initializer="he_normal")(y)
    return lib.Model(inputs=inputs, outputs=outputs)


def pair(builder, seed=0):
    """The same model in both libraries, Keras given convnet's initial weights."""
    convnet.set_seed(seed)
    convnet.clear_session()
    keras.utils.clear_session()
    ours, theirs = builder(convnet), builder(keras)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(convnet.floatx())


@pytest.mark.parametrize("builder,params", [(toy_resnet, 223_242), (resnet20, 274_442), (branchy, None)])
def test_layers_weights_and_counts_match_keras(builder, params):
    ours, theirs = pair(builder)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    if params is not None:
        assert ours.count_params() == params
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)


@pytest.mark.parametrize("builder,shape", [(branchy, (12, 12, 3)), (toy_resnet, (32, 32, 3)),
                                           (resnet20, (32, 32, 3))])
def test_predictions_match_keras(builder, shape):
    ours, theirs = pair(builder)
    x = images(4, shape)
    expected = keras.ops.convert_to_numpy(theirs(x, training=False))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-4, atol=1e-5)


def test_feature_extraction_matches_keras():
    ours, theirs = pair(toy_resnet)
    x = images(3, (32, 32, 3))
    mine = convnet.Model(inputs=ours.inputs, outputs=[layer.output for layer in ours.layers]).predict(x)
    extractor = keras.Model(inputs=theirs.inputs, outputs=[layer.output for layer in theirs.layers])
    theirs_maps = [keras.ops.convert_to_numpy(m) for m in extractor([x], training=False)]
    assert len(mine) == len(theirs_maps) == 15
    for got, want in zip(mine, theirs_maps):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,arguments", OPTIMIZERS)
def test_two_epochs_of_fit_end_at_keras_weights(name, arguments, float64_everywhere):
    ours, theirs = pair(branchy, seed=1)
    ours.compile(loss="categorical_crossentropy", optimizer=getattr(convnet.optimizers, name)(**arguments),
                 metrics=["accuracy"])
    theirs.compile(loss="categorical_crossentropy", optimizer=getattr(keras.optimizers, name)(**arguments),
                   metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x = images(48, (12, 12, 3), seed=3)
    y = np.eye(5)[rng.integers(0, 5, 48)]
    ours_history = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    theirs_history = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=1e-5)
