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


def test_a_lower_limit_frees_the_sizes_used_longest_ago_first():
    with cnnkernels.caching_allocator():
        old, recent = np.empty((256, 256), np.float32), np.empty((512, 256), np.float32)
        del old, recent  # freed in this order: the 256 KiB size is the one used longest ago
    assert cnnkernels.cached_memory() == 768 * 1024
    previous = cnnkernels.set_cache_limit(512 * 1024)
    try:
        assert cnnkernels.cached_memory() == 512 * 1024
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


def test_a_new_size_displaces_the_sizes_used_longest_ago():
    previous = cnnkernels.set_cache_limit(2 * 256 * 1024)
    try:
        with cnnkernels.caching_allocator():
            old, newer = np.empty(BLOCK, np.float32), np.empty((256, 256), np.int32)
            del old, newer
            assert cnnkernels.cached_memory() == 2 * 256 * 1024
            large = np.empty((512, 256), np.float32)  # needs both blocks' room
            del large
            assert cnnkernels.cached_memory() == 512 * 1024
    finally:
        cnnkernels.set_cache_limit(previous)
    # 64 sizes fit the table; a 65th displaces the first (the one used longest ago)
    cnnkernels.release_cached_memory()
    pages = [16 + i for i in range(65)]
    with cnnkernels.caching_allocator():
        arrays = [np.empty(count * 4096, np.uint8) for count in pages]
        while arrays:
            del arrays[0]
    assert cnnkernels.cached_memory() == sum(pages[1:]) * 4096


def test_kernel_outputs_come_from_the_cache_whatever_the_allocator():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8, 32, 32)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    y = cnnkernels.conv2d(x, w, padding=1)
    dx, dw, _ = cnnkernels.conv2d_backward(y, x, w, padding=1, bias=False)
    outputs = [y, dx, dw, cnnkernels.relu(y), cnnkernels.max_pool2d(y, 2)]
    assert [get_handler_name(a) for a in outputs if a.nbytes >= 1 << 16] == ["cnnkernels_block_cache"] * 4
    address = y.ctypes.data
    del y, outputs
    again = cnnkernels.conv2d(x, w, padding=1)  # the freed output's block serves the next call
    assert again.ctypes.data == address
    np.testing.assert_allclose(again, cnnkernels.conv2d(x, w, padding=1, backend="numpy"), rtol=1e-4, atol=1e-4)
