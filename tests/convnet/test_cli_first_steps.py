"""The rough edges a new user hits with `convnet train`: mixed-size photos, one class, a model too big for memory,
and what the closing line says it measured."""

import json

import numpy as np
import pytest
from PIL import Image

from convnet import cli_data
from convnet.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _photos(root, sizes):
    rng = np.random.default_rng(0)
    for i, (height, width) in enumerate(sizes):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("sizes, expected, said", [
    ([(24, 20)] * 4, (24, 20), False),                          # one size, small: kept
    ([(177, 185), (120, 90), (64, 64), (177, 185)], (100, 100), True),  # mixed: the default, said
    ([(300, 400)] * 2, (100, 100), True),                        # one size but large (a phone's, scaled down)
])
def test_default_image_size(tmp_path, capsys, sizes, expected, said):
    root = _photos(tmp_path / "photos", sizes)
    assert cli_data._default_image_size(str(root), quiet=False) == expected
    printed = capsys.readouterr().out
    assert ("resized to 100x100; choose another with --image-size H W" in printed) == said


def test_mixed_photos_train_at_the_default_size(tmp_path, capsys):
    root = _photos(tmp_path / "photos", [(177, 185), (120, 90), (64, 64), (90, 120)] * 3)
    code, printed, err = run(capsys, "train", "--data", root, "--epochs", 1, "--out", tmp_path / "run", "--json")
    assert code == 0, err
    report = json.loads(printed.splitlines()[-1])
    assert report["evaluated_on"] == "validation"
    meta = json.loads((tmp_path / "run" / "history.json").read_text())
    assert "loss" in meta
    code, printed, _ = run(capsys, "summary", tmp_path / "run" / "model.npz")
    assert "Input: 100x100 rgb images" in printed


def test_one_class_is_refused_before_training(tmp_path, capsys):
    root = tmp_path / "one"
    (root / "apples").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "apples" / f"{i}.png")
    code, _, err = run(capsys, "train", "--data", root, "--epochs", 1, "--out", tmp_path / "run")
    assert code == 2 and "found 1 class folder(s)" in err and "(apples)" in err and "at least 2" in err
    assert not (tmp_path / "run").exists()


def test_a_model_too_big_for_memory_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    root = _photos(tmp_path / "photos", [(16, 16)] * 10)
    monkeypatch.setattr(cli_data, "_available_memory", lambda: 2**30)
    code, _, err = run(capsys, "train", "--data", root, "--image-size", 600, 600, "--batch-size", 32,
                       "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert "training 600x600 images in batches of 32 needs about" in err and "more than the 1.0 GiB available" in err
    assert "choose a smaller --image-size or --batch-size" in err


def test_a_plain_folder_reports_validation_accuracy(image_folder, tmp_path, capsys):
    code, printed, err = run(capsys, "train", "--data", image_folder, "--epochs", 1, "--out", tmp_path / "run")
    assert code == 0, err
    assert "Validation loss:" in printed and "validation accuracy:" in printed
    assert "on the validation images: the folder has no separate test set" in printed


_INTERRUPT_DURING_IMPORT = """
import os, signal, runpy, sys

class InterruptAtImport:  # Ctrl-C just as the command line starts to import NumPy
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptAtImport())
sys.argv = ["convnet", "summary", "model.npz"]
runpy.run_module("convnet", run_name="__main__")
"""


def test_ctrl_c_while_importing_prints_one_line(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "convnet: interrupted"


def test_import_convnet_loads_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, convnet; print(sorted(m for m in ('numpy', 'cnnkernels', 'PIL') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
