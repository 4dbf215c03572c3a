"""Winograd F(4×4, 3×3) convolution, float32: 3×3 kernels, stride 1, dilation 1, any groups.

Arguments arrive validated and planned from :mod:`cnnkernels.api` / :mod:`cnnkernels.plan`.
Legend: N images, C channels, H×W input, K filters, P×Q output, G groups, Cg = C/G,
Kg = K/G, Kp = Kg rounded up to 16; T = N·⌈P/4⌉·⌈Q/4⌉ output tiles of 4×4.

The input is first copied channels-last, so the input transform reads and writes whole
runs of channels. Each work item is (block of ``block`` tiles, group): its tiles are
transformed (V = Bᵀ d B: 36 × tiles × Cg), multiplied by the transformed filters
(U: 36 panels of Cg × 16 filters) in 36 products by our register-blocked kernel (6 tiles
× 16 filters; each 6-tile group packed once into an L1-resident panel), and transformed back (Aᵀ M A) into y. The C kernels
(cnnkernels/simd/winograd43.c) are compiled per ISA and chosen at load time.
Workspace: the channels-last copy of x (N·C·H·W), 36·G·Cg·Kp floats of filters, and
36·block·(Cg + Kp) + 6·Cg per thread.

Error: the transforms multiply and add values up to 8× (Aᵀ) and 5× (Bᵀ) and divide
by 6 and 24 (G), so rounding errors grow beyond the direct sum's: measured against
a float64 reference, max |error| ≈ 1–2e-6 · Σ|x||w| on random data (direct
float32: ≈ 1.5e-7). The tests hold it to 1e-5 · Σ|x||w|.
"""

import numpy as np

from cython.parallel cimport prange, threadid

from ._workspace import scratch


cdef extern from "simd/winograd43.h" nogil:
    void cnnk_nchw_to_nhwc(const float* x, int C, int HW, float* out)
    void cnnk_wino43_input(const float* x, Py_ssize_t image_stride, Py_ssize_t pixel_stride, int C, int H, int W,
                           const int* img, const int* row0, const int* col0, int ntiles, float* V)
    void cnnk_wino43_multiply(const float* V, const float* U, int ntiles, int C, int Kpad, float* M, float* panel)
    void cnnk_wino43_output(const float* M, int Kpad, int K, const int* img, const int* row0, const int* col0,
                            int ntiles, const float* bias, float* y, Py_ssize_t image_stride, int P, int Q)
    void cnnk_wino43_filter(const float* w, int K, int C, int Kpad, int c_begin, int c_end, float* U)
    const char* cnnk_simd_isa()


def simd_isa():
    """The instruction set the micro-kernels run with here ("avx2+fma" or "portable"), chosen at run time."""
    return cnnk_simd_isa().decode()


def tile_tables(int N, int P, int Q):
    """(image, output row, output column) of each 4×4 output tile, image-major then row-major."""
    tiles_h, tiles_w = (P + 3) // 4, (Q + 3) // 4
    n, ty, tx = np.meshgrid(np.arange(N, dtype=np.intc), np.arange(tiles_h, dtype=np.intc),
                            np.arange(tiles_w, dtype=np.intc), indexing="ij")
    return n.ravel(), np.ascontiguousarray(4 * ty.ravel()), np.ascontiguousarray(4 * tx.ravel())


def workspace_floats(int N, int C, int H, int W, int K, int Cg, int groups, int block, int n_threads):
    """Floats of scratch memory :func:`conv2d_forward` uses (see the module docstring)."""
    cdef int Kp = (K // groups + 15) // 16 * 16
    return (<Py_ssize_t>N * C * H * W + 36 * <Py_ssize_t>groups * Cg * Kp
            + n_threads * (36 * <Py_ssize_t>block * (Cg + Kp) + 6 * <Py_ssize_t>Cg))


def winograd_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b,
                   int pt, int pl, int groups, int block, int n_threads, float[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n, g·Cg + c, p + r − pt, q + s − pl] · w[k,c,r,s] by Winograd F(4×4, 3×3)"""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], Cg = w.shape[1], P = y.shape[2], Q = y.shape[3]
    cdef int Kg = K // groups, Kp = (Kg + 15) // 16 * 16
    image, out_row, out_col = tile_tables(N, P, Q)
    cdef int[::1] img = image, orow = out_row, ocol = out_col
    cdef int[::1] irow = np.ascontiguousarray(out_row - pt, dtype=np.intc)
    cdef int[::1] icol = np.ascontiguousarray(out_col - pl, dtype=np.intc)
    cdef int T = img.shape[0]
    cdef int blocks = (T + block - 1) // block
    cdef int nt = max(1, min(n_threads, blocks * groups))
    cdef Py_ssize_t image_size = <Py_ssize_t>C * H * W
    cdef Py_ssize_t filters = 36 * <Py_ssize_t>Cg * Kp
    cdef Py_ssize_t per_thread = 36 * <Py_ssize_t>block * (Cg + Kp) + 6 * <Py_ssize_t>Cg
    cdef float[::1] space = scratch(workspace_floats(N, C, H, W, K, Cg, groups, block, nt), np.float32)
    cdef float* xt = &space[0]  # x channels-last
    cdef float* U = xt + N * image_size
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* wsrc = &w[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item
    cdef int n, g, t0, count, tid, c0
    cdef int chunks = (Cg + 15) // 16  # the filter transform is split by 16 input channels
    cdef float* V
    cdef float* M
    with nogil:
        for n in prange(N, num_threads=nt, schedule="static"):
            cnnk_nchw_to_nhwc(xs + n * image_size, C, H * W, xt + n * image_size)
        for item in prange(<Py_ssize_t>groups * chunks, num_threads=nt, schedule="static"):
            g = <int>(item // chunks)
            c0 = <int>(item % chunks) * 16
            cnnk_wino43_filter(wsrc + <Py_ssize_t>g * Kg * Cg * 9, Kg, Cg, Kp, c0, min(c0 + 16, Cg),
                               U + g * filters)
        for item in prange(<Py_ssize_t>blocks * groups, num_threads=nt, schedule="dynamic"):
            t0 = <int>(item // groups) * block
            g = <int>(item % groups)
            count = min(block, T - t0)
            tid = threadid()
            V = U + groups * filters + tid * per_thread
            M = V + 36 * <Py_ssize_t>block * Cg
            cnnk_wino43_input(xt + <Py_ssize_t>g * Cg, image_size, C, Cg, H, W,
                              &img[t0], &irow[t0], &icol[t0], count, V)
            cnnk_wino43_multiply(V, U + g * filters, count, Cg, Kp, M, M + 36 * <Py_ssize_t>block * Kp)
            cnnk_wino43_output(M, Kp, Kg, &img[t0], &orow[t0], &ocol[t0], count,
                               bias + g * Kg if bias != NULL else NULL,
                               ys + <Py_ssize_t>g * Kg * P * Q, <Py_ssize_t>K * P * Q, P, Q)
