"""Each layer's backward against central finite differences in float64, and layer arguments."""

import numpy as np
import pytest

import convnet
from convnet import layers
from tests.conftest import numerical_gradient

def to_float64(layer):
    for store in (layer.params, layer.state):
        for key in store:
            store[key] = store[key].astype(np.float64)
    for sub in getattr(layer, "_sublayers", lambda: [])():
        to_float64(sub)


def check_gradients(layer, x, training=True, seed=0):
    """Compare layer.backward with central differences of sum(forward(x) * dy), for x and every weight."""
    rng = np.random.default_rng(seed)
    layer.build(x.shape[1:])
    to_float64(layer)
    y = layer.forward(x, training)
    dy = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(layer.forward(x, training) * dy))

    layer.forward(x, training)
    dx = layer.backward(dy)
    grads = [(owner.params[key], owner.grads[key].copy()) for owner, key in layer.trainable_variables()]
    for array, analytic_grad in [(x, dx), *grads]:
        np.testing.assert_allclose(analytic_grad, numerical_gradient(loss, array), rtol=1e-5, atol=1e-6)


def image(shape=(2, 3, 5, 6), seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("layer_factory", [
    lambda: layers.Conv2D(4, (3, 2), padding="same", activation="tanh"),
    lambda: layers.Conv2D(4, 3, strides=2, padding="valid", dilation_rate=1, activation="sigmoid"),
    lambda: layers.Conv2D(3, 3, padding="same", groups=3, use_bias=False),
    lambda: layers.Conv2D(2, (2, 3), dilation_rate=(2, 1), activation="linear"),
], ids=["same-tanh", "strided-sigmoid", "depthwise", "dilated"])
def test_conv2d_gradients(layer_factory):
    check_gradients(layer_factory(), image())


@pytest.mark.parametrize("layer_factory", [
    lambda: layers.AveragePooling2D((2, 2)),
    lambda: layers.AveragePooling2D((3, 3), strides=2, padding="same"),
    lambda: layers.SumPooling2D((2, 3), strides=(1, 2)),
    lambda: layers.MaxPooling2D((2, 2), strides=1, padding="same"),
    lambda: layers.GlobalAveragePooling2D(),
    lambda: layers.GlobalMaxPooling2D(),
], ids=["avg", "avg-same", "sum", "max-same", "global-avg", "global-max"])
def test_pooling_gradients(layer_factory):
    # A permutation: distinct values, so the max is unique and differentiable.
    x = np.random.default_rng(2).permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6) * 0.01
    check_gradients(layer_factory(), x)


@pytest.mark.parametrize("layer_factory,shape", [
    (lambda: layers.Dense(4, activation="relu"), (3, 5)),
    (lambda: layers.Dense(3, activation="softmax"), (4, 6)),
    (lambda: layers.Flatten(), (2, 3, 4, 5)),
    (lambda: layers.Flatten(data_format="channels_first"), (2, 3, 4, 5)),
    (lambda: layers.LeakyReLU(0.5), (2, 3, 4, 5)),
    (lambda: layers.Activation("tanh"), (2, 3, 4, 5)),
    (lambda: layers.Softmax(), (2, 4, 3, 3)),
    (lambda: layers.BatchNormalization(), (4, 3, 3, 2)),
    (lambda: layers.BatchNormalization(), (6, 5)),
], ids=["dense-relu", "dense-softmax", "flatten", "flatten-cf", "leaky", "tanh", "softmax", "bn-image", "bn-flat"])
def test_core_layer_gradients(layer_factory, shape):
    x = np.random.default_rng(3).standard_normal(shape) + 0.05  # ReLU kinks away from the samples
    check_gradients(layer_factory(), x)


def test_batchnorm_inference_gradient():
    layer = layers.BatchNormalization()
    layer.build((3, 4, 4))
    layer.state["moving_mean"][...] = [0.1, -0.2, 0.3]
    layer.state["moving_variance"][...] = [0.5, 2.0, 1.5]
    check_gradients(layer, image((2, 3, 4, 4)), training=False)


def test_dropout_scales_and_routes_gradient():
    convnet.set_seed(0)
    layer = layers.Dropout(0.5)
    x = np.ones((1000, 10))
    y = layer.forward(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.05
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), y)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


@pytest.mark.parametrize("rate", [1e-4, 0.1, 0.25, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_drops_at_its_rate(rate, dtype):
    """The drawn fraction within 5 standard deviations of the rate, odd sizes (a half-used 64-bit draw) included."""
    layer = layers.Dropout(rate, seed=3)
    x = np.ones((999, 1001), dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype
    dropped = float(np.mean(y == 0))
    assert abs(dropped - rate) < 5 * np.sqrt(rate * (1 - rate) / x.size) + 1e-6
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    again = layers.Dropout(rate, seed=3).forward(x, training=True)  # seeded: the same mask
    np.testing.assert_array_equal(again, y)


def test_residual_and_parallel_gradients():
    residual = layers.Residual([layers.Conv2D(3, 3, padding="same", activation="tanh"),
                                layers.Conv2D(3, 3, padding="same")])
    check_gradients(residual, image())
    projected = layers.Residual([layers.Conv2D(4, 3, strides=2, padding="same")],
                                shortcut=layers.Conv2D(4, 1, strides=2))
    check_gradients(projected, image())
    inception = layers.Parallel([[layers.Conv2D(2, 1)], [layers.Conv2D(3, 3, padding="same", activation="tanh")],
                                 [layers.MaxPooling2D(3, strides=1, padding="same")]])
    check_gradients(inception, image())
    assert inception.output_shape == (2 + 3 + 3, 5, 6)


def test_residual_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="projection"):
        layers.Residual([layers.Conv2D(5, 3, padding="same")]).build((3, 5, 6))


@pytest.mark.parametrize("make,text", [
    (lambda: layers.Conv2D(-1, 3), "filters=-1"),
    (lambda: layers.Conv2D(0, 3), "filters=0"),
    (lambda: layers.Conv2D(4, 0), "kernel_size=0"),
    (lambda: layers.Conv2D(4, 3, strides=(1, 0)), "strides=(1, 0)"),
    (lambda: layers.Conv2D(4, 3, padding="full"), "padding='full'"),
    (lambda: layers.Conv2D(4, 3, activation="swishy"), "activation='swishy'"),
    (lambda: layers.Conv2D(4, 3, groups=3), "groups=3"),
    (lambda: layers.Conv2D(4, 3, kernel_initializer="magic"), "'magic'"),
    (lambda: layers.Conv2D(4, 3, data_format="nhwc"), "data_format='nhwc'"),
    (lambda: layers.Dense(0), "units=0"),
    (lambda: layers.Dense(2.5), "units=2.5"),
    (lambda: layers.Dropout(1.0), "rate=1.0"),
    (lambda: layers.Dropout(-0.1), "rate=-0.1"),
    (lambda: layers.MaxPooling2D(0), "pool_size=0"),
    (lambda: layers.LeakyReLU(-1), "negative_slope=-1"),
    (lambda: layers.Activation("gelu2"), "activation='gelu2'"),
    (lambda: layers.BatchNormalization(axis=2), "axis=2"),
    (lambda: layers.Input((20, 20)), "shape=(20, 20)"),
    (lambda: layers.Input((20, -1, 3)), "shape=(20, -1, 3)"),
])
def test_bad_layer_arguments(make, text):
    with pytest.raises(ValueError) as info:
        make()
    assert text in str(info.value)


def test_keras_layout_of_conv_weights():
    layer = layers.Conv2D(5, (3, 2), groups=1)
    layer.build((4, 6, 6))
    kernel, bias = layer.get_weights()
    assert kernel.shape == (3, 2, 4, 5) and bias.shape == (5,)
    marker = np.arange(kernel.size, dtype=np.float32).reshape(kernel.shape)
    layer.set_weights([marker, bias])
    # the kernels' layout is (filters, in, kh, kw)
    assert layer.params["kernel"][4, 3, 2, 1] == marker[2, 1, 3, 4]
    with pytest.raises(ValueError, match=r"\(3, 2, 4, 5\)"):
        layer.set_weights([marker.T, bias])


@pytest.mark.parametrize("threads", [1, 2])
def test_dense_in_float32_takes_cnnkernels_products(threads):
    # big enough for cnnkernels.matmul's kernel at 2 threads (and for its input gradient, a transposed kernel, at
    # 1): the same products as NumPy's, and a float64 gradient reaching the float32 layer still works
    import cnnkernels

    rng = np.random.default_rng(0)
    layer = layers.Dense(100)
    layer.build((1600,))
    x = rng.standard_normal((32, 1600)).astype(np.float32)
    dy = rng.standard_normal((32, 100))
    kernel = layer.params["kernel"]
    with cnnkernels.threads(threads):
        y = layer.forward(x, training=True)
        dx = layer.backward(dy.astype(np.float32))
        dkernel = layer.grads["kernel"]
        dx64 = layer.backward(dy)
    exact = x.astype(np.float64) @ kernel + layer.params["bias"]
    np.testing.assert_allclose(y, exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dx, dy @ kernel.T.astype(np.float64), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dkernel, x.T.astype(np.float64) @ dy, rtol=1e-5, atol=1e-3)
    assert dx.dtype == np.float32 and dx64.dtype == np.float64
    np.testing.assert_allclose(dx64, dy @ kernel.T.astype(np.float64), rtol=1e-6, atol=1e-6)
