"""A user's own convolutions, as someone would write them for a course: what `--impl` loads in the tests.

``conv2d`` is the 20-line NumPy im2col of the must-show; ``wrong_conv2d`` adds 0.01 to every output (a
fast-but-wrong kernel), ``broken_conv2d`` raises; ``SlowedConv`` follows the full protocol and repeats its work
``SLOWED_CONV_TIMES`` (from the environment) times: a kernel slowed on purpose, for `compare`.
"""

import os

import numpy as np


def conv2d(x, w, stride, padding):
    """y[n, k, p, q] = sum_{c, r, s} x_pad[n, c, p*sh + r, q*sw + s] * w[k, c, r, s]  (im2col + one matmul)."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, width = x.shape
    k, _, r, s = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    p = (h + 2 * ph - r) // sh + 1
    q = (width + 2 * pw - s) // sw + 1
    cols = np.empty((n, p, q, c, r, s), x.dtype)
    for i in range(r):
        for j in range(s):
            cols[:, :, :, :, i, j] = x[:, :, i : i + sh * p : sh, j : j + sw * q : sw].transpose(0, 2, 3, 1)
    y = cols.reshape(n * p * q, c * r * s) @ w.reshape(k, c * r * s).T
    return y.reshape(n, p, q, k).transpose(0, 3, 1, 2)


def wrong_conv2d(x, w, stride, padding):
    return conv2d(x, w, stride, padding) + 0.01


class SlowedConv:
    """The full protocol: forward does the convolution ``SLOWED_CONV_TIMES`` (environment) times."""

    name = "slowed"

    def conv(self, problem, x, w, dy):
        if problem.groups != 1 or problem.dilations != (1, 1):
            raise NotImplementedError("plain convolutions only")
        times = int(os.environ.get("SLOWED_CONV_TIMES", "1"))
        top, bottom, left, right = problem.pads()

        def forward():
            for _ in range(times):
                y = conv2d(x, w, problem.strides, (top, left))
            return y

        return {"forward": forward}


def broken_conv2d(x, w, stride, padding):
    raise RuntimeError("out of registers")
