"""Files move between Keras 3 (torch backend) and convnet in both directions, where keras is importable:
the tutorial's fruit model and a functional model with a skip connection and BatchNormalization."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")
if keras.backend.backend() != "torch":  # pragma: no cover - another backend was chosen before us
    pytest.skip("keras must run on the torch backend here", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

import convnet  # noqa: E402


def fruit():
    return keras.Sequential([
        keras.Input((20, 20, 3)), keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, padding="same"), keras.layers.LeakyReLU(0.5), keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(2), keras.layers.Dropout(0.25), keras.layers.Flatten(),
        keras.layers.Dense(100, activation="relu"), keras.layers.Dropout(0.5),
        keras.layers.Dense(16, activation="softmax")])


def skip():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same")(keras.layers.ReLU()(keras.layers.BatchNormalization()(x)))
    z = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([x, y]))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(z))


def nested():
    inputs = keras.Input((10, 10, 3))
    inner = keras.Sequential([keras.Input((10, 10, 4)), keras.layers.Conv2D(4, 3, padding="same"),
                              keras.layers.BatchNormalization()], name="block")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Add()([x, inner(x)])
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalMaxPooling2D()(x)))


def decoder():
    """The layers of the image-classification-from-scratch example and of decoders."""
    return keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255), keras.layers.SeparableConv2D(6, 3, padding="same"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2), keras.layers.Conv2DTranspose(4, 3, strides=2),
        keras.layers.ZeroPadding2D(1), keras.layers.Cropping2D(((0, 1), (1, 0))), keras.layers.UpSampling2D(),
        keras.layers.MaxPooling2D(4), keras.layers.Reshape((-1,)), keras.layers.Dense(3, activation="softmax")])


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture(scope="module", params=[(fruit, (20, 20, 3), 16), (skip, (12, 12, 3), 4), (nested, (10, 10, 3), 3),
                                        (decoder, (8, 8, 3), 3)], ids=["fruit", "skip", "nested", "decoder"])
def trained(request, tmp_path_factory):
    make, shape, classes = request.param
    keras.utils.set_random_seed(0)
    model = make()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((32, *shape)).astype("float32"), rng.integers(0, classes, 32)
    model.fit(x, y, epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp(make.__name__)
    model.save(folder / "m.keras")
    model.save_weights(folder / "m.weights.h5")
    model.save(folder / "m.h5")
    return make, model, x, numpy(model(x, training=False)), folder


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_keras_files_load_in_convnet_and_predict_like_keras(trained, name):
    _, _, x, expected, folder = trained
    ours = convnet.load_model(folder / name)
    assert ours.compiled and type(ours.optimizer).__name__ == "RMSprop"
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=0, atol=1e-5)


def test_keras_weights_file_loads_into_the_same_convnet_model(trained):
    _, _, x, expected, folder = trained
    ours = convnet.load_model(folder / "m.keras")
    for w in ours.weights:
        w[...] = 0
    ours.load_weights(folder / "m.weights.h5")
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["back.keras", "back.h5", "back.weights.h5"])
def test_keras_to_convnet_to_keras_keeps_every_weight_bit(trained, name):
    make, model, x, expected, folder = trained
    ours = convnet.load_model(folder / "m.keras")
    if name.endswith(".weights.h5"):
        ours.save_weights(folder / name)
        back = make()
        back.load_weights(folder / name)
    else:
        ours.save(folder / name)
        back = keras.saving.load_model(folder / name)
    assert len(back.weights) == len(model.weights)
    for got, want in zip(back.weights, model.weights):
        assert numpy(got).tobytes() == numpy(want).tobytes()
    np.testing.assert_array_equal(numpy(back(x, training=False)), expected)


def test_a_convnet_trained_model_opens_in_keras(tmp_path):
    from convnet import layers

    convnet.clear_session()
    convnet.set_seed(3)
    model = convnet.Sequential([convnet.Input((10, 10, 3)), layers.Conv2D(6, 3, activation="relu"),
                                layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 10, 10, 3)).astype("float32"), rng.integers(0, 3, 16)
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "ours.keras")
    theirs = keras.saving.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(numpy(theirs(x, training=False)), model.predict(x, verbose=0), rtol=0, atol=1e-6)
    assert theirs.optimizer.__class__.__name__ == "Adam" and theirs.loss == "sparse_categorical_crossentropy"


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd_momentum"])
@pytest.mark.parametrize("direction", ["keras to convnet", "convnet to keras"])
def test_training_resumes_with_the_optimizer_state_in_the_file(tmp_path, optimizer, direction):
    """One more step after loading equals one more step without saving: the optimizer's step count
    and slots travel in the .keras file (a fresh optimizer would take a different step)."""
    from convnet import layers

    rng = np.random.default_rng(2)
    x, y = rng.random((8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    make_optimizer = {"adam": lambda lib: lib.optimizers.Adam(0.01),
                      "rmsprop": lambda lib: lib.optimizers.RMSprop(0.01),
                      "sgd_momentum": lambda lib: lib.optimizers.SGD(0.05, momentum=0.9)}[optimizer]
    convnet.clear_session()
    convnet.set_seed(0)
    ours = convnet.Sequential([convnet.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    ours.compile(optimizer=make_optimizer(convnet), loss="sparse_categorical_crossentropy")
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                               keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    theirs.compile(optimizer=make_optimizer(keras), loss="sparse_categorical_crossentropy")
    theirs.set_weights(ours.get_weights())
    first, second = (theirs, ours) if direction == "keras to convnet" else (ours, theirs)
    for _ in range(3):
        first.train_on_batch(x, y)
    first.save(tmp_path / "m.keras")
    loaded = (convnet.load_model if second is ours else keras.saving.load_model)(tmp_path / "m.keras")
    first.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for got, want in zip(loaded.get_weights(), first.get_weights()):
        np.testing.assert_allclose(numpy(got), numpy(want), rtol=1e-5, atol=1e-6)
