/* Winograd F(4x4, 3x3) transforms, float32; see winograd43.c. */
#ifndef CNNK_WINOGRAD43_H
#define CNNK_WINOGRAD43_H

#include <stddef.h>

void cnnk_nchw_to_nhwc(const float *x, int C, int HW, float *out);
void cnnk_wino43_input(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                       const int *img, const int *row0, const int *col0, int ntiles, float *V);
void cnnk_wino43_multiply(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel);
void cnnk_wino43_output(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                        int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q);
void cnnk_wino43_filter(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U);
const char *cnnk_simd_isa(void);

#endif
