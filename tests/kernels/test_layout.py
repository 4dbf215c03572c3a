"""to_channels_last / to_channels_first: NumPy's transposes, value for value, on every backend, for planes around
the compiled transpose's 16 x 16 blocks, any dtype, strided and byte-swapped input, at any thread count."""

import numpy as np
import pytest

import cnnkernels as ck

# (N, C, H, W): whole 16 x 16 blocks, channels and pixels past them, a narrow plane of a small batch (NumPy's copy),
# a narrow plane of a large one (compiled), one pixel, one channel, an empty batch
SHAPES = [(2, 16, 4, 4), (3, 17, 5, 7), (2, 33, 3, 11), (4, 3, 20, 20), (8, 3, 100, 90), (2, 40, 1, 1),
          (3, 1, 9, 9), (0, 16, 4, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int16"])
def test_both_ways_are_numpys_transposes(backend, shape, dtype):
    x = (np.random.default_rng(0).standard_normal(shape) * 100).astype(dtype)
    y = ck.to_channels_last(x, backend=backend)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))
    assert y.flags.c_contiguous and y.dtype == x.dtype
    back = ck.to_channels_first(y, backend=backend)
    np.testing.assert_array_equal(back, x)
    assert back.flags.c_contiguous and back.dtype == x.dtype


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_thread_count(backend, threads):
    x = np.random.default_rng(1).standard_normal((5, 24, 30, 30)).astype(np.float32)
    np.testing.assert_array_equal(ck.to_channels_last(x, backend=backend, threads=threads), x.transpose(0, 2, 3, 1))
    y = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(ck.to_channels_first(y, backend=backend, threads=threads), x)


def test_strided_and_byte_swapped_input(backend):
    x = np.random.default_rng(2).standard_normal((4, 40, 12, 14)).astype(np.float32)
    strided = x[:, ::2, :, ::-1]
    np.testing.assert_array_equal(ck.to_channels_last(strided, backend=backend), strided.transpose(0, 2, 3, 1))
    swapped = x.astype(">f4")
    got = ck.to_channels_last(swapped, backend=backend)
    np.testing.assert_array_equal(got, x.transpose(0, 2, 3, 1))
    assert got.dtype == swapped.dtype


@pytest.mark.parametrize("bad,error,quoted", [
    ([[[[1.0]]]], TypeError, "list"),
    (np.ones((2, 3, 4), np.float32), ValueError, "(2, 3, 4)"),
])
def test_bad_input_raises_quoting_it(bad, error, quoted):
    for convert in (ck.to_channels_last, ck.to_channels_first):
        with pytest.raises(error) as caught:
            convert(bad)
        assert quoted in str(caught.value)
