"""Batch normalisation: every backend against the NumPy reference, the reference against
finite differences (float64), and both against PyTorch where it is installed."""

import numpy as np
import pytest

import cnnkernels
from tests.conftest import assert_close, numerical_gradient

SHAPES = [(5, 3), (4, 3, 7), (2, 4, 5, 6), (3, 2, 1, 9), (2, 2, 3, 2, 2), (1, 3, 17, 1)]


def _data(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(dtype)
    gamma = rng.standard_normal(shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_reference(backend, rng, dtype, shape, affine):
    x, gamma, beta = _data(rng, shape, dtype)
    weights = (gamma, beta) if affine else (None, None)
    C = shape[1]
    results = []
    for name in (backend, "numpy"):
        mean, variance = cnnkernels.channel_moments(x, backend=name)
        running = (np.zeros(C, dtype), np.ones(C, dtype))
        y_train = cnnkernels.batch_norm(x, *running, *weights, training=True, momentum=0.3, eps=1e-3, backend=name)
        y_eval = cnnkernels.batch_norm(x, *running, *weights, eps=1e-3, backend=name)
        dy = np.random.default_rng(7).standard_normal(shape).astype(dtype)
        grads = [g for training in (True, False) for g in cnnkernels.batch_norm_backward(
            dy, x, mean, variance, weights[0], eps=1e-3, training=training, backend=name)]
        results.append([mean, variance, y_train, *running, y_eval, *grads])
    for index, (got, want) in enumerate(zip(*results)):
        assert_close(got, want, what=f"result {index}")


def test_moments_are_exact_where_float32_sums_would_drift(backend):
    """A million float32 values around 1000 with spread 1e-3: the float64 sums keep the variance."""
    x = (1000 + 1e-3 * np.random.default_rng(0).standard_normal((1000, 1, 1000))).astype(np.float32)
    mean, variance = cnnkernels.channel_moments(x, backend=backend)
    wide = x.astype(np.float64)
    np.testing.assert_allclose(mean, wide.mean(), rtol=1e-7)
    np.testing.assert_allclose(variance, wide.var(), rtol=1e-4)


@pytest.mark.parametrize("strip", [1, 31, 32, 33, 63, 400, 1000])
def test_float32_channel_sums_are_float64_sums_and_the_same_at_any_thread_count(backend, rng, strip):
    """The float32 strips are summed in float64 (on 32 vector lanes in the cython backend: strips of 32 and more,
    and their tails): the moments, the bias gradient and the normalisation's gradient sums match NumPy's float64
    sums to float32's rounding, and repeat bit for bit at 1 and 2 threads."""
    x = (rng.standard_normal((5, 4, strip)) * 3 + 1.5).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    wide, wide_dy = x.astype(np.float64), dy.astype(np.float64)
    mean, variance = wide.mean(axis=(0, 2)), wide.var(axis=(0, 2))
    inv_std = 1 / np.sqrt(variance + 1e-3)
    runs = []
    for threads in (1, 2, 1):
        got_mean, got_variance = cnnkernels.channel_moments(x, backend=backend, threads=threads)
        *_, dbias = cnnkernels.conv2d_backward(dy[..., None], x[..., None], np.zeros((4, 4, 1, 1), np.float32),
                                               input_grad=False, weight_grad=False, backend=backend, threads=threads)
        _, dgamma, dbeta = cnnkernels.batch_norm_backward(dy, x, mean.astype(np.float32), variance.astype(np.float32),
                                                          eps=1e-3, backend=backend, threads=threads)
        runs.append([np.asarray(v, np.float64) for v in (got_mean, got_variance, dbias, dgamma, dbeta)])
    x_hat = (wide - mean.astype(np.float32)[:, None]) * (1 / np.sqrt(variance.astype(np.float32) + 1e-3))[:, None]
    expected = [mean, variance, wide_dy.sum(axis=(0, 2)), (wide_dy * x_hat).sum(axis=(0, 2)), wide_dy.sum(axis=(0, 2))]
    for got, want, what in zip(runs[0], expected, ("mean", "variance", "conv bias grad", "gamma grad", "beta grad")):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=what)
    for other in runs[1:]:
        for got, again in zip(runs[0], other):
            assert np.array_equal(got, again)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (3, 2, 3, 2)], ids=str)
def test_reference_backward_matches_finite_differences(rng, training, shape):
    x, gamma, beta = _data(rng, shape, np.float64)
    dy = rng.standard_normal(shape)
    fixed = cnnkernels.channel_moments(x, backend="numpy")  # the "running" statistics when not training

    def loss():
        statistics = cnnkernels.channel_moments(x, backend="numpy") if training else fixed
        return float(np.sum(dy * cnnkernels.batch_norm(x, *statistics, gamma, beta, eps=1e-3, backend="numpy")))

    dx, dgamma, dbeta = cnnkernels.batch_norm_backward(dy, x, *cnnkernels.channel_moments(x, backend="numpy"), gamma,
                                                       eps=1e-3, training=training, backend="numpy")
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dgamma, numerical_gradient(loss, gamma), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dbeta, numerical_gradient(loss, beta), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_batch_norm_matches_torch(backend, rng, dtype, shape):
    torch = pytest.importorskip("torch")
    x, gamma, beta = _data(rng, shape, dtype)
    C = shape[1]
    running = (np.zeros(C, dtype), np.ones(C, dtype))
    torch_running = (torch.zeros(C, dtype=torch.float64 if dtype == np.float64 else torch.float32),
                     torch.ones(C, dtype=torch.float64 if dtype == np.float64 else torch.float32))
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    ty = torch.nn.functional.batch_norm(tx, *torch_running, tg, tb, training=True, momentum=0.2, eps=1e-4)
    dy = rng.standard_normal(shape).astype(dtype)
    ty.backward(torch.tensor(dy))
    y = cnnkernels.batch_norm(x, *running, gamma, beta, training=True, momentum=0.2, eps=1e-4, backend=backend)
    assert_close(y, ty.detach().numpy(), what="y")
    for ours, theirs, what in zip(running, torch_running, ("running_mean", "running_var")):
        assert_close(ours, theirs.numpy(), what=what)
    grads = cnnkernels.batch_norm_backward(dy, x, *cnnkernels.channel_moments(x, backend=backend), gamma, eps=1e-4,
                                           backend=backend)
    for ours, theirs, what in zip(grads, (tx, tg, tb), ("dx", "dweight", "dbias")):
        assert_close(ours, theirs.grad.numpy(), what=what)
    evaluated = torch.nn.functional.batch_norm(torch.tensor(x), *torch_running, torch.tensor(gamma),
                                               torch.tensor(beta), eps=1e-4)
    assert_close(cnnkernels.batch_norm(x, *running, gamma, beta, eps=1e-4, backend=backend), evaluated.numpy())


def test_nan_and_inf_are_data(backend):
    x = np.ones((2, 2, 3), np.float32)
    x[0, 0, 1] = np.nan
    x[1, 1, 2] = np.inf
    mean, variance = cnnkernels.channel_moments(x, backend=backend)
    assert np.isnan(mean[0]) and np.isinf(mean[1]) and np.isnan(variance).all()
    y = cnnkernels.batch_norm(x, mean, variance, backend=backend)
    assert np.isnan(y).all()


def test_input_grad_false_skips_dx(backend, rng):
    x, gamma, _ = _data(rng, (3, 2, 4), np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    stats = cnnkernels.channel_moments(x, backend=backend)
    dx, dgamma, dbeta = cnnkernels.batch_norm_backward(dy, x, *stats, gamma, input_grad=False, backend=backend)
    full = cnnkernels.batch_norm_backward(dy, x, *stats, gamma, backend=backend)
    assert dx is None
    np.testing.assert_array_equal(dgamma, full[1])
    np.testing.assert_array_equal(dbeta, full[2])


def _vectors(C=3):
    return np.zeros(C, np.float32), np.ones(C, np.float32)


@pytest.mark.parametrize("call,error,quoted", [
    (lambda x: cnnkernels.batch_norm(x.astype(np.int32), *_vectors()), TypeError, "int32"),
    (lambda x: cnnkernels.batch_norm(x[0, 0], *_vectors()), ValueError, "ndim=1"),
    (lambda x: cnnkernels.batch_norm(x[:0], *_vectors()), ValueError, "(0, 3, 4)"),
    (lambda x: cnnkernels.batch_norm(x, *_vectors(4)), ValueError, "(4,)"),
    (lambda x: cnnkernels.batch_norm(x, [0, 0, 0], _vectors()[1]), TypeError, "list"),
    (lambda x: cnnkernels.batch_norm(x, None, None), ValueError, "running_mean"),
    (lambda x: cnnkernels.batch_norm(x, *_vectors(), eps=0), ValueError, "eps=0"),
    (lambda x: cnnkernels.batch_norm(x, *_vectors(), eps=float("nan")), ValueError, "eps=nan"),
    (lambda x: cnnkernels.batch_norm(x, *_vectors(), momentum=1.5, training=True), ValueError, "momentum=1.5"),
    (lambda x: cnnkernels.batch_norm(x, *_vectors(), training=1), TypeError, "training=1"),
    (lambda x: cnnkernels.batch_norm(x[:1, :, :1], None, None, training=True), ValueError, "more than one"),
    (lambda x: cnnkernels.batch_norm(x, *(np.zeros(3, np.float32).reshape(3) for _ in range(2)),
                                     weight=np.ones(3, np.int64)), TypeError, "int64"),
    (lambda x: cnnkernels.batch_norm_backward(x[:1], x, *_vectors()), ValueError, "(1, 3, 4)"),
    (lambda x: cnnkernels.batch_norm_backward(x.astype(np.float64), x, *_vectors()), TypeError, "float64"),
])
def test_bad_arguments_raise_quoting_them(call, error, quoted):
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(error, match=None) as caught:
        call(x)
    assert quoted in str(caught.value)


def test_running_statistics_must_be_writable_when_updated():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    mean = np.zeros(3, np.float32)
    mean.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cnnkernels.batch_norm(x, mean, np.ones(3, np.float32), training=True)
    cnnkernels.batch_norm(x, mean, np.ones(3, np.float32))  # read-only is fine when nothing is updated
