/* The AVX-512 register blocks of the products (winograd43.c dispatches to them when the CPU has AVX-512F).

   Same layouts and formulas as the AVX2 kernels beside them in winograd43.c and direct.c; one zmm holds
   16 floats, so a block is twice as wide per accumulator and the 32 registers hold 12 accumulators plus
   the operands. Each function is compiled for AVX-512F alone (the target attribute), so the object still
   loads and runs on any x86-64: the loader calls these only after __builtin_cpu_supports("avx512f"). */

#include "simd.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"

#define PRODUCT_CHANNELS 128 /* up to four filter panels over 128 channels: 32 KiB, kept in L1 */

/* out[i, 16j + l] (+)= Σ_c row[i][c·step] · u[j·panel_size + 16c + l] for 6 rows and `np` panels of 16 filters
   (a constant after inlining): up to 24 accumulators. With 2 FMA pipes of 4 cycles (Xeon) 12 chains only just
   cover the latency and each pair of filter loads fed 12 FMAs; 6 x 64 filters feed 24 (kernel alone, 128
   channels in L1: 6 x 32 at 162-175 GFLOP/s, 6 x 64 at 190-197, of 231). Rows past `rows` are not stored. */
AVX512 static inline __attribute__((always_inline)) void product_block(const float *const row[6], int step,
                                                                       int channels, const float *u,
                                                                       ptrdiff_t panel_size, float *out, int Kpad,
                                                                       int rows, int accumulate, const int np) {
    __m512 acc[6][4];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < np; j++)
            acc[i][j] = accumulate && i < rows ? _mm512_loadu_ps(out + (ptrdiff_t)i * Kpad + 16 * j)
                                               : _mm512_setzero_ps();
    for (int c = 0; c < channels; c++, u += 16) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int j = 0; j < np; j++) w[j] = _mm512_loadu_ps(u + j * panel_size);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m512 x = _mm512_set1_ps(row[i][(ptrdiff_t)c * step]);
#pragma GCC unroll 4
            for (int j = 0; j < np; j++) acc[i][j] = _mm512_fmadd_ps(x, w[j], acc[i][j]);
        }
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < np; j++) _mm512_storeu_ps(out + (ptrdiff_t)i * Kpad + 16 * j, acc[i][j]);
}

/* product_block over panels kb .. kb + np − 1, np = min(4, panels − kb) (np a constant in each call) */
AVX512 static inline __attribute__((always_inline)) void product_panels(const float *const row[6], int step,
                                                                        int channels, const float *u,
                                                                        ptrdiff_t panel_size, float *out, int Kpad,
                                                                        int rows, int accumulate, int np) {
    if (np >= 4)
        product_block(row, step, channels, u, panel_size, out, Kpad, rows, accumulate, 4);
    else if (np == 3)
        product_block(row, step, channels, u, panel_size, out, Kpad, rows, accumulate, 3);
    else if (np == 2)
        product_block(row, step, channels, u, panel_size, out, Kpad, rows, accumulate, 2);
    else
        product_block(row, step, channels, u, panel_size, out, Kpad, rows, accumulate, 1);
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
                product_panels(row, 1, cc, u, panel_size, M + group * GEMM_TILES * Kpad + kb * 16, Kpad, rows,
                               c0 > 0, panels - kb);
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
                product_panels(row, packed ? GEMM_TILES : 1, C, Ux + kb * panel_size,
                               panel_size, M + group * GEMM_TILES * Kpad + kb * 16, Kpad, rows, 0, panels - kb);
        }
    }
}

/* G g Gᵀ for a 6-row step: out[i] = (G g)[i] of the three inputs (see SIXTH in simd.h) */
AVX512 static inline __attribute__((always_inline)) void filter_rows(__m512 g0, __m512 g1, __m512 g2, __m512 out[6]) {
    const __m512 quarter = _mm512_set1_ps(0.25f), sixth = _mm512_set1_ps(-SIXTH);
    const __m512 twentyfourth = _mm512_set1_ps(TWENTYFOURTH), two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    __m512 even = _mm512_add_ps(g0, g2), outer = _mm512_fmadd_ps(four, g2, g0), middle = _mm512_mul_ps(two, g1);
    out[0] = _mm512_mul_ps(quarter, g0);
    out[1] = _mm512_mul_ps(sixth, _mm512_add_ps(even, g1));
    out[2] = _mm512_mul_ps(sixth, _mm512_sub_ps(even, g1));
    out[3] = _mm512_mul_ps(twentyfourth, _mm512_add_ps(outer, middle));
    out[4] = _mm512_mul_ps(twentyfourth, _mm512_sub_ps(outer, middle));
    out[5] = g2;
}

/* cnnk_wino43_filter (winograd43.c) with each panel's 16 filters gathered into the lanes (masked past K) and
   transformed in registers: the portable version, lanes through memory, ran at 60 cycles a filter and channel
   (18 % of the 384 -> 384 forward pass). Needs C·9·16 < 2³¹ (the gather's int32 offsets). */
AVX512 void cnnk_wino43_filter_avx512(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U) {
    int panels = Kpad / 16;
    const __m512i lanes = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                             _mm512_set1_epi32(C * 9));
    for (int kb = 0; kb < panels; kb++) /* c inner: each of the 36 panels is written in sequence */
        for (int c = c_begin; c < c_end; c++) {
            int left = K - kb * 16;
            __mmask16 real = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
            const float *g = w + ((ptrdiff_t)kb * 16 * C + c) * 9;
            __m512 taps[9], t[6][3], u[6];
            for (int r = 0; r < 9; r++)
                taps[r] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), real, lanes, g + r, 4);
            for (int j = 0; j < 3; j++) { /* t = G g: column j */
                __m512 column[6];
                filter_rows(taps[j], taps[3 + j], taps[6 + j], column);
                for (int i = 0; i < 6; i++) t[i][j] = column[i];
            }
            for (int i = 0; i < 6; i++) { /* u = t Gᵀ: row i */
                filter_rows(t[i][0], t[i][1], t[i][2], u);
                for (int j = 0; j < 6; j++)
                    _mm512_storeu_ps(U + ((((ptrdiff_t)(i * 6 + j)) * panels + kb) * C + c) * 16, u[j]);
            }
        }
}

/* dU[(xi*K + k)*C + c] += Σ_t D[row(t, xi), k] · V[row(t, xi), c]: 6 filters x 32 channels (12 accumulators),
   then 16 channels, then one at a time. */
AVX512 void cnnk_weight_multiply_avx512(const float *D, const float *V, int ntiles, int Kpad, int K, int C,
                                        float *dU) {
    int c32 = C / 32 * 32, c16 = C / 16 * 16;
    for (int xi = 0; xi < 36; xi++) {
        for (int k0 = 0; k0 < K; k0 += 6) {
            int ks = K - k0 < 6 ? K - k0 : 6;
            for (int c0 = 0; c0 < c16; c0 += c0 < c32 ? 32 : 16) {
                int wide = c0 < c32;
                __m512 acc[6][2];
                for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
                for (int t = 0; t < ntiles; t++) {
                    ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
                    const float *d = D + row * Kpad + k0, *v = V + row * C + c0;
                    __m512 v0 = _mm512_loadu_ps(v), v1 = wide ? _mm512_loadu_ps(v + 16) : v0;
#pragma GCC unroll 6
                    for (int i = 0; i < 6; i++) {
                        __m512 a = _mm512_set1_ps(d[i]);
                        acc[i][0] = _mm512_fmadd_ps(a, v0, acc[i][0]);
                        acc[i][1] = _mm512_fmadd_ps(a, v1, acc[i][1]);
                    }
                }
                for (int i = 0; i < ks; i++) {
                    float *out = dU + ((ptrdiff_t)xi * K + k0 + i) * C + c0;
                    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), acc[i][0]));
                    if (wide) _mm512_storeu_ps(out + 16, _mm512_add_ps(_mm512_loadu_ps(out + 16), acc[i][1]));
                }
            }
            for (int c = c16; c < C; c++)
                for (int t = 0; t < ntiles; t++) {
                    ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
                    float v = V[row * C + c];
                    for (int i = 0; i < ks; i++) dU[((ptrdiff_t)xi * K + k0 + i) * C + c] += D[row * Kpad + k0 + i] * v;
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

/* t = B^T d along one axis of 6 vectors (winograd43.c's input_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void input_6(const __m512 d[6], __m512 t[6]) {
    __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]), b = _mm512_fnmadd_ps(four, d[1], d[3]);
    __m512 c = _mm512_sub_ps(d[4], d[2]), e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));
    t[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    t[1] = _mm512_add_ps(a, b);
    t[2] = _mm512_sub_ps(a, b);
    t[3] = _mm512_add_ps(c, e);
    t[4] = _mm512_sub_ps(c, e);
    t[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* cnnk_wino43_input for AVX-512 (same layout and formula, see winograd43.c): 16 channels in one register; each
   input row is loaded once and transformed along the row, the 6 x 6 partial results kept on the stack, then each
   column transformed and stored straight into V (the portable version's three 36-vector arrays spill). */
AVX512 void cnnk_wino43_input_avx512(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H,
                                     int W, const int *img, const int *row0, const int *col0, int ntiles, float *V) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * C;
    __m512 t[6][6];
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = x + img[tile] * image_stride;
        float *out0 = V + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * C;
        for (int first = 0; first < C; first += 16) {
            int count = C - first < 16 ? C - first : 16;
            __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            for (int i = 0; i < 6; i++) {
                int r = r0 + i;
                __m512 d[6];
                for (int j = 0; j < 6; j++) {
                    int q = c0 + j;
                    d[j] = r >= 0 && r < H && q >= 0 && q < W
                               ? _mm512_maskz_loadu_ps(mask, image + ((ptrdiff_t)r * W + q) * pixel_stride + first)
                               : _mm512_setzero_ps();
                }
                input_6(d, t[i]);
            }
            float *out = out0 + first;
            for (int j = 0; j < 6; j++) {
                __m512 column[6], u[6];
                for (int i = 0; i < 6; i++) column[i] = t[i][j];
                input_6(column, u);
                for (int i = 0; i < 6; i++) _mm512_mask_storeu_ps(out + (i * 6 + j) * xi_stride, mask, u[i]);
            }
        }
    }
}

/* o = A^T m along one axis of 6 vectors (winograd43.c's output_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void output_6(const __m512 m[6], __m512 o[4]) {
    __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m[5]);
}

/* r[c][k] = r[k][c] for a 16 x 16 block of floats, in registers (4 rounds of 16 shuffles). */
AVX512 static inline __attribute__((always_inline)) void transpose_16x16(__m512 r[16]) {
    __m512 a[16], b[16];
    for (int k = 0; k < 8; k++) { /* per 128-bit lane: [x0 y0 x1 y1], [x2 y2 x3 y3] */
        a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    for (int k = 0; k < 4; k++) { /* b[4k + m], lane L: column 4L + m of rows 4k..4k+3 */
        b[4 * k] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0x44);
        b[4 * k + 1] = _mm512_shuffle_ps(a[4 * k], a[4 * k + 2], 0xEE);
        b[4 * k + 2] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0x44);
        b[4 * k + 3] = _mm512_shuffle_ps(a[4 * k + 1], a[4 * k + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) { /* column 4L + m: lane L of b[m], b[4 + m], b[8 + m], b[12 + m] */
        __m512 e0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44), e1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
        __m512 e2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
        __m512 e3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
        r[m] = _mm512_shuffle_f32x4(e0, e2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(e0, e2, 0xDD);
        r[8 + m] = _mm512_shuffle_f32x4(e1, e3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(e1, e3, 0xDD);
    }
}

/* cnnk_wino43_output for AVX-512 (same layout and formula, see winograd43.c): the 16 output cells of a tile for 16
   filters are transposed in registers, so each filter's 4 x 4 block is stored as 4 rows of 4 floats, not as 16
   scalars gathered across the lanes. */
#define OUTPUT_AHEAD 2

AVX512 void cnnk_wino43_output_avx512(const float *M, int Kpad, int K, const int *img, const int *row0,
                                      const int *col0, int ntiles, const float *bias, float *y,
                                      ptrdiff_t image_stride, int P, int Q) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad, PQ = (ptrdiff_t)P * Q;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        int rows = P - r0 < 4 ? P - r0 : 4, cols = Q - c0 < 4 ? Q - c0 : 4;
        float *image = y + img[tile] * image_stride + (ptrdiff_t)r0 * Q + c0;
        const float *src0 = M + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad;
        for (int first = 0; first < K; first += 16) {
            int count = K - first < 16 ? K - first : 16;
            const float *src = src0 + first;
            if (tile + OUTPUT_AHEAD < ntiles) { /* y's rows of a tile on (see the comment above) */
                int ahead = tile + OUTPUT_AHEAD;
                const float *at = y + img[ahead] * image_stride + (ptrdiff_t)row0[ahead] * Q + col0[ahead] + 3;
                int last = K - first < 16 ? K - first : 16, rows_ahead = P - row0[ahead] < 4 ? P - row0[ahead] : 4;
                for (int l = 0; l < last; l++)
                    for (int i = 0; i < rows_ahead; i++)
                        _mm_prefetch((const char *)(at + (first + l) * PQ + (ptrdiff_t)i * Q), _MM_HINT_T0);
            }
            __m512 t[4][6], cell[16];
            for (int j = 0; j < 6; j++) { /* columns: t[i][j] = Σ_r A^T[i][r] m[r][j] */
                __m512 m[6], o[4];
                for (int r = 0; r < 6; r++) m[r] = _mm512_loadu_ps(src + (r * 6 + j) * xi_stride);
                output_6(m, o);
                for (int i = 0; i < 4; i++) t[i][j] = o[i];
            }
            __mmask16 filters = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            __m512 shift = bias ? _mm512_maskz_loadu_ps(filters, bias + first) : _mm512_setzero_ps();
            for (int i = 0; i < 4; i++) { /* rows: cell[i*4 + j] = Σ_r t[i][r] A[r][j] */
                __m512 o[4];
                output_6(t[i], o);
                for (int j = 0; j < 4; j++) cell[i * 4 + j] = _mm512_add_ps(o[j], shift);
            }
            transpose_16x16(cell); /* cell[l]: filter first + l's 4 x 4 block, row-major */
            for (int l = 0; l < count; l++) {
                float *plane = image + (first + l) * PQ;
                if (cols == 4) {
                    for (int i = 0; i < rows; i++) {
                        __m128 row;
                        switch (i) { /* the lane index of an extract must be a constant */
                            case 0: row = _mm512_extractf32x4_ps(cell[l], 0); break;
                            case 1: row = _mm512_extractf32x4_ps(cell[l], 1); break;
                            case 2: row = _mm512_extractf32x4_ps(cell[l], 2); break;
                            default: row = _mm512_extractf32x4_ps(cell[l], 3); break;
                        }
                        _mm_storeu_ps(plane + (ptrdiff_t)i * Q, row);
                    }
                } else { /* the last column of tiles */
                    float block[16];
                    _mm512_storeu_ps(block, cell[l]);
                    for (int i = 0; i < rows; i++)
                        for (int j = 0; j < cols; j++) plane[(ptrdiff_t)i * Q + j] = block[i * 4 + j];
                }
            }
        }
    }
}

/* e = A a along one axis, 4 vectors to 6 (winograd43.c's grad_1d, in registers). */
AVX512 static inline __attribute__((always_inline)) void grad_4to6(const __m512 a[4], __m512 e[6]) {
    __m512 s02 = _mm512_add_ps(a[0], a[2]), s13 = _mm512_add_ps(a[1], a[3]);
    __m512 p02 = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), a[2], a[0]);
    __m512 p13 = _mm512_fmadd_ps(_mm512_set1_ps(8.0f), a[3], _mm512_add_ps(a[1], a[1]));
    e[0] = a[0];
    e[1] = _mm512_add_ps(s02, s13);
    e[2] = _mm512_sub_ps(s02, s13);
    e[3] = _mm512_add_ps(p02, p13);
    e[4] = _mm512_sub_ps(p02, p13);
    e[5] = a[3];
}

/* cnnk_wino43_grad_output for AVX-512 (same layout and formula, see winograd43.c): 16 filters in one register;
   each row of dy's 4 x 4 tile loaded once (masked past K, zero outside P x Q) and transformed to 6, the 4 x 6
   partial results on the stack, then each column transformed and stored straight into D. */
AVX512 void cnnk_wino43_grad_output_avx512(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K,
                                           int P, int Q, const int *img, const int *row0, const int *col0, int ntiles,
                                           int Kpad, float *D) {
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad;
    __m512 t[4][6];
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = dy + img[tile] * image_stride;
        float *out0 = D + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad;
        for (int first = 0; first < Kpad; first += 16) {
            int count = K - first < 16 ? (K - first > 0 ? K - first : 0) : 16;
            __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            for (int i = 0; i < 4; i++) {
                __m512 a[4];
                for (int j = 0; j < 4; j++)
                    a[j] = r0 + i < P && c0 + j < Q
                               ? _mm512_maskz_loadu_ps(mask, image + ((ptrdiff_t)(r0 + i) * Q + c0 + j) * pixel_stride
                                                                 + first)
                               : _mm512_setzero_ps();
                grad_4to6(a, t[i]);
            }
            float *out = out0 + first;
            for (int j = 0; j < 6; j++) {
                __m512 column[4], u[6];
                for (int i = 0; i < 4; i++) column[i] = t[i][j];
                grad_4to6(column, u);
                for (int i = 0; i < 6; i++) _mm512_storeu_ps(out + (i * 6 + j) * xi_stride, u[i]);
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
