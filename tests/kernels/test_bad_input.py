"""Bad arguments raise ValueError/TypeError naming the received value, on every backend,
before any compiled kernel runs."""

import numpy as np
import pytest

import cnnkernels

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)
DY = np.zeros((2, 6, 6, 6), np.float32)
POOL_DY = np.zeros((2, 4, 4, 4), np.float32)

conv, conv_back = cnnkernels.conv2d, cnnkernels.conv2d_backward
maxp, maxp_back = cnnkernels.max_pool2d, cnnkernels.max_pool2d_backward
avgp, avgp_back = cnnkernels.avg_pool2d, cnnkernels.avg_pool2d_backward

# (call, args, kwargs, exception, text the message must contain)
CASES = {
    "x is a list": (conv, ([[1.0]], W), {}, TypeError, "list"),
    "x int dtype": (conv, (X.astype(np.int64), W), {}, TypeError, "int64"),
    "x float16": (conv, (X.astype(np.float16), W), {}, TypeError, "float16"),
    "x complex": (conv, (X.astype(np.complex64), W), {}, TypeError, "complex64"),
    "x 2-D": (conv, (X[0, 0], W), {}, ValueError, "4-D (N, C, H, W), or 3-D (C, H, W) unbatched; received x.ndim=2"),
    "dy batched for an unbatched x": (cnnkernels.conv2d_backward, (np.zeros((1, 6, 6, 8), np.float32), X[0], W), {},
                                      ValueError, "dy must be 3-D too; received shape (1, 6, 6, 8)"),
    "weight 5-D": (conv, (X, W[None]), {}, ValueError, "ndim=5"),
    "dtype mismatch": (conv, (X, W.astype(np.float64)), {}, TypeError, "float64"),
    "channel mismatch": (conv, (X, np.zeros((6, 3, 3, 3), np.float32)), {}, ValueError, "C=4"),
    "groups do not divide": (conv, (X, np.zeros((6, 4, 3, 3), np.float32)), {"groups": 3}, ValueError, "groups=3"),
    "groups vs weight": (conv, (X, W), {"groups": 2}, ValueError, "groups=2"),
    "groups zero": (conv, (X, W), {"groups": 0}, ValueError, "groups=0"),
    "groups float": (conv, (X, W), {"groups": 1.5}, TypeError, "groups=1.5"),
    "stride zero": (conv, (X, W), {"stride": 0}, ValueError, "stride=0"),
    "stride negative pair": (conv, (X, W), {"stride": (1, -2)}, ValueError, "(1, -2)"),
    "stride float": (conv, (X, W), {"stride": 1.0}, TypeError, "stride=1.0"),
    "stride triple": (conv, (X, W), {"stride": (1, 1, 1)}, TypeError, "(1, 1, 1)"),
    "dilation zero": (conv, (X, W), {"dilation": 0}, ValueError, "dilation=0"),
    "padding negative": (conv, (X, W), {"padding": -1}, ValueError, "padding=-1"),
    "padding unknown word": (conv, (X, W), {"padding": "full"}, ValueError, "'full'"),
    "padding bad pairs": (conv, (X, W), {"padding": ((1, 2, 3), (0, 0))}, TypeError, "(1, 2, 3)"),
    "padding None": (conv, (X, W), {"padding": None}, TypeError, "padding=None"),
    "padding_mode unknown": (conv, (X, W), {"padding_mode": "wrap"}, ValueError, "'wrap'"),
    "circular wider than input": (conv, (X, W), {"padding": 9, "padding_mode": "circular"}, ValueError, "padding=9"),
    "reflect wider than input": (conv, (X, W), {"padding": 8, "padding_mode": "reflect"}, ValueError, "padding=8"),
    "kernel larger than input": (conv, (X, np.zeros((6, 4, 9, 3), np.float32)), {}, ValueError, "9x3"),
    "dilated kernel too large": (conv, (X, W), {"dilation": 4}, ValueError, "dilation"),
    "bias wrong shape": (conv, (X, W, np.zeros(5, np.float32)), {}, ValueError, "(5,)"),
    "bias wrong dtype": (conv, (X, W, np.zeros(6)), {}, TypeError, "float64"),
    "empty weight": (conv, (X, np.zeros((0, 4, 3, 3), np.float32)), {}, ValueError, "(0, 4, 3, 3)"),
    "empty channels": (conv, (np.zeros((2, 0, 8, 8), np.float32), np.zeros((6, 0, 3, 3), np.float32)), {},
                       ValueError, "(2, 0, 8, 8)"),
    "dy wrong shape": (conv_back, (DY[:, :, :5], X, W), {}, ValueError, "(2, 6, 5, 6)"),
    "dy wrong dtype": (conv_back, (DY.astype(np.float64), X, W), {}, TypeError, "float64"),
    "dy not an array": (conv_back, (None, X, W), {}, TypeError, "NoneType"),
    "bias flag not bool": (conv_back, (DY, X, W), {"bias": "yes"}, TypeError, "'yes'"),
    "pool kernel zero": (maxp, (X, 0), {}, ValueError, "kernel_size=0"),
    "pool kernel too large": (maxp, (X, 9), {}, ValueError, "kernel_size=9"),
    "pool stride negative": (maxp, (X, 2, -1), {}, ValueError, "stride=-1"),
    "pool padding >= kernel": (maxp, (X, 2, 1, 2), {}, ValueError, "padding=2"),
    "pool int dtype": (maxp, (X.astype(np.int32), 2), {}, TypeError, "int32"),
    "pool 2-D input": (maxp, (X[0, 0], 2), {}, ValueError, "ndim=2"),
    "pool dy wrong shape": (maxp_back, (POOL_DY[:, :3], X, 2), {}, ValueError, "(2, 3, 4, 4)"),
    "avg count_include_pad not bool": (avgp, (X, 2), {"count_include_pad": 1}, TypeError, "count_include_pad=1"),
    "avg backward x wrong dtype": (avgp_back, (POOL_DY, X.astype(np.int8), 2), {}, TypeError, "int8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_with_received_value(backend, case):
    call, args, kwargs, error, text = CASES[case]
    with pytest.raises(error) as info:
        call(*args, **kwargs, backend=backend)
    assert text in str(info.value), f"message {str(info.value)!r} does not quote {text!r}"


@pytest.mark.parametrize("name", ["cuda", "", None, 3])
def test_unknown_backend_is_rejected(name):
    with pytest.raises(ValueError, match="backend"):
        cnnkernels.conv2d(X, W, backend=name if name is not None else "none")
    with pytest.raises(ValueError, match=repr(name) if isinstance(name, str) else "backend"):
        cnnkernels.set_backend(name)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_thread_count(n):
    with pytest.raises((ValueError, TypeError), match=repr(n)):
        cnnkernels.set_num_threads(n)


@pytest.mark.parametrize("name, bad", [("stride", True), ("stride", 1.0), ("stride", (1.0, 1)), ("padding", True),
                                       ("padding", np.int64(-1)), ("dilation", True), ("groups", True),
                                       ("groups", 1.0)])
def test_validation_cached_for_an_equal_value_still_checks_the_type(backend, name, bad):
    """True == 1 and 1.0 == 1 hash alike: a geometry validated (and cached) for 1 must not pass them."""
    expected = conv(X, W, **{name: 1}, backend=backend)
    assert expected.shape[0] == 2
    with pytest.raises((TypeError, ValueError), match=repr(bad).replace("(", r"\(").replace(")", r"\)")):
        conv(X, W, **{name: bad}, backend=backend)
    with pytest.raises((TypeError, ValueError)):
        conv_back(np.zeros_like(expected), X, W, **{name: bad}, backend=backend)


def test_list_arguments_run_as_their_tuples(backend):
    """Lists are not cached (unhashable), but validate and run as the equal tuples do."""
    got = conv(X, W, stride=[1, 2], padding=[1, 0], dilation=[1, 1], backend=backend)
    np.testing.assert_array_equal(got, conv(X, W, stride=(1, 2), padding=(1, 0), dilation=(1, 1), backend=backend))
