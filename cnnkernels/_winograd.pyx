"""The convolutions' SIMD kernels, float32: Winograd F(4×4, 3×3) here; the direct, 1×1 and row-product kernels
(_direct.pxi), matmul's products (_dense.pxi) and Winograd F(2×2, 3×3) (_winograd22.pxi) are included below, one
extension for the C they share.

Winograd F(4×4, 3×3): 3×3 kernels, stride 1, dilation 1, any groups.
Arguments arrive validated and planned from :mod:`cnnkernels.api` / :mod:`cnnkernels.plan`.
Legend: N images, C channels, H×W input, K filters, P×Q output, G groups, Cg = C/G,
Kg = K/G, Kp = Kg rounded up to 16; T = N·⌈P/4⌉·⌈Q/4⌉ output tiles of 4×4.

The input is first copied channels-last, so the input transform reads and writes whole
runs of channels. Each work item is (block of ``block`` tiles, group): its tiles are
transformed (V = Bᵀ d B: 36 × tiles × Cg), multiplied by the transformed filters
(U: 36 panels of Cg × 16 filters) in 36 products by our register-blocked kernel (6 tiles
× 16 filters; each 6-tile group packed once into an L1-resident panel), and transformed
back (Aᵀ M A) into y. The C kernels (cnnkernels/simd/winograd43.c) are compiled per ISA
and chosen at load time.
Workspace: the channels-last copy of a chunk of images (≤ 2¹⁸ floats = 1 MiB, or one
image, or the images of 4·threads·block tiles), 36·G·Cg·Kp floats of filters, and
36·block·(Cg + Kp) + 6·Cg per thread — bounded by the layer, not the batch.

Error: the transforms multiply and add values up to 8× (Aᵀ) and 5× (Bᵀ) and divide
by 6 and 24 (G), so rounding errors grow beyond the direct sum's: measured against
a float64 reference, max |error| ≈ 1–2e-6 · Σ|x||w| on random data (direct
float32: ≈ 1.5e-7). The tests hold it to 1e-5 · Σ|x||w|.
"""

import functools

import numpy as np

from cython.parallel cimport prange, threadid
from libc.stdint cimport uint16_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm

from ._workspace import block_rows, scratch


cdef extern from "simd/winograd43.h" nogil:
    void cnnk_nchw_to_nhwc(const float* x, int C, int HW, float* out)
    void cnnk_nchw_to_nhwc_pixels(const float* x, int C, int HW, int p_begin, int p_end, float* out)
    void cnnk_wino43_input(const float* x, Py_ssize_t image_stride, Py_ssize_t pixel_stride, int C, int H, int W,
                           const int* img, const int* row0, const int* col0, int ntiles, float* V)
    void cnnk_wino43_multiply(const float* V, const float* U, int ntiles, int C, int Kpad, float* M, float* panel)
    void cnnk_wino43_output(const float* M, int Kpad, int K, const int* img, const int* row0, const int* col0,
                            int ntiles, const float* bias, float* y, Py_ssize_t image_stride, int P, int Q,
                            Py_ssize_t pixel_stride)
    void cnnk_wino43_filter(const float* w, int K, int C, int Kpad, int c_begin, int c_end, float* U)
    const char* cnnk_simd_isa()
    double cnnk_fma_peak_gflops()
    void cnnk_gemm_filters(const float* w, int K, int C, int R, int S, int Kpad, float* U)
    void cnnk_im2row_nhwc(const float* x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                          int dw, int pixel0, int npix, int Q, float* V)
    void cnnk_gemm_rows(const float* V, const float* U, int npix, int CRS, int Kpad, float* M, float* panel)
    int CNNK_IMPLICIT_PIXELS
    Py_ssize_t cnnk_implicit_rows_scratch(int npix, int CRS)
    void cnnk_implicit_rows(const float* x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                            int dw, int pixel0, int npix, int Q, const float* zeros, const float* U, int Kpad,
                            float* V, float* M, float* panel)
    void cnnk_row2im_add_nhwc(const float* M, Py_ssize_t ldm, int H, int W, int C, int R, int S, int sh, int sw,
                              int pt, int pl, int dh, int dw, int pixel0, int npix, int Q, float* dx)
    void cnnk_pack_columns(const float* b, Py_ssize_t row_stride, Py_ssize_t col_stride, int rows, int cols, int Kpad,
                           int k_begin, int k_end, float* U)
    void cnnk_prefetch_l2(const float* x, Py_ssize_t count)
    void cnnk_rows_to_nhwc(const float* M, int npix, int Kpad, int K, const float* bias, float* y)
    void cnnk_rows_to_nchw(const float* M, int npix, int Kpad, int K, const float* bias, float* y, Py_ssize_t PQ,
                           int pixel0)
    void cnnk_wino43_grad_output(const float* dy, Py_ssize_t image_stride, Py_ssize_t pixel_stride, int K, int P,
                                 int Q, const int* img, const int* row0, const int* col0, int ntiles, int Kpad,
                                 float* D)
    void cnnk_wino43_weight_multiply(const float* D, const float* V, int ntiles, int Kpad, int K, int C, float* dU)
    void cnnk_wino43_filter_grad(const float* dU, int K, int C, int k_begin, int k_end, float* dw)
    void cnnk_direct_phase_image(const float* x, int C, int H, int W, int sh, int sw, int pt, int pl,
                                 const int* row_phase, int row_phases, const int* col_phase, int col_phases, int i0,
                                 int Hph, int Wp, float* xp, float* row)
    int cnnk_direct_row_floats(int W, int pl, int sw, int Wp)
    int cnnk_direct_flat(int Q, int jmax)
    void cnnk_relu_planes(float* y, int K, Py_ssize_t PQ, Py_ssize_t count, float slope)
    int CNNK_DIRECT_FLAT_TAIL
    void cnnk_direct_forward(const float* xp, int C, Py_ssize_t cstride, int Wp, const int* offset, int T,
                             const float* wt, int K, int Kpad, const float* bias, float* y, int P, int Q, int p_begin,
                             int p_end, int flat)
    void cnnk_direct_weight(const float* dyt, Py_ssize_t dy_image, int K, int P, int Q, const float* xc,
                            Py_ssize_t xl_image, int Wp, const int* offset, int T, int images, int k_begin, int k_end,
                            float* dw, Py_ssize_t dw_row)
    int CNNK_POINTWISE_SUMS
    int cnnk_pointwise_weight_nhwc(const float* dy, int K, const float* x, int C, int pixels, int kc, int taps,
                                   float* sums)
    int cnnk_direct_weight_lanes(const float* dy, int K, int P, int Q, const float* xl, int C, Py_ssize_t cstride,
                                 int Wp, const int* offset, int T, const uint16_t* masks, float* dyl, float* part)
    void cnnk_sum_lanes(const float* part, Py_ssize_t count, float* out)
    int CNNK_LANES_FILTERS
    int cnnk_pointwise_padded_filters(int K)
    void cnnk_pointwise_pack_filters(const float* w, int K, int C, int Kpad, float* wt)
    void cnnk_pointwise_forward(const float* x, int C, Py_ssize_t PQ, const float* wt, int K, int Kpad,
                                const float* bias, float* y, Py_ssize_t q_begin, Py_ssize_t q_end, float* panel)


def fma_peak_gflops():
    """One core's measured FMA throughput in GFLOP/s with the SIMD kernels' ISA (0 for the portable build)."""
    return cnnk_fma_peak_gflops()


def simd_isa():
    """The instruction set the micro-kernels run with here ("avx512f", "avx2+fma" or "portable"), chosen at run
    time (``CNNKERNELS_SIMD=avx2`` or ``=portable`` caps it)."""
    return cnnk_simd_isa().decode()


def channels_last(const float[:, :, ::1] x, int n_threads, float[:, :, ::1] out):
    """out[n, p, c] = x[n, c, p]: each image's (C, L) plane transposed to (L, C) by the SIMD transpose (16 x 16
    blocks in registers on AVX-512); to_channels_first passes (N, L, C) as (N, C', L') with C' = L, L' = C"""
    cdef Py_ssize_t n, N = x.shape[0], C = x.shape[1], L = x.shape[2], size = C * L
    cdef const float* xs = &x[0, 0, 0]
    cdef float* outs = &out[0, 0, 0]
    with nogil:
        for n in prange(N, num_threads=max(1, n_threads), schedule="static"):
            cnnk_nchw_to_nhwc(xs + n * size, <int>C, <int>L, outs + n * size)


def _channels_first(const float[:, :, :, ::1] a, int n_threads):
    """An (N, C, H, W) copy of an (N, H, W, C) array (the SIMD transpose of :func:`channels_last`)."""
    cdef Py_ssize_t N = a.shape[0], H = a.shape[1], W = a.shape[2], C = a.shape[3]
    out = np.empty((N, C, H, W), np.float32)
    channels_last(np.asarray(a).reshape(N, H * W, C), n_threads, out.reshape(N, C, H * W))
    return out


@functools.lru_cache(maxsize=64)
def tile_tables(int N, int P, int Q):
    """(image, output row, output column) of each 4×4 output tile, image-major then row-major
    (cached: read-only arrays, reused by every call of one layer)."""
    tiles_h, tiles_w = (P + 3) // 4, (Q + 3) // 4
    n, ty, tx = np.meshgrid(np.arange(N, dtype=np.intc), np.arange(tiles_h, dtype=np.intc),
                            np.arange(tiles_w, dtype=np.intc), indexing="ij")
    tables = tuple(np.ascontiguousarray(table.ravel()) for table in (n, 4 * ty, 4 * tx))
    for table in tables:
        table.flags.writeable = False
    return tables


@functools.lru_cache(maxsize=64)
def chunk_tiles(int images, int P, int Q, int pt, int pl):
    """The tile tables of a chunk of ``images`` and each tile's input origin (row and column of
    its 6×6 patch: output origin − padding); read-only and cached, like :func:`tile_tables`."""
    image, out_row, out_col = tile_tables(images, P, Q)
    in_row = np.ascontiguousarray(out_row - pt, dtype=np.intc)
    in_col = np.ascontiguousarray(out_col - pl, dtype=np.intc)
    in_row.flags.writeable = in_col.flags.writeable = False
    return image, out_row, out_col, in_row, in_col


# Images are copied (channels-last, or padded) a chunk at a time: at most this many floats
# (1 MiB, so a chunk's copy is still in L2 when its tiles are transformed: ResNet 3x3, 1 thread,
# interleaved with PyTorch, 11.0 -> 8.5-9.9 ms against 16 MiB chunks), or one image when an
# image is larger, or the images that give every thread a few work items: scratch memory is
# bounded by the layer, not the batch.
CHUNK_FLOATS = 1 << 18


cdef inline int chunk_images(Py_ssize_t per_image, int N, Py_ssize_t items_per_image,
                             Py_ssize_t items_wanted) noexcept:
    """Images per chunk: as many as fit in CHUNK_FLOATS, at least one, and at least enough that
    their ``items_per_image`` work items reach ``items_wanted`` (L5, 16 x 384 x 13 x 13, in chunks
    of 4 images had one 64-tile item for 2 threads: 27 -> 49 ms)."""
    cdef Py_ssize_t fit = CHUNK_FLOATS // max(per_image, 1), items = max(items_per_image, 1)
    cdef Py_ssize_t busy = (items_wanted + items - 1) // items
    cdef Py_ssize_t most = max(1, min(N, max(fit, busy)))
    cdef Py_ssize_t chunks = (N + most - 1) // most
    return <int>((N + chunks - 1) // chunks)  # chunks of equal size: a short last one leaves threads idle


cdef inline Py_ssize_t parts_each(Py_ssize_t wholes, int nt) noexcept nogil:
    """Into how many parts to cut each of ``wholes`` (images, or image x group) for every thread to get 4 work
    items: 1 once there are that many wholes."""
    return max(1, (4 * <Py_ssize_t>nt + wholes - 1) // max(wholes, 1))


cdef inline int winograd_chunk(Py_ssize_t per_image, int N, int P, int Q, int groups, int block, int nt) noexcept:
    """Images per chunk of a Winograd pass, whose work items are (block of tiles, group): 4 per thread
    (ResNet 3x3 at 2 threads in chunks of one image, 5 items each, ran 3:2 between barriers)."""
    cdef Py_ssize_t tiles = <Py_ssize_t>((P + 3) // 4) * ((Q + 3) // 4) * groups
    return chunk_images(per_image, N, tiles, 4 * <Py_ssize_t>nt * max(block, 1))


cdef inline int balanced_block(int T, int block, int groups, int nt) noexcept nogil:
    """Tiles per work item for T tiles: at most ``block`` (the plan's, which sized the scratch),
    items of equal size, and at least 2 items per thread when there are 48 tiles for each —
    the plan's block alone left 288 tiles as 222 + 66 and 2 threads only 1.14x faster than 1."""
    cdef int items = (T + block - 1) // block
    if items * groups < 2 * nt:
        items = max(items, min((2 * nt + groups - 1) // groups, T // 48))
    if groups == 1 and items > nt and T // (items + nt - 1) >= 36:
        items = (items + nt - 1) // nt * nt  # as many items for each thread: 7 of 57 tiles kept 2 threads 4:3
    return min(block, ((T + items - 1) // items + 5) // 6 * 6)


cdef inline int images_per_item(int N, int P, int Q, Py_ssize_t multiplied, int groups, int block, int nt) noexcept:
    """Images per work item when :func:`winograd_forward` goes image by image, or 0: one group, whole images
    within the plan's tile block, the `multiplied` floats every item multiplies by (the forward's transformed
    filters; the weight gradient's: none) within 1 MiB (L5's 21 MB ran 1.09x slower at 2 threads this way), and
    at least 2 items a thread (about 4 while the block allows).
    Each item's thread copies its images channels-last itself and transforms them from its own cache: the
    tutorial conv2 0.93x the time at 2 threads against a shared copy whose tiles the other core had written."""
    cdef int tiles = ((P + 3) // 4) * ((Q + 3) // 4)
    if groups != 1 or tiles > block or multiplied > (1 << 18):
        return 0
    cdef int per_item = max(1, min(block // tiles, N // (4 * nt)))
    # items of 48 tiles or more: the tutorial conv2 with 8 images, an image an item, ran 1.02x slower
    return per_item if (N + per_item - 1) // per_item >= 2 * nt and per_item * tiles >= 48 else 0


def workspace_floats(int N, int C, int H, int W, int K, int Cg, int groups, int P, int Q, int block, int n_threads):
    """Floats of scratch memory :func:`winograd_forward` uses (see the module docstring)."""
    cdef int Kp = (K // groups + 15) // 16 * 16, nt = max(1, n_threads)
    cdef Py_ssize_t image = <Py_ssize_t>C * H * W
    cdef Py_ssize_t shared = 36 * <Py_ssize_t>groups * Cg * Kp, own = 36 * <Py_ssize_t>block * (Cg + Kp) + 6 * Cg
    cdef int per_item = images_per_item(N, P, Q, 36 * <Py_ssize_t>Cg * Kp, groups, block, nt)
    if per_item:  # each thread's part starts on a cache line
        return shared + nt * ((own + 15) // 16 * 16 + (per_item * image + 15) // 16 * 16)
    return winograd_chunk(image, N, P, Q, groups, block, nt) * image + shared + nt * own


def winograd_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b,
                     int pt, int pl, int groups, int plan_block, int n_threads, float[:, :, :, ::1] y,
                     bint relu=False, float negative_slope=0, bint channels_last=False):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n, g·Cg + c, p + r − pt, q + s − pl] · w[k,c,r,s] by Winograd F(4×4, 3×3);
    with ``relu``, leaky_relu(y, negative_slope) (max(y, 0) at slope 0) on each work item's images as soon as they
    are written (an item of whole images), else on each chunk's after its items. x is copied channels-last for the
    input transform; with ``channels_last``, x is (N, H, W, C) and y (N, P, Q, K), read and written as they lie."""
    cdef int N = x.shape[0], C = x.shape[3 if channels_last else 1]
    cdef int H = x.shape[1 if channels_last else 2], W = x.shape[2 if channels_last else 3]
    cdef int K = w.shape[0], Cg = w.shape[1]
    cdef int P = y.shape[1 if channels_last else 2], Q = y.shape[2 if channels_last else 3]
    cdef int Kg = K // groups, Kp = (Kg + 15) // 16 * 16
    cdef Py_ssize_t image_size = <Py_ssize_t>C * H * W, out_size = <Py_ssize_t>K * P * Q
    cdef int tiles_per_image = ((P + 3) // 4) * ((Q + 3) // 4)
    cdef int nt = max(1, n_threads)
    cdef int chunk = winograd_chunk(image_size, N, P, Q, groups, plan_block, nt)
    cdef int block = plan_block  # per chunk: balanced_block(); the scratch is sized by plan_block
    cdef Py_ssize_t filters = 36 * <Py_ssize_t>Cg * Kp
    cdef Py_ssize_t per_thread = 36 * <Py_ssize_t>block * (Cg + Kp) + 6 * <Py_ssize_t>Cg
    cdef float[::1] space = scratch(workspace_floats(N, C, H, W, K, Cg, groups, P, Q, block, nt), np.float32)
    cdef float* U = &space[0]  # the transformed filters, then one chunk of x channels-last, then each thread's part
    cdef float* xt = U + groups * filters
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* wsrc = &w[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef const int[::1] img
    cdef const int[::1] orow
    cdef const int[::1] ocol
    cdef const int[::1] irow
    cdef const int[::1] icol
    cdef Py_ssize_t item
    cdef int n, n0, images, g, t0, count, tid, c0, T, blocks
    cdef int chunks = (Cg + 15) // 16  # the filter transform is split by 16 input channels
    cdef float* V
    cdef float* M
    cdef int per_item = images_per_item(N, P, Q, filters, groups, plan_block, nt), i
    cdef Py_ssize_t own = (per_thread + 15) // 16 * 16  # each thread's part on a cache line: its V, M, then images
    cdef Py_ssize_t stride = own + (per_item * image_size + 15) // 16 * 16
    cdef float* mine
    cdef const float* images_last
    cdef Py_ssize_t pixel_stride = K if channels_last else 0  # cnnk_wino43_output's y: channels-last or NCHW
    cdef Py_ssize_t group_step = Kg if channels_last else <Py_ssize_t>Kg * P * Q  # a group's first filter in y
    with nogil:
        for item in prange(<Py_ssize_t>groups * chunks, num_threads=nt, schedule="static"):
            g = <int>(item // chunks)
            c0 = <int>(item % chunks) * 16
            cnnk_wino43_filter(wsrc + <Py_ssize_t>g * Kg * Cg * 9, Kg, Cg, Kp, c0, min(c0 + 16, Cg),
                               U + g * filters)
    if per_item:  # an item's thread copies its images channels-last and multiplies them from its own cache
        img, orow, ocol, irow, icol = chunk_tiles(per_item, P, Q, pt, pl)
        with nogil:
            for item in prange((N + per_item - 1) // per_item, num_threads=nt, schedule="dynamic"):
                n0 = <int>item * per_item
                images = min(per_item, N - n0)
                count = images * tiles_per_image
                V = U + filters + threadid() * stride
                M = V + 36 * <Py_ssize_t>plan_block * Cg
                if channels_last:
                    images_last = xs + n0 * image_size
                else:
                    mine = V + own
                    for i in range(images):
                        cnnk_nchw_to_nhwc(xs + (n0 + i) * image_size, C, H * W, mine + i * image_size)
                    images_last = mine
                cnnk_wino43_input(images_last, image_size, C, Cg, H, W, &img[0], &irow[0], &icol[0], count, V)
                cnnk_wino43_multiply(V, U, count, Cg, Kp, M, M + 36 * <Py_ssize_t>plan_block * Kp)
                cnnk_wino43_output(M, Kp, Kg, &img[0], &orow[0], &ocol[0], count, bias, ys + n0 * out_size,
                                   out_size, P, Q, pixel_stride)
                if relu:
                    cnnk_relu_planes(ys + n0 * out_size, 1, 0, images * out_size, negative_slope)
        return
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        img, orow, ocol, irow, icol = chunk_tiles(images, P, Q, pt, pl)
        T = images * tiles_per_image
        block = balanced_block(T, plan_block, groups, nt)
        blocks = (T + block - 1) // block
        images_last = xs + n0 * image_size if channels_last else xt
        with nogil:
            for n in prange(0 if channels_last else images, num_threads=nt, schedule="dynamic"):
                cnnk_nchw_to_nhwc(xs + (n0 + n) * image_size, C, H * W, xt + n * image_size)
            for item in prange(<Py_ssize_t>blocks * groups, num_threads=min(nt, blocks * groups), schedule="dynamic"):
                t0 = <int>(item // groups) * block
                g = <int>(item % groups)
                count = min(block, T - t0)
                tid = threadid()
                V = xt + chunk * image_size + tid * per_thread
                M = V + 36 * <Py_ssize_t>block * Cg
                cnnk_wino43_input(images_last + <Py_ssize_t>g * Cg, image_size, C, Cg, H, W,
                                  &img[t0], &irow[t0], &icol[t0], count, V)
                cnnk_wino43_multiply(V, U + g * filters, count, Cg, Kp, M, M + 36 * <Py_ssize_t>block * Kp)
                cnnk_wino43_output(M, Kp, Kg, &img[t0], &orow[t0], &ocol[t0], count,
                                   bias + g * Kg if bias != NULL else NULL,
                                   ys + n0 * out_size + g * group_step, out_size, P, Q, pixel_stride)
            if relu:  # the chunk's output, while it is in the caches that wrote it
                for n in prange(images, num_threads=nt, schedule="static"):
                    cnnk_relu_planes(ys + (n0 + n) * out_size, 1, 0, out_size, negative_slope)


def winograd_backward_weight(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int pt, int pl, int groups,
                             int plan_block, int n_threads, float[:, :, :, ::1] dw, bint channels_last=False):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n, g·Cg + c, p + r − pt, q + s − pl] by Winograd F(4×4, 3×3):
    dw = Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A dy Aᵀ)] G

    x and dy are copied channels-last a chunk of images at a time; each work item (block of
    tiles, group) transforms its input and gradient tiles and adds their products into its
    thread's partial sums (36·K·Cg floats per thread), which are added up and transformed
    back at the end. Small images go image by image, as in :func:`winograd_forward`: an item
    of whole images copies them and their dy itself (the tutorial conv2 at 2 threads 0.84x the
    time of the shared copy). With ``channels_last``, x is (N, H, W, C) and dy (N, P, Q, K): transformed where
    they lie, no copies.
    """
    cdef int N = x.shape[0], C = x.shape[3 if channels_last else 1]
    cdef int H = x.shape[1 if channels_last else 2], W = x.shape[2 if channels_last else 3]
    cdef int K = dw.shape[0], Cg = dw.shape[1]
    cdef int P = dy.shape[1 if channels_last else 2], Q = dy.shape[2 if channels_last else 3]
    cdef int Kg = K // groups, Kp = (Kg + 15) // 16 * 16
    cdef Py_ssize_t x_size = <Py_ssize_t>C * H * W, dy_size = <Py_ssize_t>K * P * Q
    cdef int tiles_per_image = ((P + 3) // 4) * ((Q + 3) // 4)
    cdef int nt = max(1, n_threads)
    cdef int chunk = winograd_chunk(x_size + dy_size, N, P, Q, groups, plan_block, nt)
    cdef int block = plan_block  # per chunk: balanced_block(); the scratch is sized by plan_block
    cdef Py_ssize_t sums = 36 * <Py_ssize_t>K * Cg  # all groups: [g][ξ][k][c]
    cdef Py_ssize_t per_thread = 36 * <Py_ssize_t>block * (Cg + Kp)
    # image by image (as winograd_forward): each thread's part on a cache line, its V, D, then its images and dy
    cdef int per_item = images_per_item(N, P, Q, 0, groups, plan_block, nt), i
    cdef Py_ssize_t own = (per_thread + 15) // 16 * 16
    cdef Py_ssize_t stride = own + (per_item * (x_size + dy_size) + 15) // 16 * 16
    cdef float[::1] space = scratch(nt * (sums + stride) if per_item else
                                    chunk * (x_size + dy_size) + nt * (sums + per_thread), np.float32)
    cdef float* xt = &space[0]  # the chunk's x and dy channels-last (not image by image)
    cdef float* dyt = xt + chunk * x_size
    cdef float* partial = &space[0] if per_item else dyt + chunk * dy_size
    cdef float* scratch_tiles = partial + nt * sums
    cdef float* mine
    cdef const float* x_last
    cdef const float* dy_last
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dw[0, 0, 0, 0]
    cdef const int[::1] img
    cdef const int[::1] orow
    cdef const int[::1] ocol
    cdef const int[::1] irow
    cdef const int[::1] icol
    cdef Py_ssize_t item, j, group_sums = 36 * <Py_ssize_t>Kg * Cg
    cdef int n, n0, images, g, t0, count, tid, t, k0, T, blocks
    cdef int chunks = (Kg + 15) // 16
    cdef float total
    cdef float* V
    cdef float* D
    memset(partial, 0, nt * sums * sizeof(float))
    if per_item:  # an item's thread copies its images and their dy channels-last, and transforms them from its cache
        img, orow, ocol, irow, icol = chunk_tiles(per_item, P, Q, pt, pl)
        with nogil:
            # static, as below: each thread's partial sums hold the same images on every run
            for item in prange((N + per_item - 1) // per_item, num_threads=nt, schedule="static"):
                n0 = <int>item * per_item
                images = min(per_item, N - n0)
                count = images * tiles_per_image
                tid = threadid()
                V = scratch_tiles + tid * stride
                D = V + 36 * <Py_ssize_t>plan_block * Cg
                if channels_last:
                    x_last = xs + n0 * x_size
                    dy_last = dys + n0 * dy_size
                else:
                    mine = V + own
                    for i in range(images):
                        cnnk_nchw_to_nhwc(xs + (n0 + i) * x_size, C, H * W, mine + i * x_size)
                        cnnk_nchw_to_nhwc(dys + (n0 + i) * dy_size, K, P * Q, mine + per_item * x_size + i * dy_size)
                    x_last = mine
                    dy_last = mine + per_item * x_size
                cnnk_wino43_input(x_last, x_size, C, Cg, H, W, &img[0], &irow[0], &icol[0], count, V)
                cnnk_wino43_grad_output(dy_last, dy_size, K, Kg, P, Q, &img[0], &orow[0], &ocol[0], count, Kp, D)
                cnnk_wino43_weight_multiply(D, V, count, Kp, Kg, Cg, partial + tid * sums)
    for n0 in range(0, 0 if per_item else N, chunk):  # (image by image, every image is done)
        images = min(chunk, N - n0)
        img, orow, ocol, irow, icol = chunk_tiles(images, P, Q, pt, pl)
        T = images * tiles_per_image
        block = balanced_block(T, plan_block, groups, nt)
        blocks = (T + block - 1) // block
        x_last = xs + n0 * x_size if channels_last else xt
        dy_last = dys + n0 * dy_size if channels_last else dyt
        with nogil:
            for n in prange(0 if channels_last else images, num_threads=nt, schedule="dynamic"):
                cnnk_nchw_to_nhwc(xs + (n0 + n) * x_size, C, H * W, xt + n * x_size)
                cnnk_nchw_to_nhwc(dys + (n0 + n) * dy_size, K, P * Q, dyt + n * dy_size)
            # Static on purpose: each thread's partial sums hold the same tiles on every run, so
            # the weight gradient is reproducible at a given thread count.
            for item in prange(<Py_ssize_t>blocks * groups, num_threads=nt, schedule="static"):
                t0 = <int>(item // groups) * block
                g = <int>(item % groups)
                count = min(block, T - t0)
                tid = threadid()
                V = scratch_tiles + tid * per_thread
                D = V + 36 * <Py_ssize_t>block * Cg
                cnnk_wino43_input(x_last + <Py_ssize_t>g * Cg, x_size, C, Cg, H, W, &img[t0], &irow[t0], &icol[t0],
                                  count, V)
                cnnk_wino43_grad_output(dy_last + <Py_ssize_t>g * Kg, dy_size, K, Kg, P, Q, &img[t0], &orow[t0],
                                        &ocol[t0], count, Kp, D)
                cnnk_wino43_weight_multiply(D, V, count, Kp, Kg, Cg, partial + tid * sums + g * group_sums)
    with nogil:
        for j in prange(sums, num_threads=nt, schedule="static"):
            total = partial[j]
            for t in range(1, nt):
                total = total + partial[t * sums + j]
            partial[j] = total
        for item in prange(<Py_ssize_t>groups * chunks, num_threads=nt, schedule="static"):
            g = <int>(item // chunks)
            k0 = <int>(item % chunks) * 16
            cnnk_wino43_filter_grad(partial + g * group_sums, Kg, Cg, k0, min(k0 + 16, Kg),
                                    dws + <Py_ssize_t>g * Kg * Cg * 9)


include "_direct.pxi"
include "_rows.pxi"
include "_dense.pxi"
include "_winograd22.pxi"
