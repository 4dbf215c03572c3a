"""Shape sets for benchmarking convolution implementations, each with its source.

A convolution problem is (N, C, H, W, K, R, S, stride, padding, dilation,
groups); padding is anything :func:`cnnkernels.conv2d` accepts. Problems can
also come from a file (:mod:`.shapefiles`). Batches of the published sets are
scaled down so that a full run fits 2 cores and 24 GiB; the scale is stated in
each set's ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Conv:
    name: str
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int | tuple[int, int] = 1
    padding: object = 0
    dilation: int | tuple[int, int] = 1
    groups: int = 1

    @property
    def strides(self) -> tuple[int, int]:
        return _pair(self.stride)

    @property
    def dilations(self) -> tuple[int, int]:
        return _pair(self.dilation)

    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right); "same" as TensorFlow and cnnkernels: the odd pixel at the bottom/right."""
        padding = self.padding
        if isinstance(padding, str):
            if padding.lower() == "valid":
                return (0, 0, 0, 0)
            top, bottom = _same_pads(self.H, self.R, self.strides[0], self.dilations[0])
            left, right = _same_pads(self.W, self.S, self.strides[1], self.dilations[1])
            return (top, bottom, left, right)
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and isinstance(padding[0], (tuple, list)):
            return (padding[0][0], padding[0][1], padding[1][0], padding[1][1])
        ph, pw = _pair(padding)
        return (ph, ph, pw, pw)

    def out_hw(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads()
        (sh, sw), (dh, dw) = self.strides, self.dilations
        return ((self.H + top + bottom - dh * (self.R - 1) - 1) // sh + 1,
                (self.W + left + right - dw * (self.S - 1) - 1) // sw + 1)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.K, self.C // self.groups, self.R, self.S)

    def flops(self, out_hw=None) -> float:
        """2·N·K·(C/groups)·R·S·P·Q: multiply-adds of the forward pass (each backward pass costs the same)."""
        P, Q = out_hw or self.out_hw()
        return 2.0 * self.N * self.K * (self.C // self.groups) * self.R * self.S * P * Q

    def bytes_moved(self, itemsize: int = 4) -> int:
        """The least traffic of one pass: its two inputs read and its output written once."""
        P, Q = self.out_hw()
        return itemsize * (self.N * self.C * self.H * self.W + self.K * (self.C // self.groups) * self.R * self.S
                           + self.N * self.K * P * Q)

    def label(self) -> str:
        stride = self.stride if isinstance(self.stride, int) else "x".join(map(str, self.stride))
        extra = "" if self.dilations == (1, 1) else f" d{'x'.join(map(str, self.dilations))}"
        extra += "" if self.groups == 1 else f" g{self.groups}"
        return (f"{self.name} {self.N}x{self.C}x{self.H}x{self.W} k{self.K} {self.R}x{self.S}"
                f"/{stride} p{self.padding}{extra}")


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Pool:
    name: str
    N: int
    C: int
    H: int
    W: int
    kind: str  # "max", "avg" or "sum"
    kernel_size: int
    stride: int | None = None
    padding: object = 0

    def label(self) -> str:
        return f"{self.name} {self.kind} {self.N}x{self.C}x{self.H}x{self.W} k{self.kernel_size}/{self.stride or self.kernel_size}"


@dataclass(frozen=True)
class ShapeSet:
    name: str
    source: str
    note: str
    problems: tuple = field(default_factory=tuple)


SETS = {
    s.name: s
    for s in [
        ShapeSet(
            "quick",
            "tiny shapes for a smoke test (seconds)",
            "not a benchmark: checks that every implementation runs and agrees",
            (
                Conv("q-conv", 4, 3, 12, 12, 8, 3, 3, 1, 1),
                Conv("q-strided", 2, 8, 11, 9, 8, 3, 2, (2, 1), "same"),
                Pool("q-pool", 4, 8, 12, 12, "max", 2),
            ),
        ),
        ShapeSet(
            "core",
            "the acceptance rows of the kernel issues: tutorial-sized layers, a ResNet 3x3 layer, a 2x2 max-pool",
            "batch as in the issue",
            (
                Conv("core-3ch", 32, 3, 20, 20, 32, 3, 3, 1, 1),
                Conv("core-32ch", 32, 32, 20, 20, 16, 3, 3, 1, 1),
                Conv("core-64ch", 8, 64, 56, 56, 64, 3, 3, 1, 1),
                Pool("core-maxpool", 32, 32, 20, 20, "max", 2),
            ),
        ),
        ShapeSet(
            "speed",
            "the rows of the speed issue: ResNet 3x3, strided 3x3/2, convnet-benchmarks L5, ResNet 1x1, the "
            "tutorial's two layers and the 100x100x3 first layer",
            "batch as in the issue",
            (
                Conv("resnet-3x3", 8, 64, 56, 56, 64, 3, 3, 1, 1),
                Conv("resnet-3x3-s2", 8, 64, 56, 56, 128, 3, 3, 2, 1),
                Conv("cb-L5", 16, 384, 13, 13, 384, 3, 3, 1, 1),
                Conv("resnet-1x1", 8, 256, 56, 56, 64, 1, 1, 1, 0),
                Conv("tut-conv1", 32, 3, 20, 20, 32, 3, 3, 1, 1),
                Conv("tut-conv2", 32, 32, 20, 20, 16, 3, 3, 1, 1),
                Conv("first-100x100x3", 16, 3, 100, 100, 32, 3, 3, 1, 1),
            ),
        ),
        ShapeSet(
            "tutorial",
            "the Keras fruit-classifier tutorial's conv layers ('same' padding), 20x20x3 and 100x100x3 inputs",
            "batch 32 (20x20) and 16 (100x100), as the tutorial trains",
            (
                Conv("tut-20-conv1", 32, 3, 20, 20, 32, 3, 3, 1, "same"),
                Conv("tut-20-conv2", 32, 32, 20, 20, 16, 3, 3, 1, "same"),
                Conv("tut-100-conv1", 16, 3, 100, 100, 32, 3, 3, 1, "same"),
                Conv("tut-100-conv2", 16, 32, 100, 100, 16, 3, 3, 1, "same"),
            ),
        ),
        ShapeSet(
            "convnet-benchmarks",
            "soumith/convnet-benchmarks, layers L1-L5 (input 128x3x128x128 ... 128x384x13x13)",
            "batch scaled from 128 to 4 (L1, L2) and 16 (L3-L5) so one run fits 2 cores",
            (
                Conv("L1", 4, 3, 128, 128, 96, 11, 11, 1, 0),
                Conv("L2", 4, 64, 64, 64, 128, 9, 9, 1, 0),
                Conv("L3", 16, 128, 32, 32, 128, 9, 9, 1, 0),
                Conv("L4", 16, 128, 16, 16, 128, 7, 7, 1, 0),
                Conv("L5", 16, 384, 13, 13, 384, 3, 3, 1, 1),
            ),
        ),
        ShapeSet(
            "deepbench",
            "baidu-research/DeepBench conv_problems.h, training set (speech, face, vision entries)",
            "batch scaled to 4 (speech) and 8 (others) from 4-16",
            (
                Conv("db-speech1", 4, 1, 161, 700, 32, 5, 20, 2, 0),  # non-square kernel, stride 2
                Conv("db-speech2", 4, 32, 79, 341, 32, 5, 10, 2, 0),
                Conv("db-face", 8, 1, 48, 480, 16, 3, 3, 1, 1),
                Conv("db-vision", 8, 64, 54, 54, 64, 3, 3, 1, 1),
                Conv("db-ocr", 8, 1, 48, 128, 64, 3, 3, 1, 1),
            ),
        ),
        ShapeSet(
            "resnet",
            "ResNet-50 (He et al. 2016) layer shapes: 7x7/2 stem, bottleneck 1x1 and 3x3, strided 3x3",
            "batch 4",
            (
                Conv("rn-stem7x7", 4, 3, 224, 224, 64, 7, 7, 2, 3),
                Conv("rn-3x3", 4, 64, 56, 56, 64, 3, 3, 1, 1),
                Conv("rn-1x1-in", 4, 256, 56, 56, 64, 1, 1, 1, 0),
                Conv("rn-1x1-out", 4, 64, 56, 56, 256, 1, 1, 1, 0),
                Conv("rn-3x3/2", 4, 128, 56, 56, 128, 3, 3, 2, 1),
                Conv("rn-3x3-deep", 4, 512, 7, 7, 512, 3, 3, 1, 1),
            ),
        ),
        ShapeSet(
            "pooling",
            "pooling layers of the tutorial model and of ResNet/AlexNet",
            "batch 32 (tutorial) and 8 (ResNet, AlexNet)",
            (
                Pool("tut-maxpool", 32, 16, 20, 20, "max", 2),
                Pool("tut-100-maxpool", 16, 16, 100, 100, "max", 2),
                Pool("rn-maxpool3/2", 8, 64, 112, 112, "max", 3, 2, 1),
                Pool("alex-maxpool3/2", 8, 96, 55, 55, "max", 3, 2),
                Pool("avgpool2", 32, 64, 28, 28, "avg", 2),
                Pool("sumpool2", 32, 64, 28, 28, "sum", 2),
            ),
        ),
    ]
}

# Not a shape set: the tutorial model's training step (bench/training.py), selected by name.
TRAINING = "training"

# What `python -m bench` runs when no --set is given.
DEFAULT_SETS = ("core", "tutorial", "convnet-benchmarks", "deepbench", "resnet", "pooling", TRAINING)
