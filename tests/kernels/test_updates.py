"""cnnkernels.rmsprop_update / adam_update: Keras's formulas in float64 as the oracle, the same bits on every
backend and thread count (the docstring promises NumPy's roundings), and clear errors for bad arrays."""

import numpy as np
import pytest

import cnnkernels as ck

BACKENDS = ck.backends()
SHAPES = [(7,), (3, 5, 2, 2), (40_000, 5)]  # one value block, several; 200k values: 2 threads


def arrays(shape, dtype, count, seed=0):
    rng = np.random.default_rng(seed)
    return [np.abs(rng.standard_normal(shape)).astype(dtype) if i == count - 1 else
            rng.standard_normal(shape).astype(dtype) for i in range(count)]


def rmsprop_oracle(w, g, a, lr, rho, eps):
    w, g, a = (v.astype(np.float64) for v in (w, g, a))
    a = rho * a + (1 - rho) * g**2
    return w - lr * g / np.sqrt(a + eps), a


def adam_oracle(w, g, m, v, alpha, beta_1, beta_2, eps):
    w, g, m, v = (t.astype(np.float64) for t in (w, g, m, v))
    m = m + (g - m) * (1 - beta_1)
    v = v + (g**2 - v) * (1 - beta_2)
    return w - alpha * m / (np.sqrt(v) + eps), m, v


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_rmsprop_step_matches_kerass_formula(backend, dtype, shape):
    w, g, a = arrays(shape, dtype, 3)
    expected = rmsprop_oracle(w, g, a, 1e-3, 0.9, 1e-7)
    ck.rmsprop_update(w, g, a, 1e-3, 0.9, 1e-7, backend=backend)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    for actual, wanted in zip((w, a), expected):
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, wanted, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_adam_step_matches_kerass_formula(backend, dtype, shape):
    w, g, m, v = arrays(shape, dtype, 4)
    alpha = 1e-3 * np.sqrt(1 - 0.999**3) / (1 - 0.9**3)
    expected = adam_oracle(w, g, m, v, alpha, 0.9, 0.999, 1e-7)
    ck.adam_update(w, g, m, v, alpha, 0.9, 0.999, 1e-7, backend=backend)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    for actual, wanted in zip((w, m, v), expected):
        np.testing.assert_allclose(actual, wanted, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_backend_and_thread_count_gives_the_same_bits(dtype):
    results = []
    for backend in BACKENDS:
        for threads in (1, 2):
            w, g, m = arrays((200_003,), dtype, 3, seed=3)
            a, v = np.abs(arrays((200_003,), dtype, 2, seed=4))
            ck.rmsprop_update(w, g, a, 3e-4, 0.95, 1e-6, backend=backend, threads=threads)
            ck.adam_update(w, g, m, v, 2e-3, 0.8, 0.99, 1e-7, backend=backend, threads=threads)
            results.append((backend, threads, w, a, m, v))
    first = results[0]
    for other in results[1:]:
        for a, b in zip(first[2:], other[2:]):
            assert np.array_equal(a, b), f"{first[:2]} and {other[:2]} differ"


def test_empty_arrays_are_a_step_that_changes_nothing():
    w, g, a = (np.zeros((0, 3), np.float32) for _ in range(3))
    ck.rmsprop_update(w, g, a, 1e-3)
    assert w.shape == (0, 3)


@pytest.mark.parametrize("call,error,message", [
    (lambda w, g, a: ck.rmsprop_update(w, g.astype(np.float64), a, 1e-3), TypeError, "gradient must have dtype float32"),
    (lambda w, g, a: ck.rmsprop_update(w, g[:-1], a, 1e-3), ValueError, "gradient must have variable's shape"),
    (lambda w, g, a: ck.rmsprop_update(w.astype(np.float16), g, a, 1e-3), TypeError, "received dtype=float16"),
    (lambda w, g, a: ck.rmsprop_update(list(w), g, a, 1e-3), TypeError, "variable must be a numpy.ndarray"),
    (lambda w, g, a: ck.rmsprop_update(w, g, a, -1.0), ValueError, "learning_rate must lie in"),
    (lambda w, g, a: ck.rmsprop_update(w, g, a, float("nan")), ValueError, "learning_rate must lie in"),
    (lambda w, g, a: ck.rmsprop_update(w, g, a, True), TypeError, "learning_rate must be a real number"),
    (lambda w, g, a: ck.rmsprop_update(w, g, a, 1e-3, rho=1.5), ValueError, "rho must lie in"),
    (lambda w, g, a: ck.rmsprop_update(w, g, w, 1e-3), ValueError, "variable and velocity must be distinct"),
    (lambda w, g, a: ck.adam_update(w, g, a, a, 1e-3), ValueError, "momentum and velocity must be distinct"),
    (lambda w, g, a: ck.adam_update(w, g, a, w * 0, 1e-3, beta_2=-0.1), ValueError, "beta_2 must lie in"),
])
def test_bad_arrays_and_numbers_are_refused_with_what_was_received(call, error, message):
    w, g, a = arrays((10,), np.float32, 3)
    before = w.copy()
    with pytest.raises(error, match=message):
        call(w, g, a)
    assert np.array_equal(w, before)  # refused before anything is written


def test_an_array_that_a_copy_would_not_update_is_refused():
    w, g, a = arrays((10, 4), np.float32, 3)
    with pytest.raises(ValueError, match="velocity is updated in place.*c_contiguous=False"):
        ck.rmsprop_update(w, g, np.asfortranarray(a), 1e-3)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="variable is updated in place.*writeable=False"):
        ck.rmsprop_update(w, g, a, 1e-3)
    # a gradient in any layout is fine: it is only read
    w.flags.writeable = True
    expected = rmsprop_oracle(w, g, a, 1e-3, 0.9, 1e-7)[0]
    ck.rmsprop_update(w, np.asfortranarray(g), a, 1e-3)
    np.testing.assert_allclose(w, expected, rtol=1e-6)
