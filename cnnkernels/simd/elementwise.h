/* Elementwise activation loops: restrict-qualified so that the compiler vectorises each select. */
#ifndef CNNK_ELEMENTWISE_H
#define CNNK_ELEMENTWISE_H

#include <stddef.h>

/* y = x if x > 0 else slope*x; at slope 0 (relu != 0) max(x, 0), NaN kept */
void cnnk_leaky_relu_f32(const float *x, ptrdiff_t n, float slope, int relu, float *y);
void cnnk_leaky_relu_f64(const double *x, ptrdiff_t n, double slope, int relu, double *y);
/* dx = dy if x > 0 else slope*dy; at slope 0 (relu != 0) exactly 0 where x <= 0, else dy (NaN x too) */
void cnnk_leaky_relu_grad_f32(const float *dy, const float *x, ptrdiff_t n, float slope, int relu, float *dx);
void cnnk_leaky_relu_grad_f64(const double *dy, const double *x, ptrdiff_t n, double slope, int relu, double *dx);

#endif
