"""The `convnet` command line: train, evaluate, predict, summary; errors are one line and exit 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from convnet.cli import main
from tests.convnet.conftest import write_class_folders


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"], ["summary"]])
def test_help_on_every_command(command):
    result = subprocess.run([sys.executable, "-m", "convnet", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: convnet" in result.stdout


@pytest.fixture
def trained(image_folder, tmp_path, capsys):
    """A model trained through the CLI on the generated colour folder."""
    out = tmp_path / "run"
    code, printed, err = run(capsys, "train", "--data", image_folder, "--epochs", 8, "--batch-size", 8,
                             "--validation-split", 0.25, "--out", out, "--seed", 0, "--json")
    assert code == 0, err
    return out, json.loads(printed), err


def test_train_on_a_folder_then_evaluate_predict_summary(trained, image_folder, capsys):
    out, report, err = trained
    assert "broken.png" in err and "Traceback" not in err  # the corrupt file: a one-line warning
    assert set(os.listdir(out)) == {"model.npz", "history.json", "training.png"}
    assert report["classes"] == 3 and report["epochs"] == 8 and 0 <= report["accuracy"] <= 1
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 8 and "val_accuracy" in history

    code, printed, _ = run(capsys, "evaluate", out / "model.npz", "--data", image_folder, "--json")
    assert code == 0
    result = json.loads(printed)
    assert result["images"] == 36 and result["skipped"] == 1  # broken.png is not counted as evaluated
    assert result["accuracy"] >= 0.9  # colour classes are easy
    code, printed, _ = run(capsys, "evaluate", out / "model.npz", "--data", image_folder)
    bar, summary = printed.splitlines()[-2:]  # Keras's bar (its final line, not being a terminal), then ours
    assert code == 0 and bar.startswith("2/2 [====") and "ms/step - loss: " in bar
    assert summary.startswith("loss: ") and "(36 images, 1 unreadable skipped)" in summary

    red = image_folder / "red" / "red_01.png"
    code, printed, _ = run(capsys, "predict", out / "model.npz", red, image_folder / "blue" / "blue_02.jpg", "--json")
    assert code == 0
    predictions = json.loads(printed)["predictions"]
    assert [p["top"][0]["class"] for p in predictions] == ["red", "blue"]
    assert sum(t["probability"] for t in predictions[0]["top"]) == pytest.approx(1.0, abs=1e-5)

    code, printed, _ = run(capsys, "predict", out / "model.npz", red, "--top", 2)
    assert code == 0 and printed.startswith(f"{red}: red (")

    code, printed, _ = run(capsys, "summary", out / "model.npz")
    assert code == 0 and "Total params" in printed and "Classes: blue, green, red" in printed


def test_convert_between_formats_and_use_keras_files(trained, image_folder, capsys):
    pytest.importorskip("h5py")
    out, _, _ = trained
    red = image_folder / "red" / "red_01.png"
    code, printed, _ = run(capsys, "predict", out / "model.npz", red, "--json")
    expected = json.loads(printed)["predictions"]
    for source, target in (("model.npz", "model.keras"), ("model.keras", "model.h5"), ("model.h5", "again.npz")):
        code, printed, err = run(capsys, "convert", out / source, out / target)
        assert code == 0 and printed.startswith(f"Wrote {out / target}"), err
        code, printed, err = run(capsys, "predict", out / target, red, "--json")
        assert code == 0 and json.loads(printed)["predictions"] == expected, err  # class names travel too
    code, printed, _ = run(capsys, "summary", out / "model.keras")
    assert code == 0 and "Classes: blue, green, red" in printed
    code, printed, _ = run(capsys, "evaluate", out / "model.h5", "--data", image_folder, "--json")
    assert code == 0 and json.loads(printed)["accuracy"] >= 0.9
    code, _, err = run(capsys, "convert", out / "model.npz", out / "model.onnx")
    assert code == 2 and "model.onnx" in err


def test_a_model_made_elsewhere_predicts_class_indices(tmp_path, image_folder, capsys):
    pytest.importorskip("h5py")
    import convnet
    from convnet import layers

    model = convnet.Sequential([convnet.Input((12, 12, 3)), layers.Flatten(), layers.Dense(4, activation="softmax")])
    model.save(tmp_path / "plain.keras")  # no convnet train metadata: as from Keras
    code, printed, err = run(capsys, "predict", tmp_path / "plain.keras", image_folder / "red" / "red_01.png",
                             "--json")
    assert code == 0, err
    assert json.loads(printed)["predictions"][0]["top"][0]["class"] in {"0", "1", "2", "3"}


def test_fruits360_layout_trains_on_training_and_tests_on_test(tmp_path, capsys):
    root = tmp_path / "fruits"
    write_class_folders(root / "Training", per_class=8, corrupt=False)
    write_class_folders(root / "Test", per_class=4, corrupt=False, seed=1)
    code, printed, err = run(capsys, "train", "--data", root, "--epochs", 1, "--out", tmp_path / "out")
    assert code == 0, err
    assert "Found 24 files belonging to 3 classes." in printed  # Training/
    assert "Found 12 files belonging to 3 classes." in printed  # Test/
    assert "Test loss:" in printed and "test accuracy:" in printed


def test_train_on_the_embedded_digits(tmp_path, capsys):
    code, printed, err = run(capsys, "train", "--epochs", 2, "--out", tmp_path, "--json", "--threads", 1)
    assert code == 0, err
    report = json.loads(printed)
    assert report["data"] == "digits" and report["classes"] == 10 and report["accuracy"] > 0.5


@pytest.mark.parametrize("argv,text", [
    (["train", "--data", "/no/such/folder"], "/no/such/folder"),
    (["evaluate", "/no/model.npz", "--data", "."], "/no/model.npz"),
    (["summary", "README.md"], "README.md"),
    (["train", "--data", "EMPTY"], "no readable images"),
])
def test_errors_are_one_line(argv, text, tmp_path, capsys):
    (tmp_path / "EMPTY" / "a").mkdir(parents=True)
    argv = [str(tmp_path / "EMPTY") if a == "EMPTY" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("convnet: error:") and text in err and err.count("\n") == 1


def test_bad_images_and_foreign_models_are_one_line_errors(trained, tmp_path, capsys):
    out, _, _ = trained
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    code, _, err = run(capsys, "predict", out / "model.npz", broken)
    assert code == 2 and "broken.jpg" in err and err.count("\n") == 1
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(2))
    code, _, err = run(capsys, "predict", foreign, broken)
    assert code == 2 and "not a convnet file" in err
    code, _, err = run(capsys, "evaluate", out / "model.npz", "--data", tmp_path, "--image-size", 5, 5)
    assert code == 2 and "expects 12x12" in err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "0"])
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_folder_models_start_with_rescaling_and_older_unit_range_models_still_work(trained, image_folder, capsys):
    import convnet

    out, _, _ = trained
    model = convnet.load_model(out / "model.npz")
    assert type(model.layers[0]).__name__ == "Rescaling" and model.metadata["pixel_range"] == 255
    # a model from before: no Rescaling, trained on [0, 1] pixels, no pixel_range in its metadata
    old = convnet.Sequential([convnet.Input(model.inputs[0].shape[1:]), *model.layers[1:]])
    old.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    old.metadata = {k: v for k, v in model.metadata.items() if k != "pixel_range"}
    old.save(out / "old.npz")
    red = image_folder / "red" / "red_01.png"
    for name in ("model.npz", "old.npz"):
        code, printed, _ = run(capsys, "predict", out / name, red, "--json")
        assert code == 0 and json.loads(printed)["predictions"][0]["top"][0]["class"] == "red"
        code, printed, _ = run(capsys, "evaluate", out / name, "--data", image_folder, "--json")
        assert code == 0 and json.loads(printed)["accuracy"] >= 0.9
