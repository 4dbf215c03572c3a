"""Pooling kernels (max, average, sum), forward and backward, parallel over (image, channel) planes.

Arguments arrive validated from :mod:`cnnkernels.api`: C-contiguous arrays of one
dtype, N >= 1, and pads and dilations that leave every window at least one real
cell. Padding is implicit: a window is clipped to the input. Max pooling takes a
dilation (its taps are dh, dw apart); ceil_mode only changes P and Q, and the
average's kh·kw divisor is clipped to the padded input.
Legend: N images, C channels, H×W input, kh×kw window, P×Q output. Planes are handed
out in guided chunks: large first, then smaller, so a descheduled thread holds up little.
"""

from cython.parallel cimport prange
from libc.math cimport NAN
from libc.string cimport memset

ctypedef fused floating:
    float
    double

cdef extern from "simd/pool2x2.h" nogil:
    void cnnk_max_2x2_row_f32(const float* top, const float* bottom, int Q, float* out)
    void cnnk_max_2x2_row_f64(const double* top, const double* bottom, int Q, double* out)
    void cnnk_max_2x2_grad_row_f32(const float* top, const float* bottom, const float* g, int Q, float* top_grad,
                                   float* bottom_grad)
    void cnnk_max_2x2_grad_row_f64(const double* top, const double* bottom, const double* g, int Q, double* top_grad,
                                   double* bottom_grad)

# Divisor rules; the same numbers as cnnkernels.reference.DIVISOR_*.
cdef enum:
    DIVISOR_ONE = 0
    DIVISOR_WINDOW = 1
    DIVISOR_VALID = 2


cdef struct Window:
    int h0, w0          # input row and column of the window's first tap (negative in the padding)
    int r0, r1, s0, s1  # its taps on real cells: rows h0 + r·dh for r in [r0, r1), columns likewise
    int dh, dw


cdef inline int first_tap(int origin, int step) noexcept nogil:
    """The first tap t >= 0 with origin + t·step >= 0."""
    return 0 if origin >= 0 else (-origin + step - 1) // step


cdef inline Window clip_window(int p, int q, int kh, int kw, int sh, int sw, int pt, int pl,
                               int dh, int dw, int H, int W) noexcept nogil:
    cdef Window window
    window.h0 = p * sh - pt
    window.w0 = q * sw - pl
    window.dh, window.dw = dh, dw
    window.r0 = first_tap(window.h0, dh)
    # in 64 bits: H + dh may pass 2**31 (each is at most 2**30)
    window.r1 = <int>max(min(<Py_ssize_t>kh, (<Py_ssize_t>H - window.h0 + dh - 1) // dh), <Py_ssize_t>window.r0)
    window.s0 = first_tap(window.w0, dw)
    window.s1 = <int>max(min(<Py_ssize_t>kw, (<Py_ssize_t>W - window.w0 + dw - 1) // dw), <Py_ssize_t>window.s0)
    return window


cdef inline Py_ssize_t first_max(const floating* plane, int W, Window window) noexcept nogil:
    """Flat index of the window's first maximum in row-major order; the first NaN wins.

    Selects instead of branches on the comparison: on random data a branch would be
    mispredicted about once per window (4x slower, measured). NaN is rare: its test
    is a predictable branch."""
    cdef Py_ssize_t best = <Py_ssize_t>(window.h0 + window.r0 * window.dh) * W + window.w0 + window.s0 * window.dw
    cdef Py_ssize_t at, row
    cdef floating top = plane[best], value
    cdef int r, s
    cdef bint better
    for r in range(window.r0, window.r1):
        row = <Py_ssize_t>(window.h0 + r * window.dh) * W + window.w0
        for s in range(window.s0, window.s1):
            at = row + s * window.dw
            value = plane[at]
            if value != value:
                return at
            better = value > top
            best = at if better else best
            top = value if better else top
    return best


cdef inline floating window_max(const floating* plane, int W, Window window) noexcept nogil:
    """The window's maximum, NaN if it holds one; branch-free like first_max."""
    cdef floating top = plane[<Py_ssize_t>(window.h0 + window.r0 * window.dh) * W + window.w0 + window.s0 * window.dw]
    cdef floating value
    cdef bint nan_seen = False
    cdef Py_ssize_t row
    cdef int r, s
    for r in range(window.r0, window.r1):
        row = <Py_ssize_t>(window.h0 + r * window.dh) * W + window.w0
        for s in range(window.s0, window.s1):
            value = plane[row + s * window.dw]
            nan_seen = nan_seen | (value != value)
            top = value if value > top else top
    return <floating>NAN if nan_seen else top


cdef inline floating max_of_four(floating a, floating b, floating c, floating d) noexcept nogil:
    """The largest of a, b, c, d by selects (NaN aside: the callers test for it)."""
    cdef floating top = a if a > b else b
    top = top if top > c else c
    return top if top > d else d


cdef inline int first_max_2x2(const floating* top_row, const floating* bottom_row, int q) noexcept nogil:
    """Which of window q's cells (0, 1 on the top row, 2, 3 below) is its first maximum, as first_max
    (the first NaN wins). Counted from comparisons, without branches: on random data the compiler's
    branches for first_max's selects were mispredicted about once per window (2x slower, measured)."""
    cdef floating a = top_row[2 * q], b = top_row[2 * q + 1], c = bottom_row[2 * q], d = bottom_row[2 * q + 1]
    cdef floating top = max_of_four(a, b, c, d)
    cdef bint nan_a = a != a, nan_b = b != b, nan_c = c != c
    cdef bint clean = not (nan_a | nan_b | nan_c | (d != d))
    cdef bint not_a, not_b, not_c
    not_a = not (nan_a | (clean & (a == top)))
    not_b = not (nan_b | (clean & (b == top)))
    not_c = not (nan_c | (clean & (c == top)))
    return not_a + (not_a & not_b) + (not_a & not_b & not_c)


cdef inline void max_2x2_row(const floating* top_row, const floating* bottom_row, int Q,
                             floating* out) noexcept nogil:
    """out[q] = max of window q's four cells (NaN if one is): simd/pool2x2.c (float32 on AVX-512: 16 a vector)."""
    if floating is float:
        cnnk_max_2x2_row_f32(top_row, bottom_row, Q, out)
    else:
        cnnk_max_2x2_row_f64(top_row, bottom_row, Q, out)


cdef inline void max_2x2_grad_row(const floating* top_row, const floating* bottom_row, const floating* g, int Q,
                                  floating* top_grad, floating* bottom_grad) noexcept nogil:
    """Window q's gradient g[q] to its first maximum (as first_max_2x2), 0 to its other cells, the two rows
    written whole up to 2Q: simd/pool2x2.c (float32 on AVX-512: 16 windows a vector)."""
    if floating is float:
        cnnk_max_2x2_grad_row_f32(top_row, bottom_row, g, Q, top_grad, bottom_grad)
    else:
        cnnk_max_2x2_grad_row_f64(top_row, bottom_row, g, Q, top_grad, bottom_grad)


cdef inline bint plain_2x2(int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw,
                           int H, int W, int P, int Q) noexcept nogil:
    """A 2x2, stride-2 pooling whose windows all lie inside the input: the common case, with loops of
    its own (measured on the tutorial's pool: forward 4x faster than clipping each window)."""
    return (kh == 2 and kw == 2 and sh == 2 and sw == 2 and pt == 0 and pl == 0 and dh == 1 and dw == 1
            and 2 * P <= H and 2 * Q <= W)


cdef inline int divisor(Window window, int kh, int kw, int h_end, int w_end, int mode) noexcept nogil:
    """kh·kw clipped to the padded input [−pt, h_end) × [−pl, w_end) (PyTorch's count_include_pad,
    which differs from kh·kw only where ceil_mode runs a window past it), the real cells, or 1."""
    if mode == DIVISOR_WINDOW:
        return (min(window.h0 + kh, h_end) - window.h0) * (min(window.w0 + kw, w_end) - window.w0)
    if mode == DIVISOR_VALID:
        return (window.r1 - window.r0) * (window.s1 - window.s0)
    return 1


def max_pool2d_forward(const floating[:, :, :, ::1] x, int kh, int kw, int sh, int sw, int pt, int pl,
                       int dh, int dw, int n_threads, floating[:, :, :, ::1] y, long long[:, :, :, ::1] indices):
    """y[n,c,p,q] = max over real taps (p·sh − pt + r·dh, q·sw − pl + s·dw) of x[n,c]; indices (if not
    empty) = the flat h·W + w of each window's first maximum, as PyTorch's return_indices"""
    cdef int H = x.shape[2], W = x.shape[3], P = y.shape[2], Q = y.shape[3]
    cdef Py_ssize_t plane, planes = <Py_ssize_t>x.shape[0] * x.shape[1], at, out
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef floating* ys = &y[0, 0, 0, 0]
    cdef long long* where = &indices[0, 0, 0, 0] if indices.shape[0] > 0 else NULL
    cdef const floating* image
    cdef Window window
    cdef int p, q, cell
    cdef const floating* top_row
    cdef bint plain = plain_2x2(kh, kw, sh, sw, pt, pl, dh, dw, H, W, P, Q)
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            image = xs + plane * H * W
            if plain:
                for p in range(P):
                    top_row = image + 2 * p * W
                    out = (plane * P + p) * Q
                    if where == NULL:
                        max_2x2_row(top_row, top_row + W, Q, ys + out)
                        continue
                    for q in range(Q):
                        cell = first_max_2x2(top_row, top_row + W, q)
                        at = 2 * q + (cell & 1) + (cell >> 1) * W
                        ys[out + q] = top_row[at]
                        where[out + q] = 2 * p * W + at
                continue
            for p in range(P):
                for q in range(Q):
                    window = clip_window(p, q, kh, kw, sh, sw, pt, pl, dh, dw, H, W)
                    out = (plane * P + p) * Q + q
                    if where == NULL:
                        ys[out] = window_max(image, W, window)
                    else:
                        at = first_max(image, W, window)
                        ys[out] = image[at]
                        where[out] = at


def max_pool2d_backward(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                        int kh, int kw, int sh, int sw, int pt, int pl, int dh, int dw, int n_threads,
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
    cdef const floating* top_row
    cdef floating* top_grad
    cdef bint plain = plain_2x2(kh, kw, sh, sw, pt, pl, dh, dw, H, W, P, Q)
    with nogil:
        for plane in prange(planes, num_threads=max(1, n_threads), schedule="guided"):
            image = xs + plane * H * W
            grad = dxs + plane * H * W
            if plain:  # the windows' rows written whole, then the cells no window covers zeroed
                for p in range(P):
                    top_row = image + 2 * p * W
                    top_grad = grad + 2 * p * W
                    max_2x2_grad_row(top_row, top_row + W, dys + (plane * P + p) * Q, Q, top_grad, top_grad + W)
                    if 2 * Q < W:
                        memset(top_grad + 2 * Q, 0, (W - 2 * Q) * sizeof(floating))
                        memset(top_grad + W + 2 * Q, 0, (W - 2 * Q) * sizeof(floating))
                if 2 * P < H:
                    memset(grad + 2 * P * W, 0, (H - 2 * P) * W * sizeof(floating))
                continue
            memset(grad, 0, H * W * sizeof(floating))
            for p in range(P):
                for q in range(Q):
                    grad[first_max(image, W, clip_window(p, q, kh, kw, sh, sw, pt, pl, dh, dw, H, W))] += \
                        dys[(plane * P + p) * Q + q]


def avg_pool2d_forward(const floating[:, :, :, ::1] x, int kh, int kw, int sh, int sw, int pt, int pl,
                       int h_end, int w_end, int divisor_mode, int n_threads, floating[:, :, :, ::1] y):
    """y[n,c,p,q] = Σ real cells of window (p, q) of x[n,c] / divisor  (1, kh·kw within the padded
    input, or #real cells)"""
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
                    window = clip_window(p, q, kh, kw, sh, sw, pt, pl, 1, 1, H, W)
                    total = 0
                    for h in range(window.h0 + window.r0, window.h0 + window.r1):
                        for w in range(window.w0 + window.s0, window.w0 + window.s1):
                            total = total + image[h * W + w]
                    ys[(plane * P + p) * Q + q] = total / divisor(window, kh, kw, h_end, w_end, divisor_mode)


def avg_pool2d_backward(const floating[:, :, :, ::1] dy, int kh, int kw, int sh, int sw, int pt, int pl,
                        int h_end, int w_end, int divisor_mode, int n_threads, floating[:, :, :, ::1] dx):
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
                    window = clip_window(p, q, kh, kw, sh, sw, pt, pl, 1, 1, H, W)
                    share = dys[(plane * P + p) * Q + q] / divisor(window, kh, kw, h_end, w_end, divisor_mode)
                    for h in range(window.h0 + window.r0, window.h0 + window.r1):
                        for w in range(window.w0 + window.s0, window.w0 + window.s1):
                            grad[h * W + w] += share
