/* Products with few rows: b's rows read in place (see dense.c). */
#ifndef CNNK_DENSE_H
#define CNNK_DENSE_H

#include <stddef.h>

/* out[i·out_row + j] = Σ_k<K a[i·a_row + k·a_col] · b[k·b_row + j] for i_begin <= i < i_end, j_begin <= j < j_end;
   AVX-512 only: returns 0, doing nothing, elsewhere */
int cnnk_stream_product(const float *a, ptrdiff_t a_row, ptrdiff_t a_col, const float *b, ptrdiff_t b_row, int K,
                        int i_begin, int i_end, int j_begin, int j_end, float *out, ptrdiff_t out_row);

#endif
