"""``keras.utils`` for image scripts: ``to_categorical``, ``normalize``, ``set_random_seed``,
``image_dataset_from_directory``, ``load_img`` / ``img_to_array`` / ``array_to_img`` / ``save_img``,
``plot_model``, ``get_file`` (cache look-up only: nothing is downloaded) and ``Sequence``/``PyDataset``.

Keras's names, arguments and defaults; images as (height, width, channels) float32 in [0, 255].
"""

from __future__ import annotations

import os
import random

import numpy as np

from .data import ImageFileError, image_dataset_from_directory
from .layers.base import clear_session

INTERPOLATIONS = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "hamming": "HAMMING",
                  "box": "BOX", "lanczos": "LANCZOS"}


def to_categorical(x, num_classes=None) -> np.ndarray:
    """One-hot rows (float64, as Keras's NumPy path) for integer labels; a trailing axis of 1 is dropped."""
    x = np.asarray(x)
    if x.size and (not np.all(np.equal(np.mod(x, 1), 0)) or x.min() < 0):
        raise ValueError(f"to_categorical needs non-negative integer labels; received values in "
                         f"[{x.min()}, {x.max()}]")
    x = x.astype(np.int64)
    shape = x.shape[:-1] if x.ndim > 1 and x.shape[-1] == 1 else x.shape
    x = x.reshape(-1)
    num_classes = int(x.max()) + 1 if not num_classes else int(num_classes)
    if x.size and x.max() >= num_classes:
        raise ValueError(f"label {x.max()} does not fit num_classes={num_classes}")
    categorical = np.zeros((len(x), num_classes))
    categorical[np.arange(len(x)), x] = 1
    return categorical.reshape(*shape, num_classes)


def normalize(x, axis=-1, order=2) -> np.ndarray:
    """x divided by its ``order``-norm along ``axis`` (zero norms left as they are)."""
    x = np.asarray(x, np.float64 if np.asarray(x).dtype.kind not in "f" else None)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def set_random_seed(seed) -> None:
    """Seed convnet (initialisation, shuffling, dropout, augmentation), NumPy's global generator and
    Python's ``random``, as Keras's does for its backends."""
    from ._random import set_seed

    set_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """A PIL image from a file (``color_mode`` "rgb", "rgba" or "grayscale"), resized to ``target_size``
    (height, width) if given; ``keep_aspect_ratio`` first crops the centred window of that aspect."""
    from PIL import Image, UnidentifiedImageError

    modes = {"rgb": "RGB", "rgba": "RGBA", "grayscale": "L"}
    if color_mode not in modes:
        raise ValueError(f"color_mode must be 'rgb', 'rgba' or 'grayscale'; received color_mode={color_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(INTERPOLATIONS)}; received "
                         f"interpolation={interpolation!r}")
    try:
        with Image.open(path) as opened:
            image = opened.convert(modes[color_mode])
    except FileNotFoundError:
        raise ImageFileError(f"image {os.fspath(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageFileError(f"cannot read image {os.fspath(path)!r}: {exc}") from None
    if target_size is not None:
        height, width = (int(v) for v in target_size)
        if (image.height, image.width) != (height, width):
            if keep_aspect_ratio:
                from .layers.preprocessing import aspect_crop

                top, left, rows, cols = aspect_crop(image.height, image.width, height, width)
                image = image.crop((left, top, left + cols, top + rows))
            image = image.resize((width, height), getattr(Image.Resampling, INTERPOLATIONS[interpolation]))
    return image


def img_to_array(img, data_format=None, dtype=None) -> np.ndarray:
    """A PIL image as a (height, width, channels) array, float32 in [0, 255] by default."""
    array = np.asarray(img, dtype=dtype or "float32")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"img_to_array expects an image; received an array of shape {array.shape}")
    return array.transpose(2, 0, 1) if data_format == "channels_first" else array


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A PIL image from a (height, width, 1, 3 or 4 channels) array; ``scale`` stretches its values to [0, 255]."""
    from PIL import Image

    x = np.array(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"array_to_img expects one image of rank 3; received shape {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - x.min()
        if x.max() != 0:
            x /= x.max()
        x *= 255
    modes = {4: "RGBA", 3: "RGB"}
    if x.shape[2] in modes:
        return Image.fromarray(x.astype("uint8"), modes[x.shape[2]])
    if x.shape[2] == 1:
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"array_to_img supports 1, 3 or 4 channels; received {x.shape[2]}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs) -> None:
    """Write an image array to ``path`` (atomically: a failed write leaves the old file)."""
    from .io import atomic_write

    image = array_to_img(x, data_format=data_format, scale=scale)
    if image.mode == "RGBA" and (file_format == "jpg" or str(path).lower().endswith((".jpg", ".jpeg"))):
        image = image.convert("RGB")
    extension = os.path.splitext(os.fspath(path))[1].lstrip(".").upper() or "PNG"
    name = {"JPG": "JPEG"}.get(extension, extension)
    atomic_write(path, lambda f: image.save(f, format=(file_format or name).upper().replace("JPG", "JPEG"),
                                            **kwargs))


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """The path of ``fname`` in Keras's cache (``~/.keras/<cache_subdir>``, or ``$KERAS_HOME``), where a
    Keras installation downloaded it. Nothing is downloaded here: a missing file is a
    FileNotFoundError saying where to put it."""
    if not fname:
        raise ValueError("get_file needs fname (downloading by origin alone is not supported)")
    path = os.path.join(cache_home(cache_dir), cache_subdir, fname)
    if os.path.exists(path):
        return path
    raise FileNotFoundError(f"{fname!r} is not in Keras's cache: put it at {path!r}" +
                            (f" (download it from {origin})" if origin else "") + "; convnet does not download")


def cache_home(cache_dir=None) -> str:
    if cache_dir:
        return os.fspath(cache_dir)
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


class Sequence:
    """Base class for batch sources ``fit`` reads by index (Keras's ``PyDataset`` / ``Sequence``):
    define ``__len__`` (batches per epoch) and ``__getitem__(index)`` → ``(x, y)``."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers, self.use_multiprocessing, self.max_queue_size = workers, use_multiprocessing, max_queue_size

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError

    def on_epoch_end(self):
        """Called by Keras after each epoch (shuffle here)."""


PyDataset = Sequence


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """A picture of the model's layer graph (PNG, or the format ``to_file`` names), drawn with
    matplotlib: one box per layer, arrows along the connections. Returns the path."""
    from .plot_model import draw

    return draw(model, to_file, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                rankdir=rankdir, dpi=dpi, show_layer_activations=show_layer_activations,
                show_trainable=show_trainable)


__all__ = ["PyDataset", "Sequence", "array_to_img", "clear_session", "get_file", "image_dataset_from_directory",
           "img_to_array", "load_img", "normalize", "plot_model", "save_img", "set_random_seed", "to_categorical"]
