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
    void cnnk_leaky_relu_f32(const float* x, Py_ssize_t n, float slope, int relu, float* y)
    void cnnk_leaky_relu_f64(const double* x, Py_ssize_t n, double slope, int relu, double* y)
    void cnnk_leaky_relu_grad_f32(const float* dy, const float* x, Py_ssize_t n, float slope, int relu, float* dx)
    void cnnk_leaky_relu_grad_f64(const double* dy, const double* x, Py_ssize_t n, double slope, int relu,
                                  double* dx)

# values per parallel block: large enough that a block's loop dwarfs its scheduling
cdef enum:
    BLOCK = 16384


def leaky_relu_forward(const floating[::1] x, double negative_slope, int n_threads, floating[::1] y):
    """y = x if x > 0 else negative_slope·x, and max(x, 0) at slope 0  (NaN stays NaN)"""
    cdef Py_ssize_t size = x.shape[0], block, start
    cdef int relu = negative_slope == 0
    with nogil:
        for block in prange((size + BLOCK - 1) // BLOCK, num_threads=max(1, n_threads), schedule="static"):
            start = block * BLOCK
            if floating is float:
                cnnk_leaky_relu_f32(&x[start], min(BLOCK, size - start), <float>negative_slope, relu, &y[start])
            else:
                cnnk_leaky_relu_f64(&x[start], min(BLOCK, size - start), negative_slope, relu, &y[start])


def leaky_relu_backward(const floating[::1] dy, const floating[::1] x, double negative_slope, int n_threads,
                        floating[::1] dx):
    """dx = dy if x > 0 else negative_slope·dy; at slope 0 ReLU's gradient, as PyTorch's threshold_backward:
    exactly 0 where x <= 0 (an infinite dy gives 0, not NaN), dy elsewhere (at a NaN x too)"""
    cdef Py_ssize_t size = dy.shape[0], block, start
    cdef int relu = negative_slope == 0
    with nogil:
        for block in prange((size + BLOCK - 1) // BLOCK, num_threads=max(1, n_threads), schedule="static"):
            start = block * BLOCK
            if floating is float:
                cnnk_leaky_relu_grad_f32(&dy[start], &x[start], min(BLOCK, size - start), <float>negative_slope,
                                         relu, &dx[start])
            else:
                cnnk_leaky_relu_grad_f64(&dy[start], &x[start], min(BLOCK, size - start), negative_slope, relu,
                                         &dx[start])
