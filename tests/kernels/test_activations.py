"""ReLU and leaky ReLU: every backend against the NumPy reference and PyTorch, special values included."""

import numpy as np
import pytest

import cnnkernels

SPECIAL = [-np.inf, -2.5, -1e-30, -0.0, 0.0, 1e-30, 3.0, np.inf, np.nan]


def _values(rng, dtype):
    """Random signs (both sides of every select), the special values, and a length that leaves
    a partial block for the parallel kernels (blocks of 16384)."""
    return np.concatenate([rng.standard_normal(39_991), SPECIAL]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.01, 0.5, 1.7, -0.2])
def test_leaky_relu_matches_reference(backend, rng, dtype, slope):
    x = _values(rng, dtype).reshape(-1, 50)  # any shape
    dy = _values(np.random.default_rng(5), dtype)[::-1].reshape(x.shape)  # infinite and NaN gradients too
    for ours, want in [
        (cnnkernels.leaky_relu(x, slope, backend=backend), cnnkernels.leaky_relu(x, slope, backend="numpy")),
        (cnnkernels.leaky_relu_backward(dy, x, slope, backend=backend),
         cnnkernels.leaky_relu_backward(dy, x, slope, backend="numpy")),
    ]:
        assert ours.dtype == dtype and ours.shape == x.shape
        np.testing.assert_array_equal(ours, want)


def test_relu_is_leaky_relu_at_slope_zero(backend, rng):
    x = _values(rng, np.float32)
    dy = np.full_like(x, np.inf)
    np.testing.assert_array_equal(cnnkernels.relu(x, backend=backend), cnnkernels.leaky_relu(x, 0.0, backend=backend))
    np.testing.assert_array_equal(cnnkernels.relu(x, backend=backend), np.maximum(x, 0))
    dx = cnnkernels.relu_backward(dy, x, backend=backend)
    np.testing.assert_array_equal(dx, np.where(x <= 0, 0, dy))  # 0, not inf·0 = NaN, where x <= 0


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.3])
def test_against_torch(backend, rng, slope):
    torch = pytest.importorskip("torch")
    x = _values(rng, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.relu(tx) if slope == 0 else torch.nn.functional.leaky_relu(tx, slope)
    ty.backward(torch.tensor(dy))
    y = cnnkernels.relu(x, backend=backend) if slope == 0 else cnnkernels.leaky_relu(x, slope, backend=backend)
    dx = (cnnkernels.relu_backward(dy, x, backend=backend) if slope == 0
          else cnnkernels.leaky_relu_backward(dy, x, slope, backend=backend))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())


def test_empty_and_non_contiguous_inputs(backend):
    assert cnnkernels.relu(np.empty((0, 3), np.float32), backend=backend).shape == (0, 3)
    x = np.arange(-6, 6, dtype=np.float64).reshape(3, 4)[:, ::-2]
    np.testing.assert_array_equal(cnnkernels.leaky_relu(x, 0.5, backend=backend), np.where(x > 0, x, 0.5 * x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_inplace_overwrites_x_with_the_result(backend, rng, dtype, slope):
    x = _values(rng, dtype).reshape(-1, 50)
    want = cnnkernels.leaky_relu(x, slope, backend="numpy")
    y = cnnkernels.leaky_relu(x, slope, inplace=True, backend=backend)
    assert y is x
    np.testing.assert_array_equal(x, want)  # NaN kept, -0.0 and the infinities as out of place
    x = _values(rng, dtype)
    want = cnnkernels.relu(x, backend="numpy")
    assert cnnkernels.relu(x, True, backend=backend) is x
    np.testing.assert_array_equal(x, want)


def test_inplace_on_strided_and_byte_swapped_arrays(backend):
    base = np.arange(-12, 12, dtype=np.float64).reshape(4, 6)
    view = base[:, ::-2]  # every other column, reversed: written through, the rest untouched
    want = np.where(view > 0, view, 0.5 * view)
    assert cnnkernels.leaky_relu(view, 0.5, inplace=True, backend=backend) is view
    np.testing.assert_array_equal(view, want)
    np.testing.assert_array_equal(base[:, ::2], np.arange(-12, 12, dtype=np.float64).reshape(4, 6)[:, ::2])
    swapped = np.array([-1.0, 2.0, -3.0], dtype=">f4")
    assert cnnkernels.relu(swapped, inplace=True, backend=backend) is swapped
    np.testing.assert_array_equal(swapped, [0.0, 2.0, 0.0])


def test_inplace_refuses_read_only_and_non_bool():
    x = np.ones(3, np.float32)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cnnkernels.relu(x, inplace=True)
    with pytest.raises(TypeError, match="inplace='yes'"):
        cnnkernels.leaky_relu(np.ones(3), 0.1, inplace="yes")


@pytest.mark.parametrize("call,error,quoted", [
    (lambda: cnnkernels.relu([1.0, -1.0]), TypeError, "list"),
    (lambda: cnnkernels.relu(np.ones(3, np.int32)), TypeError, "int32"),
    (lambda: cnnkernels.leaky_relu(np.ones(3), "0.1"), TypeError, "'0.1'"),
    (lambda: cnnkernels.leaky_relu(np.ones(3), float("nan")), ValueError, "nan"),
    (lambda: cnnkernels.relu_backward(np.ones(3, np.float32), np.ones(3)), TypeError, "float32"),
    (lambda: cnnkernels.relu_backward(np.ones(4), np.ones(3)), ValueError, "(4,)"),
])
def test_bad_arguments_raise_quoting_them(call, error, quoted):
    with pytest.raises(error) as caught:
        call()
    assert quoted in str(caught.value)
