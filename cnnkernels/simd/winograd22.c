/* Winograd F(2x2, 3x3) with one output tile per SIMD lane, float32: the first layers (few input channels).

   Y = A^T [(G g G^T) ⊙ (B^T d B)] A for each 2x2 output tile, d its 4x4 input patch, g a 3x3 filter (Lavin &
   Gray, 2016): 16 products per 4 outputs and channel instead of 36, and transforms whose coefficients are 0, ±1
   (and 1/2 in G), so the rounding error stays close to the direct sum's. F(4x4)'s kernels (winograd43.c) put
   channels in the lanes, which 3 channels would fill 3 of 16; here the lanes are 32 consecutive tiles of one
   image and the products run tiles x filters, so every load and store is a vector of one NCHW plane.

   Layout (cnnk_wino22_layout): a band of the zero-padded image split into its even and odd rows ("phases"),
   Hph rows a phase, Wp = 2·TQp floats a row, TQp = ⌈Q/2⌉ + 1 tile columns (the last one computed for nothing:
   it keeps each tile's 4 input columns inside the row). Tile f = tp·TQp + tq reads row i of its patch at
   xp[c, i % 2, tp + i / 2, 2·tq + j] = xp[c·cstride + (i % 2)·Hph·Wp + (i / 2)·Wp + 2f + j]: a run of tiles is
   the even and odd lanes of two loads. Reads run up to CNNK_WINO22_TAIL floats past the last channel's planes.

   Arguments arrive validated from cnnkernels (3x3, stride 1, dilation 1, shapes consistent). */
#include <string.h>

#include "simd.h"
#include "winograd22.h"
#include "winograd43.h"

#ifdef CNNK_HAVE_X86_SIMD
#include "avx512_blocks.h"
#endif

void cnnk_wino22_filter(const float *w, int K, int C, int Kpad, float *U) {
    /* U[((k/8·16 + e)·C + c)·8 + k%8] = (G g G^T)[e], g = w[k, c] (zero for K <= k < Kpad): per block of 8
       filters and element e, C rows of 8 filters, read in order by the products */
    for (int k = 0; k < Kpad; k++)
        for (int c = 0; c < C; c++) {
            float t[4][3], u[4][4];
            const float *g = w + ((ptrdiff_t)k * C + c) * 9;
            for (int j = 0; j < 3; j++) { /* t = G g */
                float g0 = k < K ? g[j] : 0.0f, g1 = k < K ? g[3 + j] : 0.0f, g2 = k < K ? g[6 + j] : 0.0f;
                t[0][j] = g0;
                t[1][j] = 0.5f * (g0 + g1 + g2);
                t[2][j] = 0.5f * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) { /* u = t G^T */
                u[i][0] = t[i][0];
                u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[i][3] = t[i][2];
            }
            for (int e = 0; e < 16; e++) U[(((ptrdiff_t)(k / 8) * 16 + e) * C + c) * 8 + k % 8] = u[e / 4][e % 4];
        }
}

void cnnk_wino22_layout(const float *x, int C, int H, int W, int pt, int pl, int tp0, int Hph, int Wp, float *xp) {
    /* xp[c, ph, i, j] = x[c, 2·(tp0 + i) + ph − pt, j − pl] (zero outside x) for i < Hph, j < Wp: the direct
       kernel's stride phases of rows at row stride 2 and column stride 1, and CNNK_WINO22_TAIL zeros after the
       last channel (read by the lanes past the last tile) */
    static const int row_phase[2] = {0, 1}, col_phase[1] = {0};
    cnnk_direct_phase_image(x, C, H, W, 2, 1, pt, pl, row_phase, 2, col_phase, 1, tp0, Hph, Wp, xp, NULL);
    memset(xp + (ptrdiff_t)C * 2 * Hph * Wp, 0, sizeof(float) * CNNK_WINO22_TAIL);
}

static void wino22_portable(const float *xp, int C, int Hph, int Wp, const float *U, int K, const float *bias,
                            float *y, int P, int Q, int tp0, int rows) {
    /* the formula tile by tile and filter by filter: the reference the vector kernel is tested against */
    int TQ = Wp / 2 - 1;
    ptrdiff_t cstride = (ptrdiff_t)2 * Hph * Wp, PQ = (ptrdiff_t)P * Q;
    float v[16];
    for (int tp = 0; tp < rows; tp++)
        for (int tq = 0; tq < TQ; tq++)
            for (int k = 0; k < K; k++) {
                float m[16] = {0};
                for (int c = 0; c < C; c++) {
                    float d[4][4], t[4][4];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            d[i][j] = xp[c * cstride + (i % 2) * Hph * Wp + (tp + i / 2) * Wp + 2 * tq + j];
                    for (int j = 0; j < 4; j++) { /* t = B^T d */
                        t[0][j] = d[0][j] - d[2][j];
                        t[1][j] = d[1][j] + d[2][j];
                        t[2][j] = d[2][j] - d[1][j];
                        t[3][j] = d[1][j] - d[3][j];
                    }
                    for (int i = 0; i < 4; i++) { /* v = t B */
                        v[i * 4 + 0] = t[i][0] - t[i][2];
                        v[i * 4 + 1] = t[i][1] + t[i][2];
                        v[i * 4 + 2] = t[i][2] - t[i][1];
                        v[i * 4 + 3] = t[i][1] - t[i][3];
                    }
                    for (int e = 0; e < 16; e++) m[e] += v[e] * U[(((ptrdiff_t)(k / 8) * 16 + e) * C + c) * 8 + k % 8];
                }
                float s[2][4];
                for (int j = 0; j < 4; j++) { /* s = A^T m */
                    s[0][j] = m[j] + m[4 + j] + m[8 + j];
                    s[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
                }
                for (int a = 0; a < 2; a++) {
                    int p = 2 * (tp0 + tp) + a;
                    float o[2] = {s[a][0] + s[a][1] + s[a][2], s[a][1] - s[a][2] - s[a][3]}; /* o = s A */
                    for (int b = 0; b < 2 && p < P; b++)
                        if (2 * tq + b < Q) y[k * PQ + (ptrdiff_t)p * Q + 2 * tq + b] = o[b] + (bias ? bias[k] : 0.0f);
                }
            }
}

#ifdef CNNK_HAVE_X86_SIMD

/* V[((e·C + c)·2 + h)·16 + l] = (B^T d B)[e] of tile f0 + 16h + l, channel c, for the `halves` runs of 16 */
AVX512 static inline __attribute__((always_inline)) void input_tiles(const float *xp, int C, ptrdiff_t cstride,
                                                                     ptrdiff_t phase, int Wp, ptrdiff_t f0,
                                                                     float *V, const int halves) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int c = 0; c < C; c++)
        for (int h = 0; h < halves; h++) {
            const float *run = xp + c * cstride + 2 * (f0 + 16 * h);
            __m512 d[4][4], t[4][4];
            for (int i = 0; i < 4; i++) {
                const float *row = run + (i & 1) * phase + (i >> 1) * Wp;
                __m512 a = _mm512_loadu_ps(row), b = _mm512_loadu_ps(row + 16);
                __m512 a2 = _mm512_loadu_ps(row + 2), b2 = _mm512_loadu_ps(row + 18);
                d[i][0] = _mm512_permutex2var_ps(a, even, b);
                d[i][1] = _mm512_permutex2var_ps(a, odd, b);
                d[i][2] = _mm512_permutex2var_ps(a2, even, b2);
                d[i][3] = _mm512_permutex2var_ps(a2, odd, b2);
            }
            for (int j = 0; j < 4; j++) {
                t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
            }
            float *out = V + ((ptrdiff_t)c * 2 + h) * 16;
            ptrdiff_t e_stride = (ptrdiff_t)C * 32;
            for (int i = 0; i < 4; i++) {
                _mm512_storeu_ps(out + (i * 4 + 0) * e_stride, _mm512_sub_ps(t[i][0], t[i][2]));
                _mm512_storeu_ps(out + (i * 4 + 1) * e_stride, _mm512_add_ps(t[i][1], t[i][2]));
                _mm512_storeu_ps(out + (i * 4 + 2) * e_stride, _mm512_sub_ps(t[i][2], t[i][1]));
                _mm512_storeu_ps(out + (i * 4 + 3) * e_stride, _mm512_sub_ps(t[i][1], t[i][3]));
            }
        }
}

/* M[((k·16 + e)·2 + h)·16 + l] = Σ_c V[e, c, h, l] · U[block, e, c, k] for the block's 8 filters; element 5
   (the one every output adds with +1) starts from the bias, so the output transform need not add it */
AVX512 static inline __attribute__((always_inline)) void multiply_tiles(const float *V, int C, const float *U,
                                                                        int k0, int K, const float *bias, float *M,
                                                                        const int halves) {
    for (int e = 0; e < 16; e++) {
        __m512 acc[8][2];
        for (int k = 0; k < 8; k++)
            acc[k][0] = acc[k][1] = _mm512_set1_ps(e == 5 && bias && k0 + k < K ? bias[k0 + k] : 0.0f);
        const float *v = V + (ptrdiff_t)e * C * 32, *u = U + (ptrdiff_t)e * C * 8;
        for (int c = 0; c < C; c++, v += 32, u += 8) {
            __m512 v0 = _mm512_loadu_ps(v), v1 = halves == 2 ? _mm512_loadu_ps(v + 16) : v0;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m512 a = _mm512_set1_ps(u[k]);
                acc[k][0] = _mm512_fmadd_ps(a, v0, acc[k][0]);
                if (halves == 2) acc[k][1] = _mm512_fmadd_ps(a, v1, acc[k][1]);
            }
        }
        for (int k = 0; k < 8; k++)
            for (int h = 0; h < halves; h++) _mm512_storeu_ps(M + (((ptrdiff_t)k * 16 + e) * 2 + h) * 16, acc[k][h]);
    }
}

/* Where a run's output rows go, the same for every filter: for each run of 16 tiles h and output row a of its
   tiles, one masked store per tile row the run spans (its offset in a filter's plane and its lanes, as floats of
   the interleaved row), and the lines the next run writes in row a (y is larger than the caches) */
#define WINO22_SPANS 10 /* tile rows 16 tiles can span: 16 / TQp + 2, TQp >= 2 */
typedef struct {
    int count[2][2];
    ptrdiff_t offset[2][2][WINO22_SPANS];
    unsigned int lanes[2][2][WINO22_SPANS];
    ptrdiff_t ahead[2];
} run_stores;

static void plan_stores(ptrdiff_t f0, int halves, int TQp, int tp0, int rows, int P, int Q, run_stores *plan) {
    int TQ = TQp - 1;
    for (int h = 0; h < halves; h++)
        for (int a = 0; a < 2; a++) {
            ptrdiff_t fb = f0 + 16 * h;
            int count = 0;
            for (ptrdiff_t tp = fb / TQp; tp <= (fb + 15) / TQp && tp < rows; tp++) {
                int p = 2 * (tp0 + (int)tp) + a;
                if (p >= P) break;
                /* lanes [l0, l1) are tile row tp's real tiles; as floats of the interleave, [2·l0, end) */
                ptrdiff_t l0 = tp * TQp - fb, l1 = tp * TQp + TQ - fb, shift = 2 * (fb - tp * TQp);
                if (l0 < 0) l0 = 0;
                if (l1 > 16) l1 = 16;
                ptrdiff_t end = 2 * l1 < Q - shift ? 2 * l1 : Q - shift;
                if (end <= 2 * l0) continue;
                plan->offset[h][a][count] = (ptrdiff_t)p * Q + shift; /* float m of the run: column shift + m */
                plan->lanes[h][a][count++] = (end >= 32 ? 0xFFFFFFFFu : (1u << end) - 1) & ~((1u << (2 * l0)) - 1);
            }
            plan->count[h][a] = count;
        }
    for (int a = 0; a < 2; a++) {
        ptrdiff_t tp = f0 / TQp, p = 2 * (tp0 + tp) + a;
        plan->ahead[a] = p < P ? p * Q + 2 * (f0 - tp * TQp) + 64 : -1;
    }
}

/* y's 2x2 cells of the run's tiles from M (A^T m A), for the block's filters below K: each output row of a
   run of tiles is the interleave of its two columns */
AVX512 static inline __attribute__((always_inline)) void output_tiles(const float *M, int k0, int K, float *y,
                                                                      ptrdiff_t PQ, const run_stores *plan,
                                                                      const int halves) {
    const __m512i first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i second = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (int k = 0; k < 8 && k0 + k < K; k++) {
        float *plane = y + (k0 + k) * PQ;
        for (int a = 0; a < 2; a++)
            if (plan->ahead[a] >= 0)
                for (int line = 0; line < 4; line++)
                    _mm_prefetch((const char *)(plane + plan->ahead[a] + 16 * line), _MM_HINT_T0);
        for (int h = 0; h < halves; h++) {
            const float *m = M + ((ptrdiff_t)k * 16 * 2 + h) * 16;
            __m512 s[2][4];
            for (int j = 0; j < 4; j++) {
                __m512 m0 = _mm512_loadu_ps(m + (0 * 4 + j) * 32), m1 = _mm512_loadu_ps(m + (1 * 4 + j) * 32);
                __m512 m2 = _mm512_loadu_ps(m + (2 * 4 + j) * 32), m3 = _mm512_loadu_ps(m + (3 * 4 + j) * 32);
                s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int a = 0; a < 2; a++) {
                __m512 o0 = _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]);
                __m512 o1 = _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]);
                __m512 lo = _mm512_permutex2var_ps(o0, first, o1), hi = _mm512_permutex2var_ps(o0, second, o1);
                for (int span = 0; span < plan->count[h][a]; span++) {
                    float *out = plane + plan->offset[h][a][span];
                    unsigned int lanes = plan->lanes[h][a][span];
                    _mm512_mask_storeu_ps(out, (__mmask16)(lanes & 0xFFFF), lo);
                    _mm512_mask_storeu_ps(out + 16, (__mmask16)(lanes >> 16), hi);
                }
            }
        }
    }
}

AVX512 static void wino22_avx512(const float *xp, int C, int Hph, int Wp, const float *U, int K, int Kpad,
                                 const float *bias, float *y, int P, int Q, int tp0, int rows, float *V, float *M) {
    /* every run's tiles transformed first, then each block of 8 filters over the band: y is written as 16
       sequential rows at a time, not all K filters' rows of one run (with 32 filters, 40 KB of lines a run:
       more than the L1, and 1.3x slower with y out of cache) */
    int TQp = Wp / 2;
    ptrdiff_t phase = (ptrdiff_t)Hph * Wp, cstride = 2 * phase, tiles = (ptrdiff_t)rows * TQp, PQ = (ptrdiff_t)P * Q;
    ptrdiff_t run_floats = (ptrdiff_t)16 * C * 32;
    run_stores plan;
    for (ptrdiff_t f0 = 0; f0 < tiles; f0 += 32) {
        float *Vrun = V + f0 / 32 * run_floats;
        if (tiles - f0 > 16)
            input_tiles(xp, C, cstride, phase, Wp, f0, Vrun, 2);
        else
            input_tiles(xp, C, cstride, phase, Wp, f0, Vrun, 1);
    }
    for (int k0 = 0; k0 < Kpad; k0 += 8)
        for (ptrdiff_t f0 = 0; f0 < tiles; f0 += 32) {
            const float *Vrun = V + f0 / 32 * run_floats, *Ublock = U + (ptrdiff_t)k0 * 16 * C;
            plan_stores(f0, tiles - f0 > 16 ? 2 : 1, TQp, tp0, rows, P, Q, &plan);
            if (tiles - f0 > 16) { /* two runs of 16 tiles */
                multiply_tiles(Vrun, C, Ublock, k0, K, bias, M, 2);
                output_tiles(M, k0, K, y, PQ, &plan, 2);
            } else { /* the band's last run, 16 tiles or fewer */
                multiply_tiles(Vrun, C, Ublock, k0, K, bias, M, 1);
                output_tiles(M, k0, K, y, PQ, &plan, 1);
            }
        }
}
#endif

ptrdiff_t cnnk_wino22_transformed_floats(int C, int rows, int Wp) {
    /* the vector kernel's V for a band of `rows` tile rows: 16·C·32 floats per run of 32 tiles */
    return (ptrdiff_t)16 * C * 32 * (((ptrdiff_t)rows * (Wp / 2) + 31) / 32);
}

void cnnk_wino22_forward(const float *xp, int C, int Hph, int Wp, const float *U, int K, int Kpad, const float *bias,
                         float *y, int P, int Q, int tp0, int rows, float *V, float *M) {
    /* y[k, p, q] = bias[k] + Σ_c,r,s x[c, p + r − pt, q + s − pl] · w[k, c, r, s] for the output rows of tile
       rows tp0 <= tp < tp0 + rows of one image: xp from cnnk_wino22_layout (from tile row tp0), U from
       cnnk_wino22_filter, y the image's output; at the AVX-512 SIMD level the AVX-512 kernel in V
       (cnnk_wino22_transformed_floats) and M (16·8·32 floats), else the portable one */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        wino22_avx512(xp, C, Hph, Wp, U, K, Kpad, bias, y, P, Q, tp0, rows, V, M);
        return;
    }
#endif
    (void)Kpad, (void)V, (void)M;
    wino22_portable(xp, C, Hph, Wp, U, K, bias, y, P, Q, tp0, rows);
}
