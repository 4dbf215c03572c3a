"""Images from disk, image folders streamed in batches, the embedded digits, and augmentation.

Keras's semantics where Keras has the function: ``image_dataset_from_directory``
reads one sub-folder per class (classes in alphanumeric order), prints
``Found N files belonging to K classes.``, splits with ``validation_split`` /
``subset`` / ``seed`` as Keras does, and yields (images, labels) batches of float32
pixels in [0, 255] (as Keras: a model starts with ``Rescaling(1./255)``), reading the
files of each batch only when the batch is needed, so a folder larger than memory
still trains. The batches are a :class:`convnet.pipeline.Dataset`: ``take``, ``map``,
``cache``, ``prefetch`` and the rest chain on them. :func:`load_image` (ours) gives [0, 1].
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .pipeline import AUTOTUNE, Dataset  # noqa: F401  (convnet.data.AUTOTUNE, as tf.data.AUTOTUNE)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")


class ImageFileError(ValueError):
    """An image file that cannot be read or decoded."""


class UnreadableImageWarning(UserWarning):
    """An image in a data folder could not be read and was skipped."""


MAX_PIXELS = 64 * 2**20  # an image read at full size may have this many pixels (768 MiB as RGB float32)


def _sixteen_bit(image, grayscale):
    """A 16-bit grayscale image (PNG's "I;16" and kin) as 8-bit-range floats, not saturated at 255."""
    levels = np.asarray(image, dtype=np.float32) * np.float32(255 / 65535)
    return levels if grayscale else np.repeat(levels[:, :, None], 3, axis=2)


def _open_image(path, size=None, grayscale=False, scale=1 / 255):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if size is None and image.width * image.height > MAX_PIXELS:
                raise ValueError(f"{image.width}x{image.height} pixels is more than {MAX_PIXELS:,} to read at full "
                                 "size; give a target size (--image-size)")
            if size is not None:  # JPEG decodes straight to a reduced scale near the size needed
                image.draft("L" if grayscale else "RGB", (size[1], size[0]))
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N") or (image.mode == "I" and image.getextrema()[1] > 255):
                if size is not None and image.size != (size[1], size[0]):
                    image = image.convert("I").resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = _sixteen_bit(image, grayscale)
            else:
                image = image.convert("L" if grayscale else "RGB")  # alpha is dropped, as Keras's rgb mode
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.float32)
            if scale != 1:
                array *= np.float32(scale)
    except FileNotFoundError:
        raise ImageFileError(f"image {os.fspath(path)!r} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageFileError(f"cannot read image {os.fspath(path)!r}: {exc}") from None
    return array[:, :, None] if array.ndim == 2 else array


def load_image(path, size=None, grayscale=False) -> np.ndarray:
    """An image file as a float32 array in [0, 1] of shape (H, W, C), C = 3 (RGB) or 1 (grayscale).

    Parameters
    ----------
    path : str or path-like
    size : (height, width), optional
        Resize (bilinear) to this size.
    grayscale : bool
        Convert to one channel (ITU-R 601 luma), e.g. 100x100x3 → 100x100x1.
    """
    if size is not None:
        size = _check_size(size)
    return _open_image(path, size, grayscale)


def _check_size(size):
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"image size must be (height, width) of positive ints; received {size!r}")
    return (int(size[0]), int(size[1]))


def image_files(directory):
    """The image files under ``directory``, recursively, in a stable order (folders and names sorted)."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for file in sorted(files):
            if file.lower().endswith(IMAGE_EXTENSIONS):
                yield os.path.join(root, file)


def _scan(directory, class_names):
    """(paths, labels, class_names) of the images in ``directory``'s class sub-folders."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"data folder {os.fspath(directory)!r} does not exist or is not a folder")
    found = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith("."))
    if class_names is None:
        class_names = found
    else:
        missing = sorted(set(class_names) - set(found))
        if missing:
            raise ValueError(f"class_names {missing} have no sub-folder in {os.fspath(directory)!r}")
        class_names = list(class_names)
    paths, labels = [], []
    for label, name in enumerate(class_names):
        found = list(image_files(os.path.join(directory, name)))
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, np.int64), list(class_names)


class ImageDataset(Dataset):
    """Batches of (images, labels) read from disk, one batch at a time, pixels in [0, 255].

    Iterate it once per epoch; ``len()`` is the number of batches. Attributes:
    ``class_names``, ``file_paths``, ``image_size``, ``color_mode``, ``skipped_files``.
    Files that turn out unreadable are skipped (a warning names each) and
    dropped from later epochs.
    """

    def __init__(self, paths, labels, class_names, image_size, color_mode, label_mode, batch_size, shuffle, seed,
                 augment=None):
        self.file_paths = list(paths)
        self.labels = np.asarray(labels)
        self.class_names = class_names
        self.image_size = image_size
        self.color_mode = color_mode
        self.label_mode = label_mode
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self._rng = np.random.default_rng(seed)
        self._bad: set[str] = set()

    def cardinality(self):
        return math.ceil(len(self.file_paths) / self.batch_size)

    @property
    def skipped_files(self) -> list[str]:
        """The files found unreadable so far (skipped, with a warning each)."""
        return sorted(self._bad)

    def _targets(self, labels):
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names), dtype=np.float32)[labels]
        if self.label_mode == "binary":
            return labels.astype(np.float32)[:, None]
        return labels

    def load(self, indices):
        """Images and targets of the given sample indices (unreadable files skipped)."""
        images, kept = [], []
        for index in indices:
            path = self.file_paths[index]
            if path in self._bad:
                continue
            try:
                images.append(_open_image(path, self.image_size, self.color_mode == "grayscale", scale=1))
            except ImageFileError as exc:
                self._bad.add(path)
                warnings.warn(f"skipping unreadable image: {exc}", UnreadableImageWarning, stacklevel=3)
                continue
            kept.append(index)
        channels = 1 if self.color_mode == "grayscale" else 3
        x = np.stack(images) if images else np.empty((0, *self.image_size, channels), np.float32)
        if self.augment is not None and len(x):
            x = self.augment(x)
        return x, self._targets(self.labels[np.asarray(kept, np.int64)])

    def __iter__(self):
        order = self._rng.permutation(len(self.file_paths)) if self.shuffle else np.arange(len(self.file_paths))
        for start in range(0, len(order), self.batch_size):
            x, y = self.load(order[start : start + self.batch_size])
            if len(x):
                yield x, y

    def as_arrays(self):
        """All images and targets in memory, in file order (for small folders)."""
        return self.load(np.arange(len(self.file_paths)))


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, augment=None, verbose=True):
    """Batches of images from ``directory/<class>/*.{jpg,png,bmp,gif}``, Keras's way: float32 pixels in
    [0, 255], labels as ``label_mode`` says.

    Parameters
    ----------
    directory : path
        One sub-folder per class; classes in alphanumeric order unless ``class_names`` is given.
    labels : "inferred"
        Labels come from the sub-folders (the only mode supported).
    label_mode : {"int", "categorical", "binary"}
    color_mode : {"rgb", "grayscale"}
    batch_size : int
    image_size : (height, width)
        Every image is resized (bilinear) to this size.
    shuffle, seed
        Shuffle files once for the split and then every epoch.
    validation_split : float, optional
    subset : {"training", "validation", "both"}, optional
        With ``validation_split``: which part to return ("both": a pair).
    augment : callable, optional
        Applied to each batch of images, e.g. :class:`RandomAugment`.
    """
    if labels != "inferred":
        raise ValueError(f"labels must be 'inferred' (one sub-folder per class); received labels={labels!r}")
    if label_mode not in ("int", "categorical", "binary"):
        raise ValueError(f"label_mode must be 'int', 'categorical' or 'binary'; received label_mode={label_mode!r}")
    if color_mode not in ("rgb", "grayscale"):
        raise ValueError(f"color_mode must be 'rgb' or 'grayscale'; received color_mode={color_mode!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received batch_size={batch_size!r}")
    image_size = _check_size(image_size)
    if (validation_split is None) != (subset is None):
        raise ValueError(f"validation_split and subset go together; received validation_split={validation_split!r}, "
                         f"subset={subset!r}")
    if validation_split is not None and not 0 < validation_split < 1:
        raise ValueError(f"validation_split must be in (0, 1); received validation_split={validation_split!r}")
    if subset not in (None, "training", "validation", "both"):
        raise ValueError(f"subset must be 'training', 'validation' or 'both'; received subset={subset!r}")
    paths, targets, class_names = _scan(directory, class_names)
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in class sub-folders of "
                         f"{os.fspath(directory)!r}")
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError(f"label_mode='binary' needs exactly 2 classes; found {len(class_names)}: {class_names}")
    from . import distributed

    strategy = distributed.current()
    verbose = verbose and distributed.is_chief()  # on MPI ranks, rank 0 says it
    if verbose:
        print(f"Found {len(paths)} files belonging to {len(class_names)} classes.")
    if seed is None:
        seed = int(np.random.default_rng().integers(1_000_000))
        if strategy is not None:  # every rank must shuffle and split alike
            seed = strategy.broadcast(seed)
    order = np.random.default_rng(seed).permutation(len(paths)) if shuffle else np.arange(len(paths))
    paths = [paths[i] for i in order]
    targets = targets[order]

    def dataset(part_paths, part_targets, part_augment):
        return ImageDataset(part_paths, part_targets, class_names, image_size, color_mode, label_mode, batch_size,
                            shuffle, seed, part_augment)

    if validation_split is None:
        return dataset(paths, targets, augment)
    n_validation = int(validation_split * len(paths))
    training = dataset(paths[: len(paths) - n_validation], targets[: len(paths) - n_validation], augment)
    validation = dataset(paths[len(paths) - n_validation :], targets[len(paths) - n_validation :], None)
    if verbose:
        if subset in ("training", "both"):
            print(f"Using {len(training.file_paths)} files for training.")
        if subset in ("validation", "both"):
            print(f"Using {len(validation.file_paths)} files for validation.")
    return {"training": training, "validation": validation, "both": (training, validation)}[subset]


class RandomAugment:
    """Random horizontal flip, shift, rotation and zoom of (N, H, W, C) batches (training only).

    Parameters
    ----------
    flip : bool
    shift : float
        Largest shift, as a fraction of height / width.
    rotation : float
        Largest rotation in degrees.
    zoom : float
        Largest zoom in or out, as a fraction.
    seed : int, optional
    """

    def __init__(self, flip=True, shift=0.1, rotation=10.0, zoom=0.1, seed=None):
        for name, value in (("shift", shift), ("zoom", zoom)):
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1); received {name}={value!r}")
        if not 0 <= rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees; received rotation={rotation!r}")
        self.flip, self.shift, self.rotation, self.zoom = bool(flip), float(shift), float(rotation), float(zoom)
        self._rng = np.random.default_rng(seed)

    def __call__(self, images):
        from scipy import ndimage

        out = np.empty_like(images)
        N, H, W, _ = images.shape
        centre = np.array([(H - 1) / 2, (W - 1) / 2])
        for i in range(N):
            angle = np.deg2rad(self._rng.uniform(-self.rotation, self.rotation))
            scale = self._rng.uniform(1 - self.zoom, 1 + self.zoom)
            shift = self._rng.uniform(-self.shift, self.shift, 2) * (H, W)
            flip = -1.0 if self.flip and self._rng.random() < 0.5 else 1.0
            # output (r, c) samples input matrix @ (r, c) + offset: rotation, zoom and flip about the centre
            matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
            matrix = matrix @ np.diag([1.0, flip])
            offset = centre - matrix @ centre - shift
            for c in range(images.shape[3]):
                out[i, :, :, c] = ndimage.affine_transform(images[i, :, :, c], matrix, offset, order=1, mode="nearest")
        return out

    def get_config(self):
        return {"flip": self.flip, "shift": self.shift, "rotation": self.rotation, "zoom": self.zoom}


def load_digits(test_fraction=0.2, seed=0):
    """The 1,797 8x8 handwritten digits bundled with scikit-learn, as images in [0, 1].

    Returns ``(x_train, y_train), (x_test, y_test), class_names`` with x of shape
    (N, 8, 8, 1) float32 and integer labels 0-9; the split is stratified and
    fixed by ``seed``. Needs scikit-learn (``pip install "cnnkernels[demo]"``).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("the embedded digits come with scikit-learn: pip install scikit-learn "
                          "(or install this project with the [demo] extra)") from None
    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, :, :, None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):  # stratified: the same fraction of every digit
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: int(round(test_fraction * len(members)))]] = True
    return (x[~test], y[~test]), (x[test], y[test]), [str(d) for d in range(10)]
