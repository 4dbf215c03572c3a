/* Per-channel float64 sums of float32 strips: `strips` strips of L values, `pitch` floats apart (see moments.c). */
#ifndef CNNK_MOMENTS_H
#define CNNK_MOMENTS_H

#include <stddef.h>

double cnnk_channel_sum_f32(const float *first, ptrdiff_t strips, ptrdiff_t pitch, ptrdiff_t L);
double cnnk_channel_squares_f32(const float *first, ptrdiff_t strips, ptrdiff_t pitch, ptrdiff_t L, double centre);
double cnnk_channel_dot_f32(const float *grad, const float *values, ptrdiff_t strips, ptrdiff_t pitch, ptrdiff_t L,
                            double centre);
double cnnk_channel_relu_sum_f32(const float *dy, const float *y, float *dz, ptrdiff_t strips, ptrdiff_t pitch,
                                 ptrdiff_t L, float slope);
void cnnk_pixel_sums_f32(const float *x, ptrdiff_t rows, ptrdiff_t pitch, int width, double *sums);

#endif
