"""Included by _winograd.pyx: Winograd F(2×2, 3×3) with one output tile per SIMD lane, float32: 3×3, stride 1,
dilation 1, one group.

For the layers F(4×4)'s kernels (channels in the lanes) serve badly: few input channels, as in a network's first
layer. The C kernels are cnnkernels/simd/winograd22.c.

Error: Bᵀ and Aᵀ hold only 0 and ±1 and G halves, so each output is the direct sum's products regrouped by at
most 9 additions more: measured against a float64 reference over the tests' grid, max |error| ≈ 1.5e-7 · Σ|x||w|,
as the direct sum's (1.8e-7; F(4×4): 3.6e-6). The tests hold it to 2e-6 · Σ|x||w|.
"""

cdef extern from "simd/winograd22.h" nogil:
    int CNNK_WINO22_TAIL
    Py_ssize_t cnnk_wino22_transformed_floats(int C, int rows, int Wp)
    void cnnk_wino22_filter(const float* w, int K, int C, int Kpad, float* U)
    void cnnk_wino22_layout(const float* x, int C, int H, int W, int pt, int pl, int tp0, int Hph, int Wp, float* xp)
    void cnnk_wino22_forward(const float* xp, int C, int Hph, int Wp, const float* U, int K, int Kpad,
                             const float* bias, float* y, int P, int Q, int tp0, int rows, float* V, float* M)


# A band's transformed tiles: at most this many floats (1 MiB: they stay in L2 while every filter block reads them)
TILE_BAND_FLOATS = 1 << 18


def winograd22_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int pt, int pl,
                       int n_threads, float[:, :, :, ::1] y):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n, c, p + r − pt, q + s − pl] · w[k,c,r,s] by Winograd F(2×2, 3×3)

    A work item is a band of tile rows (2 output rows each) of one image: its thread lays out the band's input
    rows zero-padded and split into even and odd rows, then transforms 32 tiles at a time (Bᵀ d B), multiplies
    them by the transformed filters 8 at a time (16 products per tile, channel and filter) and transforms the
    sums back into y (Aᵀ m A): on AVX-512 where the SIMD level allows it, else in portable C. Workspace:
    16·C·Kp floats of filters (Kp = K rounded up to 8) and per thread one band's layout and transformed tiles
    (16·C floats a tile: at most TILE_BAND_FLOATS, or one tile row's) and 16·32·8 floats of sums.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], P = y.shape[2], Q = y.shape[3], nt = max(1, n_threads)
    cdef int Kpad = (K + 7) // 8 * 8, TP = (P + 1) // 2, Wp = 2 * ((Q + 1) // 2 + 1)
    # tile rows per band: its transformed tiles (16·C floats a tile) at most TILE_BAND_FLOATS
    cdef int rows = max(1, min(TP, TILE_BAND_FLOATS // (16 * C * (Wp // 2))))
    cdef int wanted = (4 * nt + N - 1) // N  # bands per image that give every thread 4 work items
    rows = max(1, min(rows, (TP + wanted - 1) // wanted))
    cdef int bands = (TP + rows - 1) // rows, Hph = rows + 1
    cdef Py_ssize_t band = 2 * <Py_ssize_t>C * Hph * Wp + CNNK_WINO22_TAIL
    cdef Py_ssize_t transformed = cnnk_wino22_transformed_floats(C, rows, Wp)
    cdef Py_ssize_t per_thread = band + transformed + 16 * 32 * 8
    cdef float[::1] space = scratch(16 * <Py_ssize_t>C * Kpad + nt * per_thread, np.float32)
    cdef float* U = &space[0]
    cdef float* work = U + 16 * <Py_ssize_t>C * Kpad
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, image = <Py_ssize_t>C * H * W, out = <Py_ssize_t>K * P * Q
    cdef int n, tp0
    cdef float* mine
    with nogil:
        cnnk_wino22_filter(&w[0, 0, 0, 0], K, C, Kpad, U)
        for item in prange(<Py_ssize_t>N * bands, num_threads=nt, schedule="dynamic"):
            n = <int>(item // bands)
            tp0 = <int>(item % bands) * rows
            mine = work + threadid() * per_thread
            cnnk_wino22_layout(xs + n * image, C, H, W, pt, pl, tp0, Hph, Wp, mine)
            cnnk_wino22_forward(mine, C, Hph, Wp, U, K, Kpad, bias, ys + n * out, P, Q, tp0, min(rows, TP - tp0),
                                mine + band, mine + band + transformed)
