/* The AVX-512 Winograd F(4x4, 3x3) transforms (winograd43.c and winograd43_grad.c dispatch to them when the CPU
   has AVX-512F): filters, input tiles and outputs, forward and for the gradients. Same layouts and formulas as the
   portable versions; 16 channels or filters in one register. The products are in avx512.c. */

#include "simd.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

/* G g Gᵀ for a 6-row step: out[i] = (G g)[i] of the three inputs (see SIXTH in simd.h) */
AVX512 static inline __attribute__((always_inline)) void filter_rows(__m512 g0, __m512 g1, __m512 g2, __m512 out[6]) {
    const __m512 quarter = _mm512_set1_ps(0.25f), sixth = _mm512_set1_ps(-SIXTH);
    const __m512 twentyfourth = _mm512_set1_ps(TWENTYFOURTH), two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    __m512 even = _mm512_add_ps(g0, g2), outer = _mm512_fmadd_ps(four, g2, g0), middle = _mm512_mul_ps(two, g1);
    out[0] = _mm512_mul_ps(quarter, g0);
    out[1] = _mm512_mul_ps(sixth, _mm512_add_ps(even, g1));
    out[2] = _mm512_mul_ps(sixth, _mm512_sub_ps(even, g1));
    out[3] = _mm512_mul_ps(twentyfourth, _mm512_add_ps(outer, middle));
    out[4] = _mm512_mul_ps(twentyfourth, _mm512_sub_ps(outer, middle));
    out[5] = g2;
}

/* cnnk_wino43_filter (winograd43.c) with each panel's 16 filters gathered into the lanes (masked past K) and
   transformed in registers: the portable version, lanes through memory, ran at 60 cycles a filter and channel
   (18 % of the 384 -> 384 forward pass). Needs C·9·16 < 2³¹ (the gather's int32 offsets). */
AVX512 void cnnk_wino43_filter_avx512(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U) {
    int panels = Kpad / 16;
    const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(C * 9));
    for (int kb = 0; kb < panels; kb++) /* c inner: each of the 36 panels is written in sequence */
        for (int c = c_begin; c < c_end; c++) {
            int left = K - kb * 16;
            __mmask16 real = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            const float *g = w + ((ptrdiff_t)kb * 16 * C + c) * 9;
            __m512 taps[9], t[6][3], u[6];
            for (int r = 0; r < 9; r++)
                taps[r] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), real, lanes, g + r, 4);
            for (int j = 0; j < 3; j++) { /* t = G g: column j */
                __m512 column[6];
                filter_rows(taps[j], taps[3 + j], taps[6 + j], column);
                for (int i = 0; i < 6; i++) t[i][j] = column[i];
            }
            for (int i = 0; i < 6; i++) { /* u = t Gᵀ: row i */
                filter_rows(t[i][0], t[i][1], t[i][2], u);
                for (int j = 0; j < 6; j++)
                    _mm512_storeu_ps(U + ((((ptrdiff_t)(i * 6 + j)) * panels + kb) * C + c) * 16, u[j]);
            }
        }
}

/* t = B^T d along one axis of 6 vectors (winograd43.c's input_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void input_6(const __m512 d[6], __m512 t[6]) {
    __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]), b = _mm512_fnmadd_ps(four, d[1], d[3]);
    __m512 c = _mm512_sub_ps(d[4], d[2]), e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    t[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    t[1] = _mm512_add_ps(a, b);
    t[2] = _mm512_sub_ps(a, b);
    t[3] = _mm512_add_ps(c, e);
    t[4] = _mm512_sub_ps(c, e);
    t[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* cnnk_wino43_input for AVX-512 (same layout and formula, see winograd43.c): 16 channels in one register; each
   input row is loaded once and transformed along the row, the 6 x 6 partial results kept on the stack, then each
   column transformed and stored straight into V (the portable version's three 36-vector arrays spill). */
AVX512 void cnnk_wino43_input_avx512(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H,
                                     int W, const int *img, const int *row0, const int *col0, int ntiles, float *V) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * C;
    __m512 t[6][6];
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = x + img[tile] * image_stride;
        float *out0 = V + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * C;
        for (int first = 0; first < C; first += 16) {
            int count = C - first < 16 ? C - first : 16;
            __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            for (int i = 0; i < 6; i++) {
                int r = r0 + i;
                __m512 d[6];
                for (int j = 0; j < 6; j++) {
                    int q = c0 + j;
                    d[j] = r >= 0 && r < H && q >= 0 && q < W
                               ? _mm512_maskz_loadu_ps(mask, image + ((ptrdiff_t)r * W + q) * pixel_stride + first)
                               : _mm512_setzero_ps();
                }
                input_6(d, t[i]);
            }
            float *out = out0 + first;
            for (int j = 0; j < 6; j++) {
                __m512 column[6], u[6];
                for (int i = 0; i < 6; i++) column[i] = t[i][j];
                input_6(column, u);
                for (int i = 0; i < 6; i++) _mm512_mask_storeu_ps(out + (i * 6 + j) * xi_stride, mask, u[i]);
            }
        }
    }
}

/* o = A^T m along one axis of 6 vectors (winograd43.c's output_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void output_6(const __m512 m[6], __m512 o[4]) {
    __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* r[c][k] = r[k][c] for a 16 x 16 block of floats, in registers (4 rounds of 16 shuffles). */
AVX512 static inline __attribute__((always_inline)) void transpose_16x16(__m512 r[16]) {
    __m512 a[16], b[16];
    for (int k = 0; k < 8; k++) { /* per 128-bit lane: [x0 y0 x1 y1], [x2 y2 x3 y3] */
        a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) { /* b[4k + m], lane L: column 4L + m of rows 4k..4k+3 */
        b[4 * k] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
        b[4 * k + 1] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
        b[4 * k + 2] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
        b[4 * k + 3] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) { /* column 4L + m: lane L of b[m], b[4 + m], b[8 + m], b[12 + m] */
        __m512 e0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44), e1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
        __m512 e2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
        __m512 e3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(e0, e2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(e0, e2, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(e1, e3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(e1, e3, 0xDD);
    }
}

/* The output transform's first axis for one tile's 16 filters from src (count of them real): t[i][j] = Σ_r A^T[i][r]
   m[r][j]; *shift = their biases (0 without); returns the mask of the real filters. */
AVX512 static inline __attribute__((always_inline)) __mmask16 output_columns(const float *src, ptrdiff_t xi_stride,
                                                                             int count, const float *bias,
                                                                             __m512 t[4][6], __m512 *shift) {
    for (int j = 0; j < 6; j++) {
        __m512 m[6], o[4];
        for (int r = 0; r < 6; r++) m[r] = _mm512_loadu_ps(src + (r * 6 + j) * xi_stride);
        output_6(m, o);
        for (int i = 0; i < 4; i++) t[i][j] = o[i];
    }
    __mmask16 filters = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
    *shift = bias ? _mm512_maskz_loadu_ps(filters, bias) : _mm512_setzero_ps();
    return filters;
}

/* cnnk_wino43_output for AVX-512 (same layout and formula, see winograd43.c): the 16 output cells of a tile for 16
   filters are transposed in registers, so each filter's 4 x 4 block is stored as 4 rows of 4 floats, not as 16
   scalars gathered across the lanes. */
#define OUTPUT_AHEAD 2

AVX512 static void output_nhwc(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                               int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                               ptrdiff_t pixel_stride);

AVX512 void cnnk_wino43_output_avx512(const float *M, int Kpad, int K, const int *img, const int *row0,
                                      const int *col0, int ntiles, const float *bias, float *y,
                                      ptrdiff_t image_stride, int P, int Q, ptrdiff_t pixel_stride) {
    if (pixel_stride) {
        output_nhwc(M, Kpad, K, img, row0, col0, ntiles, bias, y, image_stride, P, Q, pixel_stride);
        return;
    }
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad, PQ = (ptrdiff_t)P * Q;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        int rows = P - r0 < 4 ? P - r0 : 4, cols = Q - c0 < 4 ? Q - c0 : 4;
        float *image = y + img[tile] * image_stride + (ptrdiff_t)r0 * Q + c0;
        const float *src0 = M + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad;
        for (int first = 0; first < K; first += 16) {
            int count = K - first < 16 ? K - first : 16;
            const float *src = src0 + first;
            if (tile + OUTPUT_AHEAD < ntiles) { /* y's rows of a tile on (see the comment above) */
                int ahead = tile + OUTPUT_AHEAD;
                const float *at = y + img[ahead] * image_stride + (ptrdiff_t)row0[ahead] * Q + col0[ahead] + 3;
                int last = K - first < 16 ? K - first : 16, rows_ahead = P - row0[ahead] < 4 ? P - row0[ahead] : 4;
                for (int l = 0; l < last; l++)
                    for (int i = 0; i < rows_ahead; i++)
                        _mm_prefetch((const char *)(at + (first + l) * PQ + (ptrdiff_t)i * Q), _MM_HINT_T0);
            }
            __m512 t[4][6], cell[16], shift;
            output_columns(src, xi_stride, count, bias ? bias + first : NULL, t, &shift);
            for (int i = 0; i < 4; i++) { /* rows: cell[i*4 + j] = Σ_r t[i][r] A[r][j] */
                __m512 o[4];
                output_6(t[i], o);
                for (int j = 0; j < 4; j++) cell[i * 4 + j] = _mm512_add_ps(o[j], shift);
            }
            transpose_16x16(cell); /* cell[l]: filter first + l's 4 x 4 block, row-major */
            for (int l = 0; l < count; l++) {
                float *plane = image + (first + l) * PQ;
                if (cols == 4) {
                    for (int i = 0; i < rows; i++) {
                        __m128 row;
                        switch (i) { /* the lane index of an extract must be a constant */
                            case 0: row = _mm512_extractf32x4_ps(cell[l], 0); break;
                            case 1: row = _mm512_extractf32x4_ps(cell[l], 1); break;
                            case 2: row = _mm512_extractf32x4_ps(cell[l], 2); break;
                            default: row = _mm512_extractf32x4_ps(cell[l], 3); break;
                        }
                        _mm_storeu_ps(plane + (ptrdiff_t)i * Q, row);
                    }
                } else { /* the last column of tiles */
                    float block[16];
                    _mm512_storeu_ps(block, cell[l]);
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++) plane[(ptrdiff_t)i * Q + j] = block[i * 4 + j];
                }
            }
        }
    }
}

/* The output transform into a channels-last y (pixel_stride floats a pixel): each cell's 16 filters are one
   (masked) store, no transpose. */
AVX512 static void output_nhwc(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                               int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                               ptrdiff_t pixel_stride) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        int rows = P - r0 < 4 ? P - r0 : 4, cols = Q - c0 < 4 ? Q - c0 : 4;
        float *image = y + img[tile] * image_stride + ((ptrdiff_t)r0 * Q + c0) * pixel_stride;
        const float *src0 = M + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad;
        for (int first = 0; first < K; first += 16) {
            int count = K - first < 16 ? K - first : 16;
            const float *src = src0 + first;
            __m512 t[4][6], shift;
            __mmask16 filters = output_columns(src, xi_stride, count, bias ? bias + first : NULL, t, &shift);
            for (int i = 0; i < rows; i++) { /* rows: cell (i, j) = Σ_r t[i][r] A[r][j] */
                __m512 o[4];
                output_6(t[i], o);
                for (int j = 0; j < cols; j++)
                    _mm512_mask_storeu_ps(image + ((ptrdiff_t)i * Q + j) * pixel_stride + first, filters,
                                          _mm512_add_ps(o[j], shift));
            }
        }
    }
}

/* e = A a along one axis, 4 vectors to 6 (winograd43.c's grad_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void grad_4to6(const __m512 a[4], __m512 e[6]) {
    __m512 s02 = _mm512_add_ps(a[0], a[2]), s13 = _mm512_add_ps(a[1], a[3]);
    __m512 p02 = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), a[2], a[0]);
    __m512 p13 = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), a[3], _mm512_add_ps(a[1], a[1]));
    e[0] = a[0];
    e[1] = _mm512_add_ps(s02, s13);
    e[2] = _mm512_sub_ps(s02, s13);
    e[3] = _mm512_add_ps(p02, p13);
    e[4] = _mm512_sub_ps(p02, p13);
    e[5] = a[3];
}

/* cnnk_wino43_grad_output for AVX-512 (same layout and formula, see winograd43.c): 16 filters in one register;
   each row of dy's 4 x 4 tile loaded once (masked past K, zero outside P x Q) and transformed to 6, the 4 x 6
   partial results on the stack, then each column transformed and stored straight into D. */
AVX512 void cnnk_wino43_grad_output_avx512(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K,
                                           int P, int Q, const int *img, const int *row0, const int *col0, int ntiles,
                                           int Kpad, float *D) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad;
    __m512 t[4][6];
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = dy + img[tile] * image_stride;
        float *out0 = D + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad;
        for (int first = 0; first < Kpad; first += 16) {
            int count = K - first < 16 ? (K - first > 0 ? K - first : 0) : 16;
            __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            for (int i = 0; i < 4; i++) {
                __m512 a[4];
                for (int j = 0; j < 4; j++)
                    a[j] = r0 + i < P && c0 + j < Q
                               ? _mm512_maskz_loadu_ps(mask, image + ((ptrdiff_t)(r0 + i) * Q + c0 + j) * pixel_stride
                                                                 + first)
                               : _mm512_setzero_ps();
                grad_4to6(a, t[i]);
            }
            float *out = out0 + first;
            for (int j = 0; j < 6; j++) {
                __m512 column[4], u[6];
                for (int i = 0; i < 4; i++) column[i] = t[i][j];
                grad_4to6(column, u);
                for (int i = 0; i < 6; i++) _mm512_storeu_ps(out + (i * 6 + j) * xi_stride, u[i]);
            }
        }
    }
}

/* out[p·ldo + c] = x[c·ldi + p] (+ shift[p]) for c < C, p < HW, both multiples of 16: 16 x 16 blocks transposed in
   registers (4 rounds of 16 two-source shuffles, where AVX2's 8 x 8 blocks take 3 rounds of 8 for a quarter of the
   floats), the rows read ahead (they lie ldi apart: the hardware prefetchers do not follow them) */
AVX512 void cnnk_transpose16_avx512(const float *x, int C, int HW, ptrdiff_t ldi, ptrdiff_t ldo, const float *shift,
                                    float *out) {
    const int ahead = 128; /* pixels, as the AVX2 transpose's */
    for (int p0 = 0; p0 < HW; p0 += 16)
        for (int c0 = 0; c0 < C; c0 += 16) {
            const float *src = x + (ptrdiff_t)c0 * ldi + p0;
            __m512 r[16], t[16];
            if (p0 + ahead + 16 <= HW)
                for (int i = 0; i < 16; i++) _mm_prefetch((const char *)(src + i * ldi + ahead), _MM_HINT_T0);
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ldi);
            for (int i = 0; i < 16; i += 2) { /* pairs of rows interleaved */
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) { /* 4 rows' 4 pixels per 128-bit lane */
                r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
                r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
                r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
            }
            for (int i = 0; i < 4; i++) { /* lanes of rows 0-3 with 4-7, and of 8-11 with 12-15 */
                t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
                t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
                t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
                t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
            }
            for (int i = 0; i < 8; i++) { /* then the halves: each register one pixel's 16 channels */
                r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
                r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
            }
            float *dst = out + (ptrdiff_t)p0 * ldo + c0;
            if (shift) /* a bias per output row, added before the store (not in a second pass over out) */
                for (int i = 0; i < 16; i++) r[i] = _mm512_add_ps(r[i], _mm512_set1_ps(shift[p0 + i]));
            for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ldo, r[i]); /* register i: pixel p0 + i */
        }
}
#endif
