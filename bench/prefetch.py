"""Does ``prefetch`` pay? Images/s of a folder-fed ``fit`` with and without it.

A folder of JPEG photos (generated once, 100x100 by default) is read by
``image_dataset_from_directory``; the tutorial CNN (with ``Rescaling``) trains one epoch on it,
straight, with ``.prefetch(AUTOTUNE)``, and with an augmentation ``map`` before the prefetch
(the keras.io example's pipeline). Interleaved rounds, medians, at each thread count.

    python -m bench.prefetch [--images 512] [--size 100] [--rounds 5] [--threads 1,2] [--model tutorial|small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def make_folder(root, n_images, size, classes=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        folder = os.path.join(root, f"class_{k}")
        os.makedirs(folder, exist_ok=True)
        for i in range(n_images // classes):
            pixels = rng.integers(0, 80, (size, size, 3)).astype(np.uint8)
            pixels[..., k % 3] += 160
            Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def pipelines(folder, size, batch_size):
    import convnet
    from convnet import layers

    def read():
        return convnet.utils.image_dataset_from_directory(folder, image_size=(size, size), batch_size=batch_size,
                                                          seed=0, verbose=False)

    augment = [layers.RandomFlip("horizontal", seed=0), layers.RandomRotation(0.1, seed=0)]

    def augmented(images):
        for layer in augment:
            images = layer(images)
        return images

    return {
        "plain": read,
        "prefetch": lambda: read().prefetch(convnet.data.AUTOTUNE),
        "map(augment)": lambda: read().map(lambda x, y: (augmented(x), y)),
        "map(augment).prefetch": lambda: read().map(lambda x, y: (augmented(x), y)).prefetch(convnet.data.AUTOTUNE),
    }


def model_for(size, classes, kind):
    import convnet
    from convnet import layers
    from convnet.cli import tutorial_model

    convnet.set_seed(0)
    if kind == "tutorial":
        model = tutorial_model((size, size, 3), classes, rescale=True)
    else:  # reading dominates: a few cheap layers
        model = convnet.Sequential([convnet.Input((size, size, 3)), layers.Rescaling(1 / 255),
                                    layers.Conv2D(8, 3, strides=4, activation="relu"),
                                    layers.GlobalAveragePooling2D(), layers.Dense(classes, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prefetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--model", choices=("tutorial", "small"), default="tutorial",
                        help="the tutorial CNN (compute-bound) or a small one (reading-bound)")
    args = parser.parse_args(argv)
    import cnnkernels

    with tempfile.TemporaryDirectory() as root:
        make_folder(root, args.images, args.size)
        print(f"{args.images} JPEG images of {args.size}x{args.size}, batch {args.batch_size}, {args.model} model; "
              f"images/s of one epoch of fit (median of {args.rounds} interleaved rounds)")
        for threads in [int(t) for t in args.threads.split(",")]:
            cnnkernels.set_num_threads(threads)
            model = model_for(args.size, 4, args.model)
            made = pipelines(root, args.size, args.batch_size)
            times = {name: [] for name in made}
            model.fit(made["plain"](), epochs=1, verbose=0)  # warm-up: plans, workspaces, page cache
            for _ in range(args.rounds):
                for name, make in made.items():
                    data = make()
                    start = time.perf_counter()
                    model.fit(data, epochs=1, verbose=0)
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(values) for name, values in times.items()}
            row = "  ".join(f"{name} {args.images / seconds:7.0f}" for name, seconds in medians.items())
            print(f"{threads} thread{'s' if threads > 1 else ' '}: {row}   prefetch speed-up "
                  f"{medians['plain'] / medians['prefetch']:.2f}x, with augmentation "
                  f"{medians['map(augment)'] / medians['map(augment).prefetch']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
