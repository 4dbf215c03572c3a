"""``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` and the embedded
``digits``, each with Keras's ``load_data()`` returning ``(x_train, y_train), (x_test, y_test)``
as uint8 arrays shaped as Keras's.

Nothing is downloaded (this package needs no network): the files are read where a Keras
installation cached them, ``~/.keras/datasets`` (or ``$KERAS_HOME/datasets``), and a missing
file is a FileNotFoundError saying where to put it. CIFAR's "python version" batches are
pickles; they are read by an unpickler that admits only NumPy arrays, lists, dicts, strings and
numbers, so a tampered file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from types import SimpleNamespace

import numpy as np

from .utils import cache_home


def _cached(*candidates, origin):
    """The first of the paths (relative to Keras's datasets cache) that exists."""
    folder = os.path.join(cache_home(), "datasets")
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{candidates[0]!r} is not in Keras's dataset cache {folder!r}: put it there (from "
                            f"{origin}); convnet does not download")


def _load_mnist(path="mnist.npz"):
    """MNIST: 60,000 + 10,000 28×28 digits; x uint8 (N, 28, 28), y uint8 (N,)."""
    file = _cached(path, origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz")
    with np.load(file, allow_pickle=False) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def _idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def _load_fashion_mnist():
    """Fashion-MNIST: 60,000 + 10,000 28×28 clothes; x uint8 (N, 28, 28), y uint8 (N,)."""
    folder = _cached("fashion-mnist", origin="https://storage.googleapis.com/tensorflow/tf-keras-datasets/")
    parts = []
    for prefix in ("train", "t10k"):
        labels = _idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), 8)
        images = _idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), 16)
        if images.size != len(labels) * 28 * 28:
            raise ValueError(f"{folder!r}: {prefix} images ({images.size} bytes) do not match its {len(labels)} "
                             "labels")
        parts.append((images.reshape(len(labels), 28, 28), labels))
    return tuple(parts)


class _ArraysOnly(pickle.Unpickler):
    """Admits the globals a pickled NumPy array needs, nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused: the file asks for {module}.{name}, which is not part of an "
                                         "array")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def _batch(path):
    """A CIFAR python batch: its dict with bytes keys, through :class:`_ArraysOnly`."""
    try:
        with open(path, "rb") as f:
            content = _ArraysOnly(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"{path!r} is not a CIFAR batch: {exc}") from None
    if not isinstance(content, dict) or b"data" not in content:
        raise ValueError(f"{path!r} is not a CIFAR batch (no b'data' entry)")
    return content


def _images(data, path):
    data = np.asarray(data, np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path!r}: images of shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels_last, as Keras


def _load_cifar10():
    """CIFAR-10: 50,000 + 10,000 32×32×3 images of 10 classes; x uint8 (N, 32, 32, 3), y uint8 (N, 1)."""
    folder = _cached("cifar-10-batches-py-target/cifar-10-batches-py", "cifar-10-batches-py",
                     origin="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extracted)")
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        path = os.path.join(folder, name)
        content = _batch(path)
        xs.append(_images(content[b"data"], path))
        ys.append(np.asarray(content[b"labels"], np.uint8).reshape(-1, 1))
    return (np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5])


def _load_cifar100(label_mode="fine"):
    """CIFAR-100: 50,000 + 10,000 32×32×3 images; ``label_mode`` "fine" (100 classes) or "coarse" (20)."""
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse'; received label_mode={label_mode!r}")
    folder = _cached("cifar-100-python-target/cifar-100-python", "cifar-100-python",
                     origin="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extracted)")
    parts = []
    for name in ("train", "test"):
        path = os.path.join(folder, name)
        content = _batch(path)
        labels = np.asarray(content[label_mode.encode() + b"_labels"], np.uint8).reshape(-1, 1)
        parts.append((_images(content[b"data"], path), labels))
    return tuple(parts)


def _load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 1,797 8×8 digits (embedded: no file needed), in Keras's form: x uint8 (N, 8, 8) in
    [0, 16], y uint8 (N,); a stratified split fixed by ``seed``."""
    from .data import load_digits

    (x_train, y_train), (x_test, y_test), _ = load_digits(test_fraction, seed)
    as_uint8 = lambda x: np.rint(x[..., 0] * 16).astype(np.uint8)  # noqa: E731
    return (as_uint8(x_train), y_train.astype(np.uint8)), (as_uint8(x_test), y_test.astype(np.uint8))


mnist = SimpleNamespace(load_data=_load_mnist)
fashion_mnist = SimpleNamespace(load_data=_load_fashion_mnist)
cifar10 = SimpleNamespace(load_data=_load_cifar10)
cifar100 = SimpleNamespace(load_data=_load_cifar100)
digits = SimpleNamespace(load_data=_load_digits)
