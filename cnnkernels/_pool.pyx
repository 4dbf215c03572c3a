"""Pooling kernels (max, average, sum), forward and backward, parallel over (image, channel) planes.

Arguments arrive validated from :mod:`cnnkernels.api`: C-contiguous arrays of one
dtype, N >= 1, and pads smaller than the kernel, so every window holds at least
one real cell. Padding is implicit: a window is clipped to the input.
Legend: N images, C channels, H×W input, kh×kw window, P×Q output. Planes are handed
out in guided chunks: large first, then smaller, so a descheduled thread holds up little.
"""

from cython.parallel cimport prange
from libc.math cimport NAN
from libc.string cimport memset

ctypedef fused floating:
    float
    double

# Divisor rules; the same numbers as cnnkernels.reference.DIVISOR_*.
cdef enum:
    DIVISOR_ONE = 0
    DIVISOR_WINDOW = 1
    DIVISOR_VALID = 2


cdef struct Window:
    int r0, r1, s0, s1  # real rows [r0, r1) and columns [s0, s1) of the input


cdef inline Window clip_window(int p, int q, int kh, int kw, int sh, int sw, int pt, int pl,
                               int H, int W) noexcept nogil:
    cdef Window window
    window.r0 = max(p * sh - pt, 0)
    window.r1 = min(p * sh - pt + kh, H)
    window.s0 = max(q * sw - pl, 0)
    window.s1 = min(q * sw - pl + kw, W)
    return window


cdef inline Py_ssize_t first_max(const floating* plane, int W, Window window) noexcept nogil:
    """Flat index of the window's first maximum in row-major order; the first NaN wins.

    Selects instead of branches on the comparison: on random data a branch would be
    mispredicted about once per window (4x slower, measured). NaN is rare: its test
    is a predictable branch."""
    cdef Py_ssize_t best = <Py_ssize_t>window.r0 * W + window.s0, at
    cdef floating top = plane[best], value
    cdef int h, w
    cdef bint better
    for h in range(window.r0, window.r1):
        for w in range(window.s0, window.s1):
            at = <Py_ssize_t>h * W + w
            value = plane[at]
            if value != value:
                return at
            better = value > top
            best = at if better else best
            top = value if better else top
    return best


cdef inline floating window_max(const floating* plane, int W, Window window) noexcept nogil:
    """The window's maximum, NaN if it holds one; branch-free like first_max."""
    cdef floating top = plane[<Py_ssize_t>window.r0 * W + window.s0], value
    cdef bint nan_seen = False
    cdef int h, w
    for h in range(window.r0, window.r1):
        for w in range(window.s0, window.s1):
            value = plane[<Py_ssize_t>h * W + w]
            nan_seen = nan_seen | (value != value)
            top = value if value > top else top
    return <floating>NAN if nan_seen else top


cdef inline int divisor(Window window, int kh, int kw, int mode) noexcept nogil:
    if mode == DIVISOR_WINDOW:
        return kh * kw
    if mode == DIVISOR_VALID:
        return (window.r1 - window.r0) * (window.s1 - window.s0)
    return 1


def max_pool2d_forward(const floating[:, :, :, ::1] x, int kh, int kw, int sh, int sw,
                       int pt, int pl, int n_threads, floating[:, :, :, ::1] y):
    """y[n,c,p,q] = max over real cells (h, w) of window (p*sh-pt.., q*sw-pl..) of x[n,c,h,w]"""
    cdef int H = x.shape[2], W = x.shape[3], P = y.shape[2], Q = y.shape[3]
    cdef Py_ssize_t plane, planes = <Py_ssize_t>x.shape[0] * x.shape[1]
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef floating* ys = &y[0, 0, 0, 0]
    cdef const floating* image
    cdef int p, q
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            image = xs + plane * H * W
            for p in range(P):
                for q in range(Q):
                    ys[(plane * P + p) * Q + q] = window_max(
                        image, W, clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W))


def max_pool2d_backward(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                        int kh, int kw, int sh, int sw, int pt, int pl, int n_threads,
                        floating[:, :, :, ::1] dx):
    """dx[n,c,h,w] = Σ_p,q dy[n,c,p,q] · [(h, w) is the first maximum of window (p, q)]"""
    cdef int H = x.shape[2], W = x.shape[3], P = dy.shape[2], Q = dy.shape[3]
    cdef Py_ssize_t plane, planes = <Py_ssize_t>x.shape[0] * x.shape[1]
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef const floating* dys = &dy[0, 0, 0, 0]
    cdef floating* dxs = &dx[0, 0, 0, 0]
    cdef const floating* image
    cdef floating* grad
    cdef int p, q
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            image = xs + plane * H * W
            grad = dxs + plane * H * W
            memset(grad, 0, H * W * sizeof(floating))
            for p in range(P):
                for q in range(Q):
                    grad[first_max(image, W, clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W))] += \
                        dys[(plane * P + p) * Q + q]


def avg_pool2d_forward(const floating[:, :, :, ::1] x, int kh, int kw, int sh, int sw,
                       int pt, int pl, int divisor_mode, int n_threads, floating[:, :, :, ::1] y):
    """y[n,c,p,q] = Σ real cells of window (p, q) of x[n,c] / divisor  (1, kh·kw or #real cells)"""
    cdef int H = x.shape[2], W = x.shape[3], P = y.shape[2], Q = y.shape[3]
    cdef Py_ssize_t plane, planes = <Py_ssize_t>x.shape[0] * x.shape[1]
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef floating* ys = &y[0, 0, 0, 0]
    cdef const floating* image
    cdef Window window
    cdef floating total
    cdef int p, q, h, w
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            image = xs + plane * H * W
            for p in range(P):
                for q in range(Q):
                    window = clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W)
                    total = 0
                    for h in range(window.r0, window.r1):
                        for w in range(window.s0, window.s1):
                            total = total + image[h * W + w]
                    ys[(plane * P + p) * Q + q] = total / divisor(window, kh, kw, divisor_mode)


def avg_pool2d_backward(const floating[:, :, :, ::1] dy, int kh, int kw, int sh, int sw,
                        int pt, int pl, int divisor_mode, int n_threads, floating[:, :, :, ::1] dx):
    """dx[n,c,h,w] = Σ over windows (p, q) containing (h, w) of dy[n,c,p,q] / divisor[p,q]"""
    cdef int H = dx.shape[2], W = dx.shape[3], P = dy.shape[2], Q = dy.shape[3]
    cdef Py_ssize_t plane, planes = <Py_ssize_t>dx.shape[0] * dx.shape[1]
    cdef const floating* dys = &dy[0, 0, 0, 0]
    cdef floating* dxs = &dx[0, 0, 0, 0]
    cdef floating* grad
    cdef Window window
    cdef floating share
    cdef int p, q, h, w
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            grad = dxs + plane * H * W
            memset(grad, 0, H * W * sizeof(floating))
            for p in range(P):
                for q in range(Q):
                    window = clip_window(p, q, kh, kw, sh, sw, pt, pl, H, W)
                    share = dys[(plane * P + p) * Q + q] / divisor(window, kh, kw, divisor_mode)
                    for h in range(window.r0, window.r1):
                        for w in range(window.s0, window.s1):
                            grad[h * W + w] += share
