"""Data-parallel training on MPI: 2 ranks with ``mpiexec -n 2`` against one process running the same job
(tests/convnet/mpi_job.py). Skipped, saying why, when mpi4py or mpiexec is missing (``pip install
"cnnkernels[mpi]" mpich``)."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

JOB = os.path.join(os.path.dirname(__file__), "mpi_job.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def mpiexec():
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py (pip install \"cnnkernels[mpi]\" mpich)")
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if found is None:
        pytest.skip("the MPI tests need an mpiexec (pip install mpich)")
    return found


def environment():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "CNNKERNELS_NUM_THREADS")}
    return {**env, "PYTHONPATH": os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])}


def run(*arguments, ranks=None, timeout=300):
    command = [mpiexec(), "-n", str(ranks), sys.executable] if ranks else [sys.executable]
    started = time.perf_counter()
    done = subprocess.run([*command, *map(str, arguments)], capture_output=True, text=True, timeout=timeout,
                          env=environment(), cwd=ROOT)
    return done, time.perf_counter() - started


def job(case, folder, *options, ranks=None):
    folder.mkdir(exist_ok=True)
    done, _ = run(JOB, case, folder, *options, ranks=ranks)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(folder / f"{case}.npz") as saved:
        return {k: saved[k] for k in saved.files}


def weights(result):
    return [result[f"w{i}"] for i in range(sum(k.startswith("w") for k in result))]


@pytest.mark.parametrize("dtype,optimizer,rtol,atol", [("float64", "adam", 1e-9, 1e-12),
                                                       ("float32", "sgd", 1e-5, 1e-6)])
def test_two_ranks_of_16_end_where_one_process_of_32_does(tmp_path, dtype, optimizer, rtol, atol):
    one = job("fit", tmp_path / "one", dtype, optimizer)
    two = job("fit", tmp_path / "two", dtype, optimizer, ranks=2)
    for a, b in zip(weights(one), weights(two)):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
    mine, theirs = json.loads(str(one["history"])), json.loads(str(two["history"]))
    assert list(mine) == list(theirs)  # validation and metrics reduced over the ranks: the global numbers
    for key in mine:
        np.testing.assert_allclose(theirs[key], mine[key], rtol=rtol, err_msg=key)
    assert int(two["threads"]) == max(1, len(os.sched_getaffinity(0)) // 2)  # cores shared out, not oversubscribed


@pytest.mark.parametrize("case", ["stream", "sequence"])
def test_a_dataset_is_dealt_out_batch_by_batch(tmp_path, case):
    one, two = job(case, tmp_path / "one"), job(case, tmp_path / "two", ranks=2)
    for a, b in zip(weights(one), weights(two)):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(json.loads(str(two["history"]))["loss"], json.loads(str(one["history"]))["loss"],
                               rtol=1e-12)


def test_predict_and_evaluate_shard_and_gather_in_order(tmp_path):
    one, two = job("infer", tmp_path / "one"), job("infer", tmp_path / "two", ranks=2)
    assert two["predictions"].shape == (37, 3)
    np.testing.assert_allclose(two["predictions"], one["predictions"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(two["streamed"], one["predictions"], rtol=1e-10, atol=1e-12)
    mine, theirs = json.loads(str(one["result"])), json.loads(str(two["result"]))
    assert mine.keys() == theirs.keys() and all(abs(mine[k] - theirs[k]) < 1e-12 for k in mine)


def test_a_killed_rank_ends_the_job_and_a_restart_resumes_at_the_last_epoch(tmp_path):
    reference = job("resume", tmp_path / "one")
    (tmp_path / "two").mkdir()
    crashed, seconds = run(JOB, "crash", tmp_path / "two", ranks=2, timeout=120)
    assert crashed.returncode != 0 and seconds < 30
    assert "BAD TERMINATION" in crashed.stdout + crashed.stderr
    assert (tmp_path / "two" / "backup" / "backup.npz").exists()
    resumed = job("resume", tmp_path / "two", ranks=2)
    assert resumed["epochs"].tolist() == [2, 3]  # killed during epoch 2: resumed there
    np.testing.assert_allclose(json.loads(str(resumed["history"]))["loss"],
                               json.loads(str(reference["history"]))["loss"][2:], rtol=1e-9)
    for a, b in zip(weights(reference), weights(resumed)):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    assert not (tmp_path / "two" / "backup" / "backup.npz").exists()


@pytest.mark.parametrize("case,message", [
    ("raise", "rank 1 of 2 failed; aborting every rank"),
    ("disagree", "the MPI ranks disagree on the training data: ranks [1] differ from rank 0"),
])
def test_an_error_on_one_rank_stops_every_rank_with_its_message(tmp_path, case, message):
    done, seconds = run(JOB, case, tmp_path, ranks=2, timeout=120)
    assert done.returncode != 0 and seconds < 30
    assert message in done.stderr


def test_the_command_line_trains_and_predicts_a_folder_across_ranks(tmp_path, image_folder):
    convnet = [sys.executable, "-m", "convnet"]
    done, _ = run(*convnet[1:], "train", "--data", image_folder, "--epochs", 3, "--batch-size", 8, "--out",
                  tmp_path / "run", "--seed", 0, "--json", ranks=2)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert len(done.stdout.strip().splitlines()) == 1 and report["classes"] == 3
    assert sorted(os.listdir(tmp_path / "run")) == ["history.json", "model.npz", "training.png"]
    done, _ = run(*convnet[1:], "predict", tmp_path / "run" / "model.npz", image_folder, "--out",
                  tmp_path / "two.csv", ranks=2)
    assert done.returncode == 0, done.stderr[-2000:]
    single, _ = run(*convnet[1:], "predict", tmp_path / "run" / "model.npz", image_folder, "--out",
                    tmp_path / "one.csv")
    lines = (tmp_path / "two.csv").read_text().splitlines()
    assert (tmp_path / "one.csv").read_text().splitlines() == lines and len(lines) == 1 + 37
    assert lines[1].startswith('"') and "blue_00.jpg" in lines[1]  # in the folder's order
