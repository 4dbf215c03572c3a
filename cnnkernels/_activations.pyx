"""Elementwise kernels: leaky ReLU (ReLU at slope 0), forward and backward; RMSprop's and Adam's steps.

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
    void cnnk_rmsprop_f32(const float* g, Py_ssize_t n, double lr, double rho, double eps, float* w, float* a)
    void cnnk_rmsprop_f64(const double* g, Py_ssize_t n, double lr, double rho, double eps, double* w, double* a)
    void cnnk_adam_f32(const float* g, Py_ssize_t n, double step_size, double beta_1, double beta_2, double eps,
                       float* w, float* m, float* v)
    void cnnk_adam_f64(const double* g, Py_ssize_t n, double step_size, double beta_1, double beta_2, double eps,
                       double* w, double* m, double* v)

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


def rmsprop_update(const floating[::1] gradient, double learning_rate, double rho, double epsilon, int n_threads,
                   floating[::1] variable, floating[::1] velocity):
    """velocity = ρ·velocity + (1 − ρ)·g²; variable −= lr·g / √(velocity + ε), in place, in blocks of BLOCK"""
    cdef Py_ssize_t size = gradient.shape[0], block, start
    for block in prange((size + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(1, n_threads), schedule="static"):
        start = block * BLOCK
        if floating is float:
            cnnk_rmsprop_f32(&gradient[start], min(BLOCK, size - start), learning_rate, rho, epsilon,
                             &variable[start], &velocity[start])
        else:
            cnnk_rmsprop_f64(&gradient[start], min(BLOCK, size - start), learning_rate, rho, epsilon,
                             &variable[start], &velocity[start])


def adam_update(const floating[::1] gradient, double step_size, double beta_1, double beta_2, double epsilon,
                int n_threads, floating[::1] variable, floating[::1] momentum, floating[::1] velocity):
    """m += (g − m)(1 − β₁); v += (g² − v)(1 − β₂); variable −= step_size·m / (√v + ε), in place"""
    cdef Py_ssize_t size = gradient.shape[0], block, start
    for block in prange((size + BLOCK - 1) // BLOCK, nogil=True, num_threads=max(1, n_threads), schedule="static"):
        start = block * BLOCK
        if floating is float:
            cnnk_adam_f32(&gradient[start], min(BLOCK, size - start), step_size, beta_1, beta_2, epsilon,
                          &variable[start], &momentum[start], &velocity[start])
        else:
            cnnk_adam_f64(&gradient[start], min(BLOCK, size - start), step_size, beta_1, beta_2, epsilon,
                          &variable[start], &momentum[start], &velocity[start])
