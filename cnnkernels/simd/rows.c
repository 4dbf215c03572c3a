/* The input gradient of a convolution as pixel-major products (the adjoint of im2row), float32.

   dx[h, w, c] = Σ over (pixel i, tap r, s) reading (h, w) of Σ_k dy[i, k] · w[k, c, r, s]: per output pixel i,
   the row M[i, (r·S + s)·C + c] = Σ_k dy[i, k] · w[k, c, r, s] comes from the Winograd product's register-
   blocked kernel (cnnk_gemm_rows: K is the reduction, C·R·S the "filters", packed by cnnk_gemm_filters from
   the filters laid out (r, s, c) x K), and is added back where its
   patch came from, channels-last (contiguous runs of C floats). Arguments arrive validated from cnnkernels. */

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
