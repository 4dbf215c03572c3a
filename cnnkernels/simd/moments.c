/* Per-channel sums of float32 strips in float64 (batch normalisation's moments and gradients, a convolution's
 * bias gradient), compiled once per ISA (CNNK_CLONES).
 *
 * Each sum runs over LANES independent float64 accumulators, value i going to accumulator i mod LANES of its
 * strip, which the compiler keeps in vector registers (4 x 8 doubles on AVX-512): one running sum is a chain of
 * dependent additions, 4 cycles each, and the Cython loop's 8 scalar sums ran at about one value a cycle. The
 * accumulators are added pairwise at the end. The order is fixed by the strip lengths alone, so every ISA's
 * clone and every thread count gives the same bits (this file is built with -ffp-contract=off: no a*b + c
 * fused on one ISA and not on another). */
#include "moments.h"

#include <stdint.h>
#include <string.h>

#include "simd.h"

#define LANES 32

static double combine(double *acc) {
    for (int width = LANES / 2; width >= 1; width /= 2)
        for (int j = 0; j < width; j++) acc[j] += acc[j + width];
    return acc[0];
}

CNNK_CLONES double cnnk_channel_sum_f32(const float *restrict first, ptrdiff_t strips, ptrdiff_t pitch,
                                        ptrdiff_t L) {
    /* Σ_n Σ_i first[n·pitch + i] for n < strips, i < L */
    double acc[LANES] = {0};
    for (ptrdiff_t n = 0; n < strips; n++) {
        const float *restrict v = first + n * pitch;
        ptrdiff_t i = 0;
        for (; i + LANES <= L; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (double)v[i + j];
        for (int j = 0; i < L; i++, j++) acc[j] += (double)v[i];
    }
    return combine(acc);
}

CNNK_CLONES double cnnk_channel_squares_f32(const float *restrict first, ptrdiff_t strips, ptrdiff_t pitch,
                                            ptrdiff_t L, double centre) {
    /* Σ_n Σ_i (first[n·pitch + i] − centre)² */
    double acc[LANES] = {0};
    for (ptrdiff_t n = 0; n < strips; n++) {
        const float *restrict v = first + n * pitch;
        ptrdiff_t i = 0;
        for (; i + LANES <= L; i += LANES)
            for (int j = 0; j < LANES; j++) {
                double d = (double)v[i + j] - centre;
                acc[j] += d * d;
            }
        for (int j = 0; i < L; i++, j++) {
            double d = (double)v[i] - centre;
            acc[j] += d * d;
        }
    }
    return combine(acc);
}

CNNK_CLONES double cnnk_channel_dot_f32(const float *restrict grad, const float *restrict values, ptrdiff_t strips,
                                        ptrdiff_t pitch, ptrdiff_t L, double centre) {
    /* Σ_n Σ_i grad[n·pitch + i]·(values[n·pitch + i] − centre) */
    double acc[LANES] = {0};
    for (ptrdiff_t n = 0; n < strips; n++) {
        const float *restrict g = grad + n * pitch, *restrict v = values + n * pitch;
        ptrdiff_t i = 0;
        for (; i + LANES <= L; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (double)g[i + j] * ((double)v[i + j] - centre);
        for (int j = 0; i < L; i++, j++) acc[j] += (double)g[i] * ((double)v[i] - centre);
    }
    return combine(acc);
}

/* grad where y passes ReLU (y > 0, or NaN), else +0: by a mask, so that the loop vectorises (written as a select,
   GCC branched on it: mispredicted on random signs) */
static inline float relu_gradient(float grad, float y) {
    uint32_t bits;
    memcpy(&bits, &grad, sizeof bits);
    bits &= (uint32_t)0 - (uint32_t)!(y <= 0);
    memcpy(&grad, &bits, sizeof bits);
    return grad;
}

/* grad where y > 0, else slope·grad (leaky_relu_backward's select, a NaN y taking slope·grad), by the same mask */
static inline float leaky_gradient(float grad, float y, float slope) {
    float scaled = grad * slope;
    uint32_t bits, other, mask = (uint32_t)0 - (uint32_t)(y > 0);
    memcpy(&bits, &grad, sizeof bits);
    memcpy(&other, &scaled, sizeof other);
    bits = (bits & mask) | (other & ~mask);
    memcpy(&grad, &bits, sizeof bits);
    return grad;
}

/* one channel's strips through the gradient, and their sum in the order of cnnk_channel_sum_f32 (leaky a constant
   after inlining: one vectorised loop each) */
static inline __attribute__((always_inline)) double gradient_sum(const float *restrict dy, const float *restrict y,
                                                                 float *restrict dz, ptrdiff_t strips, ptrdiff_t pitch,
                                                                 ptrdiff_t L, float slope, const int leaky) {
    double acc[LANES] = {0};
    for (ptrdiff_t n = 0; n < strips; n++) {
        const float *restrict g = dy + n * pitch, *restrict v = y + n * pitch;
        float *restrict d = dz + n * pitch;
        ptrdiff_t i = 0;
        for (; i + LANES <= L; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float value = leaky ? leaky_gradient(g[i + j], v[i + j], slope) : relu_gradient(g[i + j], v[i + j]);
                d[i + j] = value;
                acc[j] += (double)value;
            }
        for (int j = 0; i < L; i++, j++) {
            float value = leaky ? leaky_gradient(g[i], v[i], slope) : relu_gradient(g[i], v[i]);
            d[i] = value;
            acc[j] += (double)value;
        }
    }
    return combine(acc);
}

CNNK_CLONES double cnnk_channel_relu_sum_f32(const float *restrict dy, const float *restrict y, float *restrict dz,
                                            ptrdiff_t strips, ptrdiff_t pitch, ptrdiff_t L, float slope) {
    /* dz = leaky_relu_backward(dy, y, slope) for one channel's strips (at slope 0 ReLU's: 0 where y <= 0, a NaN y
       passing dy), and Σ dz in the order of cnnk_channel_sum_f32 on dz: one pass where the gradient and then its
       sum took two */
    return slope == 0.0f ? gradient_sum(dy, y, dz, strips, pitch, L, slope, 0)
                         : gradient_sum(dy, y, dz, strips, pitch, L, slope, 1);
}

CNNK_CLONES
void cnnk_pixel_sums_f32(const float *x, ptrdiff_t rows, ptrdiff_t pitch, int width, double *sums) {
    /* sums[j] = Σ_i x[i·pitch + j] for j < width <= 16, in float64, rows in order: the channel sums of up to 16
       channels of a channels-last array (rows = pixels), one 64-byte run a row */
    double acc[16] = {0};
    if (width == 16)
        for (ptrdiff_t i = 0; i < rows; i++)
            for (int j = 0; j < 16; j++) acc[j] += x[i * pitch + j];
    else
        for (ptrdiff_t i = 0; i < rows; i++)
            for (int j = 0; j < width; j++) acc[j] += x[i * pitch + j];
    for (int j = 0; j < width; j++) sums[j] = acc[j];
}
