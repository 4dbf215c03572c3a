"""The two public image tutorials the Keras-reality issue names, run end to end as ported with
``import convnet as keras`` (tests/convnet/keras_scripts.py holds them, verbatim but for the data
folder, the sizes and tf-only calls), on image folders generated here."""

import os
import re

import numpy as np
import pytest

import convnet
from tests.convnet import keras_scripts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def colour_classes(root, names, per_class, size=(40, 48), seed=0):
    """JPEG photos of noise, each class dominated by its own colour channel."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (*size, 3)).astype(np.uint8)
            pixels[..., k % 3] += 150
            Image.fromarray(pixels).save(root / name / f"{i:03d}.jpg")
    return root


def test_image_classification_from_scratch_runs(tmp_path, capsys):
    convnet.set_seed(0)
    data_dir = colour_classes(tmp_path / "PetImages", ["Cat", "Dog"], 20)
    model, history, score, shown = keras_scripts.image_classification_from_scratch(
        convnet, str(data_dir), image_size=(32, 32), batch_size=8, epochs=2, workdir=str(tmp_path))
    out = capsys.readouterr().out
    assert "Found 40 files belonging to 2 classes." in out and "Using 32 files for training." in out
    assert list(history.history) == ["loss", "acc", "val_loss", "val_acc"] and len(history.epoch) == 2
    assert history.history["loss"][1] < history.history["loss"][0]
    assert model.count_params() == 2_731_065  # Keras's count for the same code at 32x32
    assert 0 <= score <= 1 and len(shown) == 17 and shown[0][0].dtype == np.uint8
    assert (tmp_path / "model.png").exists()
    reloaded = convnet.load_model(tmp_path / "save_at_2.keras")
    x = np.stack([s for s in shown[9:12]]).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_tensorflow_images_tutorial_runs(tmp_path, capsys):
    convnet.set_seed(0)
    data_dir = colour_classes(tmp_path / "flower_photos", ["daisy", "roses", "tulips"], 16)
    history, augmented, value_range, message = keras_scripts.tensorflow_images_tutorial(
        convnet, str(data_dir), img_height=24, img_width=24, batch_size=8, epochs=3)
    assert 0 <= value_range[0] < value_range[1] <= 1  # Rescaling(1./255) mapped over the [0, 255] batches
    assert history.history["accuracy"][-1] > 0.6 and len(augmented.history["val_loss"]) == 3
    assert message.startswith("This image most likely belongs to ")
    out = capsys.readouterr().out
    assert "Found 48 files belonging to 3 classes." in out and "Using 9 files for validation." in out
    assert re.search(r"rescaling_\d+ \(Rescaling\) +\(None, 24, 24, 3\)", out)  # the summary


def test_keras_builds_the_same_models():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    previous = x
    for size in [256, 512, 728]:
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.SeparableConv2D(size, 3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.SeparableConv2D(size, 3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = keras.layers.add([x, keras.layers.Conv2D(size, 1, strides=2, padding="same")(previous)])
        previous = x
    x = keras.layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization()(x))
    outputs = keras.layers.Dense(1)(keras.layers.Dropout(0.25)(x))
    assert keras.Model(inputs, outputs).count_params() == 2_731_065
