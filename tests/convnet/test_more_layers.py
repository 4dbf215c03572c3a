"""Conv2DTranspose, DepthwiseConv2D, SeparableConv2D and the reshaping layers: gradients by central
differences in float64, shapes and configs; Keras's outputs from the same weights where Keras 3 is installed."""

import numpy as np
import pytest

import convnet
from convnet import layers
from tests.convnet.keras_oracle import assert_same_outputs_for_same_weights
from tests.convnet.test_layers import check_gradients, image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's own, under NumPy 2

NEW_LAYERS = {
    "transpose-valid-s2": lambda: layers.Conv2DTranspose(3, 3, strides=2, activation="tanh"),
    "transpose-same-s2": lambda: layers.Conv2DTranspose(2, (4, 3), strides=2, padding="same"),
    "transpose-same-k2s3": lambda: layers.Conv2DTranspose(2, 2, strides=3, padding="same", use_bias=False),
    "transpose-output-padding": lambda: layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1),
    "transpose-dilated": lambda: layers.Conv2DTranspose(2, 3, dilation_rate=2),
    "depthwise": lambda: layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="sigmoid"),
    "depthwise-strided": lambda: layers.DepthwiseConv2D((2, 3), strides=2),
    "separable": lambda: layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="tanh"),
    "separable-valid-s2": lambda: layers.SeparableConv2D(2, 2, strides=2, use_bias=False),
    "zero-padding": lambda: layers.ZeroPadding2D(((1, 2), (0, 3))),
    "cropping": lambda: layers.Cropping2D(((1, 0), (2, 1))),
    "upsampling": lambda: layers.UpSampling2D((2, 3)),
    "reshape": lambda: layers.Reshape((6, 5, 3)),
    "rescaling": lambda: layers.Rescaling(1 / 255, offset=-0.5),
    "identity": lambda: layers.Identity(),
}


@pytest.mark.parametrize("name", list(NEW_LAYERS))
def test_gradients_by_central_differences(name):
    check_gradients(NEW_LAYERS[name](), image())


@pytest.mark.parametrize("name", list(NEW_LAYERS))
def test_symbolic_shape_equals_the_computed_one_and_config_round_trips(name):
    convnet.set_floatx("float64")
    try:
        layer = NEW_LAYERS[name]()
        inputs = convnet.Input((5, 6, 3))
        model = convnet.Model(inputs, layer(inputs))
        x = image((2, 5, 6, 3))
        y = model.predict(x, verbose=0)
        assert y.shape[1:] == tuple(model.outputs[0].shape[1:])
        twin = convnet.Model.from_config(model.get_config())
        twin.set_weights(model.get_weights())
        np.testing.assert_array_equal(twin.predict(x, verbose=0), y)
    finally:
        convnet.set_floatx("float32")


def test_aliases_are_keras_names():
    assert layers.MaxPool2D is layers.MaxPooling2D and layers.AvgPool2D is layers.AveragePooling2D
    assert layers.Convolution2D is layers.Conv2D and layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D


@pytest.mark.parametrize("make,text", [
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), "output_padding must be smaller than strides"),
    (lambda: layers.DepthwiseConv2D(3, strides=2, dilation_rate=2), "cannot be combined"),
    (lambda: layers.ZeroPadding2D(-1), "non-negative"),
    (lambda: layers.Reshape((2, -1, -1)), "one may be -1"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: layers.Rescaling(float("nan")), "scale=nan"),
])
def test_bad_arguments_are_named(make, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
        make()


KERAS_SAME = {  # name -> (keras factory, convnet factory)
    "Conv2DTranspose valid s2": ("Conv2DTranspose", dict(filters=3, kernel_size=3, strides=2, activation="relu")),
    "Conv2DTranspose same s2": ("Conv2DTranspose", dict(filters=2, kernel_size=(4, 3), strides=2, padding="same")),
    "Conv2DTranspose same k2 s3": ("Conv2DTranspose", dict(filters=2, kernel_size=2, strides=3, padding="same")),
    "Conv2DTranspose output_padding": ("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same",
                                                              output_padding=1)),
    "DepthwiseConv2D": ("DepthwiseConv2D", dict(kernel_size=3, padding="same", depth_multiplier=2)),
    "DepthwiseConv2D strided": ("DepthwiseConv2D", dict(kernel_size=(2, 3), strides=2)),
    "SeparableConv2D": ("SeparableConv2D", dict(filters=4, kernel_size=3, padding="same", depth_multiplier=2,
                                                activation="relu")),
    "UpSampling2D": ("UpSampling2D", dict(size=(2, 3))),
    "ZeroPadding2D": ("ZeroPadding2D", dict(padding=((1, 2), (0, 3)))),
    "Cropping2D": ("Cropping2D", dict(cropping=((1, 0), (2, 1)))),
    "Reshape": ("Reshape", dict(target_shape=(6, 5, 3))),
    "Rescaling": ("Rescaling", dict(scale=1 / 255, offset=-0.5)),
}


@pytest.mark.parametrize("name", list(KERAS_SAME))
def test_same_weights_give_keras_outputs(name):
    class_name, arguments = KERAS_SAME[name]
    x = np.random.default_rng(3).random((2, 5, 6, 3)).astype("float32")
    assert_same_outputs_for_same_weights(class_name, arguments, x)
