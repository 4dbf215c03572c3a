/* Winograd F(4x4, 3x3) transforms (Lavin & Gray, 2016), float32.

   Y = A^T [ (G g G^T) (.) (B^T d B) ] A for each 4x4 output tile, with d the 6x6
   input patch under it and g a 3x3 filter; the 36 element-wise products of all
   tiles and channels become 36 matrix products, done here by a register-blocked
   kernel that reads the transformed data as the transforms lay it out.

   The transforms work on WINO_LANES tiles at once, one tile per SIMD lane, so the
   compiler vectorises them; each exported function is compiled once per ISA
   (AVX-512, AVX2+FMA, baseline) and the loader picks the best the CPU has
   (GCC target_clones). No -march flag is needed, and other compilers and
   architectures get the portable version. On AVX-512 the transforms and products
   written with intrinsics in avx512.c run instead (chosen here, cnnk_simd_level).

   Arguments arrive validated from cnnkernels: tiles lie in the output, pointers are
   valid, counts are positive. */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "simd.h"
#include "winograd43.h"



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

static void nchw_to_nhwc_portable(const float *x, int C, int HW, float *out) {
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
static void wino43_input_generic(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                                 const int *img, const int *row0, const int *col0, int ntiles, float *V) {
    /* V[((t/6*36 + xi)*6 + t%6)*C + c] = (B^T d B)[xi], d[i][j] = x[img[t], row0[t]+i, col0[t]+j, c] (0 outside):
       per group of 6 tiles, per xi, 6 rows of channels (what the product reads). x is channels-last
       (pixel_stride apart) and the lanes are channels, so every load and store is contiguous, and the
       36 rows of one tile lie within 36·6·C floats. */
    lanes_t d[36], t[36], u[36];
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * C;
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
            float *out = V + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * C + first;
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


void cnnk_wino43_input(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                       const int *img, const int *row0, const int *col0, int ntiles, float *V) {
    /* see wino43_input_generic for the formula and layout */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        cnnk_wino43_input_avx512(x, image_stride, pixel_stride, C, H, W, img, row0, col0, ntiles, V);
        return;
    }
#endif
    wino43_input_generic(x, image_stride, pixel_stride, C, H, W, img, row0, col0, ntiles, V);
}

/* M[((t/6*36 + xi)*6 + t%6)*Kpad + k] = Σ_c V[((t/6*36 + xi)*6 + t%6)*C + c] · U[((xi*Kpad/16 + k/16)*C + c)*16 + k%16]
   for the 36 xi. V comes from cnnk_wino43_input (per 6 tiles and xi, 6 rows of channels); U from
   cnnk_wino43_filter, in panels of 16 filters (Kpad a multiple of 16, zero beyond K) read straight
   through. Each group of 6 tiles is packed channel-major (6·C floats, kept in L1 while every panel
   streams past) when there are more than two panels. */
typedef void (*multiply_fn)(const float *V, const float *U, int ntiles, int C, int Kpad, float *M,
                            float *panel, int nxi);

static void multiply_portable(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel,
                              int nxi) {
    for (int xi = 0; xi < nxi; xi++) {
        for (int t0 = 0; t0 < ntiles; t0 += GEMM_TILES) {
            int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
            ptrdiff_t group = (ptrdiff_t)(t0 / GEMM_TILES) * nxi + xi;
            cnnk_pack_tiles(V + group * GEMM_TILES * C, rows, C, panel);
            for (int k0 = 0; k0 < Kpad; k0 += 16) {
                const float *u = U + ((ptrdiff_t)xi * (Kpad / 16) + k0 / 16) * C * 16;
                float acc[GEMM_TILES][16] = {{0}};
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < GEMM_TILES; i++)
                        for (int l = 0; l < 16; l++) acc[i][l] += panel[c * GEMM_TILES + i] * u[c * 16 + l];
                for (int i = 0; i < rows; i++)
                    for (int l = 0; l < 16; l++) M[(group * GEMM_TILES + i) * Kpad + k0 + l] = acc[i][l];
            }
        }
    }
}

#ifdef CNNK_HAVE_X86_SIMD
#include <immintrin.h>

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
static void multiply_avx2(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel,
                          int nxi) {
    for (int xi = 0; xi < nxi; xi++) {
        for (int t0 = 0; t0 < ntiles; t0 += GEMM_TILES) {
            int rows = ntiles - t0 < GEMM_TILES ? ntiles - t0 : GEMM_TILES;
            ptrdiff_t group = (ptrdiff_t)(t0 / GEMM_TILES) * nxi + xi;
            const float *rows6 = V + group * GEMM_TILES * C;
            float *Mx = M + group * GEMM_TILES * Kpad;
            /* With one or two panels of filters, packing would cost as much as the products it feeds:
               read the 6 rows of V where they lie (when there are 6 of them). */
            int packed = Kpad > 32 || rows < GEMM_TILES;
            ptrdiff_t row_step = packed ? 1 : C, channel_step = packed ? GEMM_TILES : 1;
            if (packed) cnnk_pack_tiles(rows6, rows, C, panel);
            for (int k0 = 0; k0 < Kpad; k0 += 16) {
                const float *u = U + ((ptrdiff_t)xi * (Kpad / 16) + k0 / 16) * C * 16;
                const float *p = packed ? panel : rows6;
                __m256 acc00 = _mm256_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00, acc20 = acc00,
                       acc21 = acc00, acc30 = acc00, acc31 = acc00, acc40 = acc00, acc41 = acc00, acc50 = acc00,
                       acc51 = acc00;
                for (int c = 0; c < C; c++, u += 16, p += channel_step) {
                    __m256 u0 = _mm256_loadu_ps(u), u1 = _mm256_loadu_ps(u + 8);
                    FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);
                }
                float *out = Mx + k0;
                STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5);
            }
        }
    }
}

#define TRANSPOSE_AHEAD 128 /* pixels; measured on the ResNet layer: 64 slower, 256 level */

__attribute__((target("avx2,fma")))
static void transpose_avx2(const float *x, int C, int HW, ptrdiff_t ldi, ptrdiff_t ldo, const float *shift,
                           float *out) {
    /* out[p*ldo + c] = x[c*ldi + p] (+ shift[p]), 8 x 8 blocks transposed in registers */
    int c8 = C / 8 * 8, p8 = HW / 8 * 8;
    for (int p0 = 0; p0 < p8; p0 += 8) {
        for (int c0 = 0; c0 < c8; c0 += 8) {
            const float *src = x + (ptrdiff_t)c0 * ldi + p0;
            if ((p0 & 15) == 0 && p0 + TRANSPOSE_AHEAD + 16 <= HW) /* rows ldi apart: no hardware prefetch */
                for (int r = 0; r < 8; r++) _mm_prefetch((const char *)(src + r * ldi + TRANSPOSE_AHEAD), _MM_HINT_T0);
            __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ldi), r2 = _mm256_loadu_ps(src + 2 * ldi),
                   r3 = _mm256_loadu_ps(src + 3 * ldi), r4 = _mm256_loadu_ps(src + 4 * ldi),
                   r5 = _mm256_loadu_ps(src + 5 * ldi), r6 = _mm256_loadu_ps(src + 6 * ldi),
                   r7 = _mm256_loadu_ps(src + 7 * ldi);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                   t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *dst = out + (ptrdiff_t)p0 * ldo + c0;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(dst + 1 * ldo, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(dst + 2 * ldo, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(dst + 3 * ldo, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(dst + 4 * ldo, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(dst + 5 * ldo, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(dst + 6 * ldo, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(dst + 7 * ldo, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
        for (int p = p0; p < p0 + 8; p++)
            for (int c = c8; c < C; c++) out[(ptrdiff_t)p * ldo + c] = x[(ptrdiff_t)c * ldi + p];
    }
    for (int p = p8; p < HW; p++)
        for (int c = 0; c < C; c++) out[(ptrdiff_t)p * ldo + c] = x[(ptrdiff_t)c * ldi + p];
    if (shift)
        for (int p = 0; p < HW; p++) {
            __m256 b = _mm256_set1_ps(shift[p]);
            int c = 0;
            for (; c + 8 <= C; c += 8) _mm256_storeu_ps(out + p * ldo + c, _mm256_add_ps(_mm256_loadu_ps(out + p * ldo + c), b));
            for (; c < C; c++) out[p * ldo + c] += shift[p];
        }
}

__attribute__((target("avx2,fma")))
static void nchw_to_nhwc_avx2(const float *x, int C, int HW, float *out) {
    transpose_avx2(x, C, HW, HW, C, NULL, out);
}

__attribute__((target("avx2,fma")))
static void transpose_avx512(const float *x, int C, int HW, ptrdiff_t ldi, ptrdiff_t ldo, const float *shift,
                             float *out) {
    /* out[p*ldo + c] = x[c*ldi + p] (+ shift[p]): 16 x 16 blocks (AVX-512), the rows and columns past the last
       whole block by the AVX2 transpose */
    int c16 = C / 16 * 16, p16 = HW / 16 * 16;
    cnnk_transpose16_avx512(x, c16, p16, ldi, ldo, shift, out);
    if (c16 < C) transpose_avx2(x + (ptrdiff_t)c16 * ldi, C - c16, HW, ldi, ldo, shift, out + c16);
    if (p16 < HW && c16 > 0)
        transpose_avx2(x + p16, c16, HW - p16, ldi, ldo, shift ? shift + p16 : NULL, out + (ptrdiff_t)p16 * ldo);
}

__attribute__((target("avx2,fma")))
static void nchw_to_nhwc_avx512(const float *x, int C, int HW, float *out) {
    transpose_avx512(x, C, HW, HW, C, NULL, out);
}
#endif

typedef void (*transpose_fn)(const float *x, int C, int HW, float *out);
static multiply_fn chosen_multiply = NULL;
static transpose_fn chosen_transpose = NULL;
static int chosen_level = CNNK_PORTABLE;
static const char *chosen_isa = "portable";

static void choose_kernels(void) {
    /* CNNKERNELS_SIMD=portable forces the plain-C kernels and =avx2 caps the ISA there (the tests run each);
       a benign race: every thread that gets here first picks the same functions */
    int cap = cnnk_simd_cap();
    chosen_transpose = nchw_to_nhwc_portable;
#ifdef CNNK_HAVE_X86_SIMD
    __builtin_cpu_init();
    if (cap >= CNNK_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        int avx512 = cap >= CNNK_AVX512 && __builtin_cpu_supports("avx512f");
        chosen_level = avx512 ? CNNK_AVX512 : CNNK_AVX2;
        chosen_isa = avx512 ? "avx512f" : "avx2+fma";
        chosen_transpose = avx512 ? nchw_to_nhwc_avx512 : nchw_to_nhwc_avx2;
        chosen_multiply = avx512 ? cnnk_multiply_avx512 : multiply_avx2;
        return;
    }
#endif
    (void)cap;
    chosen_multiply = multiply_portable;
}

int cnnk_simd_level(void) {
    if (!chosen_multiply) choose_kernels();
    return chosen_level;
}

void cnnk_nchw_to_nhwc(const float *x, int C, int HW, float *out) {
    if (!chosen_multiply) choose_kernels();
    chosen_transpose(x, C, HW, out);
}

void cnnk_nchw_to_nhwc_pixels(const float *x, int C, int HW, int p_begin, int p_end, float *out) {
    /* out[p·C + c] = x[c·HW + p] for p_begin <= p < p_end: a block of an image's pixels, so that threads can share
       one image */
    if (!chosen_multiply) choose_kernels();
#ifdef CNNK_HAVE_X86_SIMD
    if (chosen_level == CNNK_AVX512) {
        transpose_avx512(x + p_begin, C, p_end - p_begin, HW, C, NULL, out + (ptrdiff_t)p_begin * C);
        return;
    }
    if (chosen_level == CNNK_AVX2) {
        transpose_avx2(x + p_begin, C, p_end - p_begin, HW, C, NULL, out + (ptrdiff_t)p_begin * C);
        return;
    }
#endif
    for (int p = p_begin; p < p_end; p++)
        for (int c = 0; c < C; c++) out[(ptrdiff_t)p * C + c] = x[(ptrdiff_t)c * HW + p];
}

const char *cnnk_simd_isa(void) {
    if (!chosen_multiply) choose_kernels();
    return chosen_isa;
}

void cnnk_wino43_multiply(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel) {
    if (!chosen_multiply) choose_kernels();
    chosen_multiply(V, U, ntiles, C, Kpad, M, panel, 36);
}

/* ---- the same micro-kernel as a plain product: pixel-major patches x filter panels --------------------- */

void cnnk_gemm_filters(const float *w, int K, int C, int R, int S, int Kpad, float *U) {
    /* U[((k/16)*R*S*C + (r*S + s)*C + c)*16 + k%16] = w[k, c, r, s] (zero for k >= K): panels of 16 filters,
       rows in the (r, s, c) order of cnnk_im2row_nhwc's patches */
    ptrdiff_t rows = (ptrdiff_t)R * S * C;
    for (int kb = 0; kb < Kpad / 16; kb++)
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++)
                for (int c = 0; c < C; c++)
                    for (int l = 0; l < 16; l++) {
                        int k = kb * 16 + l;
                        U[((ptrdiff_t)kb * rows + ((ptrdiff_t)r * S + s) * C + c) * 16 + l] =
                            k < K ? w[(((ptrdiff_t)k * C + c) * R + r) * S + s] : 0.0f;
                    }
}

void cnnk_im2row_nhwc(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                      int dw, int pixel0, int npix, int Q, float *V) {
    /* V[i, (r*S + s)*C + c] = x[(p*sh + r*dh - pt), (q*sw + s*dw - pl), c] (0 outside) for the npix output
       pixels from pixel0 (p = pixel / Q, q = pixel % Q); x is one channels-last image */
    ptrdiff_t row = (ptrdiff_t)R * S * C;
    for (int i = 0; i < npix; i++) {
        int p = (pixel0 + i) / Q, q = (pixel0 + i) % Q;
        float *dst = V + i * row;
        for (int r = 0; r < R; r++) {
            int h = p * sh + r * dh - pt;
            for (int s = 0; s < S; s++, dst += C) {
                int w = q * sw + s * dw - pl;
                if (h >= 0 && h < H && w >= 0 && w < W)
                    memcpy(dst, x + ((ptrdiff_t)h * W + w) * C, sizeof(float) * (size_t)C);
                else
                    memset(dst, 0, sizeof(float) * (size_t)C);
            }
        }
    }
}

void cnnk_gemm_rows(const float *V, const float *U, int npix, int CRS, int Kpad, float *M, float *panel) {
    /* M[i, k] = Σ_j V[i, j] · U[panel k/16][j][k%16]: the Winograd product kernel with one xi */
    if (!chosen_multiply) choose_kernels();
    chosen_multiply(V, U, npix, CRS, Kpad, M, panel, 1);
}

ptrdiff_t cnnk_implicit_rows_scratch(int npix, int CRS) {
    /* the floats cnnk_implicit_rows writes patches to (V, then panel): none where it reads them in place */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) return 0;
#endif
    return (ptrdiff_t)(npix + GEMM_TILES) * CRS;
}

void cnnk_implicit_rows(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                        int dw, int pixel0, int npix, int Q, const float *zeros, const float *U, int Kpad, float *V,
                        float *M, float *panel) {
    /* M[i, k] = Σ_j patch(i)[j] · U[panel k/16][j][k%16], patch(i) output pixel i's (r, s, c) patch of the one
       channels-last image x (cnnk_im2row_nhwc), for npix <= CNNK_IMPLICIT_PIXELS output pixels from pixel0: on
       AVX-512 read where they lie in x (`zeros`: C zeros); elsewhere written out to V (npix·R·S·C floats) and
       multiplied by cnnk_gemm_rows (`panel`: 6·R·S·C floats) */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        cnnk_implicit_rows_avx512(x, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, npix, Q, zeros, U, Kpad, M);
        return;
    }
#endif
    (void)zeros;
    cnnk_im2row_nhwc(x, H, W, C, R, S, sh, sw, pt, pl, dh, dw, pixel0, npix, Q, V);
    cnnk_gemm_rows(V, U, npix, R * S * C, Kpad, M, panel);
}

void cnnk_rows_to_nchw(const float *M, int npix, int Kpad, int K, const float *bias, float *y, ptrdiff_t PQ,
                       int pixel0) {
    /* y[k, pixel0 + i] = M[i, k] + bias[k] for one image */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) { /* the bias added in registers, not in a second pass */
        transpose_avx512(M, npix, K, Kpad, PQ, bias, y + pixel0);
        return;
    }
    if (cnnk_simd_level() >= CNNK_AVX2) {
        /* M is npix rows of Kpad; y's rows are the K filters: a transpose with y's row stride */
        transpose_avx2(M, npix, K, Kpad, PQ, bias, y + pixel0);
        return;
    }
#endif
    for (int k = 0; k < K; k++) {
        float shift = bias ? bias[k] : 0.0f;
        float *out = y + k * PQ + pixel0;
        for (int i = 0; i < npix; i++) out[i] = M[(ptrdiff_t)i * Kpad + k] + shift;
    }
}

static void wino43_output_generic(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                                  int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                                  ptrdiff_t pixel_stride);

void cnnk_wino43_output(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                        int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                        ptrdiff_t pixel_stride) {
    /* see wino43_output_generic for the formula and layout */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        cnnk_wino43_output_avx512(M, Kpad, K, img, row0, col0, ntiles, bias, y, image_stride, P, Q, pixel_stride);
        return;
    }
#endif
    wino43_output_generic(M, Kpad, K, img, row0, col0, ntiles, bias, y, image_stride, P, Q, pixel_stride);
}

CNNK_CLONES
static void wino43_output_generic(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                                  int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                                  ptrdiff_t pixel_stride) {
    /* y[img[t], k, row0[t]+i, col0[t]+j] = bias[k] + (A^T m A)[i][j], m[xi] = M[((t/6*36 + xi)*6 + t%6)*Kpad + k];
       the lanes are filters; only the cells inside P x Q are written. With pixel_stride 0 y is NCHW (planes of
       P x Q), else channels-last: filter k of pixel (p, q) at (p·Q + q)·pixel_stride + k */
    lanes_t m[36], t[24], o[16];
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad, PQ = (ptrdiff_t)P * Q;
    ptrdiff_t filter_step = pixel_stride ? 1 : PQ, pixel_step = pixel_stride ? pixel_stride : 1;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        int rows = P - r0 < 4 ? P - r0 : 4, cols = Q - c0 < 4 ? Q - c0 : 4;
        float *image = y + img[tile] * image_stride;
        for (int first = 0; first < K; first += WINO_LANES) {
            int count = K - first < WINO_LANES ? K - first : WINO_LANES;
            const float *src = M + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad + first;
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
                float *plane = image + (first + l) * filter_step + ((ptrdiff_t)r0 * Q + c0) * pixel_step;
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++) plane[((ptrdiff_t)i * Q + j) * pixel_step] = o[i * 4 + j][l] + shift;
            }
        }
    }
}

static void filter_portable(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U);

void cnnk_wino43_filter(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U) {
    /* U[((xi*Kpad/16 + k/16)*C + c)*16 + k%16] = (G g G^T)[xi], g = w[k, c] (3 x 3), for c_begin <= c < c_end;
       zero for K <= k < Kpad. The lanes are 16 filters: every store is a whole 64-byte row of a panel. */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512 && (ptrdiff_t)C * 9 * 16 <= 0x7FFFFFFF) { /* int32 gather offsets */
        cnnk_wino43_filter_avx512(w, K, C, Kpad, c_begin, c_end, U);
        return;
    }
#endif
    filter_portable(w, K, C, Kpad, c_begin, c_end, U);
}

CNNK_CLONES
static void filter_portable(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U) {
    /* cnnk_wino43_filter's formula, the lanes copied in and out one float at a time */
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
                    float g0 = g[j][l], g1 = g[3 + j][l], g2 = g[6 + j][l], even = g0 + g2, quarter = g0 + 4.0f * g2;
                    t[0 * 3 + j][l] = 0.25f * g0;
                    t[1 * 3 + j][l] = -SIXTH * (even + g1);
                    t[2 * 3 + j][l] = -SIXTH * (even - g1);
                    t[3 * 3 + j][l] = TWENTYFOURTH * (quarter + 2.0f * g1);
                    t[4 * 3 + j][l] = TWENTYFOURTH * (quarter - 2.0f * g1);
                    t[5 * 3 + j][l] = g2;
                }
            for (int i = 0; i < 6; i++) /* u = t G^T: 6 x 6 */
                for (int l = 0; l < 16; l++) {
                    float g0 = t[i * 3][l], g1 = t[i * 3 + 1][l], g2 = t[i * 3 + 2][l], even = g0 + g2,
                          quarter = g0 + 4.0f * g2;
                    u[i * 6 + 0][l] = 0.25f * g0;
                    u[i * 6 + 1][l] = -SIXTH * (even + g1);
                    u[i * 6 + 2][l] = -SIXTH * (even - g1);
                    u[i * 6 + 3][l] = TWENTYFOURTH * (quarter + 2.0f * g1);
                    u[i * 6 + 4][l] = TWENTYFOURTH * (quarter - 2.0f * g1);
                    u[i * 6 + 5][l] = g2;
                }
            for (int xi = 0; xi < 36; xi++) {
                float *dst = U + (((ptrdiff_t)xi * panels + kb) * C + c) * 16;
                for (int l = 0; l < 16; l++) dst[l] = u[xi][l];
            }
        }
    }
}
