"""What `convnet train` and `convnet evaluate` read from an image folder, and the checks before training."""

from __future__ import annotations

import os

import numpy as np


class CommandError(Exception):
    """A user error with a one-line explanation (the command line prints it and exits with 2)."""


def _fruits_layout(directory):
    """(train folder, test folder) for a Fruits-360-style root holding Training/ and Test/, else None."""
    training, test = os.path.join(directory, "Training"), os.path.join(directory, "Test")
    return (training, test) if os.path.isdir(training) and os.path.isdir(test) else None


# The size `convnet train` gives images of a folder whose images differ in size (or are large): Fruits-360's,
# the size the tutorial model was made for (4 M parameters at 100x100, 66 M at 256x256).
DEFAULT_IMAGE_SIZE = (100, 100)
LARGEST_OWN_SIZE = 256  # images of one size up to 256x256 train at that size


def _default_image_size(directory, quiet, sample=64):
    """The first ``sample`` readable images' size if they share one no larger than 256x256, else 100x100 (said)."""
    from PIL import Image

    from .data import image_files

    sizes = set()
    for path in image_files(directory):
        try:
            with Image.open(path) as image:
                sizes.add(image.size[::-1])  # (height, width), read from the header without decoding
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        sample -= 1
        if len(sizes) > 1 or max(next(iter(sizes))) > LARGEST_OWN_SIZE or not sample:
            break  # the answer is known
    if not sizes:
        raise CommandError(f"no readable images in {directory!r}")
    if len(sizes) == 1 and max(next(iter(sizes))) <= LARGEST_OWN_SIZE:
        return next(iter(sizes))
    if not quiet:
        seen = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        print(f"Images of {'mixed sizes' if len(sizes) > 1 else 'a large size'} ({seen}): resized to "
              f"{DEFAULT_IMAGE_SIZE[0]}x{DEFAULT_IMAGE_SIZE[1]}; choose another with --image-size H W.")
    return DEFAULT_IMAGE_SIZE


def _available_memory():
    """Bytes this process can still get without swapping (Linux MemAvailable), else physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _check_fits(model, batch_size, size):
    """Refuse, before the first epoch, a model whose training step cannot fit in memory: weights, gradients and two
    optimizer slots (4 copies of the parameters), and per image every layer's output kept for backward, its
    gradient and a workspace (3 copies), in float32."""
    activations = sum(int(np.prod(layer.output_shape)) for layer in model.layers)
    needed = 4 * (4 * model.count_params() + 3 * batch_size * activations)
    available = _available_memory()
    if available is not None and needed > available:
        raise CommandError(f"training {size[0]}x{size[1]} images in batches of {batch_size} needs about "
                           f"{needed / 2**30:.1f} GiB ({model.count_params():,} parameters), more than the "
                           f"{available / 2**30:.1f} GiB available: choose a smaller --image-size or --batch-size")


def _folder_data(args, quiet):
    """Training stream, validation stream and test stream (possibly the validation one) of an image folder."""
    from .data import RandomAugment, image_dataset_from_directory

    if not os.path.isdir(args.data):
        raise CommandError(f"data folder {args.data!r} does not exist or is not a folder")
    fruits = _fruits_layout(args.data)
    train_dir = fruits[0] if fruits else args.data
    size = tuple(args.image_size) if args.image_size else tuple(_default_image_size(train_dir, quiet))
    common = dict(image_size=size, color_mode="grayscale" if args.grayscale else "rgb", batch_size=args.batch_size,
                  seed=args.seed, verbose=not quiet)
    augment = RandomAugment(seed=args.seed) if args.augment else None
    if args.val_data:
        train = image_dataset_from_directory(train_dir, augment=augment, **common)
        validation = image_dataset_from_directory(args.val_data, class_names=train.class_names, shuffle=False,
                                                  **common)
    else:
        train, validation = image_dataset_from_directory(train_dir, validation_split=args.validation_split,
                                                         subset="both", augment=augment, **common)
    if len(train.class_names) < 2:
        raise CommandError(f"found {len(train.class_names)} class folder(s) in {train_dir!r} "
                           f"({', '.join(train.class_names) or 'none'}): a classifier needs at least 2, one "
                           "sub-folder of images per class")
    if not args.val_data and not validation.file_paths:
        raise CommandError(f"--validation-split {args.validation_split} leaves no validation images")
    test = validation
    if fruits:
        test = image_dataset_from_directory(fruits[1], class_names=train.class_names, shuffle=False, **common)
    return train, validation, test, size
