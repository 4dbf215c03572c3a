"""Convolution and pooling implementations under test, prepared per problem.

The protocol every implementation follows, built-in or a user's (``--impl
module:Object``, see :mod:`.plugins`):

``name``
    The column label.
``conv(problem, x, w, dy) -> {pass: callable}``
    Called once per problem, outside the timing, with float32 NCHW ``x``,
    OIHW ``w`` and the output gradient ``dy``; returns a callable per pass it
    implements, any of "forward", "backward-data", "backward-weights". Each
    callable does the whole pass before it returns and returns an array in
    NCHW / OIHW that the harness compares with the NumPy reference. A problem
    it cannot run: raise ``NotImplementedError`` (the row says so).
``pool(problem, x, dy)`` (optional)
    The same for pooling: "forward" and "backward".
``set_threads(n)`` (optional)
    Use ``n`` threads from now on; raise ``NotImplementedError`` if it cannot.
``algorithm(problem, x, w, pass_name)`` (optional)
    A word for the algorithm a pass runs.

``problem`` has N, C, H, W, K, R, S, ``strides``, ``pads()`` (top, bottom,
left, right), ``dilations``, ``groups`` and ``out_hw()``.
"""

from __future__ import annotations

import numpy as np

import cnnkernels

CONV_PASSES = ("forward", "backward-data", "backward-weights")
POOL_PASSES = ("forward", "backward")


def geometry(problem) -> dict:
    """The problem's stride, padding, dilation and groups as cnnkernels and torch.nn.functional name them."""
    return dict(stride=problem.stride, padding=problem.padding, dilation=problem.dilation, groups=problem.groups)


class Cnnkernels:
    """One cnnkernels backend through the public API."""

    def __init__(self, backend: str):
        self.backend = backend
        self.name = backend if backend != "numpy" else "numpy-ref"

    def set_threads(self, n: int) -> None:
        cnnkernels.set_num_threads(n)

    def algorithm(self, problem, x, w, pass_name):
        """The algorithm the plan runs for ``pass_name``."""
        plan = cnnkernels.conv2d_plan(x.shape, w.shape, dtype=x.dtype, backend=self.backend, **geometry(problem))
        return {"forward": plan.forward, "backward-data": plan.backward_data,
                "backward-weights": plan.backward_weight}[pass_name]

    def conv(self, problem, x, w, dy):
        kw = dict(backend=self.backend, **geometry(problem))
        return {
            "forward": lambda: cnnkernels.conv2d(x, w, **kw),
            "backward-data": lambda: cnnkernels.conv2d_backward(dy, x, w, bias=False, weight_grad=False, **kw)[0],
            "backward-weights": lambda: cnnkernels.conv2d_backward(dy, x, w, bias=False, input_grad=False, **kw)[1],
        }

    def pool(self, problem, x, dy):
        forward = getattr(cnnkernels, f"{problem.kind}_pool2d")
        backward = getattr(cnnkernels, f"{problem.kind}_pool2d_backward")
        args = (problem.kernel_size, problem.stride, problem.padding)
        return {
            "forward": lambda: forward(x, *args, backend=self.backend),
            "backward": lambda: backward(dy, x, *args, backend=self.backend),
        }


class Torch:
    """PyTorch CPU through torch.nn.functional / aten, NCHW or channels_last."""

    def __init__(self, channels_last: bool = False):
        import torch

        self.torch = torch
        self.channels_last = channels_last
        self.name = "torch-nhwc" if channels_last else "torch"

    def set_threads(self, n: int) -> None:
        self.torch.set_num_threads(n)

    def algorithm(self, problem, x, w, pass_name):
        return "onednn"

    def _tensor(self, array):
        tensor = self.torch.from_numpy(np.ascontiguousarray(array))
        return tensor.contiguous(memory_format=self.torch.channels_last) if self.channels_last else tensor

    def conv(self, problem, x, w, dy):
        torch = self.torch
        F = torch.nn.functional
        stride, dilation = list(problem.strides), list(problem.dilations)
        top, bottom, left, right = problem.pads()
        tx, tw, tdy = self._tensor(x), self._tensor(w), self._tensor(dy)
        if (top, left) == (bottom, right):
            padding, prepad = [top, left], None
        else:  # asymmetric ("same" with an even kernel): torch needs an explicit pad
            padding, prepad = [0, 0], (left, right, top, bottom)
        padded = F.pad(tx, prepad) if prepad else tx

        def forward():
            source = F.pad(tx, prepad) if prepad else tx
            return F.conv2d(source, tw, stride=stride, padding=padding, dilation=dilation, groups=problem.groups).numpy()

        def backward(mask):
            grads = torch.ops.aten.convolution_backward(
                tdy, padded, tw, None, stride, padding, dilation, False, [0, 0], problem.groups, mask)
            return grads[0] if mask[0] else grads[1]

        def backward_data():
            grad = backward([True, False, False])
            if prepad:
                grad = grad[:, :, top : top + problem.H, left : left + problem.W]
            return grad.numpy()

        return {
            "forward": forward,
            "backward-data": backward_data,
            "backward-weights": lambda: backward([False, True, False]).numpy(),
        }

    def pool(self, problem, x, dy):
        torch = self.torch
        F = torch.nn.functional
        tx = self._tensor(x).requires_grad_(True)
        tdy = self._tensor(dy)
        k, s, p = problem.kernel_size, problem.stride or problem.kernel_size, problem.padding
        if problem.kind == "max":
            call = lambda: F.max_pool2d(tx, k, s, p)  # noqa: E731
        elif problem.kind == "avg":
            call = lambda: F.avg_pool2d(tx, k, s, p)  # noqa: E731
        else:
            call = lambda: F.avg_pool2d(tx, k, s, p, divisor_override=1)  # noqa: E731
        graph = call()
        return {
            "forward": lambda: call().detach().numpy(),
            "backward": lambda: torch.autograd.grad(graph, tx, tdy, retain_graph=True)[0].numpy(),
        }

