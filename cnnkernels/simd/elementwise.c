/* Elementwise activation loops, compiled once per ISA (CNNK_CLONES). Every value is loaded and both
 * sides of the select computed, so that the loop is branch-free: with a branch on x's sign, random
 * signs were mispredicted about every other value (10x slower, measured). */
#include "elementwise.h"

#include "simd.h"

#define LEAKY(T, SUFFIX)                                                                                    \
    CNNK_CLONES static void forward_##SUFFIX(const T *restrict x, ptrdiff_t n, T slope, int relu, T *restrict y) { \
        if (relu) {                                                                                         \
            for (ptrdiff_t i = 0; i < n; i++) y[i] = !(x[i] <= 0) ? x[i] : (T)0; /* NaN: not <= 0 */         \
        } else {                                                                                            \
            for (ptrdiff_t i = 0; i < n; i++) {                                                             \
                T value = x[i], scaled = x[i] * slope;                                                      \
                y[i] = value > 0 ? value : scaled;                                                          \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
    CNNK_CLONES static void gradient_##SUFFIX(const T *restrict x, const T *restrict dy, ptrdiff_t n, T slope,  \
                                              int relu, T *restrict dx) {                                   \
        if (relu) {                                                                                         \
            for (ptrdiff_t i = 0; i < n; i++) dx[i] = x[i] <= 0 ? (T)0 : dy[i]; /* NaN passes dy */          \
        } else {                                                                                            \
            for (ptrdiff_t i = 0; i < n; i++) {                                                             \
                T grad = dy[i], scaled = dy[i] * slope;                                                     \
                dx[i] = x[i] > 0 ? grad : scaled;                                                           \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
    /* in place: one pointer, so the loop vectorises without the restrict that x == y would break */     \
    CNNK_CLONES static void in_place_##SUFFIX(T *x, ptrdiff_t n, T slope, int relu) {                       \
        if (relu) {                                                                                         \
            for (ptrdiff_t i = 0; i < n; i++) x[i] = !(x[i] <= 0) ? x[i] : (T)0;                            \
        } else {                                                                                            \
            for (ptrdiff_t i = 0; i < n; i++) {                                                             \
                T value = x[i], scaled = x[i] * slope;                                                      \
                x[i] = value > 0 ? value : scaled;                                                          \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
    void cnnk_leaky_relu_##SUFFIX(const T *x, const T *dy, ptrdiff_t n, T slope, int relu, T *out) {        \
        if (dy)                                                                                             \
            gradient_##SUFFIX(x, dy, n, slope, relu, out);                                                  \
        else if (out == x)                                                                                  \
            in_place_##SUFFIX(out, n, slope, relu);                                                         \
        else                                                                                                \
            forward_##SUFFIX(x, n, slope, relu, out);                                                       \
    }

LEAKY(float, f32)
LEAKY(double, f64)

/* Optimizer steps in place, one pass over the arrays (NumPy's expressions take six or seven, with temporaries).
 * The operations and their rounding are NumPy's for the same expressions (see cnnkernels.updates): no
 * contraction into FMAs and no errno for sqrt (setup.py compiles this file so), and Adam's increment in double,
 * as NumPy computes it with a float64 step size. */
#define UPDATES(T, SUFFIX)                                                                                  \
    CNNK_CLONES void cnnk_rmsprop_##SUFFIX(                    \
            const T *restrict g, ptrdiff_t n, double lr_, double rho, double eps_, T *restrict w, T *restrict a) { \
        T keep = (T)rho, take = (T)(1.0 - rho), lr = (T)lr_, eps = (T)eps_; /* NumPy's: 1 − ρ in double */ \
        for (ptrdiff_t i = 0; i < n; i++) {                                                                 \
            T average = a[i] * keep + (g[i] * g[i]) * take;                                                 \
            a[i] = average;                                                                                 \
            w[i] = w[i] - (lr * g[i]) / SQRT_##SUFFIX(average + eps);                                       \
        }                                                                                                   \
    }                                                                                                       \
    CNNK_CLONES void cnnk_adam_##SUFFIX(                       \
            const T *restrict g, ptrdiff_t n, double step_size, double beta_1, double beta_2, double eps_,  \
            T *restrict w, T *restrict m, T *restrict v) {                                                  \
        T take_1 = (T)(1.0 - beta_1), take_2 = (T)(1.0 - beta_2), eps = (T)eps_;                           \
        for (ptrdiff_t i = 0; i < n; i++) {                                                                 \
            T first = m[i] + (g[i] - m[i]) * take_1, second = v[i] + (g[i] * g[i] - v[i]) * take_2;       \
            m[i] = first;                                                                                   \
            v[i] = second;                                                                                  \
            w[i] = (T)((double)w[i] - ((double)first * step_size) / (double)(SQRT_##SUFFIX(second) + eps)); \
        }                                                                                                   \
    }

#define SQRT_f32 __builtin_sqrtf
#define SQRT_f64 __builtin_sqrt
UPDATES(float, f32)
UPDATES(double, f64)
