"""Every backend against PyTorch's torch.nn.functional, where torch is importable."""

import numpy as np
import pytest

import cnnkernels
from tests.conftest import assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_conv(x, w, b, stride, pads, dilation, groups, padding_mode):
    """Forward and gradients of a torch convolution with explicit (top, bottom, left, right) pads."""
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    top, bottom, left, right = pads
    mode = {"zeros": "constant", "replicate": "replicate", "reflect": "reflect", "circular": "circular"}[padding_mode]
    padded = F.pad(tx, (left, right, top, bottom), mode=mode)
    ty = F.conv2d(padded, tw, tb, stride=stride, dilation=dilation, groups=groups)
    dy = torch.tensor(np.random.default_rng(3).standard_normal(tuple(ty.shape)).astype(x.dtype))
    ty.backward(dy)
    return ty.detach().numpy(), dy.numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "stride,padding,pads,dilation,groups,padding_mode",
    [
        (1, 1, (1, 1, 1, 1), 1, 1, "zeros"),
        ((2, 1), (2, 0), (2, 2, 0, 0), (1, 2), 2, "zeros"),
        (2, ((0, 1), (2, 1)), (0, 1, 2, 1), 1, 1, "zeros"),
        (1, 2, (2, 2, 2, 2), 1, 6, "replicate"),
        (1, (1, 2), (1, 1, 2, 2), 1, 3, "reflect"),
        ((2,), (3, 1), (3, 3, 1, 1), (1,), 2, "circular"),  # 1-tuples expand, as in PyTorch
    ],
)
def test_conv2d_matches_torch(backend, rng, dtype, stride, padding, pads, dilation, groups, padding_mode):
    x = rng.standard_normal((3, 6, 9, 8)).astype(dtype)
    w = rng.standard_normal((6, 6 // groups, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    y_t, dy, dx_t, dw_t, db_t = _torch_conv(x, w, b, stride, pads, dilation, groups, padding_mode)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    assert_close(cnnkernels.conv2d(x, w, b, **args, backend=backend), y_t)
    dx, dw, db = cnnkernels.conv2d_backward(dy, x, w, **args, backend=backend)
    assert_close(dx, dx_t)
    assert_close(dw, dw_t)
    assert_close(db, db_t)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_matches_torch_same_for_stride_one(backend, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 3)).astype(np.float32)  # even kernel: asymmetric pads
    expected = F.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy()
    assert_close(cnnkernels.conv2d(x, w, padding="same", backend=backend), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_size,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
@pytest.mark.parametrize("kind", ["max", "avg", "avg_exclude_pad"])
def test_pool_matches_torch(backend, rng, dtype, kernel_size, stride, padding, kind):
    # ReLU'd small integers: ties everywhere, so max-pool's first-maximum rule is exercised.
    x = np.maximum(rng.integers(-3, 3, size=(2, 3, 9, 7)), 0).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    if kind == "max":
        ty = F.max_pool2d(tx, kernel_size, stride, padding)
        ours, ours_backward, extra = cnnkernels.max_pool2d, cnnkernels.max_pool2d_backward, {}
    else:
        include = kind == "avg"
        ty = F.avg_pool2d(tx, kernel_size, stride, padding, count_include_pad=include)
        ours, ours_backward = cnnkernels.avg_pool2d, cnnkernels.avg_pool2d_backward
        extra = {"count_include_pad": include}
    dy = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(dy))
    assert_close(ours(x, kernel_size, stride, padding, **extra, backend=backend), ty.detach().numpy())
    assert_close(ours_backward(dy, x, kernel_size, stride, padding, **extra, backend=backend), tx.grad.numpy())
