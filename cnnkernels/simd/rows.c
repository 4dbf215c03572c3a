/* The input gradient of a convolution as pixel-major products (the adjoint of im2row), float32.

   dx[h, w, c] = Σ over (pixel i, tap r, s) reading (h, w) of Σ_k dy[i, k] · w[k, c, r, s]: per output pixel i,
   the row M[i, (r·S + s)·C + c] = Σ_k dy[i, k] · w[k, c, r, s] comes from the Winograd product's register-
   blocked kernel (cnnk_gemm_rows: K is the reduction, C·R·S the "filters"), and is added back where its
   patch came from, channels-last (contiguous runs of C floats). Arguments arrive validated from cnnkernels. */

#include <stddef.h>

#include "simd.h"
#include "winograd43.h"

void cnnk_gemm_filters_transposed(const float *w, int K, int C, int R, int S, int CRSpad, float *U) {
    /* U[((j/16)*K + k)*16 + j%16] = w[k, c, r, s] with j = (r*S + s)*C + c (zero for j >= C·R·S): panels of 16
       patch entries over the K filters, what cnnk_gemm_rows multiplies dy's rows by */
    ptrdiff_t CRS = (ptrdiff_t)C * R * S;
    for (int jb = 0; jb < CRSpad / 16; jb++)
        for (int k = 0; k < K; k++)
            for (int l = 0; l < 16; l++) {
                ptrdiff_t j = (ptrdiff_t)jb * 16 + l;
                float value = 0.0f;
                if (j < CRS) {
                    int c = (int)(j % C), tap = (int)(j / C), r = tap / S, s = tap % S;
                    value = w[(((ptrdiff_t)k * C + c) * R + r) * S + s];
                }
                U[((ptrdiff_t)jb * K + k) * 16 + l] = value;
            }
}

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
