/* The input gradient of a convolution as pixel-major products (the adjoint of im2row), float32.

   dx[h, w, c] = Σ over (pixel i, tap r, s) reading (h, w) of Σ_k dy[i, k] · w[k, c, r, s]: per output pixel i,
   the row M[i, (r·S + s)·C + c] = Σ_k dy[i, k] · w[k, c, r, s] comes from the Winograd product's register-
   blocked kernel (cnnk_gemm_rows: K is the reduction, C·R·S the "filters", packed by cnnk_gemm_filters from
   the filters laid out (r, s, c) x K), and is added back where its
   patch came from, channels-last (contiguous runs of C floats). Also cnnk_pack_columns: any matrix as the product's
   panels (cnnkernels.matmul). Arguments arrive validated from cnnkernels. */

#include <stddef.h>

#include "simd.h"
#include "winograd43.h"

CNNK_CLONES
void cnnk_row2im_add_nhwc(const float *M, ptrdiff_t ldm, int H, int W, int C, int R, int S, int sh, int sw, int pt,
                          int pl, int dh, int dw, int pixel0, int npix, int Q, float *dx) {
    /* dx[(p*sh + r*dh - pt), (q*sw + s*dw - pl), c] += M[i, (r*S + s)*C + c] for the npix output pixels from
       pixel0 (p = pixel / Q, q = pixel % Q), taps inside the image only; dx is one channels-last image */
    for (int i = 0; i < npix; i++) {
        int p = (pixel0 + i) / Q, q = (pixel0 + i) % Q;
        const float *src = M + i * ldm;
        for (int r = 0; r < R; r++) {
            int h = p * sh + r * dh - pt;
            for (int s = 0; s < S; s++, src += C) {
                int w = q * sw + s * dw - pl;
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                float *dst = dx + ((ptrdiff_t)h * W + w) * C;
                for (int c = 0; c < C; c++) dst[c] += src[c];
            }
        }
    }
}

void cnnk_prefetch_l2(const float *x, ptrdiff_t count) {
    /* ask for x's count floats in L2, a cache line at a time */
    for (ptrdiff_t i = 0; i < count; i += 16) __builtin_prefetch(x + i, 0, 2);
}

CNNK_CLONES
void cnnk_rows_to_nhwc(const float *M, int npix, int Kpad, int K, const float *bias, float *y) {
    /* y[i, k] = M[i, k] + bias[k] for npix rows: the product's rows as pixels of a channels-last image */
    for (int i = 0; i < npix; i++) {
        const float *src = M + (ptrdiff_t)i * Kpad;
        float *dst = y + (ptrdiff_t)i * K;
        if (bias)
            for (int k = 0; k < K; k++) dst[k] = src[k] + bias[k];
        else
            for (int k = 0; k < K; k++) dst[k] = src[k];
    }
}

CNNK_CLONES
void cnnk_pack_columns(const float *b, ptrdiff_t row_stride, ptrdiff_t col_stride, int rows, int cols, int Kpad,
                       int k_begin, int k_end, float *U) {
    /* U[((j/16)·rows + k)·16 + j%16] = b[k·row_stride + j·col_stride] (zero for j >= cols) for rows k_begin <= k <
       k_end of a matrix (rows x cols, any strides): cnnk_gemm_rows's panels of 16 columns. Row by row, so that
       a row of b is read once, in order (panel by panel, each read b's rows a stride apart: 4x slower); with
       col_stride 1, 16 floats at a time. */
    for (int k = k_begin; k < k_end; k++) {
        const float *in = b + k * row_stride;
        for (int p = 0; p < Kpad / 16; p++, in += 16 * col_stride) {
            int width = cols - 16 * p < 16 ? cols - 16 * p : 16;
            float *out = U + ((ptrdiff_t)p * rows + k) * 16;
            if (width == 16 && col_stride == 1) {
                memcpy(out, in, 16 * sizeof(float)); /* a constant size: two vector moves */
                continue;
            }
            int l = 0;
            for (; l < width; l++) out[l] = in[l * col_stride];
            for (; l < 16; l++) out[l] = 0.0f;
        }
    }
}
