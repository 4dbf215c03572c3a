"""Convolution kernels, forward and backward: im2col with implicit zero padding + BLAS gemm.

Arguments arrive validated and normalised from :mod:`cnnkernels.api`: C-contiguous
arrays of one dtype, shapes that agree, geometry that yields a non-empty output,
N >= 1. Legend: N images, C channels, H×W input, K filters, R×S kernel, P×Q
output, G groups, Cg = C/G and Kg = K/G per group, L = columns in one block.

Work is split into items (image, group, block of output rows) run by an OpenMP
``prange``; BLAS is called inside, single-threaded (see cnnkernels._threads).
Items are handed out dynamically (a thread the OS has descheduled does not hold up the
others), except where per-thread partial sums must be reproducible.
Each thread unrolls one block at a time (im2col, or im2row for the forward pass
of layers with few filters) into its own slice of a workspace that is reused
across calls. Block: rows = max(1, min(P, 1024 // Q, 2**21 // (Cg·R·S·Q)))
output rows (cnnkernels._workspace), so the workspace per thread is at most
max(2**21, Cg·R·S·Q) elements plus the block's input rows and product (8 MiB in
float32 for most layers), whatever N is. Measured: a batch-128 convnet-benchmarks
L2 forward (a full im2col would be 7.8 GiB) added 291 MiB of resident memory, of
which 196 MiB is its output.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused floating:
    float
    double

from ._workspace import block_rows, scratch

cdef void* workspace(Py_ssize_t nbytes) except NULL:
    """``nbytes`` of reusable scratch memory for the calling Python thread."""
    cdef unsigned char[::1] raw = scratch(max(nbytes, 1), np.uint8)  # never empty: &raw[0] must exist
    return <void*>&raw[0]


cdef inline void gemm(char transa, char transb, int m, int n, int k,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major C = op(A)·op(B) + beta·C through BLAS."""
    cdef floating alpha = 1
    if floating is float:
        sgemm(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb, &beta, c, &ldc)
    else:
        dgemm(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb, &beta, c, &ldc)


cdef inline void valid_range(int offset, int stride, int size, int count, int* lo, int* hi) noexcept nogil:
    """[lo, hi): the j in 0..count-1 with 0 <= j·stride + offset < size."""
    cdef int first = 0, stop = 0
    if offset < 0:
        first = (-offset + stride - 1) // stride
    if size - 1 - offset >= 0:
        stop = (size - 1 - offset) // stride + 1
    if first > count:
        first = count
    if stop > count:
        stop = count
    if stop < first:
        stop = first
    lo[0] = first
    hi[0] = stop


cdef void im2col(const floating* img, int C, int H, int W, int R, int S,
                 int sh, int sw, int pt, int pl, int dh, int dw,
                 int p0, int rows, int Q, floating* col) noexcept nogil:
    """col[(c·R + r)·S + s, i·Q + q] = img[c, (p0+i)·sh + r·dh − pt, q·sw + s·dw − pl], 0 outside"""
    cdef int c, r, s, i, q, ih, offset, q_lo, q_hi
    cdef const floating* src
    cdef floating* dst = col
    for c in range(C):
        for r in range(R):
            for s in range(S):
                offset = s * dw - pl
                valid_range(offset, sw, W, Q, &q_lo, &q_hi)
                for i in range(rows):
                    ih = (p0 + i) * sh + r * dh - pt
                    if ih < 0 or ih >= H or q_lo == q_hi:
                        memset(dst, 0, Q * sizeof(floating))
                    else:
                        src = img + (<Py_ssize_t>c * H + ih) * W
                        for q in range(q_lo):
                            dst[q] = 0
                        if sw == 1:
                            memcpy(dst + q_lo, src + q_lo + offset, (q_hi - q_lo) * sizeof(floating))
                        else:
                            for q in range(q_lo, q_hi):
                                dst[q] = src[q * sw + offset]
                        for q in range(q_hi, Q):
                            dst[q] = 0
                    dst += Q


cdef void col2im(const floating* col, int C, int H, int W, int R, int S,
                 int sh, int sw, int pt, int pl, int dh, int dw,
                 int p0, int rows, int Q, floating* img) noexcept nogil:
    """img[c, (p0+i)·sh + r·dh − pt, q·sw + s·dw − pl] += col[(c·R + r)·S + s, i·Q + q] (inside only)"""
    cdef int c, r, s, i, q, ih, offset, q_lo, q_hi
    cdef floating* dst
    cdef const floating* src = col
    for c in range(C):
        for r in range(R):
            for s in range(S):
                offset = s * dw - pl
                valid_range(offset, sw, W, Q, &q_lo, &q_hi)
                for i in range(rows):
                    ih = (p0 + i) * sh + r * dh - pt
                    if ih >= 0 and ih < H:
                        dst = img + (<Py_ssize_t>c * H + ih) * W + offset
                        for q in range(q_lo, q_hi):
                            dst[q * sw] += src[q]
                    src += Q


cdef void channels_last_band(const floating* img, int C, int H, int W, int h0, int h1,
                             floating* band) noexcept nogil:
    """band[(h − h0)·W + w, c] = img[c, h, w] for h in [h0, h1): input rows, channels last."""
    cdef int c, h, w
    cdef const floating* src
    cdef floating* dst
    for h in range(h0, h1):
        dst = band + <Py_ssize_t>(h - h0) * W * C
        for c in range(C):
            src = img + (<Py_ssize_t>c * H + h) * W
            for w in range(W):
                dst[<Py_ssize_t>w * C + c] = src[w]


cdef void im2row(const floating* band, int C, int W, int h0, int h1, int R, int S,
                 int sh, int sw, int pt, int pl, int dh, int dw,
                 int p0, int rows, int Q, floating* out) noexcept nogil:
    """out[i·Q + q, (r·S + s)·C + c] = x[c, (p0+i)·sh + r·dh − pt, q·sw + s·dw − pl], 0 outside;
    ``band`` holds input rows [h0, h1) channels last (all the real rows the block reads)."""
    cdef int i, q, r, s, ih, iw, iw0
    cdef Py_ssize_t crs = <Py_ssize_t>R * S * C, run = <Py_ssize_t>S * C
    cdef floating* dst
    cdef const floating* row
    for i in range(rows):
        for q in range(Q):
            dst = out + (<Py_ssize_t>i * Q + q) * crs
            iw0 = q * sw - pl
            for r in range(R):
                ih = (p0 + i) * sh + r * dh - pt
                if ih < h0 or ih >= h1:
                    memset(dst + r * run, 0, run * sizeof(floating))
                    continue
                row = band + <Py_ssize_t>(ih - h0) * W * C
                if dw == 1 and iw0 >= 0 and iw0 + S <= W:
                    memcpy(dst + r * run, row + <Py_ssize_t>iw0 * C, run * sizeof(floating))
                    continue
                for s in range(S):
                    iw = iw0 + s * dw
                    if iw >= 0 and iw < W:
                        memcpy(dst + (r * S + s) * C, row + <Py_ssize_t>iw * C, C * sizeof(floating))
                    else:
                        memset(dst + (r * S + s) * C, 0, C * sizeof(floating))


def conv2d_forward_rows(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                        const floating[::1] b, int sh, int sw, int pt, int pl, int dh, int dw,
                        int groups, int n_threads, floating[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]

    Pixel-major (im2row) variant: each item copies the input rows its block reads to
    channels-last, gathers one contiguous R·S·C patch per output pixel, and multiplies
    with filters stored (R·S·C) × K; the (pixels × K) product is transposed into y.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef int P = y.shape[2], Q = y.shape[3]
    cdef int Kg = K // groups, CRS = Cg * R * S
    cdef bint pointwise = R == 1 and S == 1 and sh == 1 and sw == 1 and P == H and Q == W
    cdef int rows = block_rows(CRS, P, Q)
    cdef int blocks = (P + rows - 1) // rows
    cdef int nt = max(1, n_threads)
    cdef int band_rows = (rows - 1) * sh + (R - 1) * dh + 1
    cdef Py_ssize_t band_size = <Py_ssize_t>band_rows * W * Cg
    cdef Py_ssize_t patch_size = 0 if pointwise else <Py_ssize_t>rows * Q * CRS
    cdef Py_ssize_t per_thread = band_size + patch_size + <Py_ssize_t>rows * Q * Kg
    cdef Py_ssize_t filters_size = <Py_ssize_t>K * CRS
    cdef floating* ws = <floating*>workspace((filters_size + nt * per_thread) * sizeof(floating))
    cdef floating* filters = ws  # per group: (R·S·Cg) × Kg, row-major
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef const floating* ws_in = &w[0, 0, 0, 0]
    cdef const floating* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef floating* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, PQ = <Py_ssize_t>P * Q, L
    cdef int n, g, p0, nrows, k, c, r, s, tid, h0, h1, l
    cdef floating* mine
    cdef floating* band
    cdef floating* patches
    cdef floating* product
    cdef floating* out
    cdef floating shift
    for g in range(groups):
        for k in range(Kg):
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        filters[<Py_ssize_t>g * Kg * CRS + ((r * S + s) * Cg + c) * Kg + k] = \
                            ws_in[(((<Py_ssize_t>g * Kg + k) * Cg + c) * R + r) * S + s]
    with nogil:
        for item in prange(<Py_ssize_t>N * groups * blocks, num_threads=nt, schedule="dynamic"):
            n = item // (groups * blocks)
            g = (item // blocks) % groups
            p0 = (item % blocks) * rows
            nrows = min(rows, P - p0)
            L = <Py_ssize_t>nrows * Q
            tid = threadid()
            mine = ws + filters_size + tid * per_thread
            band = mine
            product = mine + band_size + patch_size
            # [h0, h1): the real input rows this block reads. Assigned here, not through a
            # pointer, so that Cython makes them private to each thread.
            h0 = max(p0 * sh - pt, 0)
            h1 = max(min((p0 + nrows - 1) * sh + (R - 1) * dh - pt + 1, H), h0)
            channels_last_band(xs + (<Py_ssize_t>n * C + g * Cg) * H * W, Cg, H, W, h0, h1, band)
            if pointwise:
                patches = band
            else:
                patches = mine + band_size
                im2row(band, Cg, W, h0, h1, R, S, sh, sw, pt, pl, dh, dw, p0, nrows, Q, patches)
            gemm(c"N", c"N", Kg, <int>L, CRS, filters + <Py_ssize_t>g * Kg * CRS, Kg, patches, CRS,
                 0, product, Kg)
            out = ys + (<Py_ssize_t>n * K + g * Kg) * PQ + p0 * Q
            for k in range(Kg):
                shift = bias[g * Kg + k] if bias != NULL else 0
                for l in range(L):
                    out[k * PQ + l] = product[<Py_ssize_t>l * Kg + k] + shift


def conv2d_forward(x, w, b, int sh, int sw, int pt, int pl, int dh, int dw, int groups, int n_threads, y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]

    Two ways to the same numbers, chosen by shape. Pixel-major patches (im2row) make
    OpenBLAS's sgemm run its faster (filters × patches) orientation, which pays off when
    each group has few filters: measured 1.2-1.8x on 3x3 layers with 16-32 filters and
    16-64 channels (the tutorial's second conv: 4.2 -> 2.3 ms), and level or slightly
    slower on wide layers. Tiny patches (3-channel first layers) and 1x1 layers, which
    need no copy at all, stay with channel-major columns.
    """
    cdef int Cg = w.shape[1], R = w.shape[2], S = w.shape[3], Kg = w.shape[0] // groups
    cdef bint pointwise = R == 1 and S == 1 and sh == 1 and sw == 1 and pt == 0 and pl == 0
    if not pointwise and Cg * R * S >= 64 and Kg <= 32:
        conv2d_forward_rows(x, w, b, sh, sw, pt, pl, dh, dw, groups, n_threads, y)
    else:
        conv2d_forward_columns(x, w, b, sh, sw, pt, pl, dh, dw, groups, n_threads, y)


def conv2d_forward_columns(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                           const floating[::1] b, int sh, int sw, int pt, int pl, int dh, int dw,
                           int groups, int n_threads, floating[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] · w[k,c,r,s]

    Channel-major (im2col) variant: columns (C·R·S) × pixels, one gemm with the filters."""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef int P = y.shape[2], Q = y.shape[3]
    cdef int Kg = K // groups, CRS = Cg * R * S
    # A 1×1, stride-1, unpadded convolution needs no im2col: the image is its column matrix.
    cdef bint pointwise = R == 1 and S == 1 and sh == 1 and sw == 1 and P == H and Q == W
    cdef int rows = block_rows(CRS, P, Q)
    cdef int blocks = (P + rows - 1) // rows
    cdef int nt = max(1, n_threads)
    cdef Py_ssize_t per_thread = <Py_ssize_t>CRS * rows * Q
    cdef floating* ws = <floating*>workspace((0 if pointwise else nt * per_thread) * sizeof(floating))
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef const floating* ws_filters = &w[0, 0, 0, 0]
    cdef const floating* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef floating* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, PQ = <Py_ssize_t>P * Q
    cdef int n, g, p0, nrows, k, tid, ld
    cdef Py_ssize_t j, L
    cdef const floating* col
    cdef floating* out
    with nogil:
        for item in prange(<Py_ssize_t>N * groups * blocks, num_threads=nt, schedule="dynamic"):
            n = item // (groups * blocks)
            g = (item // blocks) % groups
            p0 = (item % blocks) * rows
            nrows = min(rows, P - p0)
            L = <Py_ssize_t>nrows * Q
            tid = threadid()
            if pointwise:
                col = xs + (<Py_ssize_t>n * C + g * Cg) * H * W + p0 * Q
                ld = H * W
            else:
                im2col(xs + (<Py_ssize_t>n * C + g * Cg) * H * W, Cg, H, W, R, S,
                       sh, sw, pt, pl, dh, dw, p0, nrows, Q, ws + tid * per_thread)
                col = ws + tid * per_thread
                ld = <int>L
            out = ys + (<Py_ssize_t>n * K + g * Kg) * PQ + p0 * Q
            gemm(c"N", c"N", <int>L, Kg, CRS, col, ld, ws_filters + <Py_ssize_t>g * Kg * CRS, CRS,
                 0, out, <int>PQ)
            if bias != NULL:
                for k in range(Kg):
                    for j in range(L):
                        out[k * PQ + j] += bias[g * Kg + k]


def conv2d_backward_data(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] w,
                         int sh, int sw, int pt, int pl, int dh, int dw, int groups, int n_threads,
                         floating[:, :, :, ::1] dx):
    """dx[n,c,h,w] = Σ_k,r,s dy[n,k,p,q] · w[k,c,r,s] over h = p*sh+r*dh-pt, w = q*sw+s*dw-pl

    Items are (image, group): blocks of one image overlap in dx, so one thread owns it.
    """
    cdef int N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef int K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3]
    cdef int P = dy.shape[2], Q = dy.shape[3]
    cdef int Kg = K // groups, CRS = Cg * R * S
    cdef bint pointwise = R == 1 and S == 1 and sh == 1 and sw == 1 and P == H and Q == W
    cdef int rows = block_rows(CRS, P, Q)
    cdef int blocks = (P + rows - 1) // rows
    cdef int nt = max(1, n_threads)
    cdef Py_ssize_t per_thread = <Py_ssize_t>CRS * rows * Q
    cdef floating* ws = <floating*>workspace((0 if pointwise else nt * per_thread) * sizeof(floating))
    cdef const floating* dys = &dy[0, 0, 0, 0]
    cdef const floating* filters = &w[0, 0, 0, 0]
    cdef floating* dxs = &dx[0, 0, 0, 0]
    cdef Py_ssize_t item, PQ = <Py_ssize_t>P * Q, HW = <Py_ssize_t>H * W
    cdef int n, g, block, p0, nrows, tid
    cdef const floating* grad
    cdef const floating* filters_g
    cdef floating* image
    cdef floating* col
    with nogil:
        for item in prange(<Py_ssize_t>N * groups, num_threads=nt, schedule="dynamic"):
            n = item // groups
            g = item % groups
            tid = threadid()
            image = dxs + (<Py_ssize_t>n * C + g * Cg) * HW
            grad = dys + (<Py_ssize_t>n * K + g * Kg) * PQ
            filters_g = filters + <Py_ssize_t>g * Kg * CRS
            if pointwise:
                gemm(c"N", c"T", <int>HW, Cg, Kg, grad, <int>PQ, filters_g, CRS, 0, image, <int>HW)
            else:
                memset(image, 0, Cg * HW * sizeof(floating))
                col = ws + tid * per_thread
                for block in range(blocks):
                    p0 = block * rows
                    nrows = min(rows, P - p0)
                    gemm(c"N", c"T", nrows * Q, CRS, Kg, grad + p0 * Q, <int>PQ, filters_g, CRS,
                         0, col, nrows * Q)
                    col2im(col, Cg, H, W, R, S, sh, sw, pt, pl, dh, dw, p0, nrows, Q, image)


def conv2d_backward_weight(const floating[:, :, :, ::1] dy, const floating[:, :, :, ::1] x,
                           int sh, int sw, int pt, int pl, int dh, int dw, int groups, int n_threads,
                           floating[:, :, :, ::1] dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl]

    Each thread accumulates into its own K×Cg·R·S buffer; the buffers are summed at the end.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = dweight.shape[0], Cg = dweight.shape[1], R = dweight.shape[2], S = dweight.shape[3]
    cdef int P = dy.shape[2], Q = dy.shape[3]
    cdef int Kg = K // groups, CRS = Cg * R * S
    cdef bint pointwise = R == 1 and S == 1 and sh == 1 and sw == 1 and P == H and Q == W
    cdef int rows = block_rows(CRS, P, Q)
    cdef int blocks = (P + rows - 1) // rows
    cdef int nt = max(1, n_threads)
    cdef Py_ssize_t per_thread = <Py_ssize_t>CRS * rows * Q
    cdef Py_ssize_t columns = 0 if pointwise else nt * per_thread
    cdef Py_ssize_t KCRS = <Py_ssize_t>K * CRS
    cdef floating* ws = <floating*>workspace((columns + nt * KCRS) * sizeof(floating))
    cdef floating* partial = ws + columns
    cdef const floating* xs = &x[0, 0, 0, 0]
    cdef const floating* dys = &dy[0, 0, 0, 0]
    cdef floating* dws = &dweight[0, 0, 0, 0]
    cdef Py_ssize_t item, PQ = <Py_ssize_t>P * Q, j
    cdef int n, g, p0, nrows, tid, ld, t
    cdef const floating* col
    cdef floating total
    memset(partial, 0, nt * KCRS * sizeof(floating))
    with nogil:
        # Static on purpose: each thread's partial sums then hold the same items on every run,
        # so the weight gradient is reproducible at a given thread count.
        for item in prange(<Py_ssize_t>N * groups * blocks, num_threads=nt, schedule="static"):
            n = item // (groups * blocks)
            g = (item // blocks) % groups
            p0 = (item % blocks) * rows
            nrows = min(rows, P - p0)
            tid = threadid()
            if pointwise:
                col = xs + (<Py_ssize_t>n * C + g * Cg) * H * W + p0 * Q
                ld = H * W
            else:
                im2col(xs + (<Py_ssize_t>n * C + g * Cg) * H * W, Cg, H, W, R, S,
                       sh, sw, pt, pl, dh, dw, p0, nrows, Q, ws + tid * per_thread)
                col = ws + tid * per_thread
                ld = nrows * Q
            gemm(c"T", c"N", CRS, Kg, nrows * Q, col, ld,
                 dys + (<Py_ssize_t>n * K + g * Kg) * PQ + p0 * Q, <int>PQ,
                 1, partial + tid * KCRS + <Py_ssize_t>g * Kg * CRS, CRS)
        for j in prange(KCRS, num_threads=nt, schedule="static"):
            total = 0
            for t in range(nt):
                total = total + partial[t * KCRS + j]
            dws[j] = total
