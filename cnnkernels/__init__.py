"""cnnkernels: convolution, pooling, batch-normalisation and activation kernels, forward and backward, for NumPy;
and the optimizer steps (RMSprop, Adam) in place.

NCHW layout, weights (K, C/groups, R, S); signatures mirror
``torch.nn.functional``. Backends: ``cython`` (compiled, OpenMP + BLAS),
``numba`` (JIT) and ``numpy`` (the reference), chosen in
:mod:`cnnkernels._backends`.
"""

from .api import conv2d, conv2d_backward, conv2d_plan
from .linalg import matmul
from .layout import to_channels_first, to_channels_last
from .pooling import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
    max_unpool2d,
    max_unpool2d_backward,
    sum_pool2d,
    sum_pool2d_backward,
)
from .activations import leaky_relu, leaky_relu_backward, relu, relu_backward
from .updates import adam_update, rmsprop_update
from .normalization import batch_norm, batch_norm_backward, channel_moments
from .transposed import conv_transpose2d, conv_transpose2d_backward
from ._backends import BackendUnavailableWarning, backends, get_backend, set_backend, use_backend
from .plan import ConvPlan
from .memory import cached_memory, caching_allocator, release_cached_memory, set_cache_limit
from ._threads import get_num_threads, numpy_blas_single_threaded, set_num_threads, threads

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableWarning",
    "adam_update",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "ConvPlan",
    "avg_pool2d",
    "avg_pool2d_backward",
    "backends",
    "batch_norm",
    "batch_norm_backward",
    "cached_memory",
    "caching_allocator",
    "channel_moments",
    "conv2d",
    "conv2d_backward",
    "conv2d_plan",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "get_backend",
    "leaky_relu",
    "leaky_relu_backward",
    "get_num_threads",
    "matmul",
    "max_pool2d",
    "max_pool2d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "numpy_blas_single_threaded",
    "release_cached_memory",
    "relu",
    "relu_backward",
    "rmsprop_update",
    "set_backend",
    "set_cache_limit",
    "set_num_threads",
    "sum_pool2d",
    "sum_pool2d_backward",
    "threads",
    "to_channels_first",
    "to_channels_last",
    "use_backend",
]
