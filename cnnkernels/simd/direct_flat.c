/* The AVX-512 direct kernel over flat pixel runs: for layers whose output rows are short (a 20-pixel row
   filled 20 of a block's 32 lanes, row by row) and for strided layers (their stride phases, see direct.c).

   With the laid-out image's row pitch Wp = Q + jmax (jmax: the columns the taps reach past a pixel, S - 1 at
   stride 1), output pixel (p, q) at flat index j = p·Wp + q reads xp[c, j + offset[t]]: contiguous in j across
   rows. So a block takes 32 consecutive j, and only the jmax columns past each row's end are computed for
   nothing (2 of 22 lanes at Q = 20 instead of 12 of 32). The block's outputs go to y by up to three masked
   stores per filter, one per output row it touches. Reads run at most 31 floats past the last channel's
   planes: the caller pads the buffer by CNNK_DIRECT_FLAT_TAIL. */
#include "simd.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

#define FLAT_AHEAD 64 /* flat pixels: y's lines are fetched two runs before they are written */

/* `block` filters (12, 8 or 4) x the 32 flat pixels from j0, then each output row's share stored; the block's
   taps, tap by tap, `block` floats each, from wt */
AVX512 static inline __attribute__((always_inline)) void flat_block(
        const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, const int T, const float *wt, int K,
        const float *bias, float *y, ptrdiff_t PQ, int Q, ptrdiff_t j0, ptrdiff_t j_end, int k0,
        const float *y_ahead, const int block) {
    __m512 acc[12][2];
    for (int i = 0; i < block; i++) acc[i][0] = acc[i][1] = _mm512_set1_ps(bias && k0 + i < K ? bias[k0 + i] : 0.0f);
    /* y's lines a few runs on: this block's filters spread over the channels (a burst stalls the loop), the
       first `fetched` once (c + 1)·to_fetch reaches fetched·C */
    int to_fetch = y_ahead ? (K - k0 < block ? K - k0 : block) : 0, fetched = 0;
    const float *run = xp + j0, *taps = wt;
    for (int c = 0; c < C; c++, run += cstride) {
        for (; fetched < to_fetch && fetched * C < (c + 1) * to_fetch; fetched++) {
            _mm_prefetch((const char *)(y_ahead + (k0 + fetched) * PQ), _MM_HINT_T0);
            _mm_prefetch((const char *)(y_ahead + (k0 + fetched) * PQ + 16), _MM_HINT_T0);
        }
        for (int t = 0; t < T; t++, taps += block)
            fma_block(acc, taps, _mm512_loadu_ps(run + offset[t]), _mm512_loadu_ps(run + offset[t] + 16), block);
    }
    ptrdiff_t last = (j_end - j0 < 32 ? j_end : j0 + 32) - 1;
    for (ptrdiff_t p = j0 / Wp; p <= last / Wp; p++) {
        ptrdiff_t lo = p * Wp - j0, hi = lo + Q; /* the row's real pixels, as lanes */
        if (lo < 0) lo = 0;
        if (hi > last - j0 + 1) hi = last - j0 + 1;
        if (hi <= lo) continue;
        unsigned int lanes = (hi >= 32 ? 0xFFFFFFFFu : (1u << hi) - 1) & ~((1u << lo) - 1);
        /* lane l holds pixel (p, j0 + l - p·Wp); masked-off lanes are never touched */
        store_block(y + p * Q + (j0 - p * Wp), PQ, k0, K, acc, (__mmask16)(lanes & 0xFFFF), (__mmask16)(lanes >> 16),
                    block);
    }
}

/* one block of `block` filters from k0 (12, or the packing's last: 8 or 4) over the 32 flat pixels from j0 */
AVX512 static inline __attribute__((always_inline)) void flat_filters(
        const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T, const float *wt, int K,
        const float *bias, float *y, ptrdiff_t PQ, int Q, ptrdiff_t j0, ptrdiff_t j_end, int k0, int block) {
    /* where the run FLAT_AHEAD floats on writes y (its first pixel; past its row's end, the next row's) */
    ptrdiff_t ahead = j0 + FLAT_AHEAD, p_ahead = ahead / Wp, q_ahead = ahead % Wp;
    const float *y_ahead = ahead < j_end ? y + p_ahead * Q + (q_ahead < Q ? q_ahead : Q) : NULL;
    const float *taps = wt + k0 * (ptrdiff_t)C * T;
#define FLAT_BLOCK(taps_per_filter, filters) \
    flat_block(xp, C, cstride, Wp, offset, taps_per_filter, taps, K, bias, y, PQ, Q, j0, j_end, k0, y_ahead, filters)
    if (T == 9) { /* 3x3, the common kernel: its 9 taps unrolled */
        if (block == 12) FLAT_BLOCK(9, 12);
        else if (block == 8) FLAT_BLOCK(9, 8);
        else FLAT_BLOCK(9, 4);
    } else {
        if (block == 12) FLAT_BLOCK(T, 12);
        else if (block == 8) FLAT_BLOCK(T, 8);
        else FLAT_BLOCK(T, 4);
    }
#undef FLAT_BLOCK
}

/* Taps per filter up to which each block of filters runs over the whole band before the next block starts. */
#define FLAT_FILTERS_OUTER 64

/* y[k, p, q] = bias[k] + Σ_c,t xp[c·cstride + p·Wp + q + offset[t]] · wt[c, t, k] for p_begin <= p < p_end, the
   rows Wp = Q + (the taps' reach) apart: 32 flat pixels x 12 filters per block (8 or 4 in the last; K = 32 ends
   on 8, not 12: 11 % fewer products). With few taps (C·T <= FLAT_FILTERS_OUTER: first layers) each block of
   filters runs over the band before the next, so y is written 12 planes at a time instead of all K planes of
   one run (A/B at 1 / 2 threads: 100x100x3 -> 32 0.90 / 0.85, 16x16x3 0.98 / 0.93); with many, each run takes
   every block while its pixels are in L1 (the strided ResNet layer ran 1.06x slower at 2 threads the other way) */
AVX512 void cnnk_direct_flat_avx512(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                                    const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q,
                                    int p_begin, int p_end) {
    ptrdiff_t PQ = (ptrdiff_t)P * Q, j_begin = (ptrdiff_t)p_begin * Wp, j_end = (ptrdiff_t)(p_end - 1) * Wp + Q;
    if (C * T <= FLAT_FILTERS_OUTER) {
        for (int k0 = 0; k0 < Kpad; k0 += 12)
            for (ptrdiff_t j0 = j_begin; j0 < j_end; j0 += 32)
                flat_filters(xp, C, cstride, Wp, offset, T, wt, K, bias, y, PQ, Q, j0, j_end, k0,
                             Kpad - k0 >= 12 ? 12 : Kpad - k0);
        return;
    }
    for (ptrdiff_t j0 = j_begin; j0 < j_end; j0 += 32)
        for (int k0 = 0; k0 < Kpad; k0 += 12)
            flat_filters(xp, C, cstride, Wp, offset, T, wt, K, bias, y, PQ, Q, j0, j_end, k0,
                         Kpad - k0 >= 12 ? 12 : Kpad - k0);
}
#endif
