/* Winograd F(4x4, 3x3) transforms (Lavin & Gray, 2016), float32.

   Y = A^T [ (G g G^T) (.) (B^T d B) ] A for each 4x4 output tile, with d the 6x6
   input patch under it and g a 3x3 filter; the 36 element-wise products of all
   tiles and channels become 36 matrix products, done here by a register-blocked
   kernel that reads the transformed data as the transforms lay it out.

   The transforms work on WINO_LANES tiles at once, one tile per SIMD lane, so the
   compiler vectorises them; each exported function is compiled once per ISA
   (AVX-512, AVX2+FMA, baseline) and the loader picks the best the CPU has
   (GCC target_clones). No -march flag is needed, and other compilers and
   architectures get the portable version.

   Arguments arrive validated from cnnkernels: tiles lie in the output, pointers are
   valid, counts are positive. */

#include <stddef.h>
#include <string.h>

#include "winograd43.h"

#define WINO_LANES 16

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(CNNK_NO_CLONES)
#define CNNK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CNNK_CLONES
#endif

typedef float lanes_t[WINO_LANES];

/* t = B^T d along one axis of 6 values, for every lane. */
static inline void input_1d(const lanes_t d0, const lanes_t d1, const lanes_t d2, const lanes_t d3,
                            const lanes_t d4, const lanes_t d5, lanes_t t0, lanes_t t1, lanes_t t2,
                            lanes_t t3, lanes_t t4, lanes_t t5) {
    for (int l = 0; l < WINO_LANES; l++) {
        float a = d4[l] - 4.0f * d2[l], b = d3[l] - 4.0f * d1[l], c = d4[l] - d2[l], e = 2.0f * (d3[l] - d1[l]);
        t0[l] = 4.0f * d0[l] - 5.0f * d2[l] + d4[l];
        t1[l] = a + b;
        t2[l] = a - b;
        t3[l] = c + e;
        t4[l] = c - e;
        t5[l] = 4.0f * d1[l] - 5.0f * d3[l] + d5[l];
    }
}

/* o = A^T m along one axis of 6 values, for every lane. */
static inline void output_1d(const lanes_t m0, const lanes_t m1, const lanes_t m2, const lanes_t m3,
                             const lanes_t m4, const lanes_t m5, lanes_t o0, lanes_t o1, lanes_t o2,
                             lanes_t o3) {
    for (int l = 0; l < WINO_LANES; l++) {
        float s12 = m1[l] + m2[l], d12 = m1[l] - m2[l], s34 = m3[l] + m4[l], d34 = m3[l] - m4[l];
        o0[l] = m0[l] + s12 + s34;
        o1[l] = d12 + 2.0f * d34;
        o2[l] = s12 + 4.0f * s34;
        o3[l] = d12 + 8.0f * d34 + m5[l];
    }
}

CNNK_CLONES
void cnnk_nchw_to_nhwc(const float *x, int C, int HW, float *out) {
    /* out[p, c] = x[c, p] for one image, in 16 x 16 blocks so both sides stay in cache */
    for (int p0 = 0; p0 < HW; p0 += 16) {
        int p1 = p0 + 16 < HW ? p0 + 16 : HW;
        for (int c0 = 0; c0 < C; c0 += 16) {
            int c1 = c0 + 16 < C ? c0 + 16 : C;
            for (int p = p0; p < p1; p++)
                for (int c = c0; c < c1; c++) out[(ptrdiff_t)p * C + c] = x[(ptrdiff_t)c * HW + p];
        }
    }
}

CNNK_CLONES
void cnnk_wino43_input(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                       const int *img, const int *row0, const int *col0, int ntiles, float *V) {
    /* V[(xi*ntiles + t)*C + c] = (B^T d B)[xi], d[i][j] = x[img[t], row0[t]+i, col0[t]+j, c] (0 outside);
       x is channels-last (pixel_stride apart), the lanes are channels: every load and store is contiguous */
    lanes_t d[36], t[36], u[36];
    ptrdiff_t xi_stride = (ptrdiff_t)ntiles * C;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = x + img[tile] * image_stride;
        for (int first = 0; first < C; first += WINO_LANES) {
            int count = C - first < WINO_LANES ? C - first : WINO_LANES;
            for (int i = 0; i < 6; i++) {
                int r = r0 + i;
                for (int j = 0; j < 6; j++) {
                    int q = c0 + j;
                    float *dst = d[i * 6 + j];
                    if (r >= 0 && r < H && q >= 0 && q < W) {
                        const float *src = image + ((ptrdiff_t)r * W + q) * pixel_stride + first;
                        if (count == WINO_LANES) {
                            for (int l = 0; l < WINO_LANES; l++) dst[l] = src[l];
                        } else {
                            for (int l = 0; l < count; l++) dst[l] = src[l];
                            for (int l = count; l < WINO_LANES; l++) dst[l] = 0.0f;
                        }
                    } else {
                        for (int l = 0; l < WINO_LANES; l++) dst[l] = 0.0f;
                    }
                }
            }
            for (int j = 0; j < 6; j++) /* columns: t[i][j] = Σ_k B^T[i][k] d[k][j] */
                input_1d(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j],
                         t[j], t[6 + j], t[12 + j], t[18 + j], t[24 + j], t[30 + j]);
            for (int i = 0; i < 6; i++) /* rows: u[i][j] = Σ_k t[i][k] B[k][j] */
                input_1d(t[i * 6], t[i * 6 + 1], t[i * 6 + 2], t[i * 6 + 3], t[i * 6 + 4], t[i * 6 + 5],
                         u[i * 6], u[i * 6 + 1], u[i * 6 + 2], u[i * 6 + 3], u[i * 6 + 4], u[i * 6 + 5]);
            float *out = V + (ptrdiff_t)tile * C + first;
            for (int k = 0; k < 36; k++) {
                if (count == WINO_LANES) {
                    for (int l = 0; l < WINO_LANES; l++) out[k * xi_stride + l] = u[k][l];
                } else {
                    for (int l = 0; l < count; l++) out[k * xi_stride + l] = u[k][l];
                }
            }
        }
    }
}

#define GEMM_TILES 6 /* register block: 6 tiles x 16 filters = 12 AVX2 accumulators of 8 floats */

/* M[(xi*ntiles + t)*Kpad + k] = Σ_c V[(xi*ntiles + t)*C + c] · U[((xi*Kpad/16 + k/16)*C + c)*16 + k%16]
   for the 36 xi. V comes from cnnk_wino43_input (tiles x channels); U from cnnk_wino43_filter, in
   panels of 16 filters (Kpad a multiple of 16, zero beyond K) read straight through. Each group of
   6 tiles is first packed channel-major (6·C floats, kept in L1 while every panel streams past). */
typedef void (*multiply_fn)(const float *V, const float *U, int ntiles, int C, int Kpad, float *M,
                            float *panel);

static inline void pack_tiles(const float *Vx, int t0, int rows, int C, float *panel) {
    /* panel[c*6 + i] = V[t0 + i][c], zero for i >= rows */
    for (int c = 0; c < C; c++)
        for (int i = 0; i < GEMM_TILES; i++) panel[c * GEMM_TILES + i] = i < rows ? Vx[(ptrdiff_t)(t0 + i) * C + c] : 0.0f;
}

static void multiply_portable(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel) {
    for (int xi = 0; xi < 36; xi++) {
        const float *Vx = V + (ptrdiff_t)xi * ntiles * C;
        float *Mx = M + (ptrdiff_t)xi * ntiles * Kpad;
        for (int t0 = 0; t0 < ntiles; t0 += GEMM_TILES) {
            int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
            pack_tiles(Vx, t0, rows, C, panel);
            for (int k0 = 0; k0 < Kpad; k0 += 16) {
                const float *u = U + ((ptrdiff_t)xi * (Kpad / 16) + k0 / 16) * C * 16;
                float acc[GEMM_TILES][16] = {{0}};
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < GEMM_TILES; i++)
                        for (int l = 0; l < 16; l++) acc[i][l] += panel[c * GEMM_TILES + i] * u[c * 16 + l];
                for (int i = 0; i < rows; i++)
                    for (int l = 0; l < 16; l++) Mx[(ptrdiff_t)(t0 + i) * Kpad + k0 + l] = acc[i][l];
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(CNNK_NO_CLONES)
#include <immintrin.h>
#define CNNK_HAVE_AVX2 1

#define FMA_ROW(i)                                                                                     \
    do {                                                                                               \
        __m256 a = _mm256_broadcast_ss(p + (i) * row_step);                                           \
        acc##i##0 = _mm256_fmadd_ps(a, u0, acc##i##0);                                                \
        acc##i##1 = _mm256_fmadd_ps(a, u1, acc##i##1);                                                \
    } while (0)
#define STORE_ROW(i)                                                                                   \
    do {                                                                                               \
        if ((i) < rows) {                                                                              \
            _mm256_storeu_ps(out + (ptrdiff_t)(i) * Kpad, acc##i##0);                                 \
            _mm256_storeu_ps(out + (ptrdiff_t)(i) * Kpad + 8, acc##i##1);                             \
        }                                                                                              \
    } while (0)

__attribute__((target("avx2,fma")))
static void multiply_avx2(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel) {
    for (int xi = 0; xi < 36; xi++) {
        const float *Vx = V + (ptrdiff_t)xi * ntiles * C;
        float *Mx = M + (ptrdiff_t)xi * ntiles * Kpad;
        for (int t0 = 0; t0 < ntiles; t0 += GEMM_TILES) {
            int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
            /* With one or two panels of filters, packing would cost as much as the products it feeds:
               read the 6 rows of V where they lie (when there are 6 of them). */
            int packed = Kpad > 32 || rows < GEMM_TILES;
            ptrdiff_t row_step = packed ? 1 : C, channel_step = packed ? GEMM_TILES : 1;
            if (packed) pack_tiles(Vx, t0, rows, C, panel);
            for (int k0 = 0; k0 < Kpad; k0 += 16) {
                const float *u = U + ((ptrdiff_t)xi * (Kpad / 16) + k0 / 16) * C * 16;
                const float *p = packed ? panel : Vx + (ptrdiff_t)t0 * C;
                __m256 acc00 = _mm256_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00, acc20 = acc00,
                       acc21 = acc00, acc30 = acc00, acc31 = acc00, acc40 = acc00, acc41 = acc00, acc50 = acc00,
                       acc51 = acc00;
                for (int c = 0; c < C; c++, u += 16, p += channel_step) {
                    __m256 u0 = _mm256_loadu_ps(u), u1 = _mm256_loadu_ps(u + 8);
                    FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);
                }
                float *out = Mx + (ptrdiff_t)t0 * Kpad + k0;
                STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5);
            }
        }
    }
}
#endif

static multiply_fn chosen_multiply = NULL;
static const char *chosen_isa = "portable";

static void choose_kernels(void) {
#ifdef CNNK_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        chosen_isa = "avx2+fma";
        chosen_multiply = multiply_avx2;
        return;
    }
#endif
    chosen_multiply = multiply_portable;
}

const char *cnnk_simd_isa(void) {
    if (!chosen_multiply) choose_kernels();
    return chosen_isa;
}

void cnnk_wino43_multiply(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel) {
    if (!chosen_multiply) choose_kernels(); /* a benign race: every thread picks the same function */
    chosen_multiply(V, U, ntiles, C, Kpad, M, panel);
}

CNNK_CLONES
void cnnk_wino43_output(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                        int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q) {
    /* y[img[t], k, row0[t]+i, col0[t]+j] = bias[k] + (A^T m A)[i][j], m[xi] = M[(xi*ntiles + t)*Kpad + k];
       the lanes are filters; only the cells inside P x Q are written */
    lanes_t m[36], t[24], o[16];
    ptrdiff_t xi_stride = (ptrdiff_t)ntiles * Kpad, PQ = (ptrdiff_t)P * Q;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        int rows = P - r0 < 4 ? P - r0 : 4, cols = Q - c0 < 4 ? Q - c0 : 4;
        float *image = y + img[tile] * image_stride;
        for (int first = 0; first < K; first += WINO_LANES) {
            int count = K - first < WINO_LANES ? K - first : WINO_LANES;
            const float *src = M + (ptrdiff_t)tile * Kpad + first;
            for (int xi = 0; xi < 36; xi++)
                for (int l = 0; l < WINO_LANES; l++) m[xi][l] = src[xi * xi_stride + l];
            for (int j = 0; j < 6; j++) /* columns: t[i][j] = Σ_r A^T[i][r] m[r][j], i < 4 */
                output_1d(m[j], m[6 + j], m[12 + j], m[18 + j], m[24 + j], m[30 + j],
                          t[j], t[6 + j], t[12 + j], t[18 + j]);
            for (int i = 0; i < 4; i++) /* rows: o[i][j] = Σ_r t[i][r] A[r][j] */
                output_1d(t[i * 6], t[i * 6 + 1], t[i * 6 + 2], t[i * 6 + 3], t[i * 6 + 4], t[i * 6 + 5],
                          o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]);
            for (int l = 0; l < count; l++) {
                float shift = bias ? bias[first + l] : 0.0f;
                float *plane = image + (first + l) * PQ + (ptrdiff_t)r0 * Q + c0;
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) plane[(ptrdiff_t)i * Q + j] = o[i * 4 + j][l] + shift;
            }
        }
    }
}

CNNK_CLONES
void cnnk_wino43_filter(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U) {
    /* U[((xi*Kpad/16 + k/16)*C + c)*16 + k%16] = (G g G^T)[xi], g = w[k, c] (3 x 3), for c_begin <= c < c_end;
       zero for K <= k < Kpad. The lanes are 16 filters: every store is a whole 64-byte row of a panel. */
    lanes_t g[9], t[18], u[36];
    int panels = Kpad / 16;
    for (int c = c_begin; c < c_end; c++) {
        for (int kb = 0; kb < panels; kb++) {
            for (int l = 0; l < 16; l++) {
                int k = kb * 16 + l;
                for (int r = 0; r < 9; r++) g[r][l] = k < K ? w[((ptrdiff_t)k * C + c) * 9 + r] : 0.0f;
            }
            for (int j = 0; j < 3; j++) /* t = G g: 6 x 3 */
                for (int l = 0; l < 16; l++) {
                    float g0 = g[j][l], g1 = g[3 + j][l], g2 = g[6 + j][l];
                    t[0 * 3 + j][l] = 0.25f * g0;
                    t[1 * 3 + j][l] = -(g0 + g1 + g2) / 6.0f;
                    t[2 * 3 + j][l] = -(g0 - g1 + g2) / 6.0f;
                    t[3 * 3 + j][l] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
                    t[4 * 3 + j][l] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
                    t[5 * 3 + j][l] = g2;
                }
            for (int i = 0; i < 6; i++) /* u = t G^T: 6 x 6 */
                for (int l = 0; l < 16; l++) {
                    float g0 = t[i * 3][l], g1 = t[i * 3 + 1][l], g2 = t[i * 3 + 2][l];
                    u[i * 6 + 0][l] = 0.25f * g0;
                    u[i * 6 + 1][l] = -(g0 + g1 + g2) / 6.0f;
                    u[i * 6 + 2][l] = -(g0 - g1 + g2) / 6.0f;
                    u[i * 6 + 3][l] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
                    u[i * 6 + 4][l] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
                    u[i * 6 + 5][l] = g2;
                }
            for (int xi = 0; xi < 36; xi++) {
                float *dst = U + (((ptrdiff_t)xi * panels + kb) * C + c) * 16;
                for (int l = 0; l < 16; l++) dst[l] = u[xi][l];
            }
        }
    }
}
