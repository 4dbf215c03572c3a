"""The preprocessing, augmentation, normalisation, noise and activation layers Keras image scripts use:
gradients by central differences in float64 (random layers with their draw held fixed), Keras's
outputs for the same transform or weights, training-only behaviour, seeds, configs, bad arguments."""

import numpy as np
import pytest

import convnet
from convnet import layers
from tests.convnet.keras_oracle import assert_same_outputs_for_same_weights, keras_or_skip
from tests.convnet.test_layers import check_gradients, image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's own, under NumPy 2


def fixed_draw(layer, seed=5):
    """``layer`` whose every forward makes the same random draw (so finite differences see one function)."""
    forward = layer.forward

    def reseeded(x, training=False):
        layer._rng = np.random.default_rng(seed)
        return forward(x, training)

    layer.forward = reseeded
    return layer


DETERMINISTIC = {
    "resizing-down": lambda: layers.Resizing(3, 4),
    "resizing-up": lambda: layers.Resizing(7, 9),
    "resizing-crop": lambda: layers.Resizing(4, 3, crop_to_aspect_ratio=True),
    "resizing-nearest": lambda: layers.Resizing(4, 4, interpolation="nearest"),
    "center-crop": lambda: layers.CenterCrop(3, 4),
    "center-crop-larger": lambda: layers.CenterCrop(7, 4),
    "upsampling-bilinear": lambda: layers.UpSampling2D((2, 3), interpolation="bilinear"),
    "layer-norm": lambda: layers.LayerNormalization(),
    "layer-norm-hwc": lambda: layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5),
    "layer-norm-hw": lambda: layers.LayerNormalization(axis=(-3, -2), center=False),
    "prelu": lambda: layers.PReLU(alpha_initializer="glorot_uniform"),
    "prelu-shared": lambda: layers.PReLU(alpha_initializer="glorot_uniform", shared_axes=[1, 2]),
    "elu": lambda: layers.ELU(0.7),
    "permute": lambda: layers.Permute((2, 3, 1)),
    "activation-gelu": lambda: layers.Activation("gelu"),
    "activation-silu": lambda: layers.Activation("swish"),
    "activation-log-softmax": lambda: layers.Activation("log_softmax"),
}
RANDOM = {
    "flip": lambda: layers.RandomFlip(seed=1),
    "rotation-reflect": lambda: layers.RandomRotation(0.2, seed=1),
    "rotation-constant": lambda: layers.RandomRotation(0.2, fill_mode="constant", fill_value=0.5, seed=1),
    "rotation-nearest-wrap": lambda: layers.RandomRotation(0.3, fill_mode="wrap", interpolation="nearest", seed=1),
    "zoom": lambda: layers.RandomZoom(0.3, seed=1),
    "zoom-aspect": lambda: layers.RandomZoom((-0.3, 0.2), (0.1, 0.4), fill_mode="nearest", seed=1),
    "translation": lambda: layers.RandomTranslation(0.3, 0.2, seed=1),
    "contrast": lambda: layers.RandomContrast(0.4, value_range=(-100, 100), seed=1),
    "crop": lambda: layers.RandomCrop(3, 4, seed=1),
    "spatial-dropout": lambda: layers.SpatialDropout2D(0.5, seed=1),
    "gaussian-noise": lambda: layers.GaussianNoise(0.3, seed=1),
    "gaussian-dropout": lambda: layers.GaussianDropout(0.3, seed=1),
}
NOISE = ("spatial-dropout", "gaussian-noise", "gaussian-dropout")


@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_gradients_by_central_differences(name):
    check_gradients(DETERMINISTIC[name](), image())


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_layers_backward_is_the_gradient_of_their_draw(name):
    check_gradients(fixed_draw(RANDOM[name]()), image(), training=True)


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_layers_act_in_training_only_and_follow_their_seed(name):
    x = np.random.default_rng(0).random((4, 8, 9, 3)).astype("float32") * 50
    model = convnet.Sequential([convnet.Input((8, 9, 3)), RANDOM[name]()])
    predicted = model.predict(x, verbose=0)
    if name != "crop":  # inference crops the centre
        np.testing.assert_array_equal(predicted, x)
    first, again = RANDOM[name](), RANDOM[name]()
    # a direct call augments, as in Keras; the noise layers (as Keras's Dropout) only when told it trains
    training = True if name in NOISE else None
    augmented = first(x, training=training)
    np.testing.assert_array_equal(augmented, again(x, training=training))  # the same seed, the same draw
    assert not np.array_equal(augmented, first(x, training=training)) or name == "crop"  # a new draw each call
    if name in NOISE:
        np.testing.assert_array_equal(first(x), x)
    assert augmented.dtype == x.dtype
    assert not np.allclose(augmented[:, :3, :4], predicted[:, :3, :4]) or name == "crop"


def test_set_seed_makes_unseeded_augmentation_reproducible():
    x = np.random.default_rng(0).random((3, 8, 8, 3)).astype("float32")
    outputs = []
    for _ in range(2):
        convnet.set_seed(7)
        outputs.append(layers.RandomRotation(0.2)(x))
    np.testing.assert_array_equal(*outputs)


def test_flip_modes_and_ninety_degree_rotation():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    flipped = layers.RandomFlip("horizontal", seed=3)(x)
    for original, out in zip(x, flipped):
        assert np.array_equal(out, original) or np.array_equal(out, original[:, ::-1])
    vertical = layers.RandomFlip("vertical", seed=3)(x)
    for original, out in zip(x, vertical):
        assert np.array_equal(out, original) or np.array_equal(out, original[::-1])
    quarter = layers.RandomRotation((0.25, 0.25), fill_mode="constant")(x)
    np.testing.assert_allclose(quarter[0, :, :, 0], np.rot90(x[0, :, :, 0]), atol=1e-4)  # counter-clockwise


def test_contrast_formula_and_clipping():
    x = np.random.default_rng(1).random((2, 5, 5, 3)).astype("float32") * 255
    layer = layers.RandomContrast(0.5, seed=2)
    y = layer(x)
    factor = layer._factor.reshape(2, 1, 1, 1)
    mean = x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, np.clip((x - mean) * factor + mean, 0, 255), rtol=1e-5, atol=1e-3)


KERAS_TRANSFORMS = {  # fixed factors: one transform, so Keras's output is defined
    "rotation 90 constant": ("RandomRotation", dict(factor=(0.25, 0.25), fill_mode="constant")),
    "rotation 30 reflect": ("RandomRotation", dict(factor=(1 / 12, 1 / 12))),
    "rotation 30 wrap": ("RandomRotation", dict(factor=(1 / 12, 1 / 12), fill_mode="wrap")),
    "rotation 20 nearest": ("RandomRotation", dict(factor=(1 / 18, 1 / 18), interpolation="nearest",
                                                   fill_mode="nearest")),
    "zoom out reflect": ("RandomZoom", dict(height_factor=(0.3, 0.3))),
    "zoom in constant": ("RandomZoom", dict(height_factor=(-0.3, -0.3), width_factor=(-0.2, -0.2),
                                            fill_mode="constant")),
    "translation wrap": ("RandomTranslation", dict(height_factor=(0.2, 0.2), width_factor=(-0.3, -0.3),
                                                   fill_mode="wrap")),
    "translation nearest": ("RandomTranslation", dict(height_factor=(-0.1, -0.1), width_factor=(0.25, 0.25),
                                                      fill_mode="nearest")),
    "resizing down": ("Resizing", dict(height=5, width=7)),
    "resizing up": ("Resizing", dict(height=13, width=17)),
    "resizing crop": ("Resizing", dict(height=5, width=3, crop_to_aspect_ratio=True)),
    "resizing nearest": ("Resizing", dict(height=5, width=7, interpolation="nearest")),
    "center crop": ("CenterCrop", dict(height=5, width=6)),
    "center crop larger": ("CenterCrop", dict(height=12, width=10)),
    "upsampling bilinear": ("UpSampling2D", dict(size=(2, 3), interpolation="bilinear")),
}


@pytest.mark.parametrize("name", list(KERAS_TRANSFORMS))
def test_keras_gives_the_same_transform(name):
    keras = keras_or_skip()
    class_name, arguments = KERAS_TRANSFORMS[name]
    x = np.random.default_rng(0).random((2, 9, 9, 3)).astype("float32") * 255
    theirs = keras.ops.convert_to_numpy(getattr(keras.layers, class_name)(**arguments)(x, training=True))
    ours = getattr(layers, class_name)(**arguments)(x, training=True)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=3e-4)  # 255-scale pixels: float32 rounding


KERAS_WEIGHTED = {
    "LayerNormalization": dict(),
    "LayerNormalization hwc": dict(axis=[1, 2, 3], epsilon=1e-5),
    "LayerNormalization no center": dict(center=False),
    "PReLU": dict(),
    "PReLU shared": dict(shared_axes=[1, 2]),
}


@pytest.mark.parametrize("name", list(KERAS_WEIGHTED))
def test_same_weights_give_keras_outputs(name):
    x = np.random.default_rng(3).standard_normal((2, 5, 6, 3)).astype("float32")
    assert_same_outputs_for_same_weights(name.split()[0], KERAS_WEIGHTED[name], x)


@pytest.mark.parametrize("name", ["ELU", "Permute", "SpatialDropout2D", "GaussianNoise", "RandomFlip"])
def test_keras_model_files_with_the_new_layers_load(name, tmp_path):
    keras = keras_or_skip()
    pytest.importorskip("h5py")
    arguments = {"ELU": dict(alpha=0.5), "Permute": dict(dims=(2, 1, 3)), "SpatialDropout2D": dict(rate=0.3),
                 "GaussianNoise": dict(stddev=0.2), "RandomFlip": dict(mode="horizontal")}[name]
    x = np.random.default_rng(5).standard_normal((2, 6, 6, 3)).astype("float32")
    model = keras.Sequential([keras.Input((6, 6, 3)), getattr(keras.layers, name)(**arguments),
                              keras.layers.LayerNormalization(), keras.layers.PReLU(),
                              keras.layers.Conv2D(2, 3)])
    model.save(tmp_path / "m.keras")
    ours = convnet.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(ours.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [*DETERMINISTIC, *RANDOM])
def test_config_round_trips(name):
    factory = {**DETERMINISTIC, **RANDOM}[name]
    inputs = convnet.Input((8, 9, 3))
    model = convnet.Model(inputs, factory()(inputs))
    twin = convnet.Model.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((2, 8, 9, 3)).astype("float32")
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make,text", [
    (lambda: layers.RandomFlip("diagonal"), "mode='diagonal'"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "fill_mode='mirror'"),
    (lambda: layers.RandomRotation((0.3, 0.1)), "factor=(0.3, 0.1)"),
    (lambda: layers.RandomZoom((-1.5, 0.2)), "> -1"),
    (lambda: layers.RandomContrast(1.5), "factor=1.5"),
    (lambda: layers.Resizing(0, 3), "height=0"),
    (lambda: layers.RandomCrop(3, -1), "width=-1"),
    (lambda: layers.RandomRotation(0.1, seed=-2), "seed=-2"),
    (lambda: layers.LayerNormalization(axis=0), "axis=0"),
    (lambda: layers.Permute((1, 1, 2)), "dims=(1, 1, 2)"),
    (lambda: layers.GaussianNoise(-1), "stddev=-1"),
    (lambda: layers.PReLU(shared_axes=[0]), "shared_axes=[0]"),
])
def test_bad_arguments_are_named(make, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        make()


def test_layer_normalization_axis_must_fit_the_input():
    with pytest.raises(ValueError, match="axis=5"):
        convnet.Sequential([convnet.Input((4, 4, 2)), layers.LayerNormalization(axis=5)])


def test_preprocessing_at_the_model_start_is_not_run_backward():
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    rotation = layers.RandomRotation(0.1, seed=0)
    model = convnet.Sequential([convnet.Input((8, 8, 3)), rotation, layers.Conv2D(2, 3), layers.Flatten(),
                                layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    calls = []
    rotation.backward = lambda dy: calls.append(dy) or dy
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert calls == []
