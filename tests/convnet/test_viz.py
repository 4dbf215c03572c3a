"""Pictures: each writes a PNG of the expected pixel size; what is drawn is checked numerically."""

import json
import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

import convnet  # noqa: E402
from convnet import layers, viz  # noqa: E402
from convnet.cli import main  # noqa: E402


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture
def step_image(tmp_path):
    pixels = np.zeros((20, 30, 3), np.uint8)
    pixels[:, 15:] = 200
    path = tmp_path / "step.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def small_model():
    convnet.set_seed(0)
    model = convnet.Sequential([layers.Input((12, 12, 3)), layers.Conv2D(12, 3, padding="same", activation="relu"),
                                layers.MaxPooling2D(2), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                                layers.Dense(3, activation="softmax")])
    model.metadata = {"class_names": ["a", "b", "c"], "image_size": [12, 12], "color_mode": "rgb"}
    return model


def test_sobel_x_on_a_vertical_step_is_nonzero_only_along_the_step(step_image):
    image = convnet.data.load_image(step_image, grayscale=True)
    response = viz.apply_kernel(image, viz.CLASSIC_KERNELS["sobel x"], padding="valid")[:, :, 0]
    assert response.shape == (18, 28)
    columns = np.flatnonzero(np.abs(response).max(axis=0) > 1e-6)
    assert columns.tolist() == [13, 14]  # the two valid windows that straddle the step at column 15
    assert np.all(np.abs(viz.apply_kernel(image, viz.CLASSIC_KERNELS["sobel y"], padding="valid")) < 1e-6)
    same = viz.apply_kernel(image, viz.CLASSIC_KERNELS["identity"], padding="same")
    np.testing.assert_allclose(same, image, atol=1e-6)
    assert viz.apply_kernel(image, viz.CLASSIC_KERNELS["box blur"], stride=2).shape == (10, 15, 1)


def test_classic_filters_grid(step_image, tmp_path):
    path = viz.plot_classic_filters(step_image, tmp_path / "grid.png")
    assert png_size(path) == (4 * 3 * 80, int((8 * 2.6 + 0.4) * 80))  # 0.4 in for the title above the first row


def test_history_plot(tmp_path):
    history = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.5, 0.7, 0.9], "val_loss": [1.1, 0.6, 0.4],
               "val_accuracy": [0.4, 0.6, 0.8]}
    assert png_size(viz.plot_history(history, tmp_path / "h.png")) == (1100, 400)
    assert png_size(viz.plot_history({"loss": [1.0, 0.5]}, tmp_path / "l.png")) == (550, 400)
    with pytest.raises(ValueError, match="loss"):
        viz.plot_history({"accuracy": [1]}, tmp_path / "x.png")


def test_filters_plot(small_model, tmp_path):
    assert png_size(viz.plot_filters(small_model, tmp_path / "f.png")) == (8 * 1.5 * 80, int((1.7 * 2 + 0.6) * 80))
    second = viz.plot_filters(small_model, tmp_path / "g.png", layer="conv2d_1" if any(
        layer.name == "conv2d_1" for layer in small_model.layers) else small_model.layers[2].name)
    assert png_size(second) == (4 * 1.5 * 80 + 1.2 * 80, int((1.7 + 0.6) * 80))  # gray filters: a colour bar
    with pytest.raises(ValueError, match="not a Conv2D"):
        viz.plot_filters(small_model, tmp_path / "h.png", layer=small_model.layers[1].name)


def test_feature_maps_one_figure_per_layer_with_capped_panels(small_model, tmp_path):
    image = np.random.default_rng(0).random((12, 12, 3), dtype=np.float32)
    maps = viz.feature_maps(small_model, image)
    assert [m.shape for _, m in maps] == [(12, 12, 12), (6, 6, 12), (4, 4, 4)]
    direct = small_model.layers[0].forward(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    np.testing.assert_allclose(maps[0][1], direct)
    written = viz.plot_feature_maps(small_model, image, tmp_path, max_maps=8)
    assert [(shown, channels) for _, shown, channels in written] == [(8, 12), (8, 12), (4, 4)]
    # 1.2 in beyond the panels for the colour bar (one scale for the layer)
    assert png_size(written[0][0]) == ((8 * 1.6 + 1.2) * 80, int((1.6 * 1 + 0.7) * 80))
    assert png_size(written[2][0]) == ((4 * 1.6 + 1.2) * 80, int((1.6 * 1 + 0.7) * 80))


def test_image_matrix_report(step_image):
    text = viz.image_matrix_report(step_image, (0, 13, 4))
    assert "shape (height, width, channels): (20, 30, 3)" in text and "grayscale shape: (20, 30, 1)" in text
    assert " 0.00 0.00 0.78 0.78" in text and "   0    0  200  200" in text
    with pytest.raises(ValueError, match="outside"):
        viz.image_matrix_report(step_image, (50, 0, 3))


def test_cli_pictures(small_model, step_image, tmp_path, capsys):
    model_path = tmp_path / "m.npz"
    small_model.save(model_path)
    history = tmp_path / "history.json"
    history.write_text(json.dumps({"loss": [1.0, 0.4], "val_loss": [1.2, 0.5]}))
    out = tmp_path / "pics"
    for argv in (["show", "filters", model_path], ["show", "featuremaps", model_path, step_image],
                 ["show", "history", history], ["filters", step_image], ["inspect", step_image]):
        assert main([str(a) for a in argv] + ([] if argv[0] == "inspect" else ["--out", str(out)])) == 0
    printed = capsys.readouterr().out
    first_conv = next(layer.name for layer in small_model.layers if type(layer).__name__ == "Conv2D")
    for name in (f"filters_{first_conv}.png", "featuremaps_00_conv2d", "history.png", "classic_filters_step.png",
                 "grayscale shape"):
        assert name in printed
    for line in printed.splitlines():
        if line.startswith(str(out)):
            assert png_size(line)[0] > 100
    assert main(["show", "history", str(step_image), "--out", str(out)]) == 2
    assert "not a JSON history" in capsys.readouterr().err


def test_show_filters_writes_one_file_per_layer(small_model, tmp_path, capsys):
    model_path = tmp_path / "m.npz"
    small_model.save(model_path)
    convs = [layer.name for layer in small_model.layers if type(layer).__name__ == "Conv2D"]
    for name in convs:
        assert main(["show", "filters", str(model_path), "--layer", name, "--out", str(tmp_path / "pics")]) == 0
    assert sorted(os.listdir(tmp_path / "pics")) == sorted(f"filters_{name}.png" for name in convs)


def test_history_epochs_are_whole_numbers(tmp_path, monkeypatch):
    ticks, real_save = [], viz._save

    def keep_ticks(fig, path):
        for ax in fig.axes:
            low, high = ax.get_xlim()
            ticks.extend(float(t) for t in ax.get_xticks() if low <= t <= high)
        return real_save(fig, path)

    monkeypatch.setattr(viz, "_save", keep_ticks)
    viz.plot_history({"loss": [1.0, 0.5, 0.3], "accuracy": [0.2, 0.5, 0.7]}, tmp_path / "h.png")
    assert ticks and all(t.is_integer() for t in ticks), ticks
