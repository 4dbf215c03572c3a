/* 2x2, stride-2 max pooling, a row of windows at a time: the common pooling, vectorised (see pool2x2.c). */
#ifndef CNNK_POOL2X2_H
#define CNNK_POOL2X2_H

/* out[q] = the largest of window q's cells top[2q], top[2q + 1], bottom[2q], bottom[2q + 1] (NaN if one is) */
void cnnk_max_2x2_row_f32(const float *top, const float *bottom, int Q, float *out);
void cnnk_max_2x2_row_f64(const double *top, const double *bottom, int Q, double *out);

/* window q's gradient g[q] to its first maximum in row-major order (its first NaN, if it has one), 0 to its other
   three cells: the whole of rows top_grad and bottom_grad up to 2Q */
void cnnk_max_2x2_grad_row_f32(const float *top, const float *bottom, const float *g, int Q, float *top_grad,
                               float *bottom_grad);
void cnnk_max_2x2_grad_row_f64(const double *top, const double *bottom, const double *g, int Q, double *top_grad,
                               double *bottom_grad);

#endif
