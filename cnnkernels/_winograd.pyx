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
from libc.string cimport memset

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
    double cnnk_fma_peak_gflops()
    void cnnk_gemm_filters(const float* w, int K, int C, int R, int S, int Kpad, float* U)
    void cnnk_im2row_nhwc(const float* x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                          int dw, int pixel0, int npix, int Q, float* V)
    void cnnk_gemm_rows(const float* V, const float* U, int npix, int CRS, int Kpad, float* M, float* panel)
    void cnnk_row2im_add_nhwc(const float* M, Py_ssize_t ldm, int H, int W, int C, int R, int S, int sh, int sw,
                              int pt, int pl, int dh, int dw, int pixel0, int npix, int Q, float* dx)
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
    int CNNK_DIRECT_FLAT_TAIL
    void cnnk_direct_forward(const float* xp, int C, Py_ssize_t cstride, int Wp, const int* offset, int T,
                             const float* wt, int K, int Kpad, const float* bias, float* y, int P, int Q, int p_begin,
                             int p_end, int flat)
    void cnnk_direct_weight(const float* dyt, Py_ssize_t dy_image, int K, int P, int Q, const float* xl,
                            Py_ssize_t xl_image, int C, Py_ssize_t cstride, int Wp, const int* offset, int T,
                            int images, int k_begin, int k_end, int c, float* dw)
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


@functools.lru_cache(maxsize=64)
def tile_tables(int N, int P, int Q):
    """(image, output row, output column) of each 4×4 output tile, image-major then row-major
    (cached: read-only arrays, reused by every call of one layer)."""
    tiles_h, tiles_w = (P + 3) // 4, (Q + 3) // 4
    n, ty, tx = np.meshgrid(np.arange(N, dtype=np.intc), np.arange(tiles_h, dtype=np.intc),
                            np.arange(tiles_w, dtype=np.intc), indexing="ij")
    tables = (np.ascontiguousarray(n.ravel()), np.ascontiguousarray(4 * ty.ravel()), np.ascontiguousarray(4 * tx.ravel()))
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
# The direct kernel's band of laid-out input rows (4 MiB; measured: bands of one image are fastest)
BAND_FLOATS = 1 << 20
# The direct weight gradient's chunk of laid-out images and dy (4 MiB): each work item stores its sums once per
# chunk, so larger chunks store less often (the strided ResNet layer: 3 images a chunk instead of 1)
WEIGHT_CHUNK_FLOATS = 1 << 20


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


def workspace_floats(int N, int C, int H, int W, int K, int Cg, int groups, int P, int Q, int block, int n_threads):
    """Floats of scratch memory :func:`winograd_forward` uses (see the module docstring)."""
    cdef int Kp = (K // groups + 15) // 16 * 16
    cdef Py_ssize_t image = <Py_ssize_t>C * H * W
    return (winograd_chunk(image, N, P, Q, groups, block, max(1, n_threads)) * image
            + 36 * <Py_ssize_t>groups * Cg * Kp
            + n_threads * (36 * <Py_ssize_t>block * (Cg + Kp) + 6 * <Py_ssize_t>Cg))


def winograd_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b,
                     int pt, int pl, int groups, int plan_block, int n_threads, float[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n, g·Cg + c, p + r − pt, q + s − pl] · w[k,c,r,s] by Winograd F(4×4, 3×3)"""
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], Cg = w.shape[1], P = y.shape[2], Q = y.shape[3]
    cdef int Kg = K // groups, Kp = (Kg + 15) // 16 * 16
    cdef Py_ssize_t image_size = <Py_ssize_t>C * H * W, out_size = <Py_ssize_t>K * P * Q
    cdef int tiles_per_image = ((P + 3) // 4) * ((Q + 3) // 4)
    cdef int nt = max(1, n_threads)
    cdef int chunk = winograd_chunk(image_size, N, P, Q, groups, plan_block, nt)
    cdef int block = plan_block  # per chunk: balanced_block(); the scratch is sized by plan_block
    cdef Py_ssize_t filters = 36 * <Py_ssize_t>Cg * Kp
    cdef Py_ssize_t per_thread = 36 * <Py_ssize_t>block * (Cg + Kp) + 6 * <Py_ssize_t>Cg
    cdef float[::1] space = scratch(workspace_floats(N, C, H, W, K, Cg, groups, P, Q, block, nt), np.float32)
    cdef float* xt = &space[0]  # one chunk of x, channels-last
    cdef float* U = xt + chunk * image_size
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
    with nogil:
        for item in prange(<Py_ssize_t>groups * chunks, num_threads=nt, schedule="static"):
            g = <int>(item // chunks)
            c0 = <int>(item % chunks) * 16
            cnnk_wino43_filter(wsrc + <Py_ssize_t>g * Kg * Cg * 9, Kg, Cg, Kp, c0, min(c0 + 16, Cg),
                               U + g * filters)
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        img, orow, ocol, irow, icol = chunk_tiles(images, P, Q, pt, pl)
        T = images * tiles_per_image
        block = balanced_block(T, plan_block, groups, nt)
        blocks = (T + block - 1) // block
        with nogil:
            for n in prange(images, num_threads=nt, schedule="dynamic"):
                cnnk_nchw_to_nhwc(xs + (n0 + n) * image_size, C, H * W, xt + n * image_size)
            for item in prange(<Py_ssize_t>blocks * groups, num_threads=min(nt, blocks * groups), schedule="dynamic"):
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
                                   ys + n0 * out_size + <Py_ssize_t>g * Kg * P * Q, out_size, P, Q)


def winograd_backward_weight(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int pt, int pl, int groups,
                             int plan_block, int n_threads, float[:, :, :, ::1] dw):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n, g·Cg + c, p + r − pt, q + s − pl] by Winograd F(4×4, 3×3):
    dw = Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A dy Aᵀ)] G

    x and dy are copied channels-last a chunk of images at a time; each work item (block of
    tiles, group) transforms its input and gradient tiles and adds their products into its
    thread's partial sums (36·K·Cg floats per thread), which are added up and transformed
    back at the end.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = dw.shape[0], Cg = dw.shape[1], P = dy.shape[2], Q = dy.shape[3]
    cdef int Kg = K // groups, Kp = (Kg + 15) // 16 * 16
    cdef Py_ssize_t x_size = <Py_ssize_t>C * H * W, dy_size = <Py_ssize_t>K * P * Q
    cdef int tiles_per_image = ((P + 3) // 4) * ((Q + 3) // 4)
    cdef int nt = max(1, n_threads)
    cdef int chunk = winograd_chunk(x_size + dy_size, N, P, Q, groups, plan_block, nt)
    cdef int block = plan_block  # per chunk: balanced_block(); the scratch is sized by plan_block
    cdef Py_ssize_t sums = 36 * <Py_ssize_t>K * Cg  # all groups: [g][ξ][k][c]
    cdef Py_ssize_t per_thread = 36 * <Py_ssize_t>block * (Cg + Kp)
    cdef float[::1] space = scratch(chunk * (x_size + dy_size) + nt * (sums + per_thread), np.float32)
    cdef float* xt = &space[0]
    cdef float* dyt = xt + chunk * x_size
    cdef float* partial = dyt + chunk * dy_size
    cdef float* scratch_tiles = partial + nt * sums
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
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        img, orow, ocol, irow, icol = chunk_tiles(images, P, Q, pt, pl)
        T = images * tiles_per_image
        block = balanced_block(T, plan_block, groups, nt)
        blocks = (T + block - 1) // block
        with nogil:
            for n in prange(images, num_threads=nt, schedule="dynamic"):
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
                cnnk_wino43_input(xt + <Py_ssize_t>g * Cg, x_size, C, Cg, H, W, &img[t0], &irow[t0], &icol[t0],
                                  count, V)
                cnnk_wino43_grad_output(dyt + <Py_ssize_t>g * Kg, dy_size, K, Kg, P, Q, &img[t0], &orow[t0],
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


@functools.lru_cache(maxsize=256)
def tap_table(int R, int S, int sh, int sw, int dh, int dw):
    """Which stride phases the taps read and where: (row phases, column phases, taps). Tap (r, s) reads row
    phase (r·dh) mod sh, (r·dh) div sh rows on, and column phase (s·dw) mod sw, (s·dw) div sw columns on; a
    tap is (row phase index, column phase index, rows on, columns on)."""
    row_phase = sorted({r * dh % sh for r in range(R)})
    col_phase = sorted({s * dw % sw for s in range(S)})
    taps = tuple((row_phase.index(r * dh % sh), col_phase.index(s * dw % sw), r * dh // sh, s * dw // sw)
                 for r in range(R) for s in range(S))
    return tuple(row_phase), tuple(col_phase), taps


def _tables(row_phase, col_phase, taps, int Hband, int Wp):
    """The kernels' int tables, read-only: row phases, column phases and each tap's offset in a channel's
    layout (phases of Hband rows, Wp floats a row)."""
    offset = [((ia * len(col_phase) + ib) * Hband + i) * Wp + j for ia, ib, i, j in taps]
    tables = [np.array(row_phase, np.intc), np.array(col_phase, np.intc), np.array(offset, np.intc)]
    for table in tables:
        table.flags.writeable = False
    return tables


@functools.lru_cache(maxsize=256)
def direct_layout(int C, int W, int P, int Q, int R, int S, int sh, int sw, int pl, int dh, int dw, int N, int nt,
                  Py_ssize_t band_floats):
    """How :func:`direct_forward` lays out and splits this geometry (see simd/direct.c), computed once:
    (flat, Wp, rows, blocks, Hband, cstride, band, row phases, column phases, tap offsets). A band of
    `rows` output rows reads Hband = rows + the largest row offset rows of each phase (tap_table), Wp
    floats a row; `band` floats per thread."""
    row_phase, col_phase, taps = tap_table(R, S, sh, sw, dh, dw)
    imax = max(tap[2] for tap in taps)
    jmax = max(tap[3] for tap in taps)
    # short rows and strided layers run as flat pixel runs on AVX-512 (rows Q + jmax apart, see simd/direct_flat.c)
    flat = bool(cnnk_direct_flat(Q, jmax))
    Wp = Q + jmax + (0 if flat else 16)
    phases = len(row_phase) * len(col_phase)
    rows = max(1, min(P, band_floats // (C * phases * Wp) - imax))  # output rows per band
    wanted = (4 * nt + N - 1) // N  # bands per image that give every thread 4 work items
    rows = max(1, min(rows, (P + wanted - 1) // wanted))
    Hband = rows + imax
    cstride = phases * Hband * Wp
    # per thread: the band's layout, the flat runs' tail, a padded image row
    band = C * cstride + CNNK_DIRECT_FLAT_TAIL + cnnk_direct_row_floats(W, pl, sw, Wp)
    return (flat, Wp, rows, (P + rows - 1) // rows, Hband, cstride, band,
            *_tables(row_phase, col_phase, taps, Hband, Wp))


@functools.lru_cache(maxsize=256)
def weight_layout(int P, int Q, int R, int S, int sh, int sw, int dh, int dw):
    """How :func:`direct_backward_weight` lays out an image's phases, computed once: (Hph, Wp, cstride, row
    phases, column phases, tap offsets). The whole image: Hph = P + the largest row offset rows of each phase,
    Wp = Q + the largest column offset floats a row, cstride floats a channel."""
    row_phase, col_phase, taps = tap_table(R, S, sh, sw, dh, dw)
    Hph = P + max(tap[2] for tap in taps)
    Wp = Q + max(tap[3] for tap in taps)
    return (Hph, Wp, len(row_phase) * len(col_phase) * Hph * Wp, *_tables(row_phase, col_phase, taps, Hph, Wp))


def direct_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int sh, int sw,
                   int pt, int pl, int dh, int dw, int n_threads, float[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] · w[k,c,r,s] (one group, float32)

    A direct kernel for layers with few input channels (a 3-channel first layer), where the
    unrolled matrix would be thin and Winograd's transforms would cost more than they save, and for
    strided layers. A work item is a band of output rows of one image: its thread lays out the input
    rows the band reads, zero-padded and split into their stride phases (polyphase: phase (a, b) holds
    the pixels at rows a + i·sh, columns b + j·sw), so that each tap reads at one fixed offset from its
    output pixel and the kernel needs no bounds checks or strided loads, then runs a register block of
    32 output pixels × 12 filters (AVX-512; 16 × 6 on AVX2) over the C·R·S taps (cnnkernels/simd), the
    filters stored tap-major in blocks of filters. Workspace: C·R·S·K floats, and per thread one band's
    layout, at most BAND_FLOATS floats (or one output row's inputs).
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], R = w.shape[2], S = w.shape[3], P = y.shape[2], Q = y.shape[3]
    cdef int T = R * S, Kpad = cnnk_pointwise_padded_filters(K), nt = max(1, n_threads)
    cdef bint flat
    cdef int Wp, rows, blocks, Hband
    cdef Py_ssize_t cstride, band
    cdef const int[::1] rows_of
    cdef const int[::1] cols_of
    cdef const int[::1] offset
    flat, Wp, rows, blocks, Hband, cstride, band, rows_of, cols_of, offset = direct_layout(
        C, W, P, Q, R, S, sh, sw, pl, dh, dw, N, nt, BAND_FLOATS)
    cdef int row_phases = rows_of.shape[0], col_phases = cols_of.shape[0]
    cdef Py_ssize_t tail = CNNK_DIRECT_FLAT_TAIL
    cdef float[::1] space = scratch(<Py_ssize_t>C * T * Kpad + nt * band, np.float32)
    cdef float* wt = &space[0]
    cdef float* xp = wt + <Py_ssize_t>C * T * Kpad
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, image = <Py_ssize_t>C * H * W, out = <Py_ssize_t>K * P * Q
    cdef int n, p0, t
    cdef float* laid_out
    with nogil:
        cnnk_pointwise_pack_filters(&w[0, 0, 0, 0], K, C * T, Kpad, wt)
        for t in range(nt):  # read by the flat runs' last lanes, whose sums are dropped
            memset(xp + t * band + C * cstride, 0, tail * sizeof(float))
        for item in prange(<Py_ssize_t>N * blocks, num_threads=nt, schedule="dynamic"):
            n = <int>(item // blocks)
            p0 = <int>(item % blocks) * rows
            laid_out = xp + threadid() * band
            cnnk_direct_phase_image(xs + n * image, C, H, W, sh, sw, pt, pl, &rows_of[0], row_phases, &cols_of[0],
                                    col_phases, p0, Hband, Wp, laid_out, laid_out + C * cstride + tail)
            cnnk_direct_forward(laid_out, C, cstride, Wp, &offset[0], T, wt, K, Kpad, bias, ys + n * out + p0 * Q, P,
                                Q, 0, min(rows, P - p0), flat)


def direct_backward_weight(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int sh, int sw, int pt, int pl,
                           int dh, int dw, int n_threads, float[:, :, :, ::1] dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] (one group, float32)

    The adjoint of :func:`direct_forward` in the filters: a chunk of images at a time (at most
    WEIGHT_CHUNK_FLOATS floats, or one image), x laid out as its stride phases and dy channels-last, then
    each work item takes 32 filters and one channel and sums dy times the broadcast inputs over the chunk's
    images into its own part of dw (cnnkernels/simd/direct_weight.c): no partial sums, and the same result
    at any thread count. Workspace: the chunk's layouts and a padded row per thread.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = dy.shape[1], P = dy.shape[2], Q = dy.shape[3], R = dweight.shape[2], S = dweight.shape[3]
    cdef int T = R * S, nt = max(1, n_threads)
    cdef int Hph, Wp
    cdef Py_ssize_t cstride
    cdef const int[::1] rows_of
    cdef const int[::1] cols_of
    cdef const int[::1] offset
    Hph, Wp, cstride, rows_of, cols_of, offset = weight_layout(P, Q, R, S, sh, sw, dh, dw)
    cdef int row_phases = rows_of.shape[0], col_phases = cols_of.shape[0]
    cdef Py_ssize_t image = C * cstride, PQ = <Py_ssize_t>P * Q, dy_image = K * PQ, x_image = <Py_ssize_t>C * H * W
    cdef int chunk = <int>max(1, min(N, WEIGHT_CHUNK_FLOATS // (image + dy_image)))
    cdef Py_ssize_t row = cnnk_direct_row_floats(W, pl, sw, Wp)
    cdef float[::1] space = scratch(chunk * (image + dy_image) + nt * row, np.float32)
    cdef float* xl = &space[0]
    cdef float* dyt = xl + chunk * image
    cdef float* rows = dyt + chunk * dy_image
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef int n, c, n0, images, item, k0, blocks = (K + 31) // 32
    memset(dws, 0, <Py_ssize_t>K * C * T * sizeof(float))
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        with nogil:
            # layout items: one channel of one image, or one image's dy (3 images a chunk kept 2 threads 2:1)
            for item in prange(images * (C + 1), num_threads=nt, schedule="dynamic"):
                n = item // (C + 1)
                c = item % (C + 1)
                if c < C:
                    cnnk_direct_phase_image(xs + (n0 + n) * x_image + <Py_ssize_t>c * H * W, 1, H, W, sh, sw, pt, pl,
                                            &rows_of[0], row_phases, &cols_of[0], col_phases, 0, Hph, Wp,
                                            xl + n * image + c * cstride, rows + threadid() * row)
                else:
                    cnnk_nchw_to_nhwc(dys + (n0 + n) * dy_image, K, <int>PQ, dyt + n * dy_image)
            for item in prange(blocks * C, num_threads=min(nt, blocks * C), schedule="dynamic"):
                k0 = 32 * (item // C)
                cnnk_direct_weight(dyt, dy_image, K, P, Q, xl, image, C, cstride, Wp, &offset[0], T, images,
                                   k0, min(k0 + 32, K), item % C, dws)


def pointwise_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int groups,
                      int n_threads, float[:, :, :, ::1] y):
    """y[n, g·Kg + k, p] = b[g·Kg + k] + Σ_c w[g·Kg + k, c] · x[n, g·Cg + c, p]: a 1×1 convolution at stride 1

    One product per image and group on NCHW as it lies, by a register block of 12 filters × 32
    pixels over a panel of those pixels' channels, 128 at a time (AVX-512; 6 × 16 over all of them
    on AVX2), writing y in place: no copy of x or y, unlike im2col + BLAS (which also packs both
    operands). Work items are (image, group, 384 pixels). Workspace: the filters in blocks, about
    G·Cg·Kg floats, and a panel of 32·Cg floats per thread (at most 32·128 used on AVX-512).
    """
    cdef int N = x.shape[0], C = x.shape[1], K = w.shape[0], Cg = w.shape[1]
    cdef int Kg = K // groups, Kpad = cnnk_pointwise_padded_filters(Kg), nt = max(1, n_threads)
    cdef Py_ssize_t PQ = <Py_ssize_t>x.shape[2] * x.shape[3], block = 384
    cdef Py_ssize_t blocks = (PQ + block - 1) // block, per_image = groups * blocks
    cdef Py_ssize_t filters = <Py_ssize_t>groups * Cg * Kpad, panel = 32 * <Py_ssize_t>Cg
    cdef float[::1] space = scratch(filters + nt * panel, np.float32)
    cdef float* wt = &space[0]
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, q0
    cdef int n, g
    with nogil:
        for g in range(groups):
            cnnk_pointwise_pack_filters(&w[g * Kg, 0, 0, 0], Kg, Cg, Kpad, wt + <Py_ssize_t>g * Cg * Kpad)
        for item in prange(<Py_ssize_t>N * per_image, num_threads=nt, schedule="dynamic"):
            n = <int>(item // per_image)
            g = <int>((item % per_image) // blocks)
            q0 = (item % blocks) * block
            cnnk_pointwise_forward(xs + (<Py_ssize_t>n * C + <Py_ssize_t>g * Cg) * PQ, Cg, PQ,
                                   wt + <Py_ssize_t>g * Cg * Kpad, Kg, Kpad, bias + g * Kg if bias != NULL else NULL,
                                   ys + (<Py_ssize_t>n * K + <Py_ssize_t>g * Kg) * PQ, q0, min(q0 + block, PQ),
                                   wt + filters + threadid() * panel)


def rows_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int sh, int sw,
                 int pt, int pl, int dh, int dw, int n_threads, float[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] · w[k,c,r,s] (one group, float32)

    Pixel-major patches (im2row) from a channels-last copy of x (a chunk of images at a time),
    multiplied by the filters in panels of 16 with the Winograd product's register-blocked
    kernel (one "ξ"): nothing is packed again, unlike BLAS. Work items are (image, block of
    ≈ 240 output pixels); per thread the patches take pixels·C·R·S floats and the product
    pixels·⌈K/16⌉·16.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], R = w.shape[2], S = w.shape[3], P = y.shape[2], Q = y.shape[3]
    cdef int Kp = (K + 15) // 16 * 16, CRS = C * R * S
    cdef Py_ssize_t PQ = <Py_ssize_t>P * Q, image_size = <Py_ssize_t>C * H * W
    cdef int block = max(6, min(<int>PQ, (1 << 19) // max(CRS, 1) // 6 * 6, 240))
    cdef int blocks = <int>((PQ + block - 1) // block)
    cdef int nt = max(1, n_threads)
    cdef int chunk = chunk_images(image_size, N, blocks, 4 * nt)
    cdef Py_ssize_t per_thread = <Py_ssize_t>block * (CRS + Kp) + 6 * <Py_ssize_t>CRS
    cdef float[::1] space = scratch(chunk * image_size + <Py_ssize_t>Kp * CRS + nt * per_thread, np.float32)
    cdef float* xt = &space[0]
    cdef float* U = xt + chunk * image_size
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item
    cdef int n, n0, images, pixel0, count, tid
    cdef float* V
    cdef float* M
    with nogil:
        cnnk_gemm_filters(&w[0, 0, 0, 0], K, C, R, S, Kp, U)
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        with nogil:
            for n in prange(images, num_threads=nt, schedule="dynamic"):
                cnnk_nchw_to_nhwc(xs + (n0 + n) * image_size, C, H * W, xt + n * image_size)
            for item in prange(<Py_ssize_t>images * blocks, num_threads=nt, schedule="dynamic"):
                n = <int>(item // blocks)
                pixel0 = <int>(item % blocks) * block
                count = <int>min(<Py_ssize_t>block, PQ - pixel0)
                tid = threadid()
                V = U + <Py_ssize_t>Kp * CRS + tid * per_thread
                M = V + <Py_ssize_t>block * CRS
                cnnk_im2row_nhwc(xt + n * image_size, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, count, Q, V)
                cnnk_gemm_rows(V, U, count, CRS, Kp, M, M + <Py_ssize_t>block * Kp)
                cnnk_rows_to_nchw(M, count, Kp, K, bias, ys + (n0 + n) * <Py_ssize_t>K * PQ, PQ, pixel0)


def rows_backward_data(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] w, int sh, int sw, int pt, int pl,
                       int dh, int dw, int n_threads, float[:, :, :, ::1] dx):
    """dx[n,c,h,w] = Σ_k,p,q,r,s dy[n,k,p,q] · w[k,c,r,s] · [h = p·sh + r·dh − pt, w = q·sw + s·dw − pl] (one group)

    The adjoint of :func:`rows_forward`: per image, dy's pixels (channels-last) times the filters as
    panels of 16 patch entries, by the Winograd product's register-blocked kernel, each pixel's row
    of patch gradients added back where the patch came from (channels-last), then the image
    transposed to NCHW. Unlike im2col + BLAS, no column matrix of the whole image and no BLAS
    re-packing. Work items are images (their windows overlap, so one image is one thread's);
    per thread: dy's and dx's image channels-last and a block of ≤ 240 pixel rows of C·R·S.
    """
    cdef int N = dy.shape[0], K = dy.shape[1], P = dy.shape[2], Q = dy.shape[3]
    cdef int C = dx.shape[1], H = dx.shape[2], W = dx.shape[3], R = w.shape[2], S = w.shape[3]
    cdef int CRS = C * R * S, CRSp = (CRS + 15) // 16 * 16
    cdef Py_ssize_t PQ = <Py_ssize_t>P * Q, HW = <Py_ssize_t>H * W
    cdef int block = max(6, min(<int>PQ, (1 << 19) // max(CRSp, 1) // 6 * 6, 240))
    cdef int blocks = <int>((PQ + block - 1) // block), nt = max(1, min(n_threads, N))
    cdef Py_ssize_t per_thread = K * PQ + C * HW + <Py_ssize_t>block * CRSp + 6 * <Py_ssize_t>K
    cdef float[::1] space = scratch(<Py_ssize_t>CRSp * K + nt * per_thread, np.float32)
    cdef float* U = &space[0]
    # the filters as C·R·S "filters" of K channels, rows in the (r, s, c) order of the patch gradients
    cdef const float[:, :, :, ::1] taps = np.ascontiguousarray(
        np.asarray(w).transpose(2, 3, 1, 0).reshape(CRS, K, 1, 1))
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dxs = &dx[0, 0, 0, 0]
    cdef float* dyt
    cdef float* dxt
    cdef float* M
    cdef int n, b, pixel0, count
    with nogil:
        cnnk_gemm_filters(&taps[0, 0, 0, 0], CRS, K, 1, 1, CRSp, U)
        for n in prange(N, num_threads=nt, schedule="dynamic"):
            dyt = U + <Py_ssize_t>CRSp * K + threadid() * per_thread
            dxt = dyt + K * PQ
            M = dxt + C * HW
            cnnk_nchw_to_nhwc(dys + <Py_ssize_t>n * K * PQ, K, <int>PQ, dyt)
            memset(dxt, 0, C * HW * sizeof(float))
            for b in range(blocks):
                pixel0 = b * block
                count = <int>min(<Py_ssize_t>block, PQ - pixel0)
                cnnk_gemm_rows(dyt + <Py_ssize_t>pixel0 * K, U, count, K, CRSp, M, M + <Py_ssize_t>block * CRSp)
                cnnk_row2im_add_nhwc(M, CRSp, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, count, Q, dxt)
            cnnk_rows_to_nchw(dxt, <int>HW, C, C, NULL, dxs + <Py_ssize_t>n * C * HW, HW, 0)
