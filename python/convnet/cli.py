"""The ``convnet`` command line (also ``python -m convnet``).

    convnet train [--data DIR] ...     train the tutorial CNN (default: the embedded digits)
    convnet evaluate MODEL --data DIR  loss and accuracy on an image folder
    convnet predict MODEL IMAGE...     top classes of images
    convnet summary MODEL              layers and parameter counts
    convnet inspect IMAGE              an image as a matrix of numbers
    convnet filters IMAGE              classic kernels applied to an image (PNG)
    convnet show filters|featuremaps|history ...   pictures of a model (PNG)

Every error is one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

from .cli_data import CommandError, _check_fits, _folder_data, _fruits_layout

EXIT_ERROR = 2


# ------------------------------------------------------------------------------------- model


def tutorial_model(input_shape, n_classes, rescale=False):
    """The Keras fruit-classifier tutorial's CNN, sized to the data; ``rescale`` starts it with
    ``Rescaling(1/255)`` for [0, 255] pixels (what image folders give, as in Keras)."""
    from . import Sequential, layers

    return Sequential([
        layers.Input(input_shape),
        *([layers.Rescaling(1 / 255)] if rescale else []),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(16, (3, 3), padding="same"),
        layers.LeakyReLU(0.5),
        layers.BatchNormalization(),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(100, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(n_classes, activation="softmax"),
    ], name="tutorial_cnn")


# ------------------------------------------------------------------------------------- data


# ------------------------------------------------------------------------------------- commands


def _setup_compute(args):
    import cnnkernels

    if getattr(args, "backend", None):
        cnnkernels.set_backend(args.backend)
    if getattr(args, "threads", None):
        cnnkernels.set_num_threads(args.threads)


def cmd_train(args):
    import convnet

    from . import distributed, optimizers
    from .data import load_digits
    from .viz import plot_history

    quiet = args.json
    if os.path.exists(args.out) and not os.path.isdir(args.out):  # before training, not after it
        raise CommandError(f"--out {args.out!r} is a file; give a folder for the model and pictures")
    on_digits = args.data is None
    args.epochs = args.epochs or (40 if on_digits else 10)
    args.validation_split = args.validation_split or (0.1 if on_digits else 0.2)
    _setup_compute(args)
    convnet.set_seed(args.seed)
    started = time.perf_counter()
    if on_digits:
        (x_train, y_train), (x_test, y_test), class_names = load_digits(seed=args.seed)
        if not quiet:
            print(f"Embedded data: scikit-learn's handwritten digits, {len(x_train)} training and {len(x_test)} "
                  f"test images of 8x8x1, {len(class_names)} classes.")
        cut = int(len(x_train) * (1 - args.validation_split))
        order = np.random.default_rng(args.seed).permutation(len(x_train))
        fit_data = dict(x=x_train[order[:cut]], y=y_train[order[:cut]], batch_size=args.batch_size,
                        validation_data=(x_train[order[cut:]], y_train[order[cut:]]))
        test_data = (x_test, y_test)
        input_shape, source = x_train.shape[1:], "digits"
    else:
        train, validation, test, size = _folder_data(args, quiet)
        class_names = train.class_names
        fit_data = dict(x=train, validation_data=validation)
        test_data = (test,)
        input_shape, source = (*size, 1 if args.grayscale else 3), os.path.abspath(args.data)
    model = tutorial_model(tuple(int(s) for s in input_shape), len(class_names), rescale=not on_digits)
    _check_fits(model, args.batch_size, input_shape[:2])
    optimizer = optimizers.get(args.optimizer).__class__(learning_rate=args.learning_rate)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    model.metadata = {"class_names": class_names, "image_size": list(input_shape[:2]),
                      "color_mode": "grayscale" if input_shape[2] == 1 else "rgb", "data": source,
                      "pixel_range": 1 if on_digits else 255}
    if not quiet:
        model.summary()
    history = model.fit(**fit_data, epochs=args.epochs, verbose=0 if quiet else 1)
    test_result = model.evaluate(*test_data, verbose=0, return_dict=True)
    model_path = os.path.join(args.out, "model.npz")
    history_path = os.path.join(args.out, "history.json")
    curve_path = None
    if distributed.is_chief():  # under mpiexec, rank 0 writes
        os.makedirs(args.out, exist_ok=True)
        model.save(model_path)
        with open(history_path, "w") as f:
            json.dump(history.history, f, indent=1)
        try:
            title = f"{os.path.basename(source.rstrip(os.sep))} CNN"  # the folder's name, not its whole path
            curve_path = plot_history(history, os.path.join(args.out, "training.png"), title=title)
        except ImportError as exc:
            warnings.warn(f"no training curve: {exc}")
    seconds = time.perf_counter() - started
    # the digits and a Fruits-360 root have a test set of their own; a plain folder only its validation images
    evaluated_on = "test" if on_digits or _fruits_layout(args.data) else "validation"
    report = {"loss": test_result["loss"], "accuracy": test_result["accuracy"], "evaluated_on": evaluated_on,
              "epochs": len(history.epoch),
              "seconds": round(seconds, 2), "model": model_path, "history": history_path, "curve": curve_path,
              "classes": len(class_names), "data": source}
    if quiet:
        print(json.dumps(report))
    else:
        note = "" if evaluated_on == "test" else ", on the validation images: the folder has no separate test set"
        print(f"{evaluated_on.capitalize()} loss: {report['loss']:.4f} - {evaluated_on} accuracy: "
              f"{100 * report['accuracy']:.2f}% ({len(history.epoch)} epochs, {seconds:.1f} s{note})")
        print(f"Wrote {model_path}, {history_path}" + (f", {curve_path}" if curve_path else ""))


def _load(path):
    """A model and what the commands need to know of it: from `convnet train`'s metadata, or, for a
    model made elsewhere (a Keras file), from its input and output shapes."""
    from . import load_model

    model = load_model(path)
    meta = model.metadata
    if not {"image_size", "color_mode"} <= set(meta):
        shape, outputs = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
        if len(model.inputs) != 1 or len(shape) != 4 or shape[-1] not in (1, 3) or len(outputs) != 2:
            raise CommandError(f"{path!r} is not an image classifier of (height, width, 1 or 3) images; its input "
                               f"is {shape} and its output {outputs}")
        meta.setdefault("image_size", [shape[1], shape[2]])
        meta.setdefault("color_mode", "grayscale" if shape[-1] == 1 else "rgb")
        meta.setdefault("data", "(not recorded in the file)")
        meta.setdefault("pixel_range", 255)  # Keras's image loaders give [0, 255]
    meta.setdefault("pixel_range", 1)  # convnet train's models from before they started with Rescaling
    return model


def _class_names(model):
    """The model's class names, or its output indices when the file does not record them."""
    return model.metadata.get("class_names") or [str(i) for i in range(model.outputs[0].shape[-1])]


def cmd_convert(args):
    """Read a model in one format and write it in another: the formats follow the file names."""
    from . import load_model

    if os.path.abspath(args.source) == os.path.abspath(args.target):
        raise CommandError(f"source and target are the same file: {args.source!r}")
    model = load_model(args.source, compile=True)
    model.save(args.target)
    print(f"Wrote {args.target} ({type(model).__name__}, {model.count_params():,} parameters)")


def cmd_evaluate(args):
    from .data import image_dataset_from_directory

    _setup_compute(args)
    model = _load(args.model)
    meta = model.metadata
    if args.image_size and list(args.image_size) != meta["image_size"]:
        raise CommandError(f"the model expects {meta['image_size'][0]}x{meta['image_size'][1]} images; "
                           f"received --image-size {args.image_size[0]} {args.image_size[1]}")
    if not model.compiled:
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    if not os.path.isdir(args.data):
        raise CommandError(f"data folder {args.data!r} does not exist or is not a folder")
    folder = (_fruits_layout(args.data) or (None, args.data))[1]
    dataset = image_dataset_from_directory(folder, class_names=meta.get("class_names"),
                                           image_size=tuple(meta["image_size"]), color_mode=meta["color_mode"],
                                           batch_size=args.batch_size, shuffle=False, verbose=not args.json)
    data = dataset if meta["pixel_range"] == 255 else dataset.map(lambda x, y: (x / 255, y))
    result = model.evaluate(data, verbose=0 if args.json else 1, return_dict=True)
    result["skipped"] = len(dataset.skipped_files)
    result["images"] = len(dataset.file_paths) - result["skipped"]
    if args.json:
        print(json.dumps(result))
    else:
        skipped = f", {result['skipped']} unreadable skipped" if result["skipped"] else ""
        print(f"loss: {result['loss']:.4f} - accuracy: {100 * result['accuracy']:.2f}% ({result['images']} images"
              f"{skipped})")


def cmd_predict(args):
    from .cli_predict import predict

    _setup_compute(args)
    predict(args, _load(args.model), _class_names)


def cmd_summary(args):
    from . import load_model

    model = load_model(args.model)
    model.summary()
    meta = model.metadata
    if meta.get("class_names"):
        names = meta["class_names"]
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        print(f"Classes: {shown}")
    if meta.get("image_size"):
        print(f"Input: {meta['image_size'][0]}x{meta['image_size'][1]} {meta.get('color_mode', '')} images; "
              f"trained on {meta.get('data', '?')}")


def cmd_inspect(args):
    from .viz import image_matrix_report

    print(image_matrix_report(args.image, (args.row, args.col, args.size)))


def cmd_filters(args):
    from .viz import plot_classic_filters

    stem = os.path.splitext(os.path.basename(args.image))[0]
    print(plot_classic_filters(args.image, os.path.join(args.out, f"classic_filters_{stem}.png"),
                               grayscale=not args.color))


def cmd_show(args):
    from . import viz

    if args.what == "history":
        if len(args.inputs) != 1:
            raise CommandError(f"show history takes one HISTORY_JSON; received {len(args.inputs)} arguments")
        try:
            with open(args.inputs[0]) as f:
                history = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{args.inputs[0]!r} is not a JSON history: {exc}") from None
        print(viz.plot_history(history, os.path.join(args.out, "history.png")))
        return
    if args.what == "filters":
        if len(args.inputs) != 1:
            raise CommandError(f"show filters takes one MODEL; received {len(args.inputs)} arguments")
        model = _load(args.inputs[0])
        name = viz._conv_layer(model, args.layer).name  # one file per layer: a second layer never overwrites the first
        print(viz.plot_filters(model, os.path.join(args.out, f"filters_{name}.png"), layer=args.layer))
        return
    if len(args.inputs) != 2:
        raise CommandError(f"show featuremaps takes MODEL IMAGE; received {len(args.inputs)} arguments")
    from .data import load_image

    model = _load(args.inputs[0])
    meta = model.metadata
    image = load_image(args.inputs[1], size=tuple(meta["image_size"]), grayscale=meta["color_mode"] == "grayscale")
    image = image * np.float32(meta["pixel_range"])
    for path, shown, channels in viz.plot_feature_maps(model, image, args.out,
                                                       layers=[args.layer] if args.layer else None):
        print(path + (f"  ({shown} of {channels} channels)" if shown < channels else ""))


# ------------------------------------------------------------------------------------- parser


def _number_type(convert, valid, description):
    """An argparse type: ``convert(text)`` that must satisfy ``valid``, else a message quoting the text."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise argparse.ArgumentTypeError(f"expected {description}; received {text!r}")
        return value

    return parse


_positive_int = _number_type(int, lambda v: v >= 1, "a positive integer")
_fraction = _number_type(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_positive_float = _number_type(float, lambda v: v > 0, "a positive number")


def _compute_options(parser):
    parser.add_argument("--backend", choices=["cython", "numba", "numpy"], help="kernel backend (default: fastest)")
    parser.add_argument("--threads", type=_positive_int, help="threads for the kernels and BLAS (default: all cores)")


def build_parser():
    parser = argparse.ArgumentParser(prog="convnet", description="Train, evaluate and use CNNs on image folders.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser("train", help="train the tutorial CNN (default: the embedded digits)",
                                description="Train the Keras tutorial's CNN (conv 32 → conv 16 → LeakyReLU → "
                                            "BatchNorm → max-pool → dropout → dense 100 → dropout → softmax) and "
                                            "write model.npz, history.json and training.png into --out.")
    train.add_argument("--data", help="image folder: one sub-folder per class, or a Fruits-360 root with "
                                      "Training/ and Test/ (default: scikit-learn's digits)")
    validation = train.add_mutually_exclusive_group()
    validation.add_argument("--val-data", help="validation image folder (same class sub-folders)")
    validation.add_argument("--validation-split", type=_fraction, default=None,
                            help="fraction of the training images held out for validation "
                                 "(default 0.1 for the digits, 0.2 for a folder)")
    train.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                       help="resize images to H x W (default: the first image's size)")
    train.add_argument("--grayscale", action="store_true", help="train on one-channel images")
    train.add_argument("--augment", action="store_true", help="random flips, shifts, rotations and zooms")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="epochs (default 40 for the digits, 10 for a folder)")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default 32)")
    train.add_argument("--optimizer", choices=["adam", "rmsprop", "sgd"], default="adam", help="default adam")
    train.add_argument("--learning-rate", type=_positive_float, default=1e-3, help="default 0.001")
    train.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling, dropout (default 0)")
    train.add_argument("--out", default="convnet-run", help="output folder (default ./convnet-run)")
    train.add_argument("--json", action="store_true", help="print one JSON object instead of prose")
    _compute_options(train)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("evaluate", help="loss and accuracy of a model on an image folder")
    evaluate.add_argument("model", help="model file written by `convnet train`")
    evaluate.add_argument("--data", required=True, help="image folder with the model's class sub-folders")
    evaluate.add_argument("--image-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                          help="must match the model's input size if given")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of prose")
    _compute_options(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    predict = commands.add_parser("predict", help="top classes of images")
    predict.add_argument("model", help="model file written by `convnet train`")
    predict.add_argument("images", nargs="+", metavar="IMAGE",
                         help="image files or folders of them (resized to the model's input)")
    predict.add_argument("--out", help="also write the predictions to this .csv or .json file")
    predict.add_argument("--top", type=_positive_int, default=3, help="classes to show per image (default 3)")
    predict.add_argument("--json", action="store_true", help="print one JSON object instead of prose")
    _compute_options(predict)
    predict.set_defaults(run=cmd_predict)

    summary = commands.add_parser("summary", help="layers, output shapes and parameter counts of a model")
    summary.add_argument("model", help="model file")
    summary.set_defaults(run=cmd_summary)

    convert = commands.add_parser("convert", help="a model file in another format: .npz (convnet), .keras, .h5",
                                  description="convnet convert IN OUT: the formats follow the file names (.npz is "
                                              "convnet's, .keras and .h5 are Keras's).")
    convert.add_argument("source", help="model file to read")
    convert.add_argument("target", help="model file to write")
    convert.set_defaults(run=cmd_convert)

    inspect = commands.add_parser("inspect", help="an image as numbers: shapes and a window of pixel values")
    inspect.add_argument("image")
    inspect.add_argument("--row", type=int, default=0, help="top row of the window (default 0)")
    inspect.add_argument("--col", type=int, default=0, help="left column of the window (default 0)")
    inspect.add_argument("--size", type=_positive_int, default=6, help="window size (default 6)")
    inspect.set_defaults(run=cmd_inspect)

    filters = commands.add_parser("filters", help="classic kernels (sharpen, blur, Sobel, edge, emboss) on an "
                                                  "image, padding same vs valid and stride 1 vs 2, as one PNG")
    filters.add_argument("image")
    filters.add_argument("--color", action="store_true", help="filter the RGB image (default: grayscale)")
    filters.add_argument("--out", default="convnet-pictures", help="output folder (default ./convnet-pictures)")
    filters.set_defaults(run=cmd_filters)

    show = commands.add_parser("show", help="pictures of a model: filters, featuremaps, history",
                               description="convnet show filters MODEL | show featuremaps MODEL IMAGE | "
                                           "show history HISTORY_JSON; PNGs go into --out and their paths are printed.")
    show.add_argument("what", choices=["filters", "featuremaps", "history"])
    show.add_argument("inputs", nargs="+", metavar="INPUT", help="MODEL, MODEL IMAGE, or HISTORY_JSON")
    show.add_argument("--layer", help="a layer name (filters: which Conv2D; featuremaps: only this layer)")
    show.add_argument("--out", default="convnet-pictures", help="output folder (default ./convnet-pictures)")
    show.set_defaults(run=cmd_show)
    return parser


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"convnet: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warnings
    strategy = None
    try:
        from . import distributed

        strategy = distributed.current()  # under mpiexec: rank 0 prints and writes, every rank computes
        if strategy is not None and not strategy.is_chief:
            sys.stdout = open(os.devnull, "w")
        args.run(args)
    except (CommandError, ValueError, TypeError, OSError, ImportError) as exc:
        where = f" (rank {strategy.rank} of {strategy.size})" if strategy is not None else ""
        print(f"convnet: error{where}: {exc}", file=sys.stderr)
        return _end_job(strategy, EXIT_ERROR)
    except KeyboardInterrupt:
        print("convnet: interrupted", file=sys.stderr)
        return _end_job(strategy, 130)
    return 0


def _end_job(strategy, code):
    """The exit code; under MPI the whole job ends with it (the other ranks may be waiting for this one)."""
    if strategy is not None:
        sys.stderr.flush()
        strategy.comm.Abort(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
