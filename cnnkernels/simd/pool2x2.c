/* 2x2, stride-2 max pooling, a row of windows at a time: in float32 on AVX-512 16 windows at a time (their cells
   de-interleaved from the two rows by permutes, and for the gradient interleaved back), elsewhere one at a time.
   The gradient writes all four cells of every window (the first maximum's gets g, the others 0), so the plane
   needs no zeroing first. Measured on the tutorial's pool (32x16x20x20 float32, 1 thread): 262 µs backward as a
   Cython loop (a count of comparisons per window, then one store into a zeroed plane). */
#include "pool2x2.h"

#include <math.h>

#include "simd.h"

/* the largest of a, b, c, d by selects (NaN aside: the callers test for it) */
#define MAX_OF_FOUR(T, SUFFIX)                                                                                \
    static inline T max_of_four_##SUFFIX(T a, T b, T c, T d) {                                                \
        T m = a > b ? a : b;                                                                                  \
        m = m > c ? m : c;                                                                                    \
        return m > d ? m : d;                                                                                 \
    }

#define FORWARD(T, SUFFIX)                                                                                    \
    static void max_row_portable_##SUFFIX(const T *top, const T *bottom, int Q, T *out) {                    \
        for (int q = 0; q < Q; q++) {                                                                         \
            T a = top[2 * q], b = top[2 * q + 1], c = bottom[2 * q], d = bottom[2 * q + 1];                   \
            T m = max_of_four_##SUFFIX(a, b, c, d);                                                           \
            out[q] = (a != a) | (b != b) | (c != c) | (d != d) ? (T)NAN : m;                                  \
        }                                                                                                     \
    }

/* window q's first maximum in row-major order, its first NaN if it has one: 0, 1 (top row), 2, 3 (bottom) */
#define GRADIENT(T, SUFFIX)                                                                                   \
    static void grad_row_portable_##SUFFIX(const T *top, const T *bottom, const T *g, int Q, T *top_grad,    \
                                           T *bottom_grad) {                                                  \
        for (int q = 0; q < Q; q++) {                                                                         \
            T a = top[2 * q], b = top[2 * q + 1], c = bottom[2 * q], d = bottom[2 * q + 1];                   \
            T m = max_of_four_##SUFFIX(a, b, c, d);                                                           \
            int nan_a = a != a, nan_b = b != b, nan_c = c != c, clean = !(nan_a | nan_b | nan_c | (d != d));  \
            int not_a = !(nan_a | (clean & (a == m))), not_b = !(nan_b | (clean & (b == m)));                 \
            int not_c = !(nan_c | (clean & (c == m)));                                                        \
            int cell = not_a + (not_a & not_b) + (not_a & not_b & not_c);                                     \
            top_grad[2 * q] = top_grad[2 * q + 1] = bottom_grad[2 * q] = bottom_grad[2 * q + 1] = (T)0;       \
            (cell < 2 ? top_grad : bottom_grad)[2 * q + (cell & 1)] = g[q];                                   \
        }                                                                                                     \
    }

MAX_OF_FOUR(float, f32)
MAX_OF_FOUR(double, f64)
FORWARD(float, f32)
FORWARD(double, f64)
GRADIENT(float, f32)
GRADIENT(double, f64)

#ifdef CNNK_HAVE_X86_SIMD
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* Windows q0 .. q0 + 15 (those below Q) of two rows: each window's cells a, b (top row), c, d (bottom), a window a
   lane; `windows` masks the lanes that are windows, `first` and `second` a row's two vectors of their cells. */
typedef struct {
    __m512 a, b, c, d;
    __mmask16 windows, first, second;
} window_cells;

AVX512 static inline __attribute__((always_inline)) window_cells load_windows(const float *top, const float *bottom,
                                                                             int q0, int Q) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int n = Q - q0 < 16 ? Q - q0 : 16, cells = 2 * n;
    window_cells w;
    w.windows = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
    w.first = (__mmask16)(cells >= 16 ? 0xFFFF : (1u << cells) - 1);
    w.second = (__mmask16)(cells >= 32 ? 0xFFFF : cells > 16 ? (1u << (cells - 16)) - 1 : 0);
    const float *t = top + 2 * q0, *u = bottom + 2 * q0;
    __m512 t0 = _mm512_maskz_loadu_ps(w.first, t), t1 = _mm512_maskz_loadu_ps(w.second, t + 16);
    __m512 u0 = _mm512_maskz_loadu_ps(w.first, u), u1 = _mm512_maskz_loadu_ps(w.second, u + 16);
    w.a = _mm512_permutex2var_ps(t0, even, t1);
    w.b = _mm512_permutex2var_ps(t0, odd, t1);
    w.c = _mm512_permutex2var_ps(u0, even, u1);
    w.d = _mm512_permutex2var_ps(u0, odd, u1);
    return w;
}

AVX512 static void grad_row_avx512(const float *top, const float *bottom, const float *g, int Q, float *top_grad,
                                   float *bottom_grad) {
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    for (int q0 = 0; q0 < Q; q0 += 16) {
        window_cells w = load_windows(top, bottom, q0, Q);
        __m512 v = _mm512_maskz_loadu_ps(w.windows, g + q0);
        __mmask16 nan_a = _mm512_cmp_ps_mask(w.a, w.a, _CMP_UNORD_Q);
        __mmask16 nan_b = _mm512_cmp_ps_mask(w.b, w.b, _CMP_UNORD_Q);
        __mmask16 nan_c = _mm512_cmp_ps_mask(w.c, w.c, _CMP_UNORD_Q);
        __mmask16 nan_d = _mm512_cmp_ps_mask(w.d, w.d, _CMP_UNORD_Q);
        __mmask16 clean = (__mmask16)~(nan_a | nan_b | nan_c | nan_d);
        /* in clean windows vmaxps is the maximum (it differs from the selects only on NaN) */
        __m512 m = _mm512_max_ps(_mm512_max_ps(w.a, w.b), _mm512_max_ps(w.c, w.d));
        __mmask16 take_a = nan_a | (clean & _mm512_cmp_ps_mask(w.a, m, _CMP_EQ_OQ));
        __mmask16 take_b = ~take_a & (nan_b | (clean & _mm512_cmp_ps_mask(w.b, m, _CMP_EQ_OQ)));
        __mmask16 take_c = ~(take_a | take_b) & (nan_c | (clean & _mm512_cmp_ps_mask(w.c, m, _CMP_EQ_OQ)));
        __mmask16 take_d = ~(take_a | take_b | take_c);
        __m512 ga = _mm512_maskz_mov_ps(take_a, v), gb = _mm512_maskz_mov_ps(take_b, v);
        __m512 gc = _mm512_maskz_mov_ps(take_c, v), gd = _mm512_maskz_mov_ps(take_d, v);
        _mm512_mask_storeu_ps(top_grad + 2 * q0, w.first, _mm512_permutex2var_ps(ga, low, gb));
        _mm512_mask_storeu_ps(top_grad + 2 * q0 + 16, w.second, _mm512_permutex2var_ps(ga, high, gb));
        _mm512_mask_storeu_ps(bottom_grad + 2 * q0, w.first, _mm512_permutex2var_ps(gc, low, gd));
        _mm512_mask_storeu_ps(bottom_grad + 2 * q0 + 16, w.second, _mm512_permutex2var_ps(gc, high, gd));
    }
}

AVX512 static void max_row_avx512(const float *top, const float *bottom, int Q, float *out) {
    for (int q0 = 0; q0 < Q; q0 += 16) {
        window_cells w = load_windows(top, bottom, q0, Q);
        __mmask16 nan = _mm512_cmp_ps_mask(w.a, w.a, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(w.b, w.b, _CMP_UNORD_Q) |
                        _mm512_cmp_ps_mask(w.c, w.c, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(w.d, w.d, _CMP_UNORD_Q);
        __m512 m = _mm512_max_ps(_mm512_max_ps(w.a, w.b), _mm512_max_ps(w.c, w.d));
        _mm512_mask_storeu_ps(out + q0, w.windows, _mm512_mask_blend_ps(nan, m, _mm512_set1_ps(NAN)));
    }
}
#endif

static int avx512_here(void) {
    /* AVX-512F, unless CNNKERNELS_SIMD caps the kernels below it (as the convolutions' choice in winograd43.c) */
    static int known = -1;
    if (known < 0) {
#ifdef CNNK_HAVE_X86_SIMD
        __builtin_cpu_init();
        known = cnnk_simd_cap() >= CNNK_AVX512 && __builtin_cpu_supports("avx512f");
#else
        known = 0;
#endif
    }
    return known;
}

void cnnk_max_2x2_grad_row_f32(const float *top, const float *bottom, const float *g, int Q, float *top_grad,
                               float *bottom_grad) {
#ifdef CNNK_HAVE_X86_SIMD
    if (avx512_here()) {
        grad_row_avx512(top, bottom, g, Q, top_grad, bottom_grad);
        return;
    }
#endif
    grad_row_portable_f32(top, bottom, g, Q, top_grad, bottom_grad);
}

void cnnk_max_2x2_grad_row_f64(const double *top, const double *bottom, const double *g, int Q, double *top_grad,
                               double *bottom_grad) {
    grad_row_portable_f64(top, bottom, g, Q, top_grad, bottom_grad);
}

void cnnk_max_2x2_row_f32(const float *top, const float *bottom, int Q, float *out) {
#ifdef CNNK_HAVE_X86_SIMD
    if (avx512_here()) {
        max_row_avx512(top, bottom, Q, out);
        return;
    }
#endif
    max_row_portable_f32(top, bottom, Q, out);
}

void cnnk_max_2x2_row_f64(const double *top, const double *bottom, int Q, double *out) {
    max_row_portable_f64(top, bottom, Q, out);
}
