"""Batch-normalisation kernels: per-channel moments, the affine map, the backward pass.

Arguments arrive validated from :mod:`cnnkernels.normalization`: x, dy, y and dx are
C-contiguous (N, C, L) views of one dtype (L = H·W, or 1 for (N, C) input), N·L >= 1,
and the per-channel vectors are float64 of length C. Sums run in float64, so a
channel of millions of float32 values keeps its precision. Parallel over channels:
each thread reads its channels' N strips of L values, so no reduction is shared.
"""

from cython.parallel cimport prange

cdef extern from "simd/moments.h" nogil:
    double cnnk_channel_sum_f32(const float* first, Py_ssize_t strips, Py_ssize_t pitch, Py_ssize_t L)
    double cnnk_channel_squares_f32(const float* first, Py_ssize_t strips, Py_ssize_t pitch, Py_ssize_t L,
                                    double centre)
    double cnnk_channel_dot_f32(const float* grad, const float* values, Py_ssize_t strips, Py_ssize_t pitch,
                                Py_ssize_t L, double centre)
    void cnnk_pixel_sums_f32(const float* x, Py_ssize_t rows, Py_ssize_t pitch, int width, double* sums)
    double cnnk_channel_relu_sum_f32(const float* dy, const float* y, float* dz, Py_ssize_t strips, Py_ssize_t pitch,
                                     Py_ssize_t L, float slope)

ctypedef fused floating:
    float
    double


cdef inline double strip_sum(const floating* values, Py_ssize_t L) noexcept nogil:
    """Σ values[i] in float64, over eight running sums: one sum is a chain of dependent additions,
    four cycles each (measured 10x slower)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= L:
        s0 += values[i]
        s1 += values[i + 1]
        s2 += values[i + 2]
        s3 += values[i + 3]
        s4 += values[i + 4]
        s5 += values[i + 5]
        s6 += values[i + 6]
        s7 += values[i + 7]
        i += 8
    while i < L:
        s0 += values[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double channel_sum(const floating* first, Py_ssize_t N, Py_ssize_t image, Py_ssize_t L) noexcept nogil:
    """Σ over the N strips of L values, ``image`` apart, that start at ``first`` (one channel), in float64
    (float32: on 32 vector lanes, simd/moments.c)."""
    if floating is float:
        return cnnk_channel_sum_f32(first, N, image, L)
    cdef double total = 0
    cdef Py_ssize_t n
    for n in range(N):
        total = total + strip_sum(first + n * image, L)
    return total


cdef inline double channel_squares(const floating* first, Py_ssize_t N, Py_ssize_t image, Py_ssize_t L,
                                   double centre) noexcept nogil:
    """Σ (x − centre)² over one channel's N strips (see channel_sum)."""
    if floating is float:
        return cnnk_channel_squares_f32(first, N, image, L, centre)
    cdef double total = 0
    cdef Py_ssize_t n
    for n in range(N):
        total = total + strip_squares(first + n * image, L, centre)
    return total


cdef inline double channel_dot(const floating* grad, const floating* values, Py_ssize_t N, Py_ssize_t image,
                               Py_ssize_t L, double centre) noexcept nogil:
    """Σ grad·(values − centre) over one channel's N strips (see channel_sum)."""
    if floating is float:
        return cnnk_channel_dot_f32(grad, values, N, image, L, centre)
    cdef double total = 0
    cdef Py_ssize_t n
    for n in range(N):
        total = total + strip_dot(grad + n * image, values + n * image, L, centre)
    return total


cdef inline double strip_squares(const floating* values, Py_ssize_t L, double centre) noexcept nogil:
    """Σ (values[i] − centre)² in float64, over eight running sums (see strip_sum)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, d
    cdef Py_ssize_t i = 0
    while i + 8 <= L:
        d = values[i] - centre; s0 += d * d
        d = values[i + 1] - centre; s1 += d * d
        d = values[i + 2] - centre; s2 += d * d
        d = values[i + 3] - centre; s3 += d * d
        d = values[i + 4] - centre; s4 += d * d
        d = values[i + 5] - centre; s5 += d * d
        d = values[i + 6] - centre; s6 += d * d
        d = values[i + 7] - centre; s7 += d * d
        i += 8
    while i < L:
        d = values[i] - centre
        s0 += d * d
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double strip_dot(const floating* grad, const floating* values, Py_ssize_t L, double centre) noexcept nogil:
    """Σ grad[i]·(values[i] − centre) in float64, over eight running sums (see strip_sum)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= L:
        s0 += grad[i] * (values[i] - centre)
        s1 += grad[i + 1] * (values[i + 1] - centre)
        s2 += grad[i + 2] * (values[i + 2] - centre)
        s3 += grad[i + 3] * (values[i + 3] - centre)
        s4 += grad[i + 4] * (values[i + 4] - centre)
        s5 += grad[i + 5] * (values[i + 5] - centre)
        s6 += grad[i + 6] * (values[i + 6] - centre)
        s7 += grad[i + 7] * (values[i + 7] - centre)
        i += 8
    while i < L:
        s0 += grad[i] * (values[i] - centre)
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def channel_moments(const floating[:, :, ::1] x, int n_threads, double[::1] mean, double[::1] variance):
    """mean[c] = Σ x[:, c] / (N·L);  variance[c] = Σ (x[:, c] − mean[c])² / (N·L)  (two passes: no
    cancellation, and the second reads the channel from cache)"""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c
    cdef double count = <double>N * L
    with nogil:
        for c in prange(C, num_threads=max(1, n_threads), schedule="static"):
            mean[c] = channel_sum(&x[0, c, 0], N, C * L, L) / count
            variance[c] = channel_squares(&x[0, c, 0], N, C * L, L, mean[c]) / count


def channel_sums(const floating[:, :, ::1] x, int n_threads, double[::1] sums):
    """sums[c] = Σ x[:, c]  (a convolution's bias gradient, summed in float64)"""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c
    with nogil:
        for c in prange(C, num_threads=max(1, n_threads), schedule="static"):
            sums[c] = channel_sum(&x[0, c, 0], N, C * L, L)


def pixel_sums(const float[:, ::1] x, int n_threads, double[::1] sums):
    """sums[c] = Σ_i x[i, c] in float64: the channel sums of a channels-last array (rows are pixels), each thread
    a block of 16 channels down all rows"""
    cdef Py_ssize_t rows = x.shape[0], C = x.shape[1], block
    if rows == 0:
        sums[:] = 0
        return
    with nogil:
        for block in prange((C + 15) // 16, num_threads=max(1, n_threads), schedule="static"):
            cnnk_pixel_sums_f32(&x[0, 16 * block], rows, C, <int>min(16, C - 16 * block), &sums[16 * block])


def relu_gradient_sums(const floating[:, :, ::1] dy, const floating[:, :, ::1] y, double negative_slope,
                       int n_threads, floating[:, :, ::1] dz, double[::1] sums):
    """dz = dy where y > 0, else negative_slope·dy (leaky_relu_backward's; at slope 0 relu_backward's: 0 where
    y <= 0); sums[c] = Σ dz[:, c] in float64, the bits of channel_sums on dz: a convolution's bias gradient through
    a fused (leaky) ReLU, in one pass"""
    cdef Py_ssize_t N = dy.shape[0], C = dy.shape[1], L = dy.shape[2], n, c, i
    cdef double total
    cdef floating slope = <floating>negative_slope
    with nogil:
        for c in prange(C, num_threads=max(1, n_threads), schedule="static"):
            if floating is float:
                sums[c] = cnnk_channel_relu_sum_f32(&dy[0, c, 0], &y[0, c, 0], &dz[0, c, 0], N, C * L, L, slope)
            else:
                total = 0
                for n in range(N):
                    for i in range(L):
                        if slope == 0:
                            dz[n, c, i] = 0 if y[n, c, i] <= 0 else dy[n, c, i]
                        else:
                            dz[n, c, i] = dy[n, c, i] if y[n, c, i] > 0 else dy[n, c, i] * slope
                    total = total + strip_sum(&dz[n, c, 0], L)
                sums[c] = total


def channel_affine(const floating[:, :, ::1] x, const double[::1] scale, const double[::1] shift, int n_threads,
                   floating[:, :, ::1] y):
    """y[n,c,i] = x[n,c,i]·scale[c] + shift[c]  (y may be x)"""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], plane, i
    cdef floating a, b
    cdef const floating* source
    cdef floating* target
    with nogil:
        for plane in prange(N * C, num_threads=max(1, n_threads), schedule="static"):
            a, b = <floating>scale[plane % C], <floating>shift[plane % C]
            source = &x[plane // C, plane % C, 0]
            target = &y[plane // C, plane % C, 0]
            for i in range(L):
                target[i] = source[i] * a + b


def batch_norm_backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x, const double[::1] mean,
                        const double[::1] inv_std, const double[::1] gamma, bint batch_statistics, int n_threads,
                        floating[:, :, ::1] dx, double[:, ::1] sums):
    """sums[0, c] = Σ dy[:, c];  sums[1, c] = Σ dy[:, c]·x̂[:, c] with x̂ = (x − mean)·inv_std;
    dx = γ·inv_std·(dy − sums[0]/m − x̂·sums[1]/m) (m = N·L) when the statistics were the batch's,
    else γ·inv_std·dy (dx may be skipped: an empty dx)"""
    cdef Py_ssize_t N = dy.shape[0], C = dy.shape[1], L = dy.shape[2], n, c, i
    cdef double sum_dy, sum_dy_x_hat, count = <double>N * L
    cdef floating centre, spread, factor, mean_dy, mean_dy_x_hat
    cdef const floating* grad
    cdef const floating* strip
    cdef floating* target
    cdef bint want_dx = dx.shape[0] > 0
    with nogil:
        for c in prange(C, num_threads=max(1, n_threads), schedule="static"):
            centre, spread = <floating>mean[c], <floating>inv_std[c]
            sum_dy = channel_sum(&dy[0, c, 0], N, C * L, L)
            sum_dy_x_hat = channel_dot(&dy[0, c, 0], &x[0, c, 0], N, C * L, L, mean[c]) * inv_std[c]
            sums[0, c] = sum_dy
            sums[1, c] = sum_dy_x_hat
            if not want_dx:
                continue
            factor = <floating>(gamma[c] * inv_std[c])
            mean_dy = <floating>(sum_dy / count) if batch_statistics else 0
            mean_dy_x_hat = <floating>(sum_dy_x_hat / count) if batch_statistics else 0
            for n in range(N):
                grad = &dy[n, c, 0]
                strip = &x[n, c, 0]
                target = &dx[n, c, 0]
                for i in range(L):
                    target[i] = factor * (grad[i] - mean_dy - (strip[i] - centre) * spread * mean_dy_x_hat)
