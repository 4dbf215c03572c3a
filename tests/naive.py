"""Loop-level oracles for convolution and pooling, written from the definitions alone.

Independent of cnnkernels on purpose (stumpy's ``tests/naive.py`` pattern): no shared padding
arithmetic, no shared validation. Each output element is a plain sum or maximum over the
window taps that land inside the (never materialised) padded input; "same" padding is
worked out here by TensorFlow's rule. Slow and obviously right: for small arrays only.
"""

import math

import numpy as np


def _pair(value):
    """(a, a) from an int or a 1-tuple, as PyTorch reads them; a pair as it is."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    return value * 2 if len(value) == 1 else value


def same_padding(size, kernel, stride, dilation):
    """TensorFlow's "same": total = max((ceil(in/s) - 1)·s + (k - 1)·d + 1 - in, 0), odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, hw, kernel, stride, dilation):
    """((top, bottom), (left, right)) from any of conv2d's padding forms."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(hw, kernel, stride, dilation))
    if isinstance(padding, (int, np.integer)):
        return (int(padding), int(padding)), (int(padding), int(padding))
    if len(padding) == 1:
        return conv_padding(padding[0], hw, kernel, stride, dilation)
    first, second = padding
    if isinstance(first, int):
        return (first, first), (second, second)
    return tuple(first), tuple(second)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n, c, p·sh + r·dh − top, q·sw + s·dw − left] · w[k, c, r, s], zero outside."""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    (top, bottom), (left, right) = conv_padding(padding, (H, W), (R, S), (sh, sw), (dh, dw))
    P = (H + top + bottom - (R - 1) * dh - 1) // sh + 1
    Q = (W + left + right - (S - 1) * dw - 1) // sw + 1
    y = np.zeros((N, K, P, Q), np.float64)
    per_group = K // groups
    for k in range(K):
        channels = range((k // per_group) * Cg, (k // per_group + 1) * Cg)
        for p in range(P):
            for q in range(Q):
                total = 0.0 if b is None else float(b[k])
                for ci, c in enumerate(channels):
                    for r in range(R):
                        row = p * sh + r * dh - top
                        if not 0 <= row < H:
                            continue
                        for s in range(S):
                            col = q * sw + s * dw - left
                            if 0 <= col < W:
                                total = total + x[:, c, row, col].astype(np.float64) * float(w[k, ci, r, s])
                y[:, k, p, q] = total
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db) of Σ y·dy, by scattering every tap of :func:`conv2d` back."""
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    (sh, sw), (dh, dw_) = _pair(stride), _pair(dilation)
    (top, _), (left, _) = conv_padding(padding, (H, W), (R, S), (sh, sw), (dh, dw_))
    dx, dweight = np.zeros(x.shape), np.zeros(w.shape)
    per_group = K // groups
    for k in range(K):
        channels = range((k // per_group) * Cg, (k // per_group + 1) * Cg)
        for p in range(dy.shape[2]):
            for q in range(dy.shape[3]):
                g = dy[:, k, p, q].astype(np.float64)
                for ci, c in enumerate(channels):
                    for r in range(R):
                        row = p * sh + r * dh - top
                        if not 0 <= row < H:
                            continue
                        for s in range(S):
                            col = q * sw + s * dw_ - left
                            if 0 <= col < W:
                                dx[:, c, row, col] += g * float(w[k, ci, r, s])
                                dweight[k, ci, r, s] += float(np.dot(g, x[:, c, row, col]))
    return dx, dweight, dy.sum(axis=(0, 2, 3), dtype=np.float64)


def _pool_geometry(H, W, kernel_size, stride, padding, dilation, ceil_mode):
    """Kernel, stride, ((top, bottom), (left, right)) pads, dilation and output size of a pooling;
    padding in any of conv2d's forms ("same" by TensorFlow's rule)."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(stride if stride is not None else kernel_size)
    (dh, dw) = _pair(dilation)
    pads = conv_padding(padding, (H, W), (kh, kw), (sh, sw), (dh, dw))
    sizes = []
    for n, k, s, (before, after), d in ((H, kh, sh, pads[0], dh), (W, kw, sw, pads[1], dw)):
        span = n + before + after - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + before:  # PyTorch: the last window starts in the input or its pad
            out -= 1
        sizes.append(out)
    return (kh, kw), (sh, sw), pads, (dh, dw), sizes


def _divisor(p, q, kernel, stride, pads, hw, taps, count_include_pad):
    """An average's divisor: the window's cells within the padded input (PyTorch's rule, which clips
    a ceil_mode window), or only the real ones."""
    if not count_include_pad:
        return len(taps)
    (kh, kw), (sh, sw), ((top, bottom), (left, right)), (H, W) = kernel, stride, pads, hw
    height = min(p * sh - top + kh, H + bottom) - (p * sh - top)
    width = min(q * sw - left + kw, W + right) - (q * sw - left)
    return height * width


def pool2d(x, kind, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True):
    """Max, average or sum over each window's taps inside the input (padding never wins a max; an
    average divides by the window's taps within the padded input, or the real ones only)."""
    N, C, H, W = x.shape
    kernel, steps, pads, (dh, dw), (P, Q) = _pool_geometry(H, W, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.zeros((N, C, P, Q), np.float64)
    for p in range(P):
        for q in range(Q):
            taps = _taps(p, q, kernel, steps, pads, (dh, dw), H, W)
            values = np.stack([x[:, :, r, c].astype(np.float64) for r, c in taps], axis=-1)
            if kind == "max":
                y[:, :, p, q] = np.max(values, axis=-1)  # NaN wins, as NumPy's max
            elif kind == "sum":
                y[:, :, p, q] = values.sum(axis=-1)
            else:
                y[:, :, p, q] = values.sum(axis=-1) / _divisor(p, q, kernel, steps, pads, (H, W), taps,
                                                               count_include_pad)
    return y


def _taps(p, q, kernel, steps, pads, dilation, H, W):
    (kh, kw), (sh, sw), ((top, _), (left, _)), (dh, dw) = kernel, steps, pads, dilation
    rows = [p * sh + i * dh - top for i in range(kh)]
    cols = [q * sw + j * dw - left for j in range(kw)]
    return [(r, c) for r in rows for c in cols if 0 <= r < H and 0 <= c < W]


def pool2d_backward(dy, x, kind, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                    count_include_pad=True):
    """The gradient of Σ pool2d(x)·dy: a max routes to the first maximum of its window in row-major
    order (PyTorch's rule); a sum or average spreads evenly over the taps inside."""
    N, C, H, W = x.shape
    kernel, steps, pads, (dh, dw), (P, Q) = _pool_geometry(H, W, kernel_size, stride, padding, dilation, ceil_mode)
    dx = np.zeros(x.shape)
    for p in range(P):
        for q in range(Q):
            taps = _taps(p, q, kernel, steps, pads, (dh, dw), H, W)
            g = dy[:, :, p, q].astype(np.float64)
            if kind == "max":
                values = np.stack([x[:, :, r, c] for r, c in taps], axis=-1)
                first = np.argmax(values, axis=-1)
                for index, (r, c) in enumerate(taps):
                    dx[:, :, r, c] += g * (first == index)
                continue
            share = g if kind == "sum" else g / _divisor(p, q, kernel, steps, pads, (H, W), taps,
                                                         count_include_pad)
            for r, c in taps:
                dx[:, :, r, c] += share
    return dx
