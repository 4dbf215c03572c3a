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
from tests.convnet.keras_scripts import branchy, resnet20, toy_resnet  # noqa: E402
from tests.convnet.test_keras_parity import OPTIMIZERS, float64_everywhere  # noqa: E402,F401


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
