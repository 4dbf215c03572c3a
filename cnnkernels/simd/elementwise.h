/* Elementwise loops (activations, optimizer steps): restrict-qualified so that the compiler vectorises them. */
#ifndef CNNK_ELEMENTWISE_H
#define CNNK_ELEMENTWISE_H

#include <stddef.h>

/* dy == NULL: out = x if x > 0 else slope*x, and max(x, 0) at slope 0 (relu != 0), NaN kept;
   else the gradient: out = dy if x > 0 else slope*dy, and at slope 0 exactly 0 where x <= 0, else dy.
   The forward pass may run in place (out == x); the gradient may not */
void cnnk_leaky_relu_f32(const float *x, const float *dy, ptrdiff_t n, float slope, int relu, float *out);
void cnnk_leaky_relu_f64(const double *x, const double *dy, ptrdiff_t n, double slope, int relu, double *out);

/* one optimizer step in place: RMSprop a = rho*a + (1 - rho)*g*g, w -= lr*g / sqrt(a + eps);
   Adam m += (g - m)*(1 - beta_1), v += (g*g - v)*(1 - beta_2), w -= step_size*m / (sqrt(v) + eps) */
void cnnk_rmsprop_f32(const float *g, ptrdiff_t n, double lr, double rho, double eps, float *w, float *a);
void cnnk_rmsprop_f64(const double *g, ptrdiff_t n, double lr, double rho, double eps, double *w, double *a);
void cnnk_adam_f32(const float *g, ptrdiff_t n, double step_size, double beta_1, double beta_2, double eps, float *w,
                   float *m, float *v);
void cnnk_adam_f64(const double *g, ptrdiff_t n, double step_size, double beta_1, double beta_2, double eps,
                   double *w, double *m, double *v);

#endif
