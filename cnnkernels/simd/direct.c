/* Direct convolution for few input channels (first layers) and strided layers, and the machine's FMA peak.

   y[k, p, q] = bias[k] + Σ_c,t xp[c, p·Wp + q + offset[t]] · w[k, c, t] over an image laid out once so the
   register blocks need neither bounds checks nor strides: the image split into its stride phases (polyphase),
   phase (a, b) holding x[c, i·sh + a − pt, j·sw + b − pl] at (i, j), each plane Wp floats a row. Tap t = (r, s)
   of the filter then reads phase ((r·dh) mod sh, (s·dw) mod sw) at row p + r·dh div sh, column q + s·dw div sw,
   one fixed offset from the output pixel's position: every stride and dilation runs as a stride-1 sum over
   a table of T = R·S offsets (at stride 1 the one phase is the padded image, offset[t] = r·dh·Wp + s·dw).
   The AVX-512 blocks are in avx512.c and direct_flat.c; the ISA is the one winograd43.c chose
   (cnnk_simd_level). The filters are packed as the 1x1 kernel's (cnnk_pointwise_pack_filters over C·R·S
   "channels"). Arguments arrive validated from cnnkernels. */

#include <stddef.h>
#include <string.h>
#include <time.h>

#include "simd.h"
#include "winograd43.h"

#ifdef CNNK_HAVE_X86_SIMD
#include <immintrin.h>
#endif

#ifdef CNNK_HAVE_X86_SIMD
__attribute__((target("avx512f")))
static void phase_row_avx512(const float *src, int W, int start, int step, int count, float *dst) {
    /* dst[j] = src[start + j·step] where 0 <= start + j·step < W, else 0, for j < count and step 1 or 2: per 16
       floats two masked loads (lanes outside the row are never read) and one two-source permute. A first chunk
       that starts left of the row loads from src[0] and shifts its lanes by the permute */
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i spread = _mm512_mullo_epi32(lane, _mm512_set1_epi32(step));
    for (int j = 0; j < count; j += 16) {
        int first = start + j * step, base = first > 0 ? first : 0;
        int left = W - base; /* row floats from base on */
        __mmask16 low = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        __mmask16 high = left >= 32 ? 0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        __m512 a = _mm512_maskz_loadu_ps(low, src + base), b = _mm512_maskz_loadu_ps(high, src + base + 16);
        __m512i column = _mm512_add_epi32(spread, _mm512_set1_epi32(first));
        __mmask16 inside = _mm512_cmpge_epi32_mask(column, _mm512_setzero_si512()) &
                           _mm512_cmplt_epi32_mask(column, _mm512_set1_epi32(W));
        if (count - j < 16) inside &= (__mmask16)((1u << (count - j)) - 1);
        __m512 row = _mm512_maskz_permutex2var_ps(inside, a, _mm512_sub_epi32(column, _mm512_set1_epi32(base)), b);
        _mm512_mask_storeu_ps(dst + j, (__mmask16)(count - j < 16 ? (1u << (count - j)) - 1 : 0xFFFF), row);
    }
}
#endif

static void take_every(const float *src, int step, int count, float *dst) {
    /* dst[j] = src[j·step] for j < count */
    for (int j = 0; j < count; j++) dst[j] = src[(ptrdiff_t)j * step];
}

int cnnk_direct_row_floats(int W, int pl, int sw, int Wp) {
    /* the scratch row cnnk_direct_phase_image needs: an image row padded to every phase's reach, and slack */
    int reach = Wp * sw + sw + 32;
    return reach > W + pl ? reach : W + pl;
}

void cnnk_direct_phase_image(const float *x, int C, int H, int W, int sh, int sw, int pt, int pl,
                             const int *row_phase, int row_phases, const int *col_phase, int col_phases, int i0,
                             int Hph, int Wp, float *xp, float *row) {
    /* xp[c, ia, ib, i, j] = x[c, (i0 + i)·sh + row_phase[ia] − pt, j·sw + col_phase[ib] − pl], zero outside x:
       rows i0 <= i < i0 + Hph of the phases the filter's taps read, Wp floats a row. The image's rows are read in
       order (row i of every row phase, then row i + 1: the prefetchers see one stream). On AVX-512 at stride 2
       each phase row is one pass of masked loads; otherwise at stride 1 the rows are copied in place, and
       at larger strides each image row is first padded in `row` (cnnk_direct_row_floats), so that every phase
       is one strided pass without edges. */
    ptrdiff_t plane = (ptrdiff_t)Hph * Wp;
    int reach = cnnk_direct_row_floats(W, pl, sw, Wp), vector = 0;
#ifdef CNNK_HAVE_X86_SIMD
    vector = sw == 2 && cnnk_simd_level() == CNNK_AVX512; /* at stride 1, memcpy measured faster */
#endif
    if (sw > 1 && !vector) memset(row, 0, sizeof(float) * (size_t)reach);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < Hph; i++)
            for (int ia = 0; ia < row_phases; ia++) {
                int h = (i0 + i) * sh + row_phase[ia] - pt;
                float *dst = xp + (((ptrdiff_t)c * row_phases + ia) * col_phases * Hph + i) * Wp;
                if (h < 0 || h >= H) {
                    for (int ib = 0; ib < col_phases; ib++) memset(dst + ib * plane, 0, sizeof(float) * (size_t)Wp);
                    continue;
                }
                const float *src = x + ((ptrdiff_t)c * H + h) * W;
#ifdef CNNK_HAVE_X86_SIMD
                if (vector) {
                    for (int ib = 0; ib < col_phases; ib++) phase_row_avx512(src, W, col_phase[ib] - pl, sw, Wp,
                                                                             dst + ib * plane);
                    continue;
                }
#endif
                if (sw == 1) { /* one phase: the row shifted by pl, zeros around it */
                    int lo = pl < Wp ? pl : Wp, hi = W + pl < Wp ? W + pl : Wp;
                    memset(dst, 0, sizeof(float) * (size_t)lo);
                    if (hi > lo) memcpy(dst + lo, src, sizeof(float) * (size_t)(hi - lo));
                    memset(dst + hi, 0, sizeof(float) * (size_t)(Wp - hi));
                    continue;
                }
                memcpy(row + pl, src, sizeof(float) * (size_t)W); /* row's zeros around it stay zero */
                for (int ib = 0; ib < col_phases; ib++) take_every(row + col_phase[ib], sw, Wp, dst + ib * plane);
            }
}

static void direct_portable(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                            const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q, int p_begin,
                            int p_end) {
    int G = cnnk_filter_group(), CT = C * T;
    for (int k = 0; k < K; k++) {
        /* filter k's taps: its group's block, then its lane in the block */
        int g0 = k / G * G, width = Kpad - g0 < G ? Kpad - g0 : G;
        const float *taps = wt + (ptrdiff_t)g0 * CT + (k - g0);
        for (int p = p_begin; p < p_end; p++)
            for (int q = 0; q < Q; q++) {
                float sum = bias ? bias[k] : 0.0f;
                const float *at = xp + (ptrdiff_t)p * Wp + q;
                for (int c = 0; c < C; c++, at += cstride)
                    for (int t = 0; t < T; t++) sum += at[offset[t]] * taps[((ptrdiff_t)c * T + t) * width];
                y[((ptrdiff_t)k * P + p) * Q + q] = sum;
            }
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

__attribute__((target("avx2,fma")))
static void direct_avx2(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                        const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q, int p_begin,
                        int p_end) {
    /* register block: 16 output pixels of one row x 6 filters (12 accumulators); one tap = 2 loads of
       the laid-out row, 6 broadcasts of filter taps, 12 FMAs. Rows of Q not a multiple of 16 end
       with a masked store (the rows are padded by 16 floats, so the loads stay inside). */
    ptrdiff_t PQ = (ptrdiff_t)P * Q, CT = (ptrdiff_t)C * T;
    for (int p = p_begin; p < p_end; p++) {
        for (int q0 = 0; q0 < Q; q0 += 16) {
            int left = Q - q0;
            __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lanes);
            __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(left - 8), lanes);
            for (int k0 = 0; k0 < Kpad; k0 += 6) {
                __m256 acc[6][2];
                for (int i = 0; i < 6; i++) {
                    float b = bias && k0 + i < K ? bias[k0 + i] : 0.0f;
                    acc[i][0] = acc[i][1] = _mm256_set1_ps(b);
                }
                const float *taps = wt + k0 * CT, *at = xp + (ptrdiff_t)p * Wp + q0;
                for (int c = 0; c < C; c++, at += cstride)
                    for (int t = 0; t < T; t++, taps += 6)
                        fma6_avx2(acc, taps, _mm256_loadu_ps(at + offset[t]), _mm256_loadu_ps(at + offset[t] + 8));
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

int cnnk_direct_flat(int Q, int jmax) {
    /* whether the flat-run kernel serves rows of Q outputs whose taps reach jmax columns on: AVX-512, and fewer
       lanes wasted than by whole rows (Q + jmax lanes a row against Q rounded up to 32) */
#ifdef CNNK_HAVE_X86_SIMD
    return cnnk_simd_level() == CNNK_AVX512 && Q + jmax < (Q + 31) / 32 * 32;
#else
    (void)Q, (void)jmax;
    return 0;
#endif
}

void cnnk_direct_forward(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                         const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q, int p_begin,
                         int p_end, int flat) {
    /* y[k, p, q] = bias[k] + Σ_c,t xp[c·cstride + p·Wp + q + offset[t]] · wt[c, t, k] for p_begin <= p < p_end,
       one image laid out by cnnk_direct_phase_image; wt from cnnk_pointwise_pack_filters (Kpad =
       cnnk_pointwise_padded_filters(K)). Every read is inside xp: its rows have 16 floats to spare, or, where
       `flat` (cnnk_direct_flat said so), the buffer has CNNK_DIRECT_FLAT_TAIL floats past its end */
#ifdef CNNK_HAVE_X86_SIMD
    int level = cnnk_simd_level();
    if (level == CNNK_AVX512 && flat) {
        cnnk_direct_flat_avx512(xp, C, cstride, Wp, offset, T, wt, K, Kpad, bias, y, P, Q, p_begin, p_end);
        return;
    }
    if (level == CNNK_AVX512) {
        cnnk_direct_avx512(xp, C, cstride, Wp, offset, T, wt, K, Kpad, bias, y, P, Q, p_begin, p_end);
        return;
    }
    if (level == CNNK_AVX2) {
        direct_avx2(xp, C, cstride, Wp, offset, T, wt, K, Kpad, bias, y, P, Q, p_begin, p_end);
        return;
    }
#endif
    (void)flat;
    direct_portable(xp, C, cstride, Wp, offset, T, wt, K, Kpad, bias, y, P, Q, p_begin, p_end);
}


/* ---- 1x1 convolution at stride 1: one product per image, on NCHW as it lies --------------------------- */

static inline ptrdiff_t pointwise_tap(int k, int c, int C, int Kpad, int G) {
    /* where w[k, c] goes: filters in groups of G (the register block's height), each group's taps channel by
       channel, the last group narrower; a block of filters from k0 reads from wt + k0*C, in order */
    int g0 = k / G * G, width = Kpad - g0 < G ? Kpad - g0 : G;
    return (ptrdiff_t)g0 * C + (ptrdiff_t)c * width + (k - g0);
}

int cnnk_filter_group(void) {
    /* the widest register block of filters: 12 on AVX-512 (its last block 8 or 4 wide), 6 on the others */
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
    int G = cnnk_filter_group();
    for (int k = 0; k < Kpad; k++)
        for (int c = 0; c < C; c++) wt[pointwise_tap(k, c, C, Kpad, G)] = k < K ? w[(ptrdiff_t)k * C + c] : 0.0f;
}

static void pointwise_portable(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int K6,
                               const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end) {
    /* one filter's row at a time: the pixels' rows are read in order */
    int G = cnnk_filter_group();
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

CNNK_CLONES void cnnk_relu_planes(float *y, int K, ptrdiff_t PQ, ptrdiff_t count, float slope) {
    /* y[k·PQ + i] = y if y > 0 else slope·y, and max(y, 0) at slope 0 (NaN kept: cnnkernels.leaky_relu's bits) for
       k < K, i < count: a fused (leaky) ReLU on the block of output a work item has just written, while in cache */
    for (int k = 0; k < K; k++) {
        float *plane = y + (ptrdiff_t)k * PQ;
        if (slope == 0.0f)
            for (ptrdiff_t i = 0; i < count; i++) plane[i] = !(plane[i] <= 0) ? plane[i] : 0.0f;
        else
            for (ptrdiff_t i = 0; i < count; i++) {
                float value = plane[i], scaled = plane[i] * slope;
                plane[i] = value > 0 ? value : scaled;
            }
    }
}
