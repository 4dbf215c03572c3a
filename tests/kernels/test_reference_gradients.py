"""The reference's backward passes against central finite differences, in float64.

The oracle is only as good as its gradients: each backward is checked on
tie-free inputs by perturbing every input (and weight) entry.
"""

import numpy as np
import pytest

import cnnkernels
from tests.conftest import numerical_gradient

CONV_CASES = [
    dict(stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"),
    dict(stride=2, padding=1, dilation=1, groups=1, padding_mode="zeros"),
    dict(stride=(1, 2), padding="same", dilation=(2, 1), groups=2, padding_mode="zeros"),
    dict(stride=1, padding=((1, 2), (2, 0)), dilation=1, groups=1, padding_mode="replicate"),
    dict(stride=2, padding=1, dilation=1, groups=4, padding_mode="reflect"),
]


@pytest.mark.parametrize("geometry", CONV_CASES, ids=lambda g: ",".join(f"{k}={v}" for k, v in g.items()))
def test_conv2d_reference_gradients(geometry):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 4 // geometry["groups"], 3, 2))
    b = rng.standard_normal(4)
    y = cnnkernels.conv2d(x, w, b, **geometry, backend="numpy")
    dy = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(cnnkernels.conv2d(x, w, b, **geometry, backend="numpy") * dy))

    dx, dw, db = cnnkernels.conv2d_backward(dy, x, w, **geometry, backend="numpy")
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-7)


POOL_CASES = [
    ("max", dict(kernel_size=2)),
    ("max", dict(kernel_size=(3, 2), stride=(1, 2), padding=1)),
    ("max", dict(kernel_size=3, stride=2, padding="same")),
    ("avg", dict(kernel_size=2, stride=1, padding=1)),
    ("avg", dict(kernel_size=3, stride=2, padding="same", count_include_pad=False)),
    ("sum", dict(kernel_size=(2, 3), stride=(2, 1), padding=((1, 0), (0, 2)))),
]


@pytest.mark.parametrize("kind,arguments", POOL_CASES, ids=lambda c: str(c))
def test_pool_reference_gradients(kind, arguments):
    forward = getattr(cnnkernels, f"{kind}_pool2d")
    backward = getattr(cnnkernels, f"{kind}_pool2d_backward")
    rng = np.random.default_rng(11)
    # A permutation keeps every value distinct (>= 1e-2 apart): no ties for the max to break.
    x = (rng.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) * 1e-2).astype(np.float64)
    dy = rng.standard_normal(forward(x, backend="numpy", **arguments).shape)

    def loss():
        return float(np.sum(forward(x, backend="numpy", **arguments) * dy))

    dx = backward(dy, x, backend="numpy", **arguments)
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
