/* Winograd F(2x2, 3x3) with one output tile per SIMD lane, float32; see winograd22.c. */
#ifndef CNNK_WINOGRAD22_H
#define CNNK_WINOGRAD22_H

#include <stddef.h>

#define CNNK_WINO22_TAIL 64 /* floats after a layout's last channel that the vector kernel may read */

ptrdiff_t cnnk_wino22_transformed_floats(int C, int rows, int Wp);
void cnnk_wino22_filter(const float *w, int K, int C, int Kpad, float *U);
void cnnk_wino22_layout(const float *x, int C, int H, int W, int pt, int pl, int tp0, int Hph, int Wp, float *xp);
void cnnk_wino22_forward(const float *xp, int C, int Hph, int Wp, const float *U, int K, int Kpad, const float *bias,
                         float *y, int P, int Q, int tp0, int rows, float *V, float *M);

#endif
