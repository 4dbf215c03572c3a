"""Keras 3 as the oracle: import it on the torch backend or skip, and compare a layer's outputs for
the same weights."""

import os

import numpy as np
import pytest

import convnet


def keras_or_skip():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras must run on the torch backend here")
    return keras


def assert_same_outputs_for_same_weights(class_name, arguments, x, rtol=1e-5, atol=1e-5, seed=4):
    """One ``class_name(**arguments)`` layer in Keras and in convnet, given the same random weights,
    gives the same outputs on ``x`` (and has the same weight shapes)."""
    keras = keras_or_skip()
    shape = x.shape[1:]
    theirs = keras.Sequential([keras.Input(shape), getattr(keras.layers, class_name)(**arguments)])
    ours = convnet.Sequential([convnet.Input(shape), getattr(convnet.layers, class_name)(**arguments)])
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    expected = keras.ops.convert_to_numpy(theirs(x))
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=rtol, atol=atol)
