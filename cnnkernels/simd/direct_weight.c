/* The direct kernel's weight gradient, on the forward pass's stride-phase layout (see direct.c), and the 1x1
   layer's on x as it lies:

   dw[k·dw_row + t] += Σ_n Σ_p,q dyt_n[p·Q + q, k] · xc_n[p·Wp + q + offset[t]]

   with dy channels-last (dyt: one row of K filters per output pixel; the caller passes slabs of 32 or 64 filters as
   K) and xc one channel's layout (its taps at offset[t]) or, for a 1x1 layer, a flat row of pixels whose "taps"
   are channels (offset[t] = t·H·W). The lanes are filters: per output pixel, 32 filters' dy (2 vectors) times the
   broadcast input of each of up to 9 taps, into 18 accumulators (2 loads and 9 broadcasts per 18 FMAs; 27
   accumulators spilled to the stack, measured), or 64 filters' (4 vectors) times 6 taps into 24 (4 loads and 6
   broadcasts per 24 FMAs: x read once for all of a 1x1 layer's 64 filters), summed over a chunk of images before
   they are stored. Each call owns its filters' rows of dw for its taps: the work splits by filters and channels,
   with no partial sums to add, and the result does not depend on the thread count. With few channels those items
   are too few for the threads: there cnnk_direct_weight_lanes (AVX-512) takes 16 output pixels as the lanes, one
   image a call, and its caller splits the images. Arguments arrive validated from cnnkernels. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"
#include "winograd43.h"

static void weight_portable(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xc,
                            ptrdiff_t xl_image, int Wp, const int *offset, int T, int images, int k_begin, int k_end,
                            float *dw, ptrdiff_t dw_row) {
    for (int k = k_begin; k < k_end; k++)
        for (int t = 0; t < T; t++) {
            float sum = 0.0f;
            for (int n = 0; n < images; n++) {
                const float *g = dyt + n * dy_image + k;
                const float *in = xc + n * xl_image + offset[t];
                for (int p = 0; p < P; p++)
                    for (int q = 0; q < Q; q++) sum += g[((ptrdiff_t)p * Q + q) * K] * in[(ptrdiff_t)p * Wp + q];
            }
            dw[k * dw_row + t] += sum;
        }
}

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

/* `vectors` (1, 2 or 4) x 16 filters from k0 (masked to k_end) x `taps` taps from t0 (constants
   after inlining: at most 18 accumulators with 2 vectors, 24 with 4, so that they stay in registers); dyt's rows
   are K floats */
AVX512 static inline __attribute__((always_inline)) void weight_block(
        const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xc, ptrdiff_t xl_image, int Wp,
        const int *offset, int images, int k0, int k_end, float *dw, ptrdiff_t dw_row, int t0, const int vectors,
        const int taps) {
    /* every loop over the block unrolled: with one left rolled, GCC kept acc in memory (a store per FMA) */
    __m512 acc[4][9];
#pragma GCC unroll 4
    for (int i = 0; i < vectors; i++)
#pragma GCC unroll 9
        for (int t = 0; t < taps; t++) acc[i][t] = _mm512_setzero_ps();
    /* the filters of each vector below k_end: the first half of 2 or 4 vectors are whole (more than 16 · vectors / 2
       filters are left), the others (and a lone vector) loaded under their masks: none read past the slab's row */
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int i = 0; i < vectors; i++) mask[i] = lanes_below(k_end - k0 - 16 * i);
    const __mmask16 last = mask[vectors - 1];
    for (int n = 0; n < images; n++) {
        const float *g = dyt + n * dy_image + k0, *in = xc + n * xl_image;
        for (int p = 0; p < P; p++, in += Wp) {
            const float *src[9];
#pragma GCC unroll 9
            for (int t = 0; t < taps; t++) src[t] = in + offset[t0 + t];
            int q = 0;
            if (vectors <= 2) /* two pixels a step: 0.95x the time of one (measured; 4 vectors have no registers) */
                for (; q + 2 <= Q; q += 2, g += 2 * K) {
                    __m512 d0 = vectors == 1 ? _mm512_maskz_loadu_ps(last, g) : _mm512_loadu_ps(g);
                    __m512 d1 = vectors == 2 ? _mm512_maskz_loadu_ps(last, g + 16) : d0;
                    __m512 e0 = vectors == 1 ? _mm512_maskz_loadu_ps(last, g + K) : _mm512_loadu_ps(g + K);
                    __m512 e1 = vectors == 2 ? _mm512_maskz_loadu_ps(last, g + K + 16) : e0;
#pragma GCC unroll 9
                    for (int t = 0; t < taps; t++) {
                        __m512 v = _mm512_set1_ps(src[t][q]);
                        acc[0][t] = _mm512_fmadd_ps(d0, v, acc[0][t]);
                        if (vectors == 2) acc[1][t] = _mm512_fmadd_ps(d1, v, acc[1][t]);
                    }
#pragma GCC unroll 9
                    for (int t = 0; t < taps; t++) {
                        __m512 v = _mm512_set1_ps(src[t][q + 1]);
                        acc[0][t] = _mm512_fmadd_ps(e0, v, acc[0][t]);
                        if (vectors == 2) acc[1][t] = _mm512_fmadd_ps(e1, v, acc[1][t]);
                    }
                }
            for (; q < Q; q++, g += K) {
                __m512 d[4];
#pragma GCC unroll 4
                for (int i = 0; i < vectors; i++)
                    d[i] = i == vectors - 1 || 2 * i >= vectors ? _mm512_maskz_loadu_ps(mask[i], g + 16 * i)
                                                                  : _mm512_loadu_ps(g + 16 * i);
#pragma GCC unroll 9
                for (int t = 0; t < taps; t++) {
                    __m512 v = _mm512_set1_ps(src[t][q]);
#pragma GCC unroll 4
                    for (int i = 0; i < vectors; i++) acc[i][t] = _mm512_fmadd_ps(d[i], v, acc[i][t]);
                }
            }
        }
    }
    float sums[4][9][16];
#pragma GCC unroll 4
    for (int i = 0; i < vectors; i++)
#pragma GCC unroll 9
        for (int t = 0; t < taps; t++) _mm512_storeu_ps(sums[i][t], acc[i][t]);
    for (int i = 0; i < vectors; i++)
        for (int t = 0; t < taps; t++)
            for (int l = 0; l < 16 && k0 + 16 * i + l < k_end; l++)
                dw[(ptrdiff_t)(k0 + 16 * i + l) * dw_row + t0 + t] += sums[i][t][l];
}

#define TAPS(vectors, taps)                                                                                       \
    case taps:                                                                                                    \
        weight_block(dyt, dy_image, K, P, Q, xc, xl_image, Wp, offset, images, k0, k_end, dw, dw_row, t0, vectors, \
                     taps);                                                                                       \
        break;
#define UP_TO_6_TAPS(vectors) TAPS(vectors, 1) TAPS(vectors, 2) TAPS(vectors, 3) TAPS(vectors, 4) TAPS(vectors, 5) \
    TAPS(vectors, 6)
#define UP_TO_9_TAPS(vectors) UP_TO_6_TAPS(vectors) TAPS(vectors, 7) TAPS(vectors, 8) TAPS(vectors, 9)
/* blocks of `most` taps (9, or 6 with 4 vectors: 24 accumulators), each block size a case of its own */
#define FILTERS(vectors, most, cases)                                                                             \
    AVX512 static void weight_vectors_##vectors(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q,        \
                                                const float *xc, ptrdiff_t xl_image, int Wp, const int *offset,   \
                                                int T, int images, int k0, int k_end, float *dw,                  \
                                                ptrdiff_t dw_row) {                                               \
        for (int t0 = 0; t0 < T; t0 += most) switch (T - t0 < most ? T - t0 : most) { cases }                    \
    }
FILTERS(1, 9, UP_TO_9_TAPS(1))
FILTERS(2, 9, UP_TO_9_TAPS(2))
FILTERS(4, 6, UP_TO_6_TAPS(4))
#undef UP_TO_9_TAPS
#undef UP_TO_6_TAPS
#undef FILTERS
#undef TAPS

/* The channels-last 1x1 kernel (cnnk_pointwise_weight_nhwc): the 64-filter block of weight_block with its sums
   carried in memory between calls, so that its caller can run every channel block of a thread over one block of
   pixels while their rows are in L1 (x's rows are C floats apart: each channel block reads a sliver of each) */
AVX512 static inline __attribute__((always_inline)) void nhwc_block(const float *dy, int K, const float *x, int C,
                                                                    int pixels, int kc, float *sums, const int taps) {
    __m512 acc[4][6];
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        mask[i] = lanes_below(kc - 16 * i);
#pragma GCC unroll 6
        for (int t = 0; t < taps; t++) acc[i][t] = _mm512_loadu_ps(sums + (i * 6 + t) * 16);
    }
    for (int p = 0; p < pixels; p++, dy += K, x += C) {
        __m512 d[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) d[i] = _mm512_maskz_loadu_ps(mask[i], dy + 16 * i);
#pragma GCC unroll 6
        for (int t = 0; t < taps; t++) {
            __m512 v = _mm512_set1_ps(x[t]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[i][t] = _mm512_fmadd_ps(d[i], v, acc[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 6
        for (int t = 0; t < taps; t++) _mm512_storeu_ps(sums + (i * 6 + t) * 16, acc[i][t]);
}

AVX512 static void pointwise_nhwc_avx512(const float *dy, int K, const float *x, int C, int pixels, int kc, int taps,
                                         float *sums) {
    switch (taps) {
        case 1: nhwc_block(dy, K, x, C, pixels, kc, sums, 1); break;
        case 2: nhwc_block(dy, K, x, C, pixels, kc, sums, 2); break;
        case 3: nhwc_block(dy, K, x, C, pixels, kc, sums, 3); break;
        case 4: nhwc_block(dy, K, x, C, pixels, kc, sums, 4); break;
        case 5: nhwc_block(dy, K, x, C, pixels, kc, sums, 5); break;
        default: nhwc_block(dy, K, x, C, pixels, kc, sums, 6); break;
    }
}

/* The pixel-lane kernel (cnnk_direct_weight_lanes): 8 filters x up to 3 taps (24 accumulators; 11 loads per 24
   FMAs) over the flat pixels j_begin <= j < j_end of one image, added to the filters' vector sums. */
#define LANES_FILTERS CNNK_LANES_FILTERS
#define LANES_TAPS 3
#define LANES_CHUNK 512 /* flat pixels a pass: 8 filters' dy (16 KiB) and the taps' inputs stay in L1 */

AVX512 static inline __attribute__((always_inline)) void lanes_block(const float *dyl, ptrdiff_t Jp,
                                                                     const float *const *src, const uint16_t *masks,
                                                                     ptrdiff_t j_begin, ptrdiff_t j_end, int filters,
                                                                     float *part, ptrdiff_t part_row, const int taps) {
    __m512 acc[LANES_FILTERS][LANES_TAPS];
#pragma GCC unroll 8
    for (int i = 0; i < LANES_FILTERS; i++)
#pragma GCC unroll 3
        for (int t = 0; t < taps; t++) acc[i][t] = _mm512_setzero_ps();
    for (ptrdiff_t j = j_begin; j < j_end; j += 16) {
        __mmask16 valid = (__mmask16)masks[j >> 4];
        __m512 x[LANES_TAPS];
#pragma GCC unroll 3
        for (int t = 0; t < taps; t++) x[t] = _mm512_maskz_loadu_ps(valid, src[t] + j);
#pragma GCC unroll 8
        for (int i = 0; i < LANES_FILTERS; i++) {
            __m512 g = _mm512_loadu_ps(dyl + i * Jp + j);
            __asm__("" : "+v"(g)); /* one load of g for its 3 FMAs (GCC folded it into each: 27 loads a step) */
#pragma GCC unroll 3
            for (int t = 0; t < taps; t++) acc[i][t] = _mm512_fmadd_ps(g, x[t], acc[i][t]);
        }
    }
    /* unrolled, as every loop over acc: with one left rolled, GCC kept acc in memory (a store per FMA) */
#pragma GCC unroll 8
    for (int i = 0; i < LANES_FILTERS; i++)
#pragma GCC unroll 3
        for (int t = 0; t < taps; t++)
            if (i < filters) {
                float *sums = part + i * part_row + 16 * t;
                _mm512_storeu_ps(sums, _mm512_add_ps(_mm512_loadu_ps(sums), acc[i][t]));
            }
}

AVX512 static void weight_lanes_avx512(const float *dy, int K, int P, int Q, const float *xl, int C,
                                       ptrdiff_t cstride, int Wp, const int *offset, int T, const uint16_t *masks,
                                       float *dyl, float *part) {
    ptrdiff_t PQ = (ptrdiff_t)P * Q, pixels = (ptrdiff_t)P * Wp, Jp = (pixels + 15) / 16 * 16;
    int CT = C * T;
    ptrdiff_t part_row = (ptrdiff_t)CT * 16;
    for (int k0 = 0; k0 < K; k0 += LANES_FILTERS) {
        int filters = K - k0 < LANES_FILTERS ? K - k0 : LANES_FILTERS;
        /* dy's planes at the layout's row pitch, zeros past each row (the block's missing filters: all zeros) */
        for (int i = 0; i < LANES_FILTERS; i++) {
            float *row = dyl + i * Jp;
            if (i >= filters) {
                memset(row, 0, sizeof(float) * (size_t)Jp);
                continue;
            }
            /* row after row, in order (dy streams from memory), by vectors: memcpy and memset of a 20-float row
               cost more */
            const float *in = dy + (k0 + i) * PQ;
            for (int p = 0; p < P; p++, in += Q) {
                float *out = row + (ptrdiff_t)p * Wp;
                int q = 0;
                for (; q + 16 <= Q; q += 16) _mm512_storeu_ps(out + q, _mm512_loadu_ps(in + q));
                for (; q < Wp; q += 16) {
                    int real = Q - q > 0 ? Q - q : 0, width = Wp - q > 16 ? 16 : Wp - q;
                    _mm512_mask_storeu_ps(out + q, (__mmask16)((1u << width) - 1),
                                          _mm512_maskz_loadu_ps((__mmask16)((1u << real) - 1), in + q));
                }
            }
            memset(row + pixels, 0, sizeof(float) * (size_t)(Jp - pixels));
        }
        for (ptrdiff_t j0 = 0; j0 < Jp; j0 += LANES_CHUNK) {
            ptrdiff_t j1 = Jp - j0 < LANES_CHUNK ? Jp : j0 + LANES_CHUNK;
            for (int ct = 0; ct < CT; ct += LANES_TAPS) {
                int taps = CT - ct < LANES_TAPS ? CT - ct : LANES_TAPS;
                const float *src[LANES_TAPS];
                for (int t = 0; t < taps; t++) src[t] = xl + (ct + t) / T * cstride + offset[(ct + t) % T];
                float *sums = part + k0 * part_row + 16 * ct;
                if (taps == 3)
                    lanes_block(dyl, Jp, src, masks, j0, j1, filters, sums, part_row, 3);
                else if (taps == 2)
                    lanes_block(dyl, Jp, src, masks, j0, j1, filters, sums, part_row, 2);
                else
                    lanes_block(dyl, Jp, src, masks, j0, j1, filters, sums, part_row, 1);
            }
        }
    }
}
#endif

int cnnk_direct_weight_lanes(const float *dy, int K, int P, int Q, const float *xl, int C, ptrdiff_t cstride, int Wp,
                             const int *offset, int T, const uint16_t *masks, float *dyl, float *part) {
    /* part[(k·C·T + c·T + t)·16 + l] += Σ_j≡l (mod 16) dyl[k, j] · xl[c·cstride + j + offset[t]] for one image: the
       lanes are flat output pixels j = p·Wp + q of the stride-phase layout (rows Wp apart), dy laid out at that
       pitch with zeros past each row in dyl (CNNK_LANES_FILTERS·⌈P·Wp/16⌉·16 floats); masks[j/16] has the lanes of
       real pixels, the others' inputs are not read (an inf past a row's end cannot reach a sum). For layers with
       few channels (first layers), whose filter lanes leave too few work items for the threads: the caller splits
       the images instead. AVX-512 only: returns 0, doing nothing, elsewhere. */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        weight_lanes_avx512(dy, K, P, Q, xl, C, cstride, Wp, offset, T, masks, dyl, part);
        return 1;
    }
#endif
    (void)dy, (void)K, (void)P, (void)Q, (void)xl, (void)C, (void)cstride, (void)Wp, (void)offset, (void)T;
    (void)masks, (void)dyl, (void)part;
    return 0;
}

void cnnk_sum_lanes(const float *part, ptrdiff_t count, float *out) {
    /* out[i] = Σ_l<16 part[16·i + l], in one fixed order on every ISA */
    for (ptrdiff_t i = 0; i < count; i++) {
        const float *lanes = part + 16 * i;
        float pairs[8];
        for (int l = 0; l < 8; l++) pairs[l] = lanes[l] + lanes[l + 8];
        for (int l = 0; l < 4; l++) pairs[l] += pairs[l + 4];
        out[i] = (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]);
    }
}

/* On a cache line of its own: its loops' place in the line otherwise moves with whatever code the extension gains
   elsewhere (the strided ResNet layer's weight gradient ran 2-3 % slower after unrelated additions, 0.7-1.1 % with
   the line; measured) */
__attribute__((aligned(64))) void cnnk_direct_weight(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q,
                                                    const float *xc, ptrdiff_t xl_image, int Wp, const int *offset,
                                                    int T, int images, int k_begin, int k_end, float *dw,
                                                    ptrdiff_t dw_row) {
    /* dw[k·dw_row + t] += Σ_n<images Σ_p,q dyt[n·dy_image + (p·Q + q)·K + k] · xc[n·xl_image + p·Wp + q + offset[t]]
       for k_begin <= k < k_end and t < T: blocks of 32 filters, the last 16 or 32 wide (masked to k_end), or of
       64 where more than 32 are left */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        for (int k0 = k_begin; k0 < k_end;) {
            int left = k_end - k0;
            if (left > 32)
                weight_vectors_4(dyt, dy_image, K, P, Q, xc, xl_image, Wp, offset, T, images, k0, k_end, dw, dw_row);
            else if (left > 16)
                weight_vectors_2(dyt, dy_image, K, P, Q, xc, xl_image, Wp, offset, T, images, k0, k_end, dw, dw_row);
            else
                weight_vectors_1(dyt, dy_image, K, P, Q, xc, xl_image, Wp, offset, T, images, k0, k_end, dw, dw_row);
            k0 += left > 32 ? 64 : 32;
        }
        return;
    }
#endif
    weight_portable(dyt, dy_image, K, P, Q, xc, xl_image, Wp, offset, T, images, k_begin, k_end, dw, dw_row);
}

int cnnk_pointwise_weight_nhwc(const float *dy, int K, const float *x, int C, int pixels, int kc, int taps,
                               float *sums) {
    /* sums[(i·6 + t)·16 + l] += Σ_p<pixels dy[p·K + 16·i + l] · x[p·C + t] for 16·i + l < kc <= 64 and t < taps <= 6:
       one block of pixels of a channels-last 1x1 layer's weight gradient, dy's and x's rows K and C floats apart
       (sums: CNNK_POINTWISE_SUMS floats). AVX-512 only: returns 0, doing nothing, elsewhere. */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        pointwise_nhwc_avx512(dy, K, x, C, pixels, kc, taps, sums);
        return 1;
    }
#endif
    (void)dy, (void)K, (void)x, (void)C, (void)pixels, (void)kc, (void)taps, (void)sums;
    return 0;
}
