"""Included by _winograd.pyx: im2row's forward pass and its adjoint, the input gradient, on the Winograd product's
register-blocked kernel (cnnkernels/simd/avx512.c, rows.c), for NCHW or channels-last images."""

# A channels-last image im2row reads in place is asked into L2 first when it takes at most half of it (1 MiB; the
# NCHW path's copy had put it there: without, the strided ResNet layer's forward gained nothing at 1 thread)
PREFETCHED_IMAGE_FLOATS = 1 << 18


cdef inline void rows_block(const float* xt, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                            int dw, int pixel0, int count, int Q, const float* zeros, const float* U, int Kp, int K,
                            int block, const float* bias, float* y, Py_ssize_t PQ, float* M,
                            bint channels_last) noexcept nogil:
    """One work item of rows_forward: `count` output pixels from pixel0 of one image (xt channels-last, y NCHW
    or, with `channels_last`, NHWC)."""
    cnnk_implicit_rows(xt, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, count, Q, zeros, U, Kp,
                       M + <Py_ssize_t>block * Kp, M, M + <Py_ssize_t>block * (Kp + C * R * S))
    if channels_last:
        cnnk_rows_to_nhwc(M, count, Kp, K, bias, y + <Py_ssize_t>pixel0 * K)
    else:
        cnnk_rows_to_nchw(M, count, Kp, K, bias, y, PQ, pixel0)


def rows_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] b, int sh, int sw,
                 int pt, int pl, int dh, int dw, int n_threads, float[:, :, :, ::1] y, bint relu=False,
                 float negative_slope=0, bint channels_last=False):
    """y[n,k,p,q] = b[k] + Σ_c,r,s x[n,c,p·sh + r·dh − pt, q·sw + s·dw − pl] · w[k,c,r,s] (one group, float32)

    Pixel-major patches (im2row) of a channels-last copy of x, multiplied by the filters in panels
    of 16 with the Winograd product's register-blocked kernel (one "ξ"): nothing is packed again,
    unlike BLAS. On AVX-512 the product reads each patch where it lies in the copy (R·S runs of C
    floats: implicit im2row), elsewhere the patches are written out first. With two images or more
    per thread, a work item is an image: its thread copies it and runs its blocks of ≤ 240 output
    pixels (the copy is read from that core's cache); with fewer, the items are (image, block), after
    a chunk of images is copied. Per thread the product takes pixels·⌈K/16⌉·16 floats, and written
    patches pixels·C·R·S. With ``relu``, leaky_relu(y, negative_slope) on each image's output as soon
    as it is written (an item of an image), else on each chunk's after its items. With
    ``channels_last``, x is (N, H, W, C) and y (N, P, Q, K): read and written as they lie, no copy.
    """
    cdef int N = x.shape[0], C = x.shape[3 if channels_last else 1]
    cdef int H = x.shape[1 if channels_last else 2], W = x.shape[2 if channels_last else 3]
    cdef int K = w.shape[0], R = w.shape[2], S = w.shape[3]
    cdef int P = y.shape[1 if channels_last else 2], Q = y.shape[2 if channels_last else 3]
    cdef int Kp = (K + 15) // 16 * 16, CRS = C * R * S
    cdef Py_ssize_t PQ = <Py_ssize_t>P * Q, image_size = <Py_ssize_t>C * H * W, out_size = <Py_ssize_t>K * PQ
    cdef int block = max(6, min(<int>PQ, (1 << 19) // max(CRS, 1) // 6 * 6, CNNK_IMPLICIT_PIXELS))
    cdef int blocks = <int>((PQ + block - 1) // block)
    cdef int nt = max(1, n_threads)
    cdef bint by_image = N >= 2 * nt
    # images a pass (channels-last: all, read in place), and those copied channels-last first
    cdef int chunk = N if channels_last or by_image else chunk_images(image_size, N, blocks, 4 * nt)
    cdef int copied = 0 if channels_last or by_image else chunk
    cdef Py_ssize_t per_thread = <Py_ssize_t>block * Kp + cnnk_implicit_rows_scratch(block, CRS)
    if by_image and not channels_last:
        per_thread += image_size  # the thread's image, channels-last
    cdef float[::1] space = scratch(<Py_ssize_t>Kp * CRS + C + copied * image_size + nt * per_thread, np.float32)
    cdef float* U = &space[0]
    cdef float* zeros = U + <Py_ssize_t>Kp * CRS
    cdef float* xt = zeros + C  # the chunk's images, channels-last
    cdef float* own = xt + copied * image_size  # per thread: (its image,) the product's rows (and patches)
    cdef const float* xs = &x[0, 0, 0, 0]
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* ys = &y[0, 0, 0, 0]
    cdef Py_ssize_t item
    cdef int n, n0, images, pixel0, i
    cdef float* mine
    cdef const float* image
    cdef const float* source
    cdef bint prefetch = image_size <= PREFETCHED_IMAGE_FLOATS
    with nogil:
        cnnk_gemm_filters(&w[0, 0, 0, 0], K, C, R, S, Kp, U)
        memset(zeros, 0, C * sizeof(float))
    if by_image:
        with nogil:
            for n in prange(N, num_threads=nt, schedule="dynamic"):
                mine = own + threadid() * per_thread
                if channels_last:
                    image = xs + n * image_size
                    if prefetch:
                        cnnk_prefetch_l2(image, image_size)
                else:
                    cnnk_nchw_to_nhwc(xs + n * image_size, C, H * W, mine)
                    image = mine
                    mine = mine + image_size
                for i in range(blocks):
                    rows_block(image, H, W, C, R, S, sh, sw, pt, pl, dh, dw, i * block, <int>min(block, PQ - i * block),
                               Q, zeros, U, Kp, K, block, bias, ys + n * out_size, PQ, mine, channels_last)
                if relu:
                    cnnk_relu_planes(ys + n * out_size, 1, 0, out_size, negative_slope)
        return
    for n0 in range(0, N, chunk):  # items (image, block): every image's blocks after the copies
        images = min(chunk, N - n0)
        source = xs + n0 * image_size if channels_last else xt
        with nogil:
            for n in prange(0 if channels_last else images, num_threads=nt, schedule="dynamic"):
                cnnk_nchw_to_nhwc(xs + (n0 + n) * image_size, C, H * W, xt + n * image_size)
            for item in prange(<Py_ssize_t>images * blocks, num_threads=nt, schedule="dynamic"):
                n = <int>(item // blocks)
                pixel0 = <int>(item % blocks) * block
                rows_block(source + n * image_size, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0,
                           <int>min(<Py_ssize_t>block, PQ - pixel0), Q, zeros, U, Kp, K, block, bias,
                           ys + (n0 + n) * out_size, PQ, own + threadid() * per_thread, channels_last)
            if relu:  # the chunk's output, while it is in the caches that wrote it
                for n in prange(images, num_threads=nt, schedule="static"):
                    cnnk_relu_planes(ys + (n0 + n) * out_size, 1, 0, out_size, negative_slope)


def rows_backward_data(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] w, int sh, int sw, int pt, int pl,
                       int dh, int dw, int n_threads, float[:, :, :, ::1] dx, bint channels_last=False):
    """dx[n,c,h,w] = Σ_k,p,q,r,s dy[n,k,p,q] · w[k,c,r,s] · [h = p·sh + r·dh − pt, w = q·sw + s·dw − pl] (one group)

    The adjoint of :func:`rows_forward`: per image, dy's pixels (channels-last) times the filters as
    panels of 16 patch entries, by the Winograd product's register-blocked kernel, each pixel's row
    of patch gradients added back where the patch came from (channels-last), then the image
    transposed to NCHW. Unlike im2col + BLAS, no column matrix of the whole image and no BLAS
    re-packing. Work items are images (their windows overlap, so one image is one thread's);
    per thread: dy's and dx's image channels-last and a block of ≤ 240 pixel rows of C·R·S.
    With ``channels_last``, dy is (N, P, Q, K) and dx (N, H, W, C): read and summed into as they
    lie, no copies.
    """
    cdef int N = dy.shape[0], K = dy.shape[3 if channels_last else 1]
    cdef int P = dy.shape[1 if channels_last else 2], Q = dy.shape[2 if channels_last else 3]
    cdef int C = dx.shape[3 if channels_last else 1], H = dx.shape[1 if channels_last else 2]
    cdef int W = dx.shape[2 if channels_last else 3], R = w.shape[2], S = w.shape[3]
    cdef int CRS = C * R * S, CRSp = (CRS + 15) // 16 * 16
    cdef Py_ssize_t PQ = <Py_ssize_t>P * Q, HW = <Py_ssize_t>H * W
    cdef int block = max(6, min(<int>PQ, (1 << 19) // max(CRSp, 1) // 6 * 6, 240))
    cdef int blocks = <int>((PQ + block - 1) // block), nt = max(1, min(n_threads, N))
    cdef Py_ssize_t images = 0 if channels_last else K * PQ + C * HW  # the copies of dy and dx
    cdef Py_ssize_t per_thread = images + <Py_ssize_t>block * CRSp + 6 * <Py_ssize_t>K
    cdef float[::1] space = scratch(<Py_ssize_t>CRSp * K + nt * per_thread, np.float32)
    cdef float* U = &space[0]
    # the filters as C·R·S "filters" of K channels, rows in the (r, s, c) order of the patch gradients
    cdef const float[:, :, :, ::1] taps = np.ascontiguousarray(
        np.asarray(w).transpose(2, 3, 1, 0).reshape(CRS, K, 1, 1))
    cdef const float* dys = &dy[0, 0, 0, 0]
    cdef float* dxs = &dx[0, 0, 0, 0]
    cdef const float* dyt
    cdef float* dxt
    cdef float* M
    cdef int n, b, pixel0, count
    with nogil:
        cnnk_gemm_filters(&taps[0, 0, 0, 0], CRS, K, 1, 1, CRSp, U)
        for n in prange(N, num_threads=nt, schedule="dynamic"):
            M = U + <Py_ssize_t>CRSp * K + threadid() * per_thread
            if channels_last:
                dyt = dys + <Py_ssize_t>n * K * PQ
                dxt = dxs + <Py_ssize_t>n * C * HW
            else:
                cnnk_nchw_to_nhwc(dys + <Py_ssize_t>n * K * PQ, K, <int>PQ, M)
                dyt = M
                dxt = M + K * PQ
                M = dxt + C * HW
            memset(dxt, 0, C * HW * sizeof(float))
            for b in range(blocks):
                pixel0 = b * block
                count = <int>min(<Py_ssize_t>block, PQ - pixel0)
                cnnk_gemm_rows(dyt + <Py_ssize_t>pixel0 * K, U, count, K, CRSp, M, M + <Py_ssize_t>block * CRSp)
                cnnk_row2im_add_nhwc(M, CRSp, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, count, Q, dxt)
            if not channels_last:
                cnnk_rows_to_nchw(dxt, <int>HW, C, C, NULL, dxs + <Py_ssize_t>n * C * HW, HW, 0)
