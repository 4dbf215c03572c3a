/* Elementwise activation loops: restrict-qualified so that the compiler vectorises each select. */
#ifndef CNNK_ELEMENTWISE_H
#define CNNK_ELEMENTWISE_H

#include <stddef.h>

/* dy == NULL: out = x if x > 0 else slope*x, and max(x, 0) at slope 0 (relu != 0), NaN kept;
   else the gradient: out = dy if x > 0 else slope*dy, and at slope 0 exactly 0 where x <= 0, else dy */
void cnnk_leaky_relu_f32(const float *x, const float *dy, ptrdiff_t n, float slope, int relu, float *out);
void cnnk_leaky_relu_f64(const double *x, const double *dy, ptrdiff_t n, double slope, int relu, double *out);

#endif
