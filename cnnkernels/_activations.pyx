"""Elementwise activation kernels: leaky ReLU (ReLU at slope 0), forward and backward.

Arguments arrive validated from :mod:`cnnkernels.activations`: flat C-contiguous arrays of
one dtype and one length. Parallel over blocks of values; each block is one vectorised C loop
(:file:`simd/elementwise.c`).
"""

from cython.parallel cimport prange

ctypedef fused floating:
    float
    double

cdef extern from "simd/elementwise.h" nogil:
    void cnnk_leaky_relu_f32(const float* x, const float* dy, Py_ssize_t n, float slope, int relu, float* out)
    void cnnk_leaky_relu_f64(const double* x, const double* dy, Py_ssize_t n, double slope, int relu, double* out)

# values per parallel block: large enough that a block's loop dwarfs its scheduling
cdef enum:
    BLOCK = 16384


cdef void run(const floating* x, const floating* dy, Py_ssize_t size, double negative_slope, int n_threads,
              floating* out) noexcept nogil:
    """The forward pass (dy NULL) or the gradient, in parallel blocks of BLOCK values."""
    cdef Py_ssize_t block, start
    cdef int relu = negative_slope == 0
    for block in prange((size + BLOCK - 1) // BLOCK, num_threads=max(1, n_threads), schedule="static"):
        start = block * BLOCK
        if floating is float:
            cnnk_leaky_relu_f32(x + start, NULL if dy == NULL else dy + start, min(BLOCK, size - start),
                                <float>negative_slope, relu, out + start)
        else:
            cnnk_leaky_relu_f64(x + start, NULL if dy == NULL else dy + start, min(BLOCK, size - start),
                                negative_slope, relu, out + start)


def leaky_relu_forward(const floating[::1] x, double negative_slope, int n_threads, floating[::1] y):
    """y = x if x > 0 else negative_slope·x, and max(x, 0) at slope 0  (NaN stays NaN)"""
    with nogil:
        run(&x[0], <const floating*>NULL, x.shape[0], negative_slope, n_threads, &y[0])


def leaky_relu_backward(const floating[::1] dy, const floating[::1] x, double negative_slope, int n_threads,
                        floating[::1] dx):
    """dx = dy if x > 0 else negative_slope·dy; at slope 0 ReLU's gradient, as PyTorch's threshold_backward:
    exactly 0 where x <= 0 (an infinite dy gives 0, not NaN), dy elsewhere (at a NaN x too)"""
    with nogil:
        run(&x[0], &dy[0], dy.shape[0], negative_slope, n_threads, &dx[0])
