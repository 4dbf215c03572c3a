"""The caching allocator (cnnkernels.memory): NumPy's array data from a cache of freed blocks."""

import threading

import numpy as np
import pytest

import cnnkernels

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

pytest.importorskip("cnnkernels._memory", reason="the compiled extension did not build")

BLOCK = (256, 256)  # 256 KiB of float32: a cached size


@pytest.fixture(autouse=True)
def empty_cache():
    cnnkernels.release_cached_memory()
    yield
    cnnkernels.release_cached_memory()


def test_arrays_come_from_the_cache_inside_the_block_only():
    with cnnkernels.caching_allocator():
        inside = np.empty(BLOCK, np.float32)
        with cnnkernels.caching_allocator():  # re-entrant
            nested = np.empty(BLOCK, np.float32)
        after_nested = np.empty(BLOCK, np.float32)
    outside = np.empty(BLOCK, np.float32)
    assert get_handler_name(inside) == get_handler_name(nested) == get_handler_name(after_nested)
    assert get_handler_name(inside) == "cnnkernels_block_cache"
    assert get_handler_name(outside) != "cnnkernels_block_cache"
    assert inside.ctypes.data % 64 == 0


def test_a_freed_block_serves_the_next_array_of_its_size():
    with cnnkernels.caching_allocator():
        first = np.empty(BLOCK, np.float32)
        address = first.ctypes.data
        del first
        assert cnnkernels.cached_memory() == 256 * 1024
        second = np.empty(BLOCK, np.float32)
        assert second.ctypes.data == address
        assert cnnkernels.cached_memory() == 0
        odd = np.empty(256 * 256 - 3, np.float32)  # rounded up to a page: the same block size
        del second
        del odd
        assert cnnkernels.cached_memory() == 2 * 256 * 1024


def test_zeros_from_a_reused_block_are_zero_and_resize_keeps_the_values():
    with cnnkernels.caching_allocator():
        dirty = np.full(BLOCK, 7.0, np.float32)
        del dirty
        clean = np.zeros(BLOCK, np.float32)
        assert not clean.any()
        grown = np.arange(20_000, dtype=np.float64)
        grown.resize(40_000, refcheck=False)  # realloc, to another cached size
        np.testing.assert_array_equal(grown[:20_000], np.arange(20_000))
        assert not grown[20_000:].any()


def test_small_and_huge_arrays_are_not_cached():
    with cnnkernels.caching_allocator():
        small = np.ones(100, np.float32)
        huge = np.ones(65 << 20, np.uint8)
        del small, huge
        assert cnnkernels.cached_memory() == 0


def test_arrays_outlive_the_block_and_go_back_to_it_when_freed():
    with cnnkernels.caching_allocator():
        kept = np.arange(256 * 256, dtype=np.float32).reshape(BLOCK)
    assert float(kept[-1, -1]) == 256 * 256 - 1
    del kept
    assert cnnkernels.cached_memory() == 256 * 1024


def test_release_and_limit():
    with cnnkernels.caching_allocator():
        arrays = [np.empty(BLOCK, np.float32) for _ in range(4)]
        del arrays
    assert cnnkernels.cached_memory() == 4 * 256 * 1024
    assert cnnkernels.release_cached_memory() == 4 * 256 * 1024
    assert cnnkernels.cached_memory() == 0
    previous = cnnkernels.set_cache_limit(256 * 1024)
    try:
        with cnnkernels.caching_allocator():
            arrays = [np.empty(BLOCK, np.float32) for _ in range(4)]
            del arrays
        assert cnnkernels.cached_memory() == 256 * 1024  # the limit's worth; the rest went back to the OS
    finally:
        cnnkernels.set_cache_limit(previous)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "1GB"])
def test_bad_limit(limit):
    with pytest.raises(ValueError, match=repr(limit)):
        cnnkernels.set_cache_limit(limit)


def test_threads_allocate_and_free_concurrently():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            with cnnkernels.caching_allocator():
                held = []
                for _ in range(300):
                    size = int(rng.choice([1 << 14, 1 << 16, 1 << 18]))
                    array = np.full(size, seed, np.float32)
                    held.append(array)
                    if len(held) > 3:
                        victim = held.pop(int(rng.integers(len(held))))
                        assert (victim == seed).all()
        except Exception as exc:  # reported on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_kernels_run_on_cached_arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 20, 20)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    expected = cnnkernels.conv2d(x, w, padding=1)
    with cnnkernels.caching_allocator():
        for _ in range(3):
            got = cnnkernels.conv2d(x, w, padding=1)
            np.testing.assert_array_equal(got, expected)
