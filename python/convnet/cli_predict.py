"""``convnet predict``: images or folders of them through a model, shared out over MPI ranks when
run under mpiexec, printed or written to one ordered CSV / JSON file."""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

from .cli_data import CommandError


class _ImageBatches:
    """The images of ``paths`` as batches read on demand (a Sequence: under MPI each rank reads only
    the batches it predicts). An unreadable file becomes an image of NaN, so its prediction is NaN
    and the order of the others is kept."""

    def __init__(self, paths, meta, batch_size=64):
        self.paths, self.meta, self.batch_size = paths, meta, batch_size

    def __len__(self):
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index):
        from .data import ImageFileError, load_image

        size, gray = tuple(self.meta["image_size"]), self.meta["color_mode"] == "grayscale"
        images = []
        for path in self.paths[index * self.batch_size:(index + 1) * self.batch_size]:
            try:
                images.append(load_image(path, size=size, grayscale=gray) * np.float32(self.meta["pixel_range"]))
            except ImageFileError as exc:
                warnings.warn(f"skipping unreadable image: {exc}")
                images.append(np.full((*size, 1 if gray else 3), np.nan, np.float32))
        return np.stack(images)


def _image_paths(arguments):
    """Image files from the arguments, a folder standing for its images (sorted, recursively)."""
    from .data import image_files

    paths = []
    for argument in arguments:
        if os.path.isdir(argument):
            paths += image_files(argument)
        else:  # named on the command line: it must at least be an image (its header is read)
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(argument):
                    pass
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise CommandError(f"cannot read image {argument!r}: {exc}") from None
            paths.append(argument)
    if not paths:
        raise CommandError(f"no images in {' '.join(map(str, arguments))}")
    return paths


def _write_predictions(path, results, top):
    from .io import atomic_write

    if path.lower().endswith(".json"):
        text = json.dumps({"predictions": results}, indent=1)
    elif path.lower().endswith(".csv"):
        columns = ["image"] + [f"{kind}_{rank}" for rank in range(1, top + 1) for kind in ("class", "probability")]
        lines = [",".join(columns)]
        for result in results:
            cells = [json.dumps(result["image"])]
            for entry in result["top"]:
                cells += [json.dumps(entry["class"]), f"{entry['probability']:.6g}"]
            lines.append(",".join(cells + [""] * (len(columns) - len(cells))))
        text = "\n".join(lines) + "\n"
    else:
        raise CommandError(f"--out must name a .csv or .json file; received {path!r}")
    atomic_write(path, lambda f: f.write(text.encode()))


def predict(args, model, class_names):
    """``convnet predict``'s work, for a loaded model (under mpiexec: shared out, rank 0 reports)."""
    from . import distributed

    paths = _image_paths(args.images)
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise CommandError(f"--out {args.out!r}: its folder does not exist")
    # shared out over MPI ranks; a bar only on a terminal (the results may be piped on)
    shown = 1 if not args.json and sys.stdout.isatty() else 0
    probabilities = model.predict(_ImageBatches(paths, model.metadata), verbose=shown)
    names = class_names(model)
    top = max(1, min(args.top, len(names)))
    results = []
    for path, p in zip(paths, probabilities):
        if np.isnan(p).any():
            results.append({"image": path, "error": "unreadable", "top": []})
            continue
        best = np.argsort(-p, kind="stable")[:top]
        results.append({"image": path, "top": [{"class": names[i], "probability": float(p[i])} for i in best]})
    if not distributed.is_chief():
        return
    if args.out:
        _write_predictions(args.out, results, top)
        if not args.json:
            print(f"Wrote {len(results)} predictions to {args.out}")
    if args.json:
        print(json.dumps({"predictions": results}))
    elif not args.out:
        for result in results:
            ranked = ", ".join(f"{t['class']} ({100 * t['probability']:.1f}%)" for t in result["top"])
            print(f"{result['image']}: {ranked or 'unreadable'}")
