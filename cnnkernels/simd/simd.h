/* Internal to the SIMD kernels: the instruction set chosen at load time and the kernels per ISA. */
#ifndef CNNK_SIMD_H
#define CNNK_SIMD_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define WINO_LANES 16 /* the portable transforms work on 16 tiles or channels at once, one per SIMD lane */
#define GEMM_TILES 6 /* rows of a product's register block: 6 tiles x 16 filters = 12 AVX2 accumulators */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(CNNK_NO_CLONES)
#define CNNK_HAVE_X86_SIMD 1
#endif

/* Plain-C kernels compiled once per ISA (AVX-512, AVX2+FMA, baseline), the loader picking the best the CPU has. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(CNNK_NO_CLONES)
#define CNNK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CNNK_CLONES
#endif

typedef float lanes_t[WINO_LANES];

/* What cnnk_simd_level() returns: the best kernels this CPU runs (CNNKERNELS_SIMD=avx2 or =portable caps it). */
enum { CNNK_PORTABLE = 0, CNNK_AVX2 = 1, CNNK_AVX512 = 2 };
int cnnk_simd_level(void);

/* The best level CNNKERNELS_SIMD allows: =portable and =avx2 cap the kernels (the tests run each), else AVX-512.
   Read where an extension chooses its kernels (winograd43.c, pool2x2.c). */
static inline int cnnk_simd_cap(void) {
    const char *wanted = getenv("CNNKERNELS_SIMD");
    return wanted == NULL ? CNNK_AVX512 : strcmp(wanted, "portable") == 0 ? CNNK_PORTABLE
           : strcmp(wanted, "avx2") == 0 ? CNNK_AVX2 : CNNK_AVX512;
}

int cnnk_filter_group(void);

static inline void cnnk_pack_tiles(const float *rows6, int rows, int C, float *panel) {
    /* panel[c*6 + i] = rows6[i][c], zero for i >= rows */
    for (int c = 0; c < C; c++)
        for (int i = 0; i < GEMM_TILES; i++) panel[c * GEMM_TILES + i] = i < rows ? rows6[(ptrdiff_t)i * C + c] : 0.0f;
}

#ifdef CNNK_HAVE_X86_SIMD
void cnnk_multiply_avx512(const float *V, const float *U, int ntiles, int C, int Kpad, float *M, float *panel,
                          int nxi);
void cnnk_weight_multiply_avx512(const float *D, const float *V, int ntiles, int Kpad, int K, int C, float *dU);
void cnnk_direct_avx512(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                        const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q, int p_begin,
                        int p_end);
void cnnk_direct_flat_avx512(const float *xp, int C, ptrdiff_t cstride, int Wp, const int *offset, int T,
                             const float *wt, int K, int Kpad, const float *bias, float *y, int P, int Q,
                             int p_begin, int p_end);
void cnnk_pointwise_avx512(const float *x, int C, ptrdiff_t PQ, const float *wt, int K, int Kpad,
                           const float *bias, float *y, ptrdiff_t q_begin, ptrdiff_t q_end, float *panel);
void cnnk_wino43_input_avx512(const float *x, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int C, int H, int W,
                              const int *img, const int *row0, const int *col0, int ntiles, float *V);
void cnnk_wino43_output_avx512(const float *M, int Kpad, int K, const int *img, const int *row0, const int *col0,
                               int ntiles, const float *bias, float *y, ptrdiff_t image_stride, int P, int Q,
                               ptrdiff_t pixel_stride);
void cnnk_wino43_grad_output_avx512(const float *dy, ptrdiff_t image_stride, ptrdiff_t pixel_stride, int K, int P,
                                    int Q, const int *img, const int *row0, const int *col0, int ntiles, int Kpad,
                                    float *D);
void cnnk_implicit_rows_avx512(const float *x, int H, int W, int C, int R, int S, int sh, int sw, int pt,
                               int pl, int dh, int dw, int pixel0, int npix, int Q, const float *zeros,
                               const float *U, int Kpad, float *M);
void cnnk_transpose16_avx512(const float *x, int C, int HW, ptrdiff_t ldi, ptrdiff_t ldo, const float *shift,
                             float *out);
float cnnk_fma_chains_avx512(long rounds);
void cnnk_wino43_filter_avx512(const float *w, int K, int C, int Kpad, int c_begin, int c_end, float *U);
#endif

/* G's rows 1-4 as one scale of sums whose scalings are exact (G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
   1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]): (g0 + 2 g1 + 4 g2) / 24 as TWENTYFOURTH · (g0 + 4 g2 + 2 g1), one
   multiplication instead of three divisions */
#define SIXTH (1.0f / 6.0f)
#define TWENTYFOURTH (1.0f / 24.0f)

#endif
