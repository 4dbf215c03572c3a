"""conv2d(activation="relu" / "leaky_relu") and its gradient: the same bits as the convolution, then relu /
leaky_relu (and their backward) and the bias sums on their own, for every backend, every algorithm that runs the shape, both dtypes; PyTorch where
installed; clear errors."""

import numpy as np
import pytest

import cnnkernels as ck
from cnnkernels import plan as plan_module

ALGORITHMS = list(plan_module.ALGORITHMS)
# (x, w, geometry): a first layer (the direct kernel's, bands of rows), a 3x3 of many channels (Winograd), strided
# (im2row), 1x1 (gemm), grouped
LAYERS = [((4, 3, 13, 11), (8, 3, 3, 3), dict(padding=1)),
          ((2, 16, 10, 10), (16, 16, 3, 3), dict(padding=1)),
          ((2, 8, 11, 11), (12, 8, 3, 3), dict(stride=2, padding=1)),
          ((2, 16, 7, 7), (20, 16, 1, 1), dict()),
          ((2, 8, 9, 9), (8, 2, 3, 3), dict(padding=1, groups=4))]


# (activation, negative_slope given, the slope it means): leaky_relu at slope 0 is relu, bit for bit
ACTIVATIONS = [("relu", None, 0.0), ("leaky_relu", 0.3, 0.3)]


def activated(z, slope):
    return ck.leaky_relu(z, slope, backend="numpy")


def operands(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    x.reshape(-1)[::97] = np.nan  # NaN kept by the forward pass, passing dy back
    return x, rng.standard_normal(w_shape).astype(dtype), rng.standard_normal(w_shape[0]).astype(dtype)


def serves(layer, algorithm, backend, dtype):
    x_shape, w_shape, geometry = LAYERS[layer]
    try:
        ck.conv2d_plan(x_shape, w_shape, **geometry, dtype=dtype, algorithm=algorithm, backend=backend)
    except ValueError:  # a forced algorithm that does not serve this shape, backend or dtype
        return False
    return True


# every algorithm forced where it runs (the compiled backend's), and each backend's own choice
CASES = [(layer, algorithm, backend, dtype) for layer in range(len(LAYERS)) for backend in ck.backends()
         for algorithm in (ALGORITHMS if backend == "cython" else ["auto"]) for dtype in ("float32", "float64")
         if serves(layer, algorithm, backend, dtype)]


@pytest.mark.parametrize("activation,negative_slope,slope", ACTIVATIONS)
@pytest.mark.parametrize("layer,algorithm,backend_name,dtype", CASES)
def test_fused_relu_is_relu_of_the_convolution(layer, algorithm, backend_name, dtype, activation, negative_slope,
                                               slope):
    x_shape, w_shape, geometry = LAYERS[layer]
    x, w, b = operands(x_shape, w_shape, dtype)
    backend = backend_name
    fusing = dict(activation=activation, negative_slope=negative_slope)
    y = ck.conv2d(x, w, b, **geometry, **fusing, algorithm=algorithm, backend=backend)
    plain = ck.conv2d(x, w, b, **geometry, algorithm=algorithm, backend=backend)
    np.testing.assert_array_equal(y, activated(plain, slope))
    assert np.isnan(y).any() and (y[~np.isnan(y)] < 0).any() == (slope > 0)

    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    for kwargs in (dict(), dict(input_grad=False), dict(bias=False), dict(weight_grad=False)):
        fused = ck.conv2d_backward(dy, x, w, **geometry, **fusing, output=y, algorithm=algorithm,
                                   backend=backend, **kwargs)
        dz = ck.leaky_relu_backward(dy, y, slope, backend="numpy")
        unfused = ck.conv2d_backward(dz, x, w, **geometry, algorithm=algorithm, backend=backend, **kwargs)
        for got, want in zip(fused, unfused):
            assert (got is None) == (want is None)
            if got is not None:
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("activation,negative_slope,slope", ACTIVATIONS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fused_gradient_sums_at_any_thread_count(backend, threads, activation, negative_slope, slope):
    x, w, b = operands((6, 3, 20, 20), (32, 3, 3, 3), np.float32)
    fusing = dict(activation=activation, negative_slope=negative_slope)
    y = ck.conv2d(x, w, b, padding=1, **fusing, backend=backend, threads=threads)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    _, _, fused = ck.conv2d_backward(dy, x, w, padding=1, **fusing, output=y, input_grad=False,
                                     weight_grad=False, backend=backend, threads=threads)
    _, _, single = ck.conv2d_backward(dy, x, w, padding=1, **fusing, output=y, input_grad=False,
                                      weight_grad=False, backend=backend, threads=1)
    np.testing.assert_array_equal(fused, single)
    exact = ck.leaky_relu_backward(dy, y, slope, backend="numpy").astype(np.float64).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(fused, exact, rtol=1e-6)


def test_unbatched_input_with_its_output(backend):
    x, w, b = operands((1, 3, 8, 8), (4, 3, 3, 3), np.float32)
    y = ck.conv2d(x[0], w, b, padding=1, activation="relu", backend=backend)
    assert y.shape == (4, 8, 8)
    dy = np.ones_like(y)
    dx, dw, db = ck.conv2d_backward(dy, x[0], w, padding=1, activation="relu", output=y, backend=backend)
    want = ck.conv2d_backward(dy[None], x, w, padding=1, activation="relu", output=y[None], backend=backend)
    np.testing.assert_array_equal(dx, want[0][0])
    np.testing.assert_array_equal(dw, want[1])
    np.testing.assert_array_equal(db, want[2])


@pytest.mark.parametrize("activation,negative_slope,slope", ACTIVATIONS)
def test_against_torch(backend, activation, negative_slope, slope):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 12, 12)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    fusing = dict(activation=activation, negative_slope=negative_slope)
    y = ck.conv2d(x, w, b, padding=1, **fusing, backend=backend)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(tx, tw, tb, padding=1), slope)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy))
    dx, dw, db = ck.conv2d_backward(dy, x, w, padding=1, **fusing, output=y, backend=backend)
    for ours, theirs in ((dx, tx), (dw, tw), (db, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("call,error,quoted", [
    (lambda x, w, y: ck.conv2d(x, w, activation="tanh"), ValueError, "activation='tanh'"),
    (lambda x, w, y: ck.conv2d(x, w, activation=True), ValueError, "activation=True"),
    (lambda x, w, y: ck.conv2d(x, w, activation="leaky_relu", negative_slope=-0.1), ValueError,
     "negative_slope=-0.1"),
    (lambda x, w, y: ck.conv2d(x, w, activation="leaky_relu", negative_slope=float("nan")), ValueError,
     "negative_slope=nan"),
    (lambda x, w, y: ck.conv2d(x, w, activation="leaky_relu", negative_slope="0.2"), TypeError,
     "negative_slope='0.2'"),
    (lambda x, w, y: ck.conv2d(x, w, activation="relu", negative_slope=0.2), ValueError, "negative_slope=0.2"),
    (lambda x, w, y: ck.conv2d(x, w, negative_slope=0.2), ValueError, "activation=None"),
    (lambda x, w, y: ck.conv2d_backward(y, x, w, activation="leaky_relu"), ValueError, "output=y"),
    (lambda x, w, y: ck.conv2d_backward(y, x, w, activation="relu"), ValueError, "output=y"),
    (lambda x, w, y: ck.conv2d_backward(y, x, w, output=y), ValueError, "activation=None"),
    (lambda x, w, y: ck.conv2d_backward(y, x, w, activation="relu", output=y[:, :2]), ValueError, "(2, 2, 6, 6)"),
    (lambda x, w, y: ck.conv2d_backward(y, x, w, activation="relu", output=y.astype(np.float64)), TypeError,
     "float64"),
])
def test_bad_fused_arguments_raise_quoting_them(call, error, quoted):
    x, w, _ = operands((2, 3, 8, 8), (4, 3, 3, 3), np.float32)
    y = ck.conv2d(x, w)
    with pytest.raises(error) as caught:
        call(x, w, y)
    assert quoted in str(caught.value)


@pytest.mark.skipif("cython" not in ck.backends(), reason="the compiled backend is not built")
@pytest.mark.parametrize("slope", [None, 0.2])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape,w_shape,geometry,algorithm", [
    ((32, 32, 20, 20), (16, 32, 3, 3), dict(padding=1), "winograd"),  # items of whole images
    ((1, 16, 40, 40), (16, 16, 3, 3), dict(padding=1), "winograd"),   # one image in blocks of tiles: per chunk
    ((8, 8, 11, 11), (12, 8, 3, 3), dict(stride=2, padding=1), "im2row"),  # an image an item
    ((1, 8, 30, 30), (12, 8, 3, 3), dict(stride=2, padding=1), "im2row"),  # one image in blocks: per chunk
    ((4, 3, 40, 37), (20, 3, 5, 5), dict(padding=2), "direct"),  # bands of rows
])
def test_each_kernels_epilogue(threads, x_shape, w_shape, geometry, algorithm, slope):
    """The (leaky) ReLU applied inside each kernel's work items (or by the pass after): the same bits as the plain
    convolution's relu / leaky_relu, NaN kept."""
    x, w, b = operands(x_shape, w_shape, np.float32, seed=4)
    x = np.nan_to_num(x)
    x[0, 0, 0, 0] = np.nan  # one NaN: it reaches a few outputs, the rest take both sides of the ReLU
    fusing = dict(activation="relu") if slope is None else dict(activation="leaky_relu", negative_slope=slope)
    y = ck.conv2d(x, w, b, **geometry, **fusing, algorithm=algorithm, backend="cython", threads=threads)
    plain = ck.conv2d(x, w, b, **geometry, algorithm=algorithm, backend="cython", threads=threads)
    if slope is None:
        np.testing.assert_array_equal(y, np.where(plain <= 0, 0, plain))
        assert (y == 0).mean() > 0.3 and np.isnan(y).any()
    else:
        np.testing.assert_array_equal(y, np.where(plain > 0, plain, plain * np.float32(slope)))
        assert (y < 0).mean() > 0.3 and np.isnan(y).any()
