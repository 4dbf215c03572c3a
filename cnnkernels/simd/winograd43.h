/* Winograd F(4x4, 3x3) transforms, float32; see winograd43.c. */
#ifndef CNNK_WINOGRAD43_H
#define CNNK_WINOGRAD43_H

#include <stddef.h>
#include <stdint.h>

void cnnk_nchw_to_nhwc(const float *x, int C, int HW, float *out);
void cnnk_nchw_to_nhwc_pixels(const float *x, int C, int HW, int p_begin, int p_end, float *out);
void cnnk_wino43_input(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                       const int *img, const int *row0, const int *col0, int ntiles, float *V);
void cnnk_wino43_multiply(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel);
void cnnk_wino43_output(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                        int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                        ptrdiff_t pixel_stride);
void cnnk_wino43_filter(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U);
const char *cnnk_simd_isa(void);
void cnnk_wino43_grad_output(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K, int P, int Q,
                             const int *img, const int *row0, const int *col0, int ntiles, int Kpad, float *D);
void cnnk_wino43_weight_multiply(const float *D, const float *V, int ntiles, int Kpad, int K, int C, float *dU);
void cnnk_wino43_filter_grad(const float *dU, int K, int C, int k_begin, int k_end, float *dw);

void cnnk_direct_phase_image(const float *x, int C, int H, int W, int sh, int sw, int pt, int pl,
                             const int *row_phase, int row_phases, const int *col_phase, int col_phases, int i0,
                             int Hph, int Wp, float *xp, float *row);
int cnnk_direct_row_floats(int W, int pl, int sw, int Wp);
#define CNNK_DIRECT_FLAT_TAIL 64 /* floats after the last laid-out image that the flat-run kernel may read */
int cnnk_direct_flat(int Q, int jmax);
void cnnk_relu_planes(float *y, int K, ptrdiff_t PQ, ptrdiff_t count, float slope);
void cnnk_direct_forward(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                         const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q, int p_begin,
                         int p_end, int flat);

void cnnk_direct_weight(const float *dyt, ptrdiff_t dy_image, int K, int P, int Q, const float *xc, ptrdiff_t xl_image,
                        int Wp, const int *offset, int T, int images, int k_begin, int k_end, float *dw,
                        ptrdiff_t dw_row);
#define CNNK_POINTWISE_SUMS 384 /* floats of cnnk_pointwise_weight_nhwc's sums: 4 vectors of 16 filters x 6 taps */
int cnnk_pointwise_weight_nhwc(const float *dy, int K, const float *x, int C, int pixels, int kc, int taps,
                               float *sums);
#define CNNK_LANES_FILTERS 8 /* filters a block of cnnk_direct_weight_lanes: its dy scratch holds 8 rows */
int cnnk_direct_weight_lanes(const float *dy, int K, int P, int Q, const float *xl, int C, ptrdiff_t cstride, int Wp,
                             const int *offset, int T, const uint16_t *masks, float *dyl, float *part);
void cnnk_sum_lanes(const float *part, ptrdiff_t count, float *out);

int cnnk_pointwise_padded_filters(int K);
void cnnk_pointwise_pack_filters(const float *w, int K, int C, int Kpad, float *wt);
void cnnk_pointwise_forward(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int Kpad,
                            const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end, float *panel);

double cnnk_fma_peak_gflops(void);
void cnnk_gemm_filters(const float *w, int K, int C, int R, int S, int Kpad, float *U);
void cnnk_im2row_nhwc(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                      int dw, int pixel0, int npix, int Q, float *V);
void cnnk_gemm_rows(const float *V, const float *U, int npix, int CRS, int Kpad, float *M, float *panel);
#define CNNK_IMPLICIT_PIXELS 240 /* output pixels per call of cnnk_implicit_rows */
ptrdiff_t cnnk_implicit_rows_scratch(int npix, int CRS);
void cnnk_implicit_rows(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt, int pl, int dh,
                        int dw, int pixel0, int npix, int Q, const float *zeros, const float *U, int Kpad, float *V,
                        float *M, float *panel);
void cnnk_row2im_add_nhwc(const float *M, ptrdiff_t ldm, int H, int W, int C, int R, int S, int sh, int sw, int pt,
                          int pl, int dh, int dw, int pixel0, int npix, int Q, float *dx);
void cnnk_pack_columns(const float *b, ptrdiff_t row_stride, ptrdiff_t col_stride, int rows, int cols, int Kpad,
                       int k_begin, int k_end, float *U);
void cnnk_prefetch_l2(const float *x, ptrdiff_t count);
void cnnk_rows_to_nhwc(const float *M, int npix, int Kpad, int K, const float *bias, float *y);
void cnnk_rows_to_nchw(const float *M, int npix, int Kpad, int K, const float *bias, float *y, ptrdiff_t PQ,
                       int pixel0);

#endif
