"""Included by _winograd.pyx: the matrix products of cnnkernels.matmul, on the row-product kernel of the
convolutions (rows_matmul, b packed) or with b's rows read in place (stream_matmul, simd/dense.c)."""

cdef extern from "simd/dense.h" nogil:
    int cnnk_stream_product(const float* a, Py_ssize_t a_row, Py_ssize_t a_col, const float* b, Py_ssize_t b_row,
                            int K, int i_begin, int i_end, int j_begin, int j_end, float* out, Py_ssize_t out_row)

# rows_matmul's rows of b packed per work item
PACK_ROWS = 256
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
