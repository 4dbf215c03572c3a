"""The implementations a user would pick instead of ours, each where it is installed.

All follow the protocol of :mod:`.impls`. ``numpy-im2col`` and ``scipy`` are the
simple ones people write first (NumPy's BLAS; SciPy's N-d correlation, forward
only); ``onnxruntime`` (forward only: an inference engine), ``tensorflow`` and
``jax`` are the engines. TensorFlow and JAX fix their thread pools when they
start, so a row at another thread count is reported as unsupported.
"""

from __future__ import annotations

import os

import numpy as np


def _windows(xp, problem):
    """(N, C, P, Q, R, S) strided windows of the padded input (a view)."""
    (sh, sw), (dh, dw) = problem.strides, problem.dilations
    P, Q = problem.out_hw()
    view = np.lib.stride_tricks.sliding_window_view(xp, (dh * (problem.R - 1) + 1, dw * (problem.S - 1) + 1), (2, 3))
    return view[:, :, : sh * (P - 1) + 1 : sh, : sw * (Q - 1) + 1 : sw, ::dh, ::dw]


def _padded(x, problem):
    top, bottom, left, right = problem.pads()
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


class NumpyIm2col:
    """im2col as a matrix product on NumPy's BLAS, and col2im for the input gradient."""

    name = "numpy-im2col"

    def set_threads(self, n: int) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(n, user_api="blas")

    def conv(self, problem, x, w, dy):
        N, G, (P, Q) = problem.N, problem.groups, problem.out_hw()
        Cg, Kg, RS = problem.C // G, problem.K // G, problem.R * problem.S

        def columns(xp):  # (G, N·P·Q, Cg·R·S)
            cols = _windows(xp, problem).reshape(N, G, Cg, P, Q, RS)
            return cols.transpose(1, 0, 3, 4, 2, 5).reshape(G, N * P * Q, Cg * RS)

        weights = w.reshape(G, Kg, Cg * RS)
        grads = dy.reshape(N, G, Kg, P * Q).transpose(1, 0, 3, 2).reshape(G, N * P * Q, Kg)

        def forward():
            y = columns(_padded(x, problem)) @ weights.transpose(0, 2, 1)  # (G, NPQ, Kg)
            return y.reshape(G, N, P, Q, Kg).transpose(1, 0, 4, 2, 3).reshape(N, problem.K, P, Q)

        def backward_weights():
            return (grads.transpose(0, 2, 1) @ columns(_padded(x, problem))).reshape(problem.weight_shape)

        def backward_data():
            cols = (grads @ weights).reshape(G, N, P, Q, Cg, problem.R, problem.S)
            cols = cols.transpose(1, 0, 4, 5, 6, 2, 3).reshape(N, problem.C, problem.R, problem.S, P, Q)
            xp = np.zeros_like(_padded(x, problem))
            (sh, sw), (dh, dw) = problem.strides, problem.dilations
            for r in range(problem.R):
                for s in range(problem.S):
                    xp[:, :, r * dh : r * dh + sh * (P - 1) + 1 : sh, s * dw : s * dw + sw * (Q - 1) + 1 : sw] += (
                        cols[:, :, r, s])
            top, _, left, _ = problem.pads()
            return xp[:, :, top : top + problem.H, left : left + problem.W]

        return {"forward": forward, "backward-data": backward_data, "backward-weights": backward_weights}


class Scipy:
    """scipy.signal.correlate of each image with each filter over (C, H, W): forward only."""

    name = "scipy"

    def __init__(self):
        from scipy import signal

        self.signal = signal

    def conv(self, problem, x, w, dy):
        (sh, sw), (dh, dw) = problem.strides, problem.dilations
        Cg, Kg = problem.C // problem.groups, problem.K // problem.groups
        dilated = np.zeros((problem.K, Cg, dh * (problem.R - 1) + 1, dw * (problem.S - 1) + 1), x.dtype)
        dilated[:, :, ::dh, ::dw] = w

        def forward():
            xp = _padded(x, problem)
            P, Q = problem.out_hw()
            y = np.empty((problem.N, problem.K, P, Q), x.dtype)
            for n in range(problem.N):
                for k in range(problem.K):
                    g = k // Kg
                    full = self.signal.correlate(xp[n, g * Cg : (g + 1) * Cg], dilated[k], mode="valid")
                    y[n, k] = full[0, ::sh, ::sw][:P, :Q]
            return y

        return {"forward": forward}


class OnnxRuntime:
    """onnxruntime's CPU execution provider on a one-node ONNX Conv model: forward only."""

    name = "onnxruntime"

    def __init__(self):
        import onnx  # noqa: F401  (builds the model)
        import onnxruntime

        self.ort = onnxruntime
        self.threads = 1

    def set_threads(self, n: int) -> None:
        self.threads = n

    def conv(self, problem, x, w, dy):
        from onnx import TensorProto, helper, numpy_helper

        top, bottom, left, right = problem.pads()
        node = helper.make_node("Conv", ["x", "w"], ["y"], strides=list(problem.strides), pads=[top, left, bottom, right],
                                dilations=list(problem.dilations), group=problem.groups,
                                kernel_shape=[problem.R, problem.S])
        graph = helper.make_graph(
            [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = self.ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        session = self.ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return {"forward": lambda: session.run(None, {"x": x})[0]}


class _FixedThreads:
    """An engine whose thread pool is fixed once it starts: later counts are refused."""

    started_with = None

    def set_threads(self, n: int) -> None:
        if self.started_with is None:
            self.started_with = n
            self._start(n)
        elif n != self.started_with:
            raise NotImplementedError(f"{self.name} fixed its thread pool at {self.started_with} when it started")


class TensorFlow(_FixedThreads):
    """tf.nn.conv2d and its raw backprop ops, NHWC (TensorFlow's CPU layout); grouped or dilated: forward only."""

    name = "tensorflow"

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.tf = tf

    def _start(self, n):
        self.tf.config.threading.set_intra_op_parallelism_threads(n)
        self.tf.config.threading.set_inter_op_parallelism_threads(1)

    def conv(self, problem, x, w, dy):
        tf = self.tf
        top, bottom, left, right = problem.pads()
        padding = [[0, 0], [top, bottom], [left, right], [0, 0]]
        strides, dilations = [1, *problem.strides, 1], [1, *problem.dilations, 1]
        tx = tf.constant(x.transpose(0, 2, 3, 1))
        tw = tf.constant(w.transpose(2, 3, 1, 0))  # HWIO
        tdy = tf.constant(dy.transpose(0, 2, 3, 1))
        ops = tf.raw_ops
        explicit = [v for pair in padding for v in pair]
        forward = {"forward": lambda: tf.nn.conv2d(tx, tw, strides, padding, dilations=dilations).numpy()
                   .transpose(0, 3, 1, 2)}
        if problem.groups > 1 or problem.dilations != (1, 1):
            return forward  # TensorFlow's CPU backprop kernels support neither (InvalidArgumentError)
        return {
            **forward,
            "backward-data": lambda: ops.Conv2DBackpropInput(
                input_sizes=tx.shape, filter=tw, out_backprop=tdy, strides=strides, padding="EXPLICIT",
                explicit_paddings=explicit, dilations=dilations).numpy().transpose(0, 3, 1, 2),
            "backward-weights": lambda: ops.Conv2DBackpropFilter(
                input=tx, filter_sizes=tw.shape, out_backprop=tdy, strides=strides, padding="EXPLICIT",
                explicit_paddings=explicit, dilations=dilations).numpy().transpose(3, 2, 0, 1),
        }


class Jax(_FixedThreads):
    """jax.lax.conv_general_dilated, jit-compiled, and its vjp for both gradients."""

    name = "jax"

    def __init__(self):
        self.jax = None

    def _start(self, n):
        import sys

        if "jax" not in sys.modules:  # XLA reads its thread count once, when it starts
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                                       + ("false intra_op_parallelism_threads=1" if n == 1 else "true"))
        import jax

        jax.config.update("jax_platforms", "cpu")
        self.jax = jax

    def conv(self, problem, x, w, dy):
        if self.jax is None:
            self.set_threads(1)
        jax = self.jax
        top, bottom, left, right = problem.pads()

        def conv(a, b):
            return jax.lax.conv_general_dilated(a, b, problem.strides, [(top, bottom), (left, right)],
                                                rhs_dilation=problem.dilations, feature_group_count=problem.groups,
                                                precision=jax.lax.Precision.HIGHEST)

        forward = jax.jit(conv)
        grad_x = jax.jit(lambda a, b, g: jax.vjp(lambda a: conv(a, b), a)[1](g)[0])
        grad_w = jax.jit(lambda a, b, g: jax.vjp(lambda b: conv(a, b), b)[1](g)[0])
        jx, jw, jdy = (jax.device_put(v) for v in (x, w, dy))
        return {
            "forward": lambda: np.asarray(forward(jx, jw).block_until_ready()),
            "backward-data": lambda: np.asarray(grad_x(jx, jw, jdy).block_until_ready()),
            "backward-weights": lambda: np.asarray(grad_w(jx, jw, jdy).block_until_ready()),
        }


# name -> (class, the module whose presence makes it available)
PEERS = {"numpy-im2col": (NumpyIm2col, "numpy"), "scipy": (Scipy, "scipy"), "onnxruntime": (OnnxRuntime, "onnxruntime"),
         "tensorflow": (TensorFlow, "tensorflow"), "jax": (Jax, "jax")}
# Run when no --impl is given (the simple peers are slow on large layers: ask for them by name).
DEFAULT_PEERS = ("onnxruntime", "tensorflow", "jax")
