"""Images, image folders, augmentation and the embedded digits."""

import numpy as np
import pytest
from PIL import Image

from convnet.data import (
    ImageFileError,
    RandomAugment,
    UnreadableImageWarning,
    image_dataset_from_directory,
    load_digits,
    load_image,
)


def test_load_image_scales_and_converts(tmp_path):
    pixels = np.zeros((100, 100, 3), np.uint8)
    pixels[:, :, 0] = 255
    pixels[10, 20] = (0, 128, 255)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png")
    assert rgb.shape == (100, 100, 3) and rgb.dtype == np.float32
    assert rgb[0, 0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(rgb[10, 20], [0, 128 / 255, 1.0])
    gray = load_image(tmp_path / "a.png", grayscale=True)
    assert gray.shape == (100, 100, 1)
    assert gray[0, 0, 0] == pytest.approx(76 / 255)  # ITU-R 601: 0.299 * 255
    assert load_image(tmp_path / "a.png", size=(20, 30)).shape == (20, 30, 3)


def test_load_image_errors_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageFileError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageFileError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match=r"\(0, 3\)"):
        load_image(tmp_path / "bad.png", size=(0, 3))


def test_folder_reads_classes_in_order_and_streams_batches(image_folder, capsys):
    dataset = image_dataset_from_directory(image_folder, image_size=(12, 12), batch_size=8, seed=1)
    assert "Found 37 files belonging to 3 classes." in capsys.readouterr().out
    assert dataset.class_names == ["blue", "green", "red"]
    assert len(dataset) == 5
    seen = 0
    with pytest.warns(UnreadableImageWarning, match="broken.png"):
        for x, y in dataset:
            assert x.shape[1:] == (12, 12, 3) and x.dtype == np.float32 and len(x) == len(y)
            # the class colour dominates: the label is the argmax of the mean colour (blue=2, green=1, red=0)
            np.testing.assert_array_equal(2 - x.mean(axis=(1, 2)).argmax(axis=1), y)
            seen += len(x)
    assert seen == 36  # the broken file is skipped ...
    assert sum(len(x) for x, _ in dataset) == 36  # ... and stays skipped, without a second warning


def test_split_label_modes_and_grayscale(image_folder, capsys):
    training, validation = image_dataset_from_directory(image_folder, image_size=(6, 6), validation_split=0.25,
                                                        subset="both", seed=3, label_mode="categorical",
                                                        color_mode="grayscale")
    printed = capsys.readouterr().out
    assert "Using 28 files for training." in printed and "Using 9 files for validation." in printed
    assert not set(training.file_paths) & set(validation.file_paths)
    x, y = next(iter(validation))
    assert x.shape[1:] == (6, 6, 1) and y.shape[1] == 3 and np.all(y.sum(axis=1) == 1)
    again = image_dataset_from_directory(image_folder, image_size=(6, 6), validation_split=0.25,
                                         subset="validation", seed=3, verbose=False)
    assert again.file_paths == validation.file_paths  # the same seed gives the same split


@pytest.mark.parametrize("kwargs,text", [
    (dict(label_mode="sparse"), "label_mode='sparse'"),
    (dict(color_mode="rgba"), "color_mode='rgba'"),
    (dict(validation_split=0.2), "subset=None"),
    (dict(validation_split=1.5, subset="training"), "validation_split=1.5"),
    (dict(image_size=(0, 5)), "(0, 5)"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(class_names=["blue", "purple"]), "purple"),
])
def test_folder_argument_errors(image_folder, kwargs, text):
    with pytest.raises(ValueError) as info:
        image_dataset_from_directory(image_folder, verbose=False, **kwargs)
    assert text in str(info.value)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        image_dataset_from_directory(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        image_dataset_from_directory(tmp_path / "empty")


def test_augmentation_keeps_shapes_and_flip_mirrors():
    images = np.random.default_rng(0).random((6, 10, 12, 3), dtype=np.float32)
    augmented = RandomAugment(seed=0)(images)
    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert not np.allclose(augmented, images)
    flips = RandomAugment(flip=True, shift=0, rotation=0, zoom=0, seed=1)(images)
    for original, flipped in zip(images, flips):
        assert np.allclose(flipped, original, atol=1e-5) or np.allclose(flipped, original[:, ::-1], atol=1e-5)
    with pytest.raises(ValueError, match="rotation=400"):
        RandomAugment(rotation=400)


def test_embedded_digits():
    (x_train, y_train), (x_test, y_test), names = load_digits()
    assert x_train.shape[1:] == (8, 8, 1) and len(x_train) + len(x_test) == 1797
    assert 0 <= x_train.min() and x_train.max() <= 1
    assert names == [str(d) for d in range(10)]
    assert abs(len(x_test) / 1797 - 0.2) < 0.01 and set(np.unique(y_test)) == set(range(10))


def test_sixteen_bit_images_keep_their_levels(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    gray = load_image(tmp_path / "ramp16.png", grayscale=True)[:, :, 0]
    np.testing.assert_allclose(gray, ramp / 65535, atol=1e-6)  # not 99 % ones (saturated at 255)
    rgb = load_image(tmp_path / "ramp16.png", size=(4, 32))
    assert rgb.shape == (4, 32, 3) and 0.4 < rgb.mean() < 0.6 and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_huge_images_need_a_target_size_and_bombs_are_image_errors(tmp_path, monkeypatch):
    from PIL import Image

    import convnet.data

    Image.new("RGB", (300, 200), (10, 200, 30)).save(tmp_path / "big.jpg")
    monkeypatch.setattr(convnet.data, "MAX_PIXELS", 300 * 199)
    with pytest.raises(convnet.data.ImageFileError, match="300x200 pixels is more than 59,700"):
        load_image(tmp_path / "big.jpg")
    small = load_image(tmp_path / "big.jpg", size=(20, 30))  # decoded at a reduced scale (draft)
    assert small.shape == (20, 30, 3) and abs(small[..., 1].mean() - 200 / 255) < 0.02
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(convnet.data.ImageFileError, match="decompression bomb"):
        load_image(tmp_path / "big.jpg", size=(20, 30))
