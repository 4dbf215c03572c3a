"""Included by _winograd.pyx: the direct and 1×1 kernels (cnnkernels/simd/direct*.c, avx512.c), in the same
extension as the Winograd kernels so that the C they share is compiled once; im2row's are in _rows.pxi."""

# The direct kernel's band of laid-out input rows (4 MiB; measured: bands of one image are fastest)
BAND_FLOATS = 1 << 20
OUT_BAND_FLOATS = 1 << 16  # a band's output, channels-first, before its transpose to channels-last
# The direct weight gradient's chunk of laid-out images and dy (4 MiB): each work item stores its sums once per
# chunk, so larger chunks store less often (the strided ResNet layer: 3 images a chunk instead of 1)
WEIGHT_CHUNK_FLOATS = 1 << 20
# ... and at most this many floats of a 32-filter block's dy (512 KiB), which every item of the block reads: the
# ResNet stem (3 -> 64, 7x7/2, 112x112) took half the time with 1 image a chunk (0.4 MB a block) than with 4
WEIGHT_DY_FLOATS = 1 << 17
# With more than one thread, layers of at most this many channels x taps whose filter lanes leave under 4 work items
# a thread (few channels) take the pixel-lane weight gradient on AVX-512 (direct_weight_lanes). Measured (Xeon,
# interleaved, 2 threads), pixel lanes ÷ the better of the filter lanes and im2col: 32x3x20x20 -> 32 3x3 0.91,
# 16x3x100x100 -> 32 0.84, 3 -> 64 3x3/2 0.65, a 3 -> 64 7x7/2 stem 0.74, 3 -> 16 5x5 0.82, 1 -> 32 3x3 (28x28)
# 1.05; on 1 thread the filter lanes ran 0.87x, 0.99x, 1.11x, 0.88x, 0.91x and 1.09x as long as the pixel lanes
LANES_MAX_TAPS = 160
# ... and at most this many floats of per-thread sums (K·C·R·S lanes of 16: 4 MiB)
LANES_MAX_SUMS = 1 << 20
# ... which sums its images in at most this many groups, a group on one thread, the groups then added in order
LANES_GROUPS = 8


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
                  Py_ssize_t band_floats, int max_rows):
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
    rows = max(1, min(P, max_rows, band_floats // (C * phases * Wp) - imax))  # output rows per band
    wanted = parts_each(N, nt)  # bands per image
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
                   int pt, int pl, int dh, int dw, int n_threads, float[:, :, :, ::1] y, bint relu=False,
                   float negative_slope=0, bint y_channels_last=False):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] · w[k,c,r,s] (one group, float32);
    with ``relu``, leaky_relu(y, negative_slope) (max(y, 0) at slope 0) on each work item's band as soon as it
    is written

    A direct kernel for layers with few input channels (a 3-channel first layer), where the
    unrolled matrix would be thin and Winograd's transforms would cost more than they save, and for
    strided layers. A work item is a band of output rows of one image: its thread lays out the input
    rows the band reads, zero-padded and split into their stride phases (polyphase: phase (a, b) holds
    the pixels at rows a + i·sh, columns b + j·sw), so that each tap reads at one fixed offset from its
    output pixel and the kernel needs no bounds checks or strided loads, then runs a register block of
    32 output pixels × 12 filters (AVX-512; 16 × 6 on AVX2) over the C·R·S taps (cnnkernels/simd), the
    filters stored tap-major in blocks of filters. Workspace: C·R·S·K floats, and per thread one band's
    layout, at most BAND_FLOATS floats (or one output row's inputs). With ``y_channels_last``, y is
    (N, P, Q, K): each band is written to its thread's scratch (K·rows·Q floats more) and transposed from
    there, in cache.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = w.shape[0], R = w.shape[2], S = w.shape[3]
    cdef int P = y.shape[1 if y_channels_last else 2], Q = y.shape[2 if y_channels_last else 3]
    cdef int T = R * S, Kpad = cnnk_pointwise_padded_filters(K), nt = max(1, n_threads)
    cdef bint flat
    cdef int Wp, rows, blocks, Hband
    cdef Py_ssize_t cstride, band
    cdef const int[::1] rows_of
    cdef const int[::1] cols_of
    cdef const int[::1] offset
    flat, Wp, rows, blocks, Hband, cstride, band, rows_of, cols_of, offset = direct_layout(
        C, W, P, Q, R, S, sh, sw, pl, dh, dw, N, nt, BAND_FLOATS,
        max(1, OUT_BAND_FLOATS // max(1, K * Q)) if y_channels_last else P)
    cdef int row_phases = rows_of.shape[0], col_phases = cols_of.shape[0]
    cdef Py_ssize_t tail = CNNK_DIRECT_FLAT_TAIL
    cdef Py_ssize_t band_out = <Py_ssize_t>K * rows * Q if y_channels_last else 0  # a band's y, NCHW
    band += band_out
    cdef float[::1] space = scratch(<Py_ssize_t>C * T * Kpad + nt * band, np.float32)
    cdef float* wt = &space[0]
    cdef float* xp = wt + <Py_ssize_t>C * T * Kpad
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item, image = <Py_ssize_t>C * H * W, out = <Py_ssize_t>K * P * Q
    cdef int n, p0, t, count
    cdef float* laid_out
    cdef float* out_band
    with nogil:
        cnnk_pointwise_pack_filters(&w[0, 0, 0, 0], K, C * T, Kpad, wt)
        for t in range(nt):  # read by the flat runs' last lanes, whose sums are dropped
            memset(xp + t * band + C * cstride, 0, tail * sizeof(float))
        for item in prange(<Py_ssize_t>N * blocks, num_threads=nt, schedule="dynamic"):
            n = <int>(item // blocks)
            p0 = <int>(item % blocks) * rows
            laid_out = xp + threadid() * band
            count = min(rows, P - p0)
            cnnk_direct_phase_image(xs + n * image, C, H, W, sh, sw, pt, pl, &rows_of[0], row_phases, &cols_of[0],
                                    col_phases, p0, Hband, Wp, laid_out, laid_out + C * cstride + tail)
            if y_channels_last:  # the band as K planes of count x Q, then its pixels' K filters each
                out_band = laid_out + band - band_out
                cnnk_direct_forward(laid_out, C, cstride, Wp, &offset[0], T, wt, K, Kpad, bias, out_band, count, Q,
                                    0, count, flat)
                if relu:
                    cnnk_relu_planes(out_band, 1, 0, <Py_ssize_t>K * count * Q, negative_slope)
                cnnk_nchw_to_nhwc(out_band, K, count * Q, ys + n * out + <Py_ssize_t>p0 * Q * K)
                continue
            cnnk_direct_forward(laid_out, C, cstride, Wp, &offset[0], T, wt, K, Kpad, bias, ys + n * out + p0 * Q, P,
                                Q, 0, count, flat)
            if relu:
                cnnk_relu_planes(ys + n * out + p0 * Q, K, <Py_ssize_t>P * Q, <Py_ssize_t>count * Q, negative_slope)


def direct_backward_weight(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int sh, int sw, int pt, int pl,
                           int dh, int dw, int n_threads, float[:, :, :, ::1] dweight, bint channels_last=False):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] (one group, float32)

    The adjoint of :func:`direct_forward` in the filters: a chunk of images at a time (at most
    WEIGHT_CHUNK_FLOATS floats and WEIGHT_DY_FLOATS of a 32-filter block's dy, or one image), x laid out as
    its stride phases and dy channels-last in slabs of 32 filters (an item's dy rows 128 bytes apart, not
    K floats: the strided ResNet layer's weight gradient 0.89-0.92x the time), then each work item takes 32
    filters and one channel and sums dy times the broadcast inputs over the chunk's images into its own part of dw
    (cnnkernels/simd/direct_weight.c): no partial sums, and the same result at any thread count (the chunk
    depends on the geometry only). Items running together take channels half the channels apart: with
    neighbouring channels the two threads wrote the same lines of dw (2 threads 1.1x faster without).
    Workspace: the chunk's layouts and a padded row per thread. With few channels its items are too few
    for more than one thread: on AVX-512 those layers run :func:`direct_weight_lanes` instead (so there
    the last bits can differ between thread counts).
    With ``channels_last``, x is (N, H, W, C) and dy (N, P, Q, K): each image of x is transposed in its
    thread's scratch and laid out from there, an item an image, and dy's slabs are copied row by row.
    """
    cdef int N = x.shape[0], C = x.shape[3 if channels_last else 1]
    cdef int H = x.shape[1 if channels_last else 2], W = x.shape[2 if channels_last else 3]
    cdef int K = dy.shape[3 if channels_last else 1], P = dy.shape[1 if channels_last else 2]
    cdef int Q = dy.shape[2 if channels_last else 3], R = dweight.shape[2], S = dweight.shape[3]
    cdef int T = R * S, nt = max(1, n_threads)
    cdef int Hph, Wp
    cdef Py_ssize_t cstride
    cdef const int[::1] rows_of
    cdef const int[::1] cols_of
    cdef const int[::1] offset
    Hph, Wp, cstride, rows_of, cols_of, offset = weight_layout(P, Q, R, S, sh, sw, dh, dw)
    cdef int blocks = (K + 31) // 32
    if (nt > 1 and blocks * C < 4 * nt and C * T <= LANES_MAX_TAPS and 16 * <Py_ssize_t>K * C * T <= LANES_MAX_SUMS
            and simd_isa() == "avx512f"):
        if channels_last:  # the pixel lanes read NCHW: copies, each image transposed by one thread
            x = _channels_first(x, nt)
            dy = _channels_first(dy, nt)
        direct_weight_lanes(dy, x, sh, sw, pt, pl, n_threads, Hph, Wp, cstride, rows_of, cols_of, offset, dweight)
        return
    cdef int row_phases = rows_of.shape[0], col_phases = cols_of.shape[0]
    cdef Py_ssize_t image = C * cstride, PQ = <Py_ssize_t>P * Q, dy_image = K * PQ, x_image = <Py_ssize_t>C * H * W
    cdef int chunk = <int>max(1, min(N, WEIGHT_CHUNK_FLOATS // (image + dy_image), WEIGHT_DY_FLOATS // (32 * PQ)))
    cdef Py_ssize_t row = cnnk_direct_row_floats(W, pl, sw, Wp)
    cdef Py_ssize_t own = row + (x_image if channels_last else 0)  # per thread: a padded row (and an image)
    cdef float[::1] space = scratch(chunk * (image + dy_image) + nt * own, np.float32)
    cdef float* xl = &space[0]
    cdef float* dyt = xl + chunk * image
    cdef float* rows = dyt + chunk * dy_image
    cdef float* planes
    cdef int kc
    cdef Py_ssize_t p
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef int n, c, n0, images, item, k0
    memset(dws, 0, <Py_ssize_t>K * C * T * sizeof(float))
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        if channels_last:
            with nogil:
                for item in prange(2 * images, num_threads=nt, schedule="dynamic"):
                    n = item // 2
                    if item % 2 == 0:  # the image to NCHW in cache, then each channel's phases
                        planes = rows + threadid() * own + row
                        cnnk_nchw_to_nhwc(xs + (n0 + n) * x_image, H * W, C, planes)
                        for c in range(C):
                            cnnk_direct_phase_image(planes + <Py_ssize_t>c * H * W, 1, H, W, sh, sw, pt, pl,
                                                    &rows_of[0], row_phases, &cols_of[0], col_phases, 0, Hph, Wp,
                                                    xl + n * image + c * cstride, rows + threadid() * own)
                    else:  # dy's slabs of 32 filters: each pixel's run of the slab's filters
                        for k0 in range(0, K, 32):
                            kc = min(32, K - k0)
                            for p in range(PQ):
                                memcpy(dyt + n * dy_image + k0 * PQ + p * kc, dys + (n0 + n) * dy_image + p * K + k0,
                                       kc * sizeof(float))
        with nogil:
            # layout items: one channel of one image, or one image's dy (3 images a chunk kept 2 threads 2:1)
            for item in prange(0 if channels_last else images * (C + 1), num_threads=nt, schedule="dynamic"):
                n = item // (C + 1)
                c = item % (C + 1)
                if c < C:
                    cnnk_direct_phase_image(xs + (n0 + n) * x_image + <Py_ssize_t>c * H * W, 1, H, W, sh, sw, pt, pl,
                                            &rows_of[0], row_phases, &cols_of[0], col_phases, 0, Hph, Wp,
                                            xl + n * image + c * cstride, rows + threadid() * own)
                else:  # channels-last in slabs of 32 filters: an item's rows of dy lie 32 floats apart, not K
                    for k0 in range(0, K, 32):
                        cnnk_nchw_to_nhwc(dys + (n0 + n) * dy_image + k0 * PQ, min(32, K - k0), <int>PQ,
                                          dyt + n * dy_image + k0 * PQ)
            for item in prange(blocks * C, num_threads=min(nt, blocks * C), schedule="dynamic"):
                k0 = 32 * (item // C)
                c = item % C  # consecutive items (two threads at once) half the channels apart: not one dw line
                c = c // 2 + (c % 2) * ((C + 1) // 2)
                cnnk_direct_weight(dyt + k0 * PQ, dy_image, min(32, K - k0), P, Q, xl + c * cstride, image, Wp,
                                   &offset[0], T, images, 0, min(32, K - k0), dws + (<Py_ssize_t>k0 * C + c) * T, C * T)


@functools.lru_cache(maxsize=64)
def lane_masks(int P, int Q, int Wp):
    """masks[s]: which of the flat pixels 16·s .. 16·s + 15 (j = p·Wp + q) are output pixels (q < Q, p < P)."""
    j = np.arange((P * Wp + 15) // 16 * 16)
    valid = ((j < P * Wp) & (j % Wp < Q)).reshape(-1, 16).astype(np.uint32)
    masks = (valid << np.arange(16, dtype=np.uint32)).sum(axis=1).astype(np.uint16)
    masks.flags.writeable = False
    return masks


def direct_weight_lanes(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int sh, int sw, int pt, int pl,
                        int n_threads, int Hph, int Wp, Py_ssize_t cstride, const int[::1] rows_of,
                        const int[::1] cols_of, const int[::1] offset, float[:, :, :, ::1] dweight):
    """dw[k,c,r,s] = Σ_n,p,q dy[n,k,p,q] · x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] for few channels (AVX-512)

    The filter-lane kernel's work items (32 filters x one channel) are too few for two threads with a
    first layer's 3 channels; here the images split instead. The lanes are 16 output pixels of the
    stride-phase layout (weight_layout) taken as one flat run, so each tap's inputs are one vector load,
    and dy is copied at that row pitch, 8 filters at a time. A work item is a group of images (at most
    LANES_GROUPS groups, sized by N alone): its thread lays each image out and adds 16 lanes of sums per
    filter and tap (simd/direct_weight.c), then folds them into the group's sums; the groups are added in
    order, so the bits do not depend on the thread count. Workspace: the groups' sums, and per thread an
    image's layout, CNNK_LANES_FILTERS filters' dy at the layout's pitch and 16·K·C·R·S sums.
    """
    cdef int N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef int K = dy.shape[1], P = dy.shape[2], Q = dy.shape[3], T = offset.shape[0], nt = max(1, n_threads)
    cdef int row_phases = rows_of.shape[0], col_phases = cols_of.shape[0]
    cdef Py_ssize_t KCT = <Py_ssize_t>K * C * T, Jp = (<Py_ssize_t>P * Wp + 15) // 16 * 16
    cdef Py_ssize_t image = (C * cstride + 15) // 16 * 16  # dy's rows and the sums on cache lines (loads in one line)
    cdef Py_ssize_t dy_image = <Py_ssize_t>K * P * Q, x_image = <Py_ssize_t>C * H * W
    cdef int per_group = (N + LANES_GROUPS - 1) // LANES_GROUPS
    cdef int groups = (N + per_group - 1) // per_group
    cdef Py_ssize_t per_thread = image + CNNK_LANES_FILTERS * Jp + 16 * KCT + (cnnk_direct_row_floats(W, pl, sw, Wp) + 15) // 16 * 16
    cdef Py_ssize_t shared = (groups * KCT + 15) // 16 * 16
    cdef float[::1] space = scratch(shared + min(nt, groups) * per_thread, np.float32)
    cdef const uint16_t[::1] masks = lane_masks(P, Q, Wp)
    cdef float* sums = &space[0]
    cdef float* own = sums + shared
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef float* xl
    cdef float* part
    cdef Py_ssize_t i
    cdef int g, n
    cdef float total
    with nogil:
        for g in prange(groups, num_threads=min(nt, groups), schedule="dynamic"):
            xl = own + threadid() * per_thread
            part = xl + image + CNNK_LANES_FILTERS * Jp
            memset(part, 0, 16 * KCT * sizeof(float))
            for n in range(g * per_group, min(N, (g + 1) * per_group)):
                cnnk_direct_phase_image(xs + n * x_image, C, H, W, sh, sw, pt, pl, &rows_of[0], row_phases,
                                        &cols_of[0], col_phases, 0, Hph, Wp, xl, part + 16 * KCT)
                cnnk_direct_weight_lanes(dys + n * dy_image, K, P, Q, xl, C, cstride, Wp, &offset[0], T, &masks[0],
                                         xl + image, part)
            cnnk_sum_lanes(part, KCT, sums + g * KCT)
        for i in range(KCT):
            total = 0
            for g in range(groups):
                total = total + sums[g * KCT + i]
            dws[i] = total


def pointwise_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int groups,
                      int n_threads, float[:, :, :, ::1] y):
    """y[n, g·Kg + k, p] = b[g·Kg + k] + Σ_c w[g·Kg + k, c] · x[n, g·Cg + c, p]: a 1×1 convolution at stride 1

    One product per image and group on NCHW as it lies, by a register block of 12 filters × 32
    pixels over a panel of those pixels' channels, 128 at a time (AVX-512; 6 × 16 over all of them
    on AVX2), writing y in place: no copy of x or y, unlike im2col + BLAS (which also packs both
    operands). Work items are (image, group, a run of pixels): the whole image while that leaves 4
    items a thread, else runs of at least 384 pixels (each run starts its reads ahead cold; with 384
    always, 2 threads took 1.06-1.15x as long on 1x1 layers of 8 images). Workspace: the filters in
    blocks, about G·Cg·Kg floats, and a panel of 32·Cg floats per thread (at most 32·128 used on AVX-512).
    """
    cdef int N = x.shape[0], C = x.shape[1], K = w.shape[0], Cg = w.shape[1]
    cdef int Kg = K // groups, Kpad = cnnk_pointwise_padded_filters(Kg), nt = max(1, n_threads)
    cdef Py_ssize_t PQ = <Py_ssize_t>x.shape[2] * x.shape[3]
    cdef Py_ssize_t parts = parts_each(<Py_ssize_t>N * groups, nt)
    cdef Py_ssize_t block = max(384, ((PQ + parts - 1) // parts + 31) // 32 * 32)
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
