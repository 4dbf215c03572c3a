/* Direct convolution for few input channels (first layers), and the machine's FMA peak.

   y[k, p, q] = bias[k] + Σ_c,r,s x[c, p + r, q + s] · w[k, c, r, s] at stride 1, dilation 1, on an image padded
   once so the register blocks need no bounds checks. The AVX-512 block is in avx512.c; the ISA is the one
   winograd43.c chose (cnnk_simd_level). Arguments arrive validated from cnnkernels. */

#include <stddef.h>
#include <string.h>
#include <time.h>

#include "simd.h"
#include "winograd43.h"

#ifdef CNNK_HAVE_X86_SIMD
#include <immintrin.h>
#endif

void cnnk_direct_pack_filters(const float *w, int K, int C, int R, int S, int K6, float *wt) {
    /* wt[((c*R + r)*S + s)*K6 + k] = w[k, c, r, s], zero for K <= k < K6 */
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                for (int k = 0; k < K6; k++)
                    wt[(((ptrdiff_t)c * R + r) * S + s) * K6 + k] = k < K ? w[(((ptrdiff_t)k * C + c) * R + r) * S + s] : 0.0f;
}

void cnnk_direct_pad_image(const float *x, int C, int H, int W, int pt, int pl, int Hp, int Wp, float *xp) {
    /* xp[c, h + pt, w + pl] = x[c, h, w]; zero elsewhere (the kernel then needs no bounds checks) */
    memset(xp, 0, sizeof(float) * (size_t)C * Hp * Wp);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < H; h++) {
            int row = h + pt;
            if (row < 0 || row >= Hp) continue;
            int w0 = pl < 0 ? -pl : 0, w1 = W < Wp - pl ? W : Wp - pl;
            if (w1 > w0) memcpy(xp + ((ptrdiff_t)c * Hp + row) * Wp + w0 + pl, x + ((ptrdiff_t)c * H + h) * W + w0,
                                sizeof(float) * (size_t)(w1 - w0));
        }
}

typedef void (*direct_fn)(const float *xp, int C, int Hp, int Wp, const float *wt, int K, int K6, int R, int S,
                          const float *bias, float *y, int P, int Q, int p_begin, int p_end);

static void direct_portable(const float *xp, int C, int Hp, int Wp, const float *wt, int K, int K6, int R, int S,
                            const float *bias, float *y, int P, int Q, int p_begin, int p_end) {
    (void)Hp;
    for (int k = 0; k < K; k++)
        for (int p = p_begin; p < p_end; p++)
            for (int q = 0; q < Q; q++) {
                float sum = bias ? bias[k] : 0.0f;
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++)
                        for (int s = 0; s < S; s++)
                            sum += xp[((ptrdiff_t)c * Hp + p + r) * Wp + q + s] * wt[(((ptrdiff_t)c * R + r) * S + s) * K6 + k];
                y[((ptrdiff_t)k * P + p) * Q + q] = sum;
            }
}

#ifdef CNNK_HAVE_X86_SIMD
/* acc[i] += taps[i] · (v0, v1) for a register block's 6 filters (AVX2: 12 accumulators of 8). */
__attribute__((target("avx2,fma"), always_inline))
static inline void fma6_avx2(__m256 acc[6][2], const float *taps, __m256 v0, __m256 v1) {
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        __m256 a = _mm256_broadcast_ss(taps + i);
        acc[i][0] = _mm256_fmadd_ps(a, v0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(a, v1, acc[i][1]);
    }
}
#endif

#ifdef CNNK_HAVE_X86_SIMD
__attribute__((target("avx2,fma")))
static void direct_avx2(const float *xp, int C, int Hp, int Wp, const float *wt, int K, int K6, int R, int S,
                        const float *bias, float *y, int P, int Q, int p_begin, int p_end) {
    /* register block: 16 output pixels of one row x 6 filters (12 accumulators); one tap = 2 loads of
       the padded input row, 6 broadcasts of filter taps, 12 FMAs. Rows of Q not a multiple of 16 end
       with a masked store. */
    (void)Hp;
    ptrdiff_t PQ = (ptrdiff_t)P * Q;
    for (int p = p_begin; p < p_end; p++) {
        for (int q0 = 0; q0 < Q; q0 += 16) {
            int left = Q - q0;
            __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
            __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left - 8), lanes);
            for (int k0 = 0; k0 < K6; k0 += 6) {
                __m256 acc[6][2];
                for (int i = 0; i < 6; i++) {
                    float b = bias && k0 + i < K ? bias[k0 + i] : 0.0f;
                    acc[i][0] = acc[i][1] = _mm256_set1_ps(b);
                }
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < R; r++) {
                        const float *row = xp + ((ptrdiff_t)c * Hp + p + r) * Wp + q0;
                        const float *taps = wt + (((ptrdiff_t)c * R + r) * S) * K6 + k0;
                        for (int s = 0; s < S; s++, taps += K6)
                            fma6_avx2(acc, taps, _mm256_loadu_ps(row + s), _mm256_loadu_ps(row + s + 8));
                    }
                for (int i = 0; i < 6 && k0 + i < K; i++) {
                    float *out = y + (k0 + i) * PQ + (ptrdiff_t)p * Q + q0;
                    if (left >= 16) {
                        _mm256_storeu_ps(out, acc[i][0]);
                        _mm256_storeu_ps(out + 8, acc[i][1]);
                    } else {
                        _mm256_maskstore_ps(out, mask0, acc[i][0]);
                        if (left > 8) _mm256_maskstore_ps(out + 8, mask1, acc[i][1]);
                    }
                }
            }
        }
    }
}
#endif

int cnnk_direct_flat(int Q, int S) {
    /* whether the flat-run kernel serves this row length: AVX-512, and fewer lanes wasted than by whole rows
       (Q + S - 1 lanes a row against Q rounded up to 32) */
#ifdef CNNK_HAVE_X86_SIMD
    return cnnk_simd_level() == CNNK_AVX512 && Q + S - 1 < (Q + 31) / 32 * 32;
#else
    (void)Q, (void)S;
    return 0;
#endif
}

void cnnk_direct_forward(const float *xp, int C, int Hp, int Wp, const float *wt, int K, int K6, int R, int S,
                         const float *bias, float *y, int P, int Q, int p_begin, int p_end) {
    /* y[k, p, q] = bias[k] + Σ_c,r,s xp[c, p + r, q + s] · wt[c, r, s, k] for p_begin <= p < p_end, one image;
       xp is padded so every read is inside it: Wp >= Q + S - 1 + 16, or Wp = Q + S - 1 and a tail of
       CNNK_DIRECT_FLAT_TAIL floats where cnnk_direct_flat(Q, S) says so */
#ifdef CNNK_HAVE_X86_SIMD
    int level = cnnk_simd_level();
    if (level == CNNK_AVX512 && Wp == Q + S - 1) {
        cnnk_direct_flat_avx512(xp, C, Hp, Wp, wt, K, K6, R, S, bias, y, P, Q, p_begin, p_end);
        return;
    }
    if (level == CNNK_AVX512) {
        cnnk_direct_avx512(xp, C, Hp, Wp, wt, K, K6, R, S, bias, y, P, Q, p_begin, p_end);
        return;
    }
    if (level == CNNK_AVX2) {
        direct_avx2(xp, C, Hp, Wp, wt, K, K6, R, S, bias, y, P, Q, p_begin, p_end);
        return;
    }
#endif
    direct_portable(xp, C, Hp, Wp, wt, K, K6, R, S, bias, y, P, Q, p_begin, p_end);
}


/* ---- 1x1 convolution at stride 1: one product per image, on NCHW as it lies --------------------------- */

static inline ptrdiff_t pointwise_tap(int k, int c, int C, int Kpad, int G) {
    /* where w[k, c] goes: filters in groups of G (the register block's height), each group's taps channel by
       channel, the last group narrower; a block of filters from k0 reads from wt + k0*C, in order */
    int g0 = k / G * G, width = Kpad - g0 < G ? Kpad - g0 : G;
    return (ptrdiff_t)g0 * C + (ptrdiff_t)c * width + (k - g0);
}

static int pointwise_group(void) {
    return cnnk_simd_level() == CNNK_AVX512 ? 12 : 6;
}

int cnnk_pointwise_padded_filters(int K) {
    /* the filters the kernel computes: blocks of 12 and one of 8 or 4 (AVX-512), of 6 (the others) */
    int step = cnnk_simd_level() == CNNK_AVX512 ? 4 : 6;
    return (K + step - 1) / step * step;
}

void cnnk_pointwise_pack_filters(const float *w, int K, int C, int Kpad, float *wt) {
    /* wt[pointwise_tap(k, c)] = w[k, c], zero for K <= k < Kpad: each block of filters reads its taps as one
       contiguous stream (a stride of Kpad floats would miss the L1 cache at every channel) */
    int G = pointwise_group();
    for (int k = 0; k < Kpad; k++)
        for (int c = 0; c < C; c++) wt[pointwise_tap(k, c, C, Kpad, G)] = k < K ? w[(ptrdiff_t)k * C + c] : 0.0f;
}

static void pointwise_portable(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int K6,
                               const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end) {
    /* one filter's row at a time: the pixels' rows are read in order */
    int G = pointwise_group();
    for (int k = 0; k < K; k++) {
        float *out = y + k * PQ;
        for (ptrdiff_t q = q_begin; q < q_end; q++) out[q] = bias ? bias[k] : 0.0f;
        for (int c = 0; c < C; c++) {
            float a = wt[pointwise_tap(k, c, C, K6, G)];
            const float *in = x + c * PQ;
            for (ptrdiff_t q = q_begin; q < q_end; q++) out[q] += a * in[q];
        }
    }
}

#ifdef CNNK_HAVE_X86_SIMD
__attribute__((target("avx2,fma")))
static void pointwise_avx2(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int K6,
                           const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end, float *panel) {
    /* register block: 6 filters x 16 pixels (12 accumulators), the 16 pixels' channels first copied side by
       side (see the AVX-512 kernel for why) */
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (ptrdiff_t q0 = q_begin; q0 < q_end; q0 += 16) {
        int left = q_end - q0 < 16 ? (int)(q_end - q0) : 16;
        __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
        __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left - 8), lanes);
        const float *in = x + q0;
        for (int c = 0; c < C; c++, in += PQ) {
            _mm256_storeu_ps(panel + c * 16, _mm256_maskload_ps(in, mask0));
            _mm256_storeu_ps(panel + c * 16 + 8, _mm256_maskload_ps(in + 8, mask1));
        }
        for (int k0 = 0; k0 < K6; k0 += 6) {
            __m256 acc[6][2];
            for (int i = 0; i < 6; i++)
                acc[i][0] = acc[i][1] = _mm256_set1_ps(bias && k0 + i < K ? bias[k0 + i] : 0.0f);
            const float *v = panel, *taps = wt + (ptrdiff_t)k0 * C;
            for (int c = 0; c < C; c++, v += 16, taps += 6)
                fma6_avx2(acc, taps, _mm256_loadu_ps(v), _mm256_loadu_ps(v + 8));
            for (int i = 0; i < 6 && k0 + i < K; i++) {
                float *out = y + (k0 + i) * PQ + q0;
                _mm256_maskstore_ps(out, mask0, acc[i][0]);
                _mm256_maskstore_ps(out + 8, mask1, acc[i][1]);
            }
        }
    }
}
#endif

void cnnk_pointwise_forward(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int Kpad,
                            const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end, float *panel) {
    /* y[k, q] = bias[k] + Σ_c wt[c, k] · x[c, q] for q_begin <= q < q_end, one image: x is (C, PQ), y (K, PQ),
       wt from cnnk_pointwise_pack_filters (Kpad = cnnk_pointwise_padded_filters(K)); panel: 32·C floats */
#ifdef CNNK_HAVE_X86_SIMD
    int level = cnnk_simd_level();
    if (level == CNNK_AVX512) {
        cnnk_pointwise_avx512(x, C, PQ, wt, K, Kpad, bias, y, q_begin, q_end, panel);
        return;
    }
    if (level == CNNK_AVX2) {
        pointwise_avx2(x, C, PQ, wt, K, Kpad, bias, y, q_begin, q_end, panel);
        return;
    }
#endif
    (void)panel;
    pointwise_portable(x, C, PQ, wt, K, Kpad, bias, y, q_begin, q_end);
}

/* ---- the machine's FMA peak, for the benchmark's reference line ------------------------------------ */

#ifdef CNNK_HAVE_X86_SIMD
__attribute__((target("avx2,fma")))
static float fma_chains_avx2(long rounds) {
    __m256 a[10], b = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-8f);
    for (int i = 0; i < 10; i++) a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < rounds; k++) {
#pragma GCC unroll 10
        for (int i = 0; i < 10; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
    }
    __m256 sum = a[0];
    for (int i = 1; i < 10; i++) sum = _mm256_add_ps(sum, a[i]);
    float out[8];
    _mm256_storeu_ps(out, sum);
    return out[0];
}
#endif

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) + 1e-9 * (t1.tv_nsec - t0->tv_nsec);
}

double cnnk_fma_peak_gflops(void) {
    /* independent chains of FMAs at the chosen width (enough to hide the latency on 2 FMA pipes), ~0.1 s */
#ifdef CNNK_HAVE_X86_SIMD
    int level = cnnk_simd_level();
    struct timespec t0;
    volatile float sink;
    if (level == CNNK_AVX512) {
        long rounds = 10000000;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sink = cnnk_fma_chains_avx512(rounds);
        (void)sink;
        return rounds * 12.0 * 32.0 / seconds_since(&t0) / 1e9;
    }
    if (level == CNNK_AVX2) {
        long rounds = 20000000;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sink = fma_chains_avx2(rounds);
        (void)sink;
        return rounds * 10.0 * 16.0 / seconds_since(&t0) / 1e9;
    }
#endif
    return 0.0; /* no SIMD kernels here: no peak to compare with */
}
