/* The AVX-512 register blocks of the products (winograd43.c dispatches to them when the CPU has AVX-512F).

   Same layouts and formulas as the AVX2 kernels beside them in winograd43.c and direct.c; one zmm holds
   16 floats, so a block is twice as wide per accumulator and the 32 registers hold up to 24 accumulators
   plus the operands. The Winograd transforms are in winograd43_avx512.c. Each function is compiled for
   AVX-512F alone (the target attribute), so the object still loads and runs on any x86-64: the loader calls
   these only after __builtin_cpu_supports("avx512f"). */

#include "simd.h"
#include "winograd43.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

#define PRODUCT_CHANNELS 128 /* up to four filter panels over 128 channels: 32 KiB, kept in L1 */

/* out[i, 16j + l] (+)= Σ_g Σ_c row[g][i][c·step] · u[j·panel_size + 16(g·channels + c) + l] for 6 rows, `segments`
   sets of rows (each `channels` long, u running on across them) and `np` panels of 16 filters (a constant after
   inlining): up to 24 accumulators. With 2 FMA pipes of 4 cycles (Xeon) 12 chains only just cover the latency and
   each pair of filter loads fed 12 FMAs; 6 x 64 filters feed 24 (kernel alone, 128 channels in L1: 6 x 32 at
   162-175 GFLOP/s, 6 x 64 at 190-197, of 231). Rows past `rows` are not stored. */
AVX512 static inline __attribute__((always_inline)) void product_block(const float *const (*row)[6], int segments,
                                                                       int step, int channels, const float *u,
                                                                       ptrdiff_t panel_size, float *out, int Kpad,
                                                                       int rows, int accumulate, const int np) {
    __m512 acc[6][4];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < np; j++)
            acc[i][j] = accumulate && i < rows ? _mm512_loadu_ps(out + (ptrdiff_t)i * Kpad + 16 * j)
                                               : _mm512_setzero_ps();
    for (int g = 0; g < segments; g++)
        for (int c = 0; c < channels; c++, u += 16) {
            __m512 w[4];
#pragma GCC unroll 4
            for (int j = 0; j < np; j++) w[j] = _mm512_loadu_ps(u + j * panel_size);
#pragma GCC unroll 6
            for (int i = 0; i < 6; i++) {
                __m512 x = _mm512_set1_ps(row[g][i][(ptrdiff_t)c * step]);
#pragma GCC unroll 4
                for (int j = 0; j < np; j++) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
            }
        }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < np; j++) _mm512_storeu_ps(out + (ptrdiff_t)i * Kpad + 16 * j, acc[i][j]);
}

/* product_block over panels kb .. kb + np − 1, np = min(4, panels − kb) (np a constant in each call) */
AVX512 static inline __attribute__((always_inline)) void product_panels(const float *const (*row)[6], int segments,
                                                                        int step, int channels, const float *u,
                                                                        ptrdiff_t panel_size, float *out, int Kpad,
                                                                        int rows, int accumulate, int np) {
    if (np >= 4)
        product_block(row, segments, step, channels, u, panel_size, out, Kpad, rows, accumulate, 4);
    else if (np == 3)
        product_block(row, segments, step, channels, u, panel_size, out, Kpad, rows, accumulate, 3);
    else if (np == 2)
        product_block(row, segments, step, channels, u, panel_size, out, Kpad, rows, accumulate, 2);
    else
        product_block(row, segments, step, channels, u, panel_size, out, Kpad, rows, accumulate, 1);
}

/* The product for one ξ when its filters (C·Kpad floats) outgrow L1: in slices of PRODUCT_CHANNELS channels,
   each run of up to four panels is held in L1 while every group of 6 rows streams past it, the partial sums
   kept in M. (Row-group first, every row group would stream all the filters from L2: 1 load of 128 bytes per 12
   FMAs, which capped the strided ResNet layer and 384 -> 384 at about half the FMA peak.) V's rows are read
   where they lie; the last group's missing rows repeat its last row, their sums not stored. */
AVX512 static void multiply_sliced(const float *V, const float *Ux, int ntiles, int C, int Kpad, float *M, int nxi,
                                   int xi) {
    int panels = Kpad / 16;
    ptrdiff_t panel_size = (ptrdiff_t)C * 16;
    for (int c0 = 0; c0 < C; c0 += PRODUCT_CHANNELS) {
        int cc = C - c0 < PRODUCT_CHANNELS ? C - c0 : PRODUCT_CHANNELS;
        for (int kb = 0; kb < panels; kb += 4) {
            const float *u = Ux + kb * panel_size + (ptrdiff_t)c0 * 16;
            for (int t0 = 0; t0 < ntiles; t0 += GEMM_TILES) {
                int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
                ptrdiff_t group = (ptrdiff_t)(t0 / GEMM_TILES) * nxi + xi;
                const float *row[6];
                for (int i = 0; i < 6; i++) row[i] = V + (group * GEMM_TILES + (i < rows ? i : rows - 1)) * C + c0;
                float *out = M + group * GEMM_TILES * Kpad + kb * 16;
                if (rows == GEMM_TILES) /* a constant row count, as cnnk_implicit_rows_avx512's */
                    product_panels((const float *const (*)[6])row, 1, 1, cc, u, panel_size, out, Kpad, GEMM_TILES,
                                   c0 > 0, panels - kb);
                else
                    product_panels((const float *const (*)[6])row, 1, 1, cc, u, panel_size, out, Kpad, rows, c0 > 0,
                                   panels - kb);
            }
        }
    }
}

/* im2row's product without its patches: M[i, k] = Σ_r,s,c x[h, w, c] · U[panel k/16][(r·S + s)·C + c][k%16] for the
   npix (at most CNNK_IMPLICIT_PIXELS) output pixels from pixel0 of one channels-last image x (H x W x C), h = p·sh
   + r·dh − pt, w = q·sw + s·dw − pl (p = pixel / Q, q = pixel % Q), a tap outside the image reading `zeros` (C
   floats). A tap's patch entries are a pixel's C contiguous floats, so the product reads them where they lie: per
   run of up to four panels and slice of about PRODUCT_CHANNELS patch entries (one tap's slice of channels, or
   several taps' C channels; held in L1), the groups of 6 pixels stream past, the partial sums kept in M (as
   multiply_sliced). With the patches written out, the strided ResNet layer's forward took 1.06x as long; read from
   NCHW as it lies (H·W floats between a pixel's channels), the product ran 1.08x slower than on the channels-last
   copy. */
AVX512 void cnnk_implicit_rows_avx512(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt,
                                      int pl, int dh, int dw, int pixel0, int npix, int Q, const float *zeros,
                                      const float *U, int Kpad, float *M) {
    int panels = Kpad / 16, T = R * S;
    int taps = C >= PRODUCT_CHANNELS ? 1 : PRODUCT_CHANNELS / C; /* per pass */
    ptrdiff_t panel_size = (ptrdiff_t)T * C * 16;
    int top[CNNK_IMPLICIT_PIXELS], left[CNNK_IMPLICIT_PIXELS]; /* each pixel's first row and column read */
    for (int i = 0; i < npix; i++) {
        top[i] = (pixel0 + i) / Q * sh - pt;
        left[i] = (pixel0 + i) % Q * sw - pl;
    }
    for (int t0 = 0; t0 < T; t0 += taps) { /* the sums in the patches' order, as cnnk_gemm_rows on them */
        int segments = T - t0 < taps ? T - t0 : taps;
        int down[PRODUCT_CHANNELS], across[PRODUCT_CHANNELS]; /* each tap's offset from a pixel's first row, column */
        for (int g = 0; g < segments; g++) {
            down[g] = (t0 + g) / S * dh;
            across[g] = (t0 + g) % S * dw;
        }
        for (int c0 = 0; c0 < C; c0 += PRODUCT_CHANNELS) {
            int cc = C - c0 < PRODUCT_CHANNELS ? C - c0 : PRODUCT_CHANNELS;
            for (int kb = 0; kb < panels; kb += 4) {
                const float *u = U + kb * panel_size + ((ptrdiff_t)t0 * C + c0) * 16;
                for (int i0 = 0; i0 < npix; i0 += GEMM_TILES) {
                    int rows = npix - i0 < GEMM_TILES ? npix - i0 : GEMM_TILES;
                    const float *row[PRODUCT_CHANNELS][6];
                    for (int g = 0; g < segments; g++)
                        for (int i = 0; i < 6; i++) { /* a missing last row repeats the last pixel, not stored */
                            int j = i0 + (i < rows ? i : rows - 1), h = top[j] + down[g], w = left[j] + across[g];
                            int inside = h >= 0 && h < H && w >= 0 && w < W;
                            row[g][i] = (inside ? x + ((ptrdiff_t)h * W + w) * C : zeros) + c0;
                        }
                    float *out = M + (ptrdiff_t)i0 * Kpad + kb * 16;
                    if (rows == GEMM_TILES) /* a constant row count: no per-row conditions around the sums */
                        product_panels((const float *const (*)[6])row, segments, 1, cc, u, panel_size, out, Kpad,
                                       GEMM_TILES, c0 > 0 || t0 > 0, panels - kb);
                    else
                        product_panels((const float *const (*)[6])row, segments, 1, cc, u, panel_size, out, Kpad,
                                       rows, c0 > 0 || t0 > 0, panels - kb);
                }
            }
        }
    }
}

/* M[row, k] = Σ_c V[row, c] · U[panel k/16][c][k%16] for groups of 6 rows (see winograd43.c). Blocks: 6 rows
   x up to 64 filters (product_block); with one panel (16 filters) two groups of 6 rows at once, so there are
   still 12 independent FMA chains (a chain every 4 cycles on 2 pipes needs 8 or more). */
AVX512 void cnnk_multiply_avx512(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel,
                                 int nxi) {
    int panels = Kpad / 16;
    ptrdiff_t panel_size = (ptrdiff_t)C * 16;
    for (int xi = 0; xi < nxi; xi++) {
        const float *Ux = U + (ptrdiff_t)xi * panels * panel_size;
        if (panels > 1 && (ptrdiff_t)C * Kpad > 8192) { /* the filters exceed 32 KiB */
            multiply_sliced(V, Ux, ntiles, C, Kpad, M, nxi, xi);
            continue;
        }
        int t0 = 0;
        if (panels == 1) /* 12 rows x 16 filters, the rows read where they lie */
            for (; t0 + 2 * GEMM_TILES <= ntiles; t0 += 2 * GEMM_TILES) {
                ptrdiff_t group = (ptrdiff_t)(t0 / GEMM_TILES) * nxi + xi;
                const float *a = V + group * GEMM_TILES * C, *b = a + (ptrdiff_t)nxi * GEMM_TILES * C;
                __m512 acc[12];
                for (int i = 0; i < 12; i++) acc[i] = _mm512_setzero_ps();
                const float *u = Ux;
                for (int c = 0; c < C; c++, u += 16) {
                    __m512 w = _mm512_loadu_ps(u);
#pragma GCC unroll 6
                    for (int i = 0; i < 6; i++) {
                        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(ptrdiff_t)i * C + c]), w, acc[i]);
                        acc[6 + i] = _mm512_fmadd_ps(_mm512_set1_ps(b[(ptrdiff_t)i * C + c]), w, acc[6 + i]);
                    }
                }
                float *out_a = M + group * GEMM_TILES * Kpad, *out_b = out_a + (ptrdiff_t)nxi * GEMM_TILES * Kpad;
                for (int i = 0; i < 6; i++) {
                    _mm512_storeu_ps(out_a + (ptrdiff_t)i * Kpad, acc[i]);
                    _mm512_storeu_ps(out_b + (ptrdiff_t)i * Kpad, acc[6 + i]);
                }
            }
        for (; t0 < ntiles; t0 += GEMM_TILES) {
            int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
            ptrdiff_t group = (ptrdiff_t)(t0 / GEMM_TILES) * nxi + xi;
            const float *rows6 = V + group * GEMM_TILES * C;
            /* packing the 6 rows channel-major pays when several runs of panels stream past them */
            int packed = Kpad > 64 || rows < GEMM_TILES;
            if (packed) cnnk_pack_tiles(rows6, rows, C, panel);
            const float *row[6];
            for (int i = 0; i < 6; i++) row[i] = packed ? panel + i : rows6 + (ptrdiff_t)i * C;
            for (int kb = 0; kb < panels; kb += 4)
                product_panels((const float *const (*)[6])row, 1, packed ? GEMM_TILES : 1, C, Ux + kb * panel_size,
                               panel_size, M + group * GEMM_TILES * Kpad + kb * 16, Kpad, rows, 0, panels - kb);
        }
    }
}

/* dU[(xi·K + k0 + i)·C + c0 + c] += Σ_t D[row(t, xi), k0 + i] · V[row(t, xi), c0 + c] for `filters` filters (i
   below `stored`) x 16·`vectors` channels (constants after inlining); D is read for all `filters` columns */
AVX512 static inline __attribute__((always_inline)) void weight_block(const float *D, const float *V, int ntiles,
                                                                      int Kpad, int K, int C, int xi, int k0, int c0,
                                                                      int stored, float *dU, const int filters,
                                                                      const int vectors) {
    __m512 acc[12][4];
    for (int i = 0; i < filters; i++)
        for (int j = 0; j < vectors; j++) acc[i][j] = _mm512_setzero_ps();
    for (int t = 0; t < ntiles; t++) {
        ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
        const float *d = D + row * Kpad + k0, *v = V + row * C + c0;
        __m512 x[4];
#pragma GCC unroll 4
        for (int j = 0; j < vectors; j++) x[j] = _mm512_loadu_ps(v + 16 * j);
#pragma GCC unroll 12
        for (int i = 0; i < filters; i++) {
            __m512 a = _mm512_set1_ps(d[i]);
#pragma GCC unroll 4
            for (int j = 0; j < vectors; j++) acc[i][j] = _mm512_fmadd_ps(a, x[j], acc[i][j]);
        }
    }
    for (int i = 0; i < stored; i++)
        for (int j = 0; j < vectors; j++) {
            float *out = dU + ((ptrdiff_t)xi * K + k0 + i) * C + c0 + 16 * j;
            _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), acc[i][j]));
        }
}

/* dU[(xi*K + k)*C + c] += Σ_t D[row(t, xi), k] · V[row(t, xi), c]: blocks of 24 accumulators, 6 filters x 64
   channels or 12 filters x 32 (each broadcast feeding 4 or 2 FMAs; the 12-accumulator 6 x 32 block left 2-FMA-pipe
   CPUs half idle), 6 x 16 at the channels' end and 6-filter blocks at the filters' end (the last reads D's padding
   columns, whose products are not stored), then one channel at a time. Each sum runs over the tiles in order,
   whatever the block. */
AVX512 void cnnk_weight_multiply_avx512(const float *D, const float *V, int ntiles, int Kpad, int K, int C,
                                        float *dU) {
    int c16 = C / 16 * 16;
    for (int xi = 0; xi < 36; xi++) {
        for (int c0 = 0; c0 < c16;) {
            int vectors = c16 - c0 >= 64 ? 4 : c16 - c0 >= 32 ? 2 : 1, k0 = 0;
            if (vectors == 2)
                for (; k0 + 12 <= K; k0 += 12) weight_block(D, V, ntiles, Kpad, K, C, xi, k0, c0, 12, dU, 12, 2);
            for (; k0 < K; k0 += 6) {
                int stored = K - k0 < 6 ? K - k0 : 6;
                if (vectors == 4) weight_block(D, V, ntiles, Kpad, K, C, xi, k0, c0, stored, dU, 6, 4);
                else if (vectors == 2) weight_block(D, V, ntiles, Kpad, K, C, xi, k0, c0, stored, dU, 6, 2);
                else weight_block(D, V, ntiles, Kpad, K, C, xi, k0, c0, stored, dU, 6, 1);
            }
            c0 += 16 * vectors;
        }
        for (int k0 = 0; k0 < K; k0 += 6) {
            int stored = K - k0 < 6 ? K - k0 : 6;
            for (int c = c16; c < C; c++)
                for (int t = 0; t < ntiles; t++) {
                    ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
                    float v = V[row * C + c];
                    for (int i = 0; i < stored; i++)
                        dU[((ptrdiff_t)xi * K + k0 + i) * C + c] += D[row * Kpad + k0 + i] * v;
                }
        }
    }
}

/* One block of `block` filters (12, 8 or 4, a constant after inlining) x 32 pixels of output row p from q0;
   its taps, tap by tap, `block` floats each, from wt. */
AVX512 static inline __attribute__((always_inline)) void direct_block(
        const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T, const float *wt, int K,
        const float *bias, float *y, ptrdiff_t PQ, int Q, int p, int q0, int k0, __mmask16 mask0, __mmask16 mask1,
        const int block) {
    __m512 acc[12][2];
    for (int i = 0; i < block; i++) acc[i][0] = acc[i][1] = _mm512_set1_ps(bias && k0 + i < K ? bias[k0 + i] : 0.0f);
    const float *at = xp + (ptrdiff_t)p * Wp + q0, *taps = wt;
    for (int c = 0; c < C; c++, at += cstride)
        for (int t = 0; t < T; t++, taps += block)
            fma_block(acc, taps, _mm512_maskz_loadu_ps(mask0, at + offset[t]),
                      _mm512_maskz_loadu_ps(mask1, at + offset[t] + 16), block);
    store_block(y + (ptrdiff_t)p * Q + q0, PQ, k0, K, acc, mask0, mask1, block);
}

/* y[k, p, q] = bias[k] + Σ_c,t xp[c·cstride + p·Wp + q + offset[t]] · wt[c, t, k] (see direct.c): 32 pixels of
   a row x 12 filters (24 accumulators: 2 loads and 12 broadcasts per 24 FMAs; with 16 pixels the broadcasts and
   the misaligned row loads outnumbered the FMAs, measured 57 % of a 3-channel layer in the loads), the last
   block 8 or 4 filters; a row's last pixels masked (the masked loads never read past them). */
AVX512 static inline __attribute__((always_inline)) void direct_filters(
        const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, const int T, const float *wt, int K,
        int Kpad, const float *bias, float *y, ptrdiff_t PQ, int Q, int p, int q0, __mmask16 mask0,
        __mmask16 mask1) {
    ptrdiff_t CT = (ptrdiff_t)C * T;
    int k0 = 0;
    for (; k0 + 12 <= Kpad; k0 += 12)
        direct_block(xp, C, cstride, Wp, offset, T, wt + k0 * CT, K, bias, y, PQ, Q, p, q0, k0, mask0, mask1, 12);
    if (Kpad - k0 == 8)
        direct_block(xp, C, cstride, Wp, offset, T, wt + k0 * CT, K, bias, y, PQ, Q, p, q0, k0, mask0, mask1, 8);
    else if (Kpad - k0 == 4)
        direct_block(xp, C, cstride, Wp, offset, T, wt + k0 * CT, K, bias, y, PQ, Q, p, q0, k0, mask0, mask1, 4);
}

AVX512 void cnnk_direct_avx512(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                               const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q,
                               int p_begin, int p_end) {
    ptrdiff_t PQ = (ptrdiff_t)P * Q;
    for (int p = p_begin; p < p_end; p++)
        for (int q0 = 0; q0 < Q; q0 += 32) {
            int left = Q - q0;
            __mmask16 mask0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
            __mmask16 mask1 = left >= 32 ? (__mmask16)0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
            if (T == 9) /* 3x3, the common kernel: its 9 taps unrolled */
                direct_filters(xp, C, cstride, Wp, offset, 9, wt, K, Kpad, bias, y, PQ, Q, p, q0, mask0, mask1);
            else
                direct_filters(xp, C, cstride, Wp, offset, T, wt, K, Kpad, bias, y, PQ, Q, p, q0, mask0, mask1);
        }
}

/* Rows of the image to fetch into L2 while a block multiplies: rows [first, first + count) of a list made of
   `a_rows` rows from `a` then rows from `b`, each `stride` floats apart, 2 cache lines (32 floats) each. */
typedef struct {
    const float *a, *b;
    ptrdiff_t stride;
    int a_rows, first, count;
} prefetch_rows;

AVX512 static inline __attribute__((always_inline)) void prefetch_row(const prefetch_rows *rows, int i) {
    int r = rows->first + i;
    const float *line = r < rows->a_rows ? rows->a + r * rows->stride : rows->b + (r - rows->a_rows) * rows->stride;
    _mm_prefetch((const char *)line, _MM_HINT_T1);
    _mm_prefetch((const char *)(line + 16), _MM_HINT_T1);
}

/* One block of `block` filters (12, 8 or 4: a constant after inlining) x 32 pixels over a panel of C channels;
   `more` adds to what y holds (the panel is not the first channels). Its share of the prefetches is spread
   over its channel loop, one row every `C / count` channels: the fill buffers take about a dozen misses at a
   time, so a burst of them stalls the loop that issues it. */
AVX512 static inline __attribute__((always_inline)) void pointwise_block(
        const float *panel, int C, ptrdiff_t PQ, const float *taps, int K, const float *bias, float *y, int k0,
        __mmask16 mask0, __mmask16 mask1, int more, const prefetch_rows *ahead, const int block) {
    __m512 acc[12][2];
    for (int i = 0; i < block; i++) {
        if (more && k0 + i < K) {
            acc[i][0] = _mm512_maskz_loadu_ps(mask0, y + (k0 + i) * PQ);
            acc[i][1] = _mm512_maskz_loadu_ps(mask1, y + (k0 + i) * PQ + 16);
        } else {
            acc[i][0] = acc[i][1] = _mm512_set1_ps(!more && bias && k0 + i < K ? bias[k0 + i] : 0.0f);
        }
    }
    const float *v = panel;
    int spread = ahead->count > 0 ? (C + ahead->count - 1) / ahead->count : C + 1, countdown = 0, fetched = 0;
    for (int c = 0; c < C; c++, v += 32, taps += block) {
        if (countdown-- == 0) {
            countdown = spread - 1;
            if (fetched < ahead->count) prefetch_row(ahead, fetched++);
        }
        fma_block(acc, taps, _mm512_loadu_ps(v), _mm512_loadu_ps(v + 16), block);
    }
    while (fetched < ahead->count) prefetch_row(ahead, fetched++);
    store_block(y, PQ, k0, K, acc, mask0, mask1, block);
}

#define POINTWISE_CHANNELS 128 /* a panel of 32 pixels x 128 channels (16 KiB) and a block's taps stay in L1 */
#define POINTWISE_AHEAD 96 /* pixels: fetch three panels on while this one multiplies (64, 128: slower) */

/* y[k, q] = bias[k] + Σ_c wt[c, k] · x[c, q] (see direct.c): 12 filters x 32 pixels (24 accumulators; 2 loads
   and 12 broadcasts per 24 FMAs), then a block of 8 or 4 (Kpad is a multiple of 4); the last pixels masked.
   The 32 pixels' channels are first copied side by side, 128 channels at a time, so the filter blocks read
   them from L1 rather than rows a whole image plane apart (measured in cache, 256 -> 64 filters: 6-filter
   blocks on the image in place 60 % of the FMA peak, on a panel of all channels 72 %, of 128 channels 80 %).
   Rows a plane apart also defeat the hardware's stream prefetchers, and the layer is bound by memory latency
   (1 thread, cold cache: 2 threads ran 2.2x faster than 1), so while a slice multiplies its filter blocks
   fetch the same channels 96 pixels on, and in the first slice also y's rows there (written later). */
AVX512 void cnnk_pointwise_avx512(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int Kpad,
                                  const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end, float *panel) {
    int blocks = Kpad / 12 + (Kpad % 12 != 0);
    for (ptrdiff_t q0 = q_begin; q0 < q_end; q0 += 32) {
        int left = q_end - q0 < 32 ? (int)(q_end - q0) : 32;
        __mmask16 mask0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __mmask16 mask1 = left >= 32 ? (__mmask16)0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
        for (int c0 = 0; c0 < C; c0 += POINTWISE_CHANNELS) {
            int cc = C - c0 < POINTWISE_CHANNELS ? C - c0 : POINTWISE_CHANNELS;
            const float *in = x + c0 * PQ + q0;
            for (int c = 0; c < cc; c++, in += PQ) {
                _mm512_storeu_ps(panel + c * 32, _mm512_maskz_loadu_ps(mask0, in));
                _mm512_storeu_ps(panel + c * 32 + 16, _mm512_maskz_loadu_ps(mask1, in + 16));
            }
            /* the rows to fetch (none past the plane's end): this slice's channels, then in the first slice y */
            int ahead = q0 + POINTWISE_AHEAD + 32 <= PQ;
            int total = ahead ? cc + (c0 == 0 ? K : 0) : 0, share = (total + blocks - 1) / blocks;
            prefetch_rows rows = {x + c0 * PQ + q0 + POINTWISE_AHEAD, y + q0 + POINTWISE_AHEAD, PQ, cc, 0, 0};
            int k0 = 0, more = c0 > 0;
            for (int b = 0; k0 < Kpad; b++) {
                rows.first = b * share;
                rows.count = rows.first < total ? (total - rows.first < share ? total - rows.first : share) : 0;
                if (Kpad - k0 >= 12) {
                    pointwise_block(panel, cc, PQ, wt + (ptrdiff_t)k0 * C + c0 * 12, K, bias, y + q0, k0, mask0,
                                    mask1, more, &rows, 12);
                    k0 += 12;
                } else if (Kpad - k0 == 8) {
                    pointwise_block(panel, cc, PQ, wt + (ptrdiff_t)k0 * C + c0 * 8, K, bias, y + q0, k0, mask0,
                                    mask1, more, &rows, 8);
                    k0 += 8;
                } else {
                    pointwise_block(panel, cc, PQ, wt + (ptrdiff_t)k0 * C + c0 * 4, K, bias, y + q0, k0, mask0,
                                    mask1, more, &rows, 4);
                    k0 += 4;
                }
            }
        }
    }
}

/* 12 independent chains of 16-wide FMAs: the FMA peak of one core, for the benchmark's roof. */
AVX512 float cnnk_fma_chains_avx512(long rounds) {
    __m512 a[12], b = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-8f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < rounds; k++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    __m512 sum = a[0];
    for (int i = 1; i < 12; i++) sum = _mm512_add_ps(sum, a[i]);
    return _mm512_reduce_add_ps(sum);
}
#endif
