"""Included by _winograd.pyx: the matrix products of cnnkernels.matmul, on the row-product kernel of the
convolutions (rows_matmul, b packed) or with b's rows read in place (stream_matmul, simd/dense.c); and the 1x1
weight gradient on the direct weight gradient's kernel (pointwise_backward_weight; channels-last
pointwise_weight_nhwc) or on BLAS (channels-last: pointwise_weight_channels_last)."""

cdef extern from "simd/dense.h" nogil:
    int cnnk_stream_product(const float* a, Py_ssize_t a_row, Py_ssize_t a_col, const float* b, Py_ssize_t b_row,
                            int K, int i_begin, int i_end, int j_begin, int j_end, float* out, Py_ssize_t out_row)

# rows_matmul's rows of b packed per work item
PACK_ROWS = 256
# pointwise_backward_weight's images a chunk: at most this many floats of a slab of dy (1 MiB; at least one image),
# whose channels-last copy every work item of the slab reads
POINTWISE_DY_FLOATS = 1 << 18
# pointwise_weight_nhwc's pixels a block: their rows of dy (64 filters: 12 KiB) and a thread's share of x's stay in L1
# while each of the thread's channel blocks runs over them
POINTWISE_NHWC_PIXELS = 48
# stream_matmul's rows of out per work item: a multiple of the kernel's 6-row blocks, large enough that a thread
# reads b from L2 for most of its blocks
STREAM_ROWS = 24


def stream_matmul(const float[:, :] a, const float[:, ::1] b, int n_threads, float[:, ::1] out):
    """out = a·b for float32 matrices, a (M x K, any positive strides) and b (K x N, rows contiguous) read where
    they lie: blocks of 6 rows of out x 64 columns, b's rows streamed past a's broadcast values
    (cnnk_stream_product). Work items: STREAM_ROWS rows of out (fewer, so that every thread has one). AVX-512 only;
    returns False (out untouched) elsewhere. No workspace."""
    cdef int M = a.shape[0], K = a.shape[1], N = b.shape[1], nt = max(1, n_threads)
    cdef Py_ssize_t a_row = a.strides[0] // sizeof(float), a_col = a.strides[1] // sizeof(float)
    cdef int rows = max(6, min(STREAM_ROWS, ((M + nt - 1) // nt + 5) // 6 * 6))
    cdef int items = (M + rows - 1) // rows, item
    if simd_isa() != "avx512f":
        return False
    with nogil:
        for item in prange(items, num_threads=min(nt, items), schedule="dynamic"):
            cnnk_stream_product(&a[0, 0], a_row, a_col, &b[0, 0], N, K, item * rows, min(M, (item + 1) * rows), 0, N,
                                &out[0, 0], N)
    return True


def rows_matmul(const float[:, ::1] v, const float[:, :] b, int n_threads, float[:, ::1] out, bint transposed):
    """out = v·b (or, with ``transposed``, out = (v·b)ᵀ) for float32 matrices: v's rows (R x K) as the rows of
    the Winograd product's register-blocked kernel (cnnk_gemm_rows), b (K x N, any positive strides) packed in
    panels of 16 columns, PACK_ROWS of b's rows per work item, then v's rows in blocks of 6·g, a block per work
    item (one a thread, at most 240 rows). Workspace: b packed (K·⌈N/16⌉·16 floats), the products' rows
    (R·⌈N/16⌉·16, unless out takes them as they come: N a multiple of 16, not transposed), 6·K floats a thread."""
    cdef int R = v.shape[0], K = v.shape[1], N = b.shape[1], nt = max(1, n_threads)
    cdef int pack_rows = PACK_ROWS, Kp = (N + 15) // 16 * 16, chunks = (K + pack_rows - 1) // pack_rows
    cdef Py_ssize_t row_stride = b.strides[0] // sizeof(float), col_stride = b.strides[1] // sizeof(float)
    cdef bint direct = not transposed and Kp == N  # out holds the rows of the product as they come
    # a block per thread (more rows per block read the packed panels fewer times), of at most 240 rows
    cdef int block = max(6, min(((R + nt - 1) // nt + 5) // 6 * 6, 240))
    cdef int blocks = (R + block - 1) // block
    cdef float[::1] space = scratch(<Py_ssize_t>Kp * K + (0 if direct else <Py_ssize_t>R * Kp) + nt * 6 * K,
                                    np.float32)
    cdef float* U = &space[0]
    cdef float* M = &out[0, 0] if direct else U + <Py_ssize_t>Kp * K
    cdef float* panel = U + <Py_ssize_t>Kp * K + (0 if direct else <Py_ssize_t>R * Kp)
    cdef const float* vs = &v[0, 0]
    cdef const float* bs = &b[0, 0]
    cdef float* outs = &out[0, 0]
    cdef int p, item, r0, count, i
    with nogil:
        for p in prange(chunks, num_threads=min(nt, chunks), schedule="dynamic"):
            cnnk_pack_columns(bs, row_stride, col_stride, K, N, Kp, p * pack_rows, min(K, (p + 1) * pack_rows), U)
        for item in prange(blocks, num_threads=min(nt, blocks), schedule="dynamic"):
            r0 = item * block
            count = min(block, R - r0)
            cnnk_gemm_rows(vs + <Py_ssize_t>r0 * K, U, count, K, Kp, M + <Py_ssize_t>r0 * Kp,
                           panel + threadid() * 6 * K)
            if transposed:  # out[j, r0 + i] = M[r0 + i, j]
                cnnk_rows_to_nchw(M + <Py_ssize_t>r0 * Kp, count, Kp, N, NULL, outs, R, r0)
            elif not direct:
                for i in range(count):
                    memcpy(outs + <Py_ssize_t>(r0 + i) * N, M + <Py_ssize_t>(r0 + i) * Kp, N * sizeof(float))


def pointwise_weight_channels_last(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int groups,
                                   int n_threads, float[:, :, :, ::1] dweight):
    """dw[k, c] = Σ_n,p,q dy[n, p, q, k] · x[n, p, q, c]: the weight gradient of a 1×1, stride-1, unpadded layer
    with x and dy channels-last, (N, H, W, C) and (N, H, W, K): one BLAS product per block of pixel rows into each
    thread's sums, column-major Kg x Cg per group (OpenBLAS 0.3.30 ran it in 0.68x the time of Cg x Kg on ResNet
    1x1, 256 -> 64 at 56x56), added up and turned at the end. (Here, not in _conv.pyx beside the NCHW one: any
    code added there moved its input gradient's col2im 7-11 % slower, measured.)"""
    cdef int N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3], K = dy.shape[3]
    cdef int Cg = C // groups, Kg = K // groups
    cdef int rows = block_rows(Cg, H, W)
    cdef int blocks = (H + rows - 1) // rows, nt = max(1, n_threads), count
    cdef Py_ssize_t KC = <Py_ssize_t>K * Cg, HW = <Py_ssize_t>H * W, j, first, item
    cdef float[::1] space = scratch(nt * KC, np.float32)
    cdef float* partial = &space[0]
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef int n, g, p0, t
    cdef float total, one = 1
    cdef char no = b"N", yes = b"T"
    memset(partial, 0, nt * KC * sizeof(float))
    with nogil:
        # static, as the NCHW weight gradient's: the same result on every run at a thread count
        for item in prange(<Py_ssize_t>N * groups * blocks, num_threads=nt, schedule="static"):
            n = <int>(item // (groups * blocks))
            g = <int>((item // blocks) % groups)
            p0 = <int>(item % blocks) * rows
            first = n * HW + <Py_ssize_t>p0 * W
            count = min(rows, H - p0) * W
            sgemm(&no, &yes, &Kg, &Cg, &count, &one, <float*>(dys + first * K + g * Kg), &K,
                  <float*>(xs + first * C + g * Cg), &C, &one, partial + threadid() * KC + <Py_ssize_t>g * Kg * Cg,
                  &Kg)
        for j in prange(KC, num_threads=nt, schedule="static"):
            total = 0
            for t in range(nt):
                total = total + partial[t * KC + j]
            g = <int>(j // (<Py_ssize_t>Kg * Cg))  # group g's sums lie filters fastest
            dws[<Py_ssize_t>g * Kg * Cg + (j % Kg) * Cg + (j % (<Py_ssize_t>Kg * Cg)) // Kg] = total


def pointwise_backward_weight(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int groups, int n_threads,
                              float[:, :, :, ::1] dweight):
    """dw[k, c] = Σ_n,p,q dy[n, k, p, q] · x[n, g·Cg + c, p, q] for the filters k of group g: the weight gradient of
    a 1×1, stride-1, unpadded layer (float32, AVX-512; returns False, dweight untouched, elsewhere)

    On the direct weight gradient's filter-lane kernel (simd/direct_weight.c) with x read where it lies: an image's
    pixels are one flat row and its channels the kernel's taps (one plane each, H·W floats apart), dy copied
    channels-last in slabs of 64 filters (32 where a group has at most 32) a chunk of images at a time. A work item
    is (group, slab, block of 6 channels (9 with 32-filter slabs)): x is read once per slab, so once for layers of
    up to 64 filters, each value broadcast to 4 vectors of filters (im2col's BLAS product re-packs both). Each item
    owns its part of dw: no partial sums, and the same result at any thread count (the chunk depends on the shapes
    only). Workspace: the chunk's copy of dy. The kernel's int offsets need Cg·H·W < 2**31 (else False).
    """
    cdef int N = x.shape[0], C = x.shape[1], K = dy.shape[1], Cg = C // groups, Kg = K // groups
    cdef Py_ssize_t HW = <Py_ssize_t>x.shape[2] * x.shape[3], dy_image = K * HW, x_image = C * HW
    if simd_isa() != "avx512f" or Cg * HW >= 2 ** 31:
        return False
    cdef int slab = 64 if Kg > 32 else 32, slabs = (Kg + slab - 1) // slab
    cdef int taps = 6 if slab == 64 else 9, blocks = (Cg + taps - 1) // taps, nt = max(1, n_threads)
    cdef int chunk = <int>max(1, min(N, POINTWISE_DY_FLOATS // (slab * HW)))
    # dy's copy in parts of the pixels too, so that each thread has some (a 64-filter layer has one slab an image)
    cdef int parts = max(1, min(<int>(HW // 256), (4 * nt + chunk * groups * slabs - 1) // (chunk * groups * slabs)))
    cdef int part = <int>((HW + parts - 1) // parts + 15) // 16 * 16, p0
    cdef const int[::1] offset = np.arange(Cg, dtype=np.intc) * <int>HW  # channel t of a block: plane t
    cdef float[::1] space = scratch(chunk * dy_image, np.float32)
    cdef float* dyt = &space[0]  # per image, group g's slab s at (g·Kg + s·slab)·HW: rows of its filters
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef int n0, images, n, g, k0, kc, c0, item
    memset(dws, 0, <Py_ssize_t>K * Cg * sizeof(float))
    for n0 in range(0, N, chunk):
        images = min(chunk, N - n0)
        with nogil:
            for item in prange(images * groups * slabs * parts, num_threads=nt, schedule="dynamic"):
                n = item // (groups * slabs * parts)
                k0 = (item // (slabs * parts) % groups) * Kg + item // parts % slabs * slab  # the slab's first filter
                p0 = item % parts * part
                if p0 < HW:
                    cnnk_nchw_to_nhwc_pixels(dys + (n0 + n) * dy_image + k0 * HW, min(slab, Kg - k0 % Kg), <int>HW,
                                             p0, <int>min(HW, p0 + part), dyt + n * dy_image + k0 * HW)
            for item in prange(groups * slabs * blocks, num_threads=min(nt, groups * slabs * blocks),
                               schedule="dynamic"):
                g = item // (slabs * blocks)
                k0 = item // blocks % slabs * slab  # in the group
                kc = min(slab, Kg - k0)
                c0 = item % blocks  # items running together half the blocks apart: not one line of dw
                c0 = (c0 // 2 + c0 % 2 * ((blocks + 1) // 2)) * taps
                cnnk_direct_weight(dyt + (g * Kg + k0) * HW, dy_image, kc, 1, <int>HW,
                                   xs + n0 * x_image + (g * Cg + c0) * HW, x_image, <int>HW, &offset[0],
                                   min(taps, Cg - c0), images, 0, kc, dws + (<Py_ssize_t>g * Kg + k0) * Cg + c0, Cg)
    return True


def pointwise_weight_nhwc(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, int groups, int n_threads,
                          float[:, :, :, ::1] dweight):
    """dw[k, c] = Σ_n,p,q dy[n, p, q, k] · x[n, p, q, g·Cg + c] for the filters k of group g: the weight gradient of
    a 1×1, stride-1, unpadded layer with x and dy channels-last, (N, H, W, C) and (N, H, W, K), at most 64 filters a
    group (float32, AVX-512; returns False, dweight untouched, elsewhere)

    The kernel of :func:`pointwise_backward_weight` (64 filters as the lanes times 6 broadcast channels) with both
    arrays read in place: all the images' pixels one run of rows. A work item is (group, block of 6 channels); each
    thread takes a run of consecutive items and, block of POINTWISE_NHWC_PIXELS pixels after block, runs all its items
    over the block's rows while they are in L1, its sums carried in memory between blocks (an item alone over all the
    pixels, reading x's 1 KB rows for 24 bytes each, took 1.8x BLAS's time on ResNet 1x1 at 1 thread); the next
    block's share of x's rows is asked into L2 meanwhile (with x out of the caches, as after other layers' calls,
    ResNet 1x1 took 12.1 ms without, 9.0 with, BLAS 11.5-12.7). Each item sums the same pixels in the same order at
    any thread count. Workspace: CNNK_POINTWISE_SUMS (384) floats an item.
    """
    cdef int N = x.shape[0], C = x.shape[3], K = dy.shape[3], Cg = C // groups, Kg = K // groups
    cdef Py_ssize_t pixels = <Py_ssize_t>N * x.shape[1] * x.shape[2]
    if simd_isa() != "avx512f" or Kg > 64:
        return False
    cdef int blocks = (Cg + 5) // 6, items = groups * blocks, nt = max(1, min(n_threads, items))
    cdef int step = POINTWISE_NHWC_PIXELS, thread, item, g, c0, i, t, l, taps
    cdef Py_ssize_t size = CNNK_POINTWISE_SUMS
    cdef float[::1] space = scratch(items * size, np.float32)
    cdef float* sums = &space[0]
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dws = &dweight[0, 0, 0, 0]
    cdef Py_ssize_t p0, block, row
    cdef int first, end, c_lo, c_hi
    memset(sums, 0, items * size * sizeof(float))
    with nogil:
        for thread in prange(nt, num_threads=nt, schedule="static"):
            first = thread * items // nt  # the thread's items, first <= item < end, and their channels
            end = (thread + 1) * items // nt
            c_lo = first // blocks * Cg + first % blocks * 6
            c_hi = (end - 1) // blocks * Cg + min(Cg, (end - 1) % blocks * 6 + 6)
            for block in range((pixels + step - 1) // step):
                p0 = block * step
                for row in range(p0 + step, min(pixels, p0 + 2 * step)):  # the next block's share of x, into L2
                    cnnk_prefetch_l2(xs + row * C + c_lo, c_hi - c_lo)
                for item in range(first, end):
                    g = item // blocks
                    c0 = item % blocks * 6
                    cnnk_pointwise_weight_nhwc(dys + p0 * K + g * Kg, K, xs + p0 * C + g * Cg + c0, C,
                                               <int>min(<Py_ssize_t>step, pixels - p0), Kg, min(6, Cg - c0),
                                               sums + item * size)
    for item in range(items):
        g = item // blocks
        c0 = item % blocks * 6
        taps = min(6, Cg - c0)
        for i in range(4):
            for l in range(16):
                if 16 * i + l < Kg:
                    for t in range(taps):
                        dws[(<Py_ssize_t>g * Kg + 16 * i + l) * Cg + c0 + t] = sums[item * size + (i * 6 + t) * 16 + l]
    return True
