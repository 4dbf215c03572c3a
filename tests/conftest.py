"""Shared fixtures: every kernel test runs on every backend that loads here."""

import numpy as np
import pytest

import cnnkernels

TOLERANCE = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-10}


def assert_close(actual, expected, dtype=None, what=""):
    """Compare with a tolerance keyed by dtype and scaled by the expected values' size."""
    dtype = np.dtype(dtype or expected.dtype)
    tol = TOLERANCE[dtype]
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


def numerical_gradient(loss, array, eps=1e-6):
    """d loss / d array by central differences, one entry at a time (array is perturbed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = loss()
        array[index] = saved - eps
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.fixture(params=cnnkernels.backends())
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def every_call_splits(monkeypatch):
    """Tests use tiny arrays, which the plan would run on one thread, and run on busy CI
    machines, where the thread count adapts to the load: here every call that asks for
    several threads gets them, so the parallel paths are what the tests check.
    (tests/kernels/test_threads.py checks both rules with them on.)"""
    from cnnkernels import _threads, activations, normalization, plan

    monkeypatch.setattr(_threads, "MIN_FLOPS_PER_THREAD", 1)
    monkeypatch.setattr(normalization, "MIN_VALUES_PER_THREAD", 1)
    monkeypatch.setattr(activations, "MIN_VALUES_PER_THREAD", 1)
    monkeypatch.setattr(_threads, "MIN_POOL_CELLS_PER_THREAD", 1)
    monkeypatch.setenv("CNNKERNELS_DYNAMIC_THREADS", "0")
    plan.make_plan.cache_clear()
    yield
    plan.make_plan.cache_clear()
