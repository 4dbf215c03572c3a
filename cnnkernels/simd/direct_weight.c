/* The direct kernel's weight gradient, on the forward pass's stride-phase layout (see direct.c):

   dw[k, c, t] += Σ_n Σ_p,q dyt_n[p·Q + q, k] · xl_n[c·cstride + p·Wp + q + offset[t]]

   with dy channels-last (dyt: one row of K filters per output pixel). The lanes are filters: per output
   pixel, 32 filters' dy (2 vectors) times the broadcast input of each of up to 9 taps, into 18
   accumulators (2 loads and 9 broadcasts per 18 FMAs; 27 accumulators spilled to the stack, measured),
   summed over a chunk of images before they are stored. Each call owns its filters' rows of dw for one
   channel: the work splits by filters and channels, with no partial sums to add, and the result does not
   depend on the thread count. Arguments arrive validated from cnnkernels. */
#include <stddef.h>

#include "simd.h"
#include "winograd43.h"

static void weight_portable(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xl,
                            ptrdiff_t xl_image, int C, ptrdiff_t cstride, int Wp, const int *offset, int T, int images,
                            int k_begin, int k_end, int c, float *dw) {
    for (int k = k_begin; k < k_end; k++)
        for (int t = 0; t < T; t++) {
            float sum = 0.0f;
            for (int n = 0; n < images; n++) {
                const float *g = dyt + n * dy_image + k;
                const float *in = xl + n * xl_image + c * cstride + offset[t];
                for (int p = 0; p < P; p++)
                    for (int q = 0; q < Q; q++) sum += g[((ptrdiff_t)p * Q + q) * K] * in[(ptrdiff_t)p * Wp + q];
            }
            dw[((ptrdiff_t)k * C + c) * T + t] += sum;
        }
}

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

/* `vectors` (1 or 2) x 16 filters from k0 (the last vector masked to k_end) x `taps` taps from t0, channel c
   (constants after inlining: 18 accumulators at most, so that they stay in registers); dyt's rows are K floats */
AVX512 static inline __attribute__((always_inline)) void weight_block(
        const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xl, ptrdiff_t xl_image, int C,
        ptrdiff_t cstride, int Wp, const int *offset, int T, int images, int k0, int k_end, float *dw, int c, int t0,
        const int vectors, const int taps) {
    /* every loop over the block unrolled: with one left rolled, GCC kept acc in memory (a store per FMA) */
    __m512 acc[2][9];
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) acc[i][t] = _mm512_setzero_ps();
    int left = k_end - k0 - 16 * (vectors - 1); /* filters in the last vector */
    __mmask16 last = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
    for (int n = 0; n < images; n++) {
        const float *g = dyt + n * dy_image + k0, *in = xl + n * xl_image + c * cstride;
        for (int p = 0; p < P; p++, in += Wp) {
            const float *src[9];
#pragma GCC unroll 9
            for (int t = 0; t < taps; t++) src[t] = in + offset[t0 + t];
            for (int q = 0; q < Q; q++, g += K) {
                __m512 d0 = vectors == 1 ? _mm512_maskz_loadu_ps(last, g) : _mm512_loadu_ps(g);
                __m512 d1 = vectors == 2 ? _mm512_maskz_loadu_ps(last, g + 16) : d0;
#pragma GCC unroll 9
                for (int t = 0; t < taps; t++) {
                    __m512 v = _mm512_set1_ps(src[t][q]);
                    acc[0][t] = _mm512_fmadd_ps(d0, v, acc[0][t]);
                    if (vectors == 2) acc[1][t] = _mm512_fmadd_ps(d1, v, acc[1][t]);
                }
            }
        }
    }
    float sums[2][9][16];
#pragma GCC unroll 2
    for (int i = 0; i < vectors; i++)
#pragma GCC unroll 9
        for (int t = 0; t < taps; t++) _mm512_storeu_ps(sums[i][t], acc[i][t]);
    for (int i = 0; i < vectors; i++)
        for (int t = 0; t < taps; t++)
            for (int l = 0; l < 16 && k0 + 16 * i + l < k_end; l++)
                dw[((ptrdiff_t)(k0 + 16 * i + l) * C + c) * T + t0 + t] += sums[i][t][l];
}

#define TAPS(vectors, taps)                                                                                       \
    case taps:                                                                                                    \
        weight_block(dyt, dy_image, K, P, Q, xl, xl_image, C, cstride, Wp, offset, T, images, k0, k_end, dw, c,   \
                     t0, vectors, taps);                                                                          \
        break;
#define FILTERS(vectors)                                                                                          \
    AVX512 static void weight_vectors_##vectors(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q,        \
                                                const float *xl, ptrdiff_t xl_image, int C, ptrdiff_t cstride,    \
                                                int Wp, const int *offset, int T, int images, int k0, int k_end,  \
                                                float *dw, int c) {                                               \
        for (int t0 = 0; t0 < T; t0 += 9) switch (T - t0 < 9 ? T - t0 : 9) {                                     \
                TAPS(vectors, 1) TAPS(vectors, 2) TAPS(vectors, 3) TAPS(vectors, 4) TAPS(vectors, 5)              \
                TAPS(vectors, 6) TAPS(vectors, 7) TAPS(vectors, 8) TAPS(vectors, 9)                               \
            }                                                                                                     \
    }
FILTERS(1)
FILTERS(2)
#undef FILTERS
#undef TAPS
#endif

void cnnk_direct_weight(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xl, ptrdiff_t xl_image,
                        int C, ptrdiff_t cstride, int Wp, const int *offset, int T, int images, int k_begin,
                        int k_end, int c, float *dw) {
    /* dw[k, c, t] += Σ_n<images Σ_p,q dyt[n·dy_image + (p·Q + q)·K + k] · xl[n·xl_image + c·cstride + p·Wp + q +
       offset[t]] for k_begin <= k < k_end and the one channel c: blocks of 32 filters, the last 16 or 32 wide
       (masked to k_end) */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        for (int k0 = k_begin; k0 < k_end; k0 += 32) {
            if (k_end - k0 > 16)
                weight_vectors_2(dyt, dy_image, K, P, Q, xl, xl_image, C, cstride, Wp, offset, T, images, k0, k_end,
                                 dw, c);
            else
                weight_vectors_1(dyt, dy_image, K, P, Q, xl, xl_image, C, cstride, Wp, offset, T, images, k0, k_end,
                                 dw, c);
        }
        return;
    }
#endif
    weight_portable(dyt, dy_image, K, P, Q, xl, xl_image, C, cstride, Wp, offset, T, images, k_begin, k_end, c, dw);
}
