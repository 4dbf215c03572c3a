/* Winograd F(4x4, 3x3) weight gradient, float32 (see winograd43.c for the forward transforms):

   dW = G^T [ Σ_t (B^T d_t B) (.) (A dy_t A^T) ] G over all tiles t. The input tiles' transform is the forward
   pass's; this file holds the gradient tiles' transform, the 36 sums of products over the tiles, and the
   final transform back to 3 x 3. Arguments arrive validated from cnnkernels. */

#include <stddef.h>

#include "simd.h"
#include "winograd43.h"

#ifdef CNNK_HAVE_X86_SIMD
#include <immintrin.h>
#endif

static inline void grad_1d(const lanes_t a0, const lanes_t a1, const lanes_t a2, const lanes_t a3, lanes_t e0,
                           lanes_t e1, lanes_t e2, lanes_t e3, lanes_t e4, lanes_t e5) {
    /* e = A a: the adjoint of the output transform, 4 values to 6, for every lane */
    for (int l = 0; l < WINO_LANES; l++) {
        float s02 = a0[l] + a2[l], s13 = a1[l] + a3[l], p02 = a0[l] + 4.0f * a2[l], p13 = 2.0f * a1[l] + 8.0f * a3[l];
        e0[l] = a0[l];
        e1[l] = s02 + s13;
        e2[l] = s02 - s13;
        e3[l] = p02 + p13;
        e4[l] = p02 - p13;
        e5[l] = a3[l];
    }
}

CNNK_CLONES
static void wino43_grad_output_generic(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K, int P,
                                       int Q, const int *img, const int *row0, const int *col0, int ntiles, int Kpad,
                                       float *D);

void cnnk_wino43_grad_output(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K, int P, int Q,
                             const int *img, const int *row0, const int *col0, int ntiles, int Kpad, float *D) {
    /* see wino43_grad_output_generic for the formula and layout */
#ifdef CNNK_HAVE_X86_SIMD
    if (cnnk_simd_level() == CNNK_AVX512) {
        cnnk_wino43_grad_output_avx512(dy, image_stride, pixel_stride, K, P, Q, img, row0, col0, ntiles, Kpad, D);
        return;
    }
#endif
    wino43_grad_output_generic(dy, image_stride, pixel_stride, K, P, Q, img, row0, col0, ntiles, Kpad, D);
}

CNNK_CLONES
static void wino43_grad_output_generic(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K, int P,
                                       int Q, const int *img, const int *row0, const int *col0, int ntiles, int Kpad,
                                       float *D) {
    /* D[((t/6*36 + xi)*6 + t%6)*Kpad + k] = (A e A^T)[xi], e[i][j] = dy[img[t], row0[t]+i, col0[t]+j, k]
       (0 outside P x Q and for k >= K); dy is channels-last, the lanes are filters */
    lanes_t e[16], t[24], u[36];
    ptrdiff_t xi_stride = (ptrdiff_t)GEMM_TILES * Kpad;
    for (int tile = 0; tile < ntiles; tile++) {
        int r0 = row0[tile], c0 = col0[tile];
        const float *image = dy + img[tile] * image_stride;
        for (int first = 0; first < Kpad; first += WINO_LANES) {
            int count = K - first < WINO_LANES ? K - first : WINO_LANES;
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    float *dst = e[i * 4 + j];
                    if (r0 + i < P && c0 + j < Q && count > 0) {
                        const float *src = image + ((ptrdiff_t)(r0 + i) * Q + c0 + j) * pixel_stride + first;
                        for (int l = 0; l < count; l++) dst[l] = src[l];
                        for (int l = count < 0 ? 0 : count; l < WINO_LANES; l++) dst[l] = 0.0f;
                    } else {
                        for (int l = 0; l < WINO_LANES; l++) dst[l] = 0.0f;
                    }
                }
            for (int j = 0; j < 4; j++) /* columns: t[i][j] = Σ_r A[i][r] e[r][j], 6 x 4 */
                grad_1d(e[j], e[4 + j], e[8 + j], e[12 + j], t[j], t[4 + j], t[8 + j], t[12 + j], t[16 + j], t[20 + j]);
            for (int i = 0; i < 6; i++) /* rows: u[i][j] = Σ_r t[i][r] A^T[r][j], 6 x 6 */
                grad_1d(t[i * 4], t[i * 4 + 1], t[i * 4 + 2], t[i * 4 + 3], u[i * 6], u[i * 6 + 1], u[i * 6 + 2],
                        u[i * 6 + 3], u[i * 6 + 4], u[i * 6 + 5]);
            float *out = D + ((ptrdiff_t)(tile / GEMM_TILES) * 36 * GEMM_TILES + tile % GEMM_TILES) * Kpad + first;
            for (int k = 0; k < 36; k++)
                for (int l = 0; l < WINO_LANES; l++) out[k * xi_stride + l] = u[k][l];
        }
    }
}

/* dU[(xi*K + k)*C + c] += Σ_t D[((t/6*36 + xi)*6 + t%6)*Kpad + k] · V[((t/6*36 + xi)*6 + t%6)*C + c] */

static void weight_multiply_portable(const float *D, const float *V, int ntiles, int Kpad, int K, int C, float *dU) {
    for (int xi = 0; xi < 36; xi++)
        for (int t = 0; t < ntiles; t++) {
            ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
            const float *d = D + row * Kpad, *v = V + row * C;
            for (int k = 0; k < K; k++) {
                float a = d[k];
                float *out = dU + ((ptrdiff_t)xi * K + k) * C;
                for (int c = 0; c < C; c++) out[c] += a * v[c];
            }
        }
}

#ifdef CNNK_HAVE_X86_SIMD
__attribute__((target("avx2,fma")))
static void weight_multiply_avx2(const float *D, const float *V, int ntiles, int Kpad, int K, int C, float *dU) {
    /* register block: 6 filters x 16 channels (12 accumulators), reduced over the tiles */
    int c16 = C / 16 * 16;
    for (int xi = 0; xi < 36; xi++) {
        for (int k0 = 0; k0 < K; k0 += 6) {
            int ks = K - k0 < 6 ? K - k0 : 6;
            for (int c0 = 0; c0 < c16; c0 += 16) {
                __m256 acc[6][2];
                for (int i = 0; i < 6; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
                for (int t = 0; t < ntiles; t++) {
                    ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
                    const float *d = D + row * Kpad + k0, *v = V + row * C + c0;
                    __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
#pragma GCC unroll 6
                    for (int i = 0; i < 6; i++) {
                        __m256 a = _mm256_broadcast_ss(d + i);
                        acc[i][0] = _mm256_fmadd_ps(a, v0, acc[i][0]);
                        acc[i][1] = _mm256_fmadd_ps(a, v1, acc[i][1]);
                    }
                }
                for (int i = 0; i < ks; i++) {
                    float *out = dU + ((ptrdiff_t)xi * K + k0 + i) * C + c0;
                    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_loadu_ps(out), acc[i][0]));
                    _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_loadu_ps(out + 8), acc[i][1]));
                }
            }
            for (int c = c16; c < C; c++) /* the last channels, one at a time */
                for (int t = 0; t < ntiles; t++) {
                    ptrdiff_t row = ((ptrdiff_t)(t / GEMM_TILES) * 36 + xi) * GEMM_TILES + t % GEMM_TILES;
                    float v = V[row * C + c];
                    for (int i = 0; i < ks; i++) dU[((ptrdiff_t)xi * K + k0 + i) * C + c] += D[row * Kpad + k0 + i] * v;
                }
        }
    }
}
#endif

void cnnk_wino43_weight_multiply(const float *D, const float *V, int ntiles, int Kpad, int K, int C, float *dU) {
#ifdef CNNK_HAVE_X86_SIMD
    int level = cnnk_simd_level();
    if (level == CNNK_AVX512) {
        cnnk_weight_multiply_avx512(D, V, ntiles, Kpad, K, C, dU);
        return;
    }
    if (level == CNNK_AVX2) {
        weight_multiply_avx2(D, V, ntiles, Kpad, K, C, dU);
        return;
    }
#endif
    weight_multiply_portable(D, V, ntiles, Kpad, K, C, dU);
}

void cnnk_wino43_filter_grad(const float *dU, int K, int C, int k_begin, int k_end, float *dw) {
    /* dw[k, c, r, s] = Σ_i,j G[i][r] dU[(i*6 + j)*K*C + k*C + c] G[j][s], for k_begin <= k < k_end */
    static const float G[6][3] = {{0.25f, 0.0f, 0.0f},
                                  {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                  {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                  {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                  {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                  {0.0f, 0.0f, 1.0f}};
    ptrdiff_t KC = (ptrdiff_t)K * C;
    for (int k = k_begin; k < k_end; k++)
        for (int c = 0; c < C; c++) {
            float t[6][3] = {{0}};
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) {
                    float value = dU[(i * 6 + j) * KC + (ptrdiff_t)k * C + c];
                    for (int s = 0; s < 3; s++) t[i][s] += value * G[j][s];
                }
            float *out = dw + ((ptrdiff_t)k * C + c) * 9;
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++) {
                    float sum = 0.0f;
                    for (int i = 0; i < 6; i++) sum += G[i][r] * t[i][s];
                    out[r * 3 + s] = sum;
                }
        }
}
