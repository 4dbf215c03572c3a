"""Thread counts: per call, per Python thread, concurrent calls, and no side effects on other libraries."""

import concurrent.futures
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import cnnkernels
from cnnkernels import _threads
from tests.conftest import assert_close

BACKENDS = cnnkernels.backends()


def test_threads_argument_and_context_are_honoured():
    big = dict(x_shape=(8, 32, 32, 32), weight_shape=(32, 32, 3, 3), padding=1)
    default = cnnkernels.get_num_threads()
    assert cnnkernels.conv2d_plan(**big, threads=1).n_threads == 1
    assert cnnkernels.conv2d_plan(**big, threads=2).n_threads == 2
    with cnnkernels.threads(1):
        assert cnnkernels.get_num_threads() == 1
        assert cnnkernels.conv2d_plan(**big).n_threads == 1
        assert cnnkernels.conv2d_plan(**big, threads=2).n_threads == 2  # the argument wins
        with cnnkernels.threads(2):
            assert cnnkernels.get_num_threads() == 2
        assert cnnkernels.get_num_threads() == 1
    assert cnnkernels.get_num_threads() == default


def test_the_context_belongs_to_one_python_thread():
    default = cnnkernels.get_num_threads()
    seen = []
    with cnnkernels.threads(default + 1):
        worker = threading.Thread(target=lambda: seen.append(cnnkernels.get_num_threads()))
        worker.start()
        worker.join()
        assert cnnkernels.get_num_threads() == default + 1
    assert seen == [default]


def test_small_work_runs_on_one_thread(monkeypatch):
    from cnnkernels import plan

    monkeypatch.setattr(_threads, "MIN_FLOPS_PER_THREAD", 3_000_000)
    plan.make_plan.cache_clear()
    tiny = cnnkernels.conv2d_plan((1, 4, 6, 6), (4, 4, 3, 3), threads=2)  # 2·4·4·9·16 ≈ 9 kFLOP
    big = cnnkernels.conv2d_plan((8, 32, 32, 32), (32, 32, 3, 3), padding=1, threads=2)  # 302 MFLOP
    assert (tiny.n_threads, big.n_threads) == (1, 2)
    assert _threads.for_work(4, 7_000_000) == 2 and _threads.for_work(4, 0) == 1
    assert _threads.for_work(2, 6_000, per_thread=4_000) == 1 and _threads.for_work(2, 9_000, per_thread=4_000) == 2


def test_threads_give_way_to_other_programs(monkeypatch):
    monkeypatch.setenv("CNNKERNELS_DYNAMIC_THREADS", "1")
    monkeypatch.setattr(_threads, "_cpu_count", lambda: 2)
    monkeypatch.setattr(_threads, "_last_look", 0)
    for elsewhere, expected in ((0, 2), (1, 2), (1, 1), (5, 1), (0, 2)):  # a look once busy is not load
        monkeypatch.setattr(_threads, "_runnable_elsewhere", lambda: elsewhere)
        monkeypatch.setattr(_threads, "_load_seen", (-1.0, 0, True))
        assert _threads.under_load(2) == expected, elsewhere
    monkeypatch.setenv("OMP_DYNAMIC", "false")
    monkeypatch.delenv("CNNKERNELS_DYNAMIC_THREADS")
    monkeypatch.setattr(_threads, "_load_seen", (-1.0, 0, True))
    assert _threads.under_load(2) == 2  # the user's OpenMP setting wins


def test_the_run_queue_is_read(monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc is Linux's")
    assert _threads._runnable_elsewhere() >= 0


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    x, w = np.ones((1, 2, 4, 4)), np.ones((2, 2, 3, 3))
    with pytest.raises((ValueError, TypeError), match="threads"):
        cnnkernels.conv2d(x, w, threads=bad)
    with pytest.raises((ValueError, TypeError), match="threads"):
        cnnkernels.max_pool2d(x, 2, threads=bad)
    with pytest.raises((ValueError, TypeError), match=repr(bad)):
        with cnnkernels.threads(bad):
            pass


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_calls_from_four_python_threads(backend):
    """Each Python thread runs its own shapes with its own thread count; every result must
    equal the reference (scratch memory is per Python thread and per slot, never shared)."""
    rng = np.random.default_rng(7)
    jobs = []
    for i in range(8):
        x = rng.standard_normal((3 + i % 3, 4, 9 + i, 8)).astype(np.float32)
        w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
        dy = rng.standard_normal((x.shape[0], 6, x.shape[2], x.shape[3])).astype(np.float32)
        jobs.append((x, w, dy, 1 + i % 2))

    def run(job):
        x, w, dy, n = job
        with cnnkernels.threads(n):
            results = []
            for _ in range(5):
                results = [cnnkernels.conv2d(x, w, padding=1, backend=backend),
                           *cnnkernels.conv2d_backward(dy, x, w, padding=1, bias=False, backend=backend)[:2],
                           cnnkernels.max_pool2d(x, 2, backend=backend, threads=n),
                           cnnkernels.avg_pool2d(x, 3, 2, 1, backend=backend)]
            return results

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(run, jobs))
    for (x, w, dy, _), got in zip(jobs, outcomes):
        f8 = [a.astype(np.float64) for a in (x, w, dy)]
        want = [cnnkernels.conv2d(f8[0], f8[1], padding=1, backend="numpy"),
                *cnnkernels.conv2d_backward(f8[2], f8[0], f8[1], padding=1, bias=False, backend="numpy")[:2],
                cnnkernels.max_pool2d(f8[0], 2, backend="numpy"), cnnkernels.avg_pool2d(f8[0], 3, 2, 1, backend="numpy")]
        for g, e in zip(got, want):
            assert_close(g, e.astype(np.float32))


def test_blas_is_given_back_when_overlapping_blocks_end():
    """Blocks entered and left in several threads, in any order: the saved setting is restored
    only when the last one leaves."""
    counts = {"n": 4}

    class FakeLibrary:
        @property
        def num_threads(self):
            return counts["n"]

        def set_num_threads(self, n):
            counts["n"] = n

    pin = _threads._SingleThreadedBlas(lambda: [FakeLibrary()])
    barrier = threading.Barrier(4)
    inside = []

    def hold():
        with pin:
            barrier.wait()
            inside.append(counts["n"])
            barrier.wait()

    workers = [threading.Thread(target=hold) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert inside == [1, 1, 1, 1] and counts["n"] == 4


CHILD = """
import numpy as np
{before}
from threadpoolctl import threadpool_info
blas_before = {{p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}}
import cnnkernels
x = np.ones((4, 8, 16, 16), np.float32); w = np.ones((8, 8, 3, 3), np.float32)
dy = np.ones((4, 8, 16, 16), np.float32)
for backend in cnnkernels.backends():
    cnnkernels.conv2d(x, w, padding=1, backend=backend, threads=2)
    cnnkernels.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, backend=backend, threads=2)
    cnnkernels.conv2d_backward(dy, x, w, padding=1, algorithm="im2col", backend=backend, threads=2)
    cnnkernels.max_pool2d(x, 2, backend=backend, threads=2)
blas_after = {{p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}}
changed = {{k: (blas_before[k], v) for k, v in blas_after.items() if k in blas_before and blas_before[k] != v}}
print("blas", changed)
{after}
"""


def _child(before="", after=""):
    code = textwrap.dedent(CHILD.format(before=before, after=after))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_and_first_calls_leave_blas_and_numba_settings_alone():
    out = _child(before="import scipy.linalg, numba; numba.set_num_threads(1)",
                 after="print('numba', numba.get_num_threads())")
    assert out.split("\n")[0] == "blas {}", out
    assert out.split()[-1] == "1", out  # our calls asked Numba for 2 threads, for their duration only


@pytest.mark.parametrize("order", ["torch first", "torch after"])
def test_import_and_first_calls_leave_torch_threads_alone(order):
    pytest.importorskip("torch")
    if order == "torch first":
        out = _child(before="import torch; torch.set_num_threads(1); torch.get_num_threads()",
                     after="print('torch', torch.get_num_threads())")
        assert out.split()[-1] == "1", out
    else:
        default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                 capture_output=True, text=True, timeout=300).stdout.split()[-1]
        out = _child(after="import torch; print('torch', torch.get_num_threads())")
        assert out.split()[-1] == default, out


BLAS_INSIDE = """
try:
    import torch  # its OpenMP runtime, loaded globally, is how OpenBLAS sees that it runs inside a parallel loop
except ImportError:
    pass
import numpy as np
import cnnkernels
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 256, 56, 56), dtype=np.float32)  # BLAS threads its products from this size
last = cnnkernels.to_channels_last
for K in (64, 128):  # the 1x1 weight gradient on our kernel, and on BLAS
    w = rng.standard_normal((K, 256, 1, 1), dtype=np.float32)
    dy = rng.standard_normal((2, K, 56, 56), dtype=np.float32)
    for a, g in [(x, dy), (last(x).transpose(0, 3, 1, 2), last(dy).transpose(0, 3, 1, 2))]:  # NCHW, channels-last
        for algorithm in ("auto", "im2col"):
            cnnkernels.conv2d(a, w, algorithm=algorithm, backend="cython", threads=2)
            cnnkernels.conv2d_backward(g, a, w, algorithm=algorithm, backend="cython", threads=2)
print("done")
"""


@pytest.mark.skipif("cython" not in cnnkernels.backends(), reason="the cython backend's kernels call BLAS")
def test_blas_called_inside_our_parallel_loops_runs_single_threaded():
    """A threaded OpenBLAS called from inside an OpenMP loop warns that it "may hang" (and can): every call path
    that does so (im2col, 1x1 layers in both layouts, whichever kernel each pass runs on) must pin BLAS first. (It
    warns where an OpenMP runtime is loaded globally, as PyTorch's is.)"""
    result = subprocess.run([sys.executable, "-c", BLAS_INSIDE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-3000:]
    assert "OpenBLAS Warning" not in result.stderr, result.stderr[-3000:]
