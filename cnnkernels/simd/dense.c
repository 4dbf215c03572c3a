/* Products with few rows (dense layers: a batch of 32 rows times a 1600 x 100 kernel), float32, AVX-512.

   out[i, j] = Σ_k a[i·a_row + k·a_col] · b[k·b_row + j]: b's rows are read where they lie, 4 vectors (64
   columns) at a time, while 6 rows of a are broadcast a value at a time (24 accumulators; 10 loads per 24 FMAs,
   b read from L2 once per 6 rows: with 3 rows x 7 vectors the loop ran at a third of the FMA peak).
   The packed product (cnnk_pack_columns + cnnk_gemm_rows) copies all of b first: for 32 rows that copy cost
   as much as the product. b's rows stay in L2 between a thread's blocks of rows; a may have any strides
   (a transposed view: its values are broadcast one by one anyway). Arguments arrive validated from cnnkernels. */
#include <stddef.h>

#include "dense.h"
#include "simd.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

#define STREAM_ROWS 6
#define STREAM_VECTORS 4
#define STREAM_AHEAD 16 /* rows of b: measured at 1 thread, 32 x 1600 x 100: 82 µs without, 72-75 at 4 to 16 */

/* `rows` (1-6) rows from i0 x `vectors` (1-4) vectors of columns from j0, the last vector masked by `last` */
AVX512 static inline __attribute__((always_inline)) void stream_block(
        const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b, ptrdiff_t b_row, int K, float *out,
        ptrdiff_t out_row, int i0, int j0, __mmask16 last, const int rows, const int vectors) {
    __m512 acc[STREAM_ROWS][STREAM_VECTORS];
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_setzero_ps();
    const float *row_of_b = b + j0, *column_of_a = a + i0 * a_row;
    for (int k = 0; k < K; k++, row_of_b += b_row, column_of_a += a_col) {
        __m512 scale[STREAM_ROWS];
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) scale[r] = _mm512_set1_ps(column_of_a[r * a_row]);
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            _mm_prefetch((const char *)(row_of_b + STREAM_AHEAD * b_row + 16 * v), _MM_HINT_T0);
            __m512 values = v == vectors - 1 ? _mm512_maskz_loadu_ps(last, row_of_b + 16 * v)
                                             : _mm512_loadu_ps(row_of_b + 16 * v);
            __asm__("" : "+v"(values)); /* one load for its FMAs (GCC folded it into each: a load per FMA) */
#pragma GCC unroll 6
            for (int r = 0; r < rows; r++) acc[r][v] = _mm512_fmadd_ps(scale[r], values, acc[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            float *to = out + (i0 + r) * out_row + j0 + 16 * v;
            if (v == vectors - 1)
                _mm512_mask_storeu_ps(to, last, acc[r][v]);
            else
                _mm512_storeu_ps(to, acc[r][v]);
        }
}

#define STREAM_ROWS_CASE(ROWS)                                                                                 \
    switch (vectors) {                                                                                         \
        case 1: stream_block(a, a_row, a_col, b, b_row, K, out, out_row, i0, j0, last, ROWS, 1); break;       \
        case 2: stream_block(a, a_row, a_col, b, b_row, K, out, out_row, i0, j0, last, ROWS, 2); break;       \
        case 3: stream_block(a, a_row, a_col, b, b_row, K, out, out_row, i0, j0, last, ROWS, 3); break;       \
        default: stream_block(a, a_row, a_col, b, b_row, K, out, out_row, i0, j0, last, ROWS, 4); break;      \
    }

AVX512 static void stream_avx512(const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b, ptrdiff_t b_row,
                                 int K, int i_begin, int i_end, int j_begin, int j_end, float *out,
                                 ptrdiff_t out_row) {
    for (int j0 = j_begin; j0 < j_end; j0 += 16 * STREAM_VECTORS) {
        int columns = j_end - j0 < 16 * STREAM_VECTORS ? j_end - j0 : 16 * STREAM_VECTORS;
        int vectors = (columns + 15) / 16, tail = columns - 16 * (vectors - 1);
        __mmask16 last = (__mmask16)(tail >= 16 ? 0xFFFF : (1u << tail) - 1);
        int i0 = i_begin;
        for (; i0 + STREAM_ROWS <= i_end; i0 += STREAM_ROWS) STREAM_ROWS_CASE(6)
        switch (i_end - i0) {
            case 5: STREAM_ROWS_CASE(5) break;
            case 4: STREAM_ROWS_CASE(4) break;
            case 3: STREAM_ROWS_CASE(3) break;
            case 2: STREAM_ROWS_CASE(2) break;
            case 1: STREAM_ROWS_CASE(1) break;
            default: break;
        }
    }
}
#endif

int cnnk_stream_product(const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b, ptrdiff_t b_row, int K,
                        int i_begin, int i_end, int j_begin, int j_end, float *out, ptrdiff_t out_row) {
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        stream_avx512(a, a_row, a_col, b, b_row, K, i_begin, i_end, j_begin, j_end, out, out_row);
        return 1;
    }
#endif
    (void)a, (void)a_row, (void)a_col, (void)b, (void)b_row, (void)K, (void)i_begin, (void)i_end, (void)j_begin;
    (void)j_end, (void)out, (void)out_row;
    return 0;
}
