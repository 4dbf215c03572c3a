"""Unbatched (C, H, W) inputs on every op, as PyTorch takes them: the result is the batched
op's on a batch of one, without the batch axis, and equals PyTorch's on the same 3-D tensor."""

import numpy as np
import pytest

import cnnkernels as ck
from tests.conftest import assert_close

rng = np.random.default_rng(5)
X = rng.standard_normal((4, 7, 6))
W = rng.standard_normal((5, 4, 3, 3))
WT = rng.standard_normal((4, 3, 3, 3))

FORWARD = {  # name: (call, its output shape)
    "conv2d": (lambda x, b: ck.conv2d(x, W, padding=1, backend=b), (5, 7, 6)),
    "conv_transpose2d": (lambda x, b: ck.conv_transpose2d(x, WT, stride=2, backend=b), (3, 15, 13)),
    "max_pool2d": (lambda x, b: ck.max_pool2d(x, 2, backend=b), (4, 3, 3)),
    "avg_pool2d": (lambda x, b: ck.avg_pool2d(x, 3, 2, 1, backend=b), (4, 4, 3)),
    "sum_pool2d": (lambda x, b: ck.sum_pool2d(x, 2, 1, backend=b), (4, 6, 5)),
}
BACKWARD = {
    "conv2d_backward": lambda dy, x, b: ck.conv2d_backward(dy, x, W, padding=1, backend=b),
    "conv_transpose2d_backward": lambda dy, x, b: ck.conv_transpose2d_backward(dy, x, WT, stride=2, backend=b),
    "max_pool2d_backward": lambda dy, x, b: ck.max_pool2d_backward(dy, x, 2, backend=b),
    "avg_pool2d_backward": lambda dy, x, b: ck.avg_pool2d_backward(dy, x, 3, 2, 1, backend=b),
    "sum_pool2d_backward": lambda dy, x, b: ck.sum_pool2d_backward(dy, x, 2, 1, backend=b),
}


@pytest.mark.parametrize("op", list(FORWARD))
def test_forward_and_backward_take_unbatched_inputs(backend, op):
    call, shape = FORWARD[op]
    y = call(X, backend)
    assert y.shape == shape
    assert_close(y, call(X[None], backend)[0])
    backward = BACKWARD[f"{op}_backward"]
    dy = rng.standard_normal(shape)
    got, want = backward(dy, X, backend), backward(dy[None], X[None], backend)
    if isinstance(got, tuple):  # (dx, dweight, dbias): only dx has the image's axes
        assert got[0].shape == X.shape
        for g, w in zip(got, (want[0][0], *want[1:])):
            assert_close(g, w)
    else:
        assert got.shape == X.shape
        assert_close(got, want[0])


def test_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tx = torch.from_numpy(X)
    assert_close(ck.conv2d(X, W, padding=1), F.conv2d(tx, torch.from_numpy(W), padding=1).numpy())
    assert_close(ck.conv_transpose2d(X, WT, stride=2), F.conv_transpose2d(tx, torch.from_numpy(WT), stride=2).numpy())
    assert_close(ck.max_pool2d(X, 2), F.max_pool2d(tx, 2).numpy())
    assert_close(ck.avg_pool2d(X, 3, 2, 1), F.avg_pool2d(tx, 3, 2, 1).numpy())
