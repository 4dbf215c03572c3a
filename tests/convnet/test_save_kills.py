"""A save killed at any moment leaves the old model or the new one, never a broken file, and the
temporary files of killed saves do not pile up: a forked child saves two models in turn while the
test kills it with SIGKILL at random moments, 60 times per format ($CNNKERNELS_KILLS for a longer run; the
tally is printed with pytest -s)."""

import os
import random
import signal
import time

import numpy as np
import pytest

import convnet
from convnet import io, layers

KILLS = int(os.environ.get("CNNKERNELS_KILLS", "60"))


def two_models():
    models = []
    for seed in (1, 2):
        convnet.set_seed(seed)
        models.append(convnet.Sequential([convnet.Input((30, 30, 3)), layers.Conv2D(8, 3), layers.Flatten(),
                                          layers.Dense(64)]))  # 0.4 M weights: a save takes milliseconds
    return models


def saving_child(models, path):
    """Save the two models in turn, forever (until killed)."""
    try:
        while True:
            for model in models:
                model.save(path)
    finally:
        os._exit(0)


@pytest.mark.parametrize("suffix", [".npz", ".keras"])
def test_killed_saves_leave_the_old_or_the_new_model_and_no_temporary_files(tmp_path, suffix):
    if suffix == ".keras":
        pytest.importorskip("h5py")
    models = two_models()
    path = tmp_path / f"model{suffix}"
    models[0].save(path)
    expected = [[w.tobytes() for w in m.get_weights()] for m in models]
    rng = random.Random(0)
    seen = set()
    for _ in range(KILLS):
        pid = os.fork()
        if pid == 0:
            saving_child(models, path)
        time.sleep(rng.uniform(0.002, 0.06))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        loaded = [w.tobytes() for w in convnet.load_model(path).get_weights()]
        assert loaded in expected  # whole, and one of the two
        seen.add(expected.index(loaded))
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".convnet-")]
    assert len(leftovers) <= 1  # at most the last killed save's: each save removes its predecessors'
    models[1].save(path)  # the next save (by a live process) removes what killed ones left
    assert [n for n in os.listdir(tmp_path) if n.startswith(".convnet-")] == []
    print(f"\nKILLS {suffix}: {KILLS} kills, 0 corrupt (each loaded whole, as one of the two models; both seen), "
          f"{len(leftovers)} temporary file(s) left before the next save, 0 after it")
    assert seen == {0, 1}  # the kills landed both before and after renames


def test_stale_temporaries_of_others_and_of_live_saves_are_left_alone(tmp_path):
    mine_dead = tmp_path / f"{io._temporary_prefix(pid=2**22 + 12345)}abc.tmp"
    mine_live = tmp_path / f"{io._temporary_prefix()}def.tmp"
    other_host = tmp_path / ".convnet-elsewhere-1-ghi.tmp"
    someone_else = tmp_path / ".convnet-notes.tmp"
    for file in (mine_dead, mine_live, other_host, someone_else):
        file.write_bytes(b"x")
    assert io.remove_stale_temporaries(tmp_path) == 1
    assert not mine_dead.exists() and mine_live.exists() and other_host.exists() and someone_else.exists()
    np.testing.assert_equal(len(os.listdir(tmp_path)), 3)
