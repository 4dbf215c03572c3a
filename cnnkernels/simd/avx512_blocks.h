/* Register-block steps shared by the AVX-512 direct, flat-direct and 1x1 kernels (avx512.c, direct_flat.c). */
#ifndef CNNK_AVX512_BLOCKS_H
#define CNNK_AVX512_BLOCKS_H

#include <stddef.h>
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* The lanes of a 16-float vector below `left` (all of them from 16 on, none at 0 or below): a vector's mask where
   `left` values of a row remain from its first lane. */
static inline __mmask16 lanes_below(int left) {
    return (__mmask16)(left >= 16 ? 0xFFFF : left <= 0 ? 0 : (1u << left) - 1);
}

/* acc[i] += taps[i] · (v0, v1) for the `block` filters of a register block (a constant after inlining). */
AVX512 static inline __attribute__((always_inline)) void fma_block(__m512 acc[12][2], const float *taps, __m512 v0,
                                                                   __m512 v1, const int block) {
#pragma GCC unroll 12
    for (int i = 0; i < block; i++) {
        __m512 a = _mm512_set1_ps(taps[i]);
        acc[i][0] = _mm512_fmadd_ps(a, v0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(a, v1, acc[i][1]);
    }
}

/* y[(k0 + i)·PQ + 0..31] = acc[i] for the block's filters below K, the pixels past the row's end masked off. */
AVX512 static inline __attribute__((always_inline)) void store_block(float *y, ptrdiff_t PQ, int k0, int K,
                                                                     __m512 acc[12][2], __mmask16 mask0,
                                                                     __mmask16 mask1, const int block) {
    for (int i = 0; i < block && k0 + i < K; i++) {
        _mm512_mask_storeu_ps(y + (k0 + i) * PQ, mask0, acc[i][0]);
        _mm512_mask_storeu_ps(y + (k0 + i) * PQ + 16, mask1, acc[i][1]);
    }
}

#endif
