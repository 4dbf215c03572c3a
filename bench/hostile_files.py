"""The hostile-file table: what loading each corrupt, foreign or hostile model file costs and says.

Each file is written to a temporary folder, then loaded with ``convnet.load_model``
in a child process of its own, which reports the exception, the seconds the load
took and its peak resident memory above what importing convnet took.

    python -m bench.hostile_files [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

CHILD = r"""
import json, resource, sys, time
import convnet
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    convnet.load_model(sys.argv[1])
    outcome, message = "loaded", ""
except Exception as exc:
    outcome, message = type(exc).__name__, str(exc)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "message": message, "seconds": seconds, "extra_mb": (peak - before) / 1024}))
"""


def _good_model(folder):
    import convnet
    from convnet import layers

    convnet.set_seed(0)
    model = convnet.Sequential([layers.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                                layers.Dense(2, activation="softmax")])
    model.save(os.path.join(folder, "good.keras"))
    model.save(os.path.join(folder, "good.npz"))


def _rewrite_zip(source, target, replace=None, extra=None):
    """A copy of zip ``source`` with some members' bytes replaced (name -> bytes) and others added."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, (replace or {}).get(info.filename, old.read(info.filename)))
        for name, data in (extra or {}).items():
            new.writestr(name, data)


def _edit_first(config, key, value):
    """Set ``key`` in the first dict of ``config`` (nested anywhere) that has it."""
    stack = [config]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if key in item:
                item[key] = value
                return config
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise KeyError(key)


def cases(folder) -> dict:
    """{description: path} of the hostile files, written into ``folder``."""
    _good_model(folder)
    good_keras, good_npz = os.path.join(folder, "good.keras"), os.path.join(folder, "good.npz")
    with zipfile.ZipFile(good_keras) as archive:
        config = json.loads(archive.read("config.json"))
    found = {}

    def path(name):
        return os.path.join(folder, name)

    def keras_with_config(name, text):
        _rewrite_zip(good_keras, path(name), {"config.json": text})
        return path(name)

    found["random bytes (.npz)"] = path("random.npz")
    with open(found["random bytes (.npz)"], "wb") as f:
        f.write(np.random.default_rng(0).bytes(4096))
    found["truncated .npz"] = path("truncated.npz")
    with open(good_npz, "rb") as f, open(found["truncated .npz"], "wb") as out:
        out.write(f.read()[:-200])
    found[".npz zip bomb (4 MB -> 4 GiB)"] = path("bomb.npz")
    with zipfile.ZipFile(found[".npz zip bomb (4 MB -> 4 GiB)"], "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("weight_0000.npy", "w", force_zip64=True) as member:
            for _ in range(4096):
                member.write(bytes(1 << 20))
    with np.load(good_npz) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["__convnet__"].tobytes())
    for name, key, value in (("filters-1e7.npz", "filters", 10**7), ("filters-1e9.npz", "filters", 10**9),
                             ("filters-400-digits.npz", "filters", 10**400)):
        edited = _edit_first(json.loads(json.dumps(header)), key, value)
        np.savez(path(name), **{**arrays, "__convnet__": np.frombuffer(json.dumps(edited).encode(), np.uint8)})
        found[f".npz asking for Conv2D filters={value if value < 10**20 else '10**400'}"] = path(name)
    lying = dict(arrays)
    lying["weight_0000"] = np.zeros(4, np.float32)  # the .npy header below claims far more
    np.savez(path("lying.npz"), **lying)
    with zipfile.ZipFile(path("lying.npz")) as archive:
        data = archive.read("weight_0000.npy")
    # the same header length: the longer shape takes 9 of the spaces that pad the header to 64 bytes
    data = data.replace(b"(4,)", b"(4000000000,)", 1).replace(b" " * 9 + b"\n", b"\n", 1)
    _rewrite_zip(path("lying.npz"), path("lying2.npz"), {"weight_0000.npy": data})
    found[".npz whose .npy header claims 4e9 floats"] = path("lying2.npz")
    for kind, value in (("complex", np.zeros((3, 3, 3, 4), np.complex64)), ("NaN", np.full((3, 3, 3, 4), np.nan, "f4")),
                        ("bool", np.zeros((3, 3, 3, 4), bool))):
        np.savez(path(f"{kind}.npz"), **{**arrays, "weight_0000": value})
        found[f".npz with {kind} weights"] = path(f"{kind}.npz")
    found[".keras with JSON nested 200,000 deep"] = keras_with_config("deep.keras", "[" * 200_000 + "]" * 200_000)
    wide = json.loads(json.dumps(config))
    layer_list = wide["config"]["layers"]
    layer_list[:] = layer_list[:1] + [json.loads(json.dumps(layer_list[-1])) for _ in range(20_000)]
    for i, entry in enumerate(layer_list[1:]):
        entry["config"]["name"] = f"dense_{i}"
    found[".keras with 20,000 layers"] = keras_with_config("wide.keras", json.dumps(wide))
    found[".keras asking for Conv2D filters=10**9"] = keras_with_config(
        "huge.keras", json.dumps(_edit_first(json.loads(json.dumps(config)), "filters", 10**9)))
    found[".keras with a Lambda layer"] = keras_with_config(
        "lambda.keras", json.dumps(_edit_first(json.loads(json.dumps(config)), "class_name", "Lambda")))
    import convnet

    inf_model = convnet.load_model(good_keras)
    weights = inf_model.get_weights()
    weights[0] = np.full_like(weights[0], np.inf)
    inf_model.set_weights(weights)
    inf_model.save(path("inf.keras"))
    found[".keras with infinite weights"] = path("inf.keras")
    found["text file named .keras"] = path("text.keras")
    with open(found["text file named .keras"], "w") as f:
        f.write("hello world")
    found["zip file named .h5"] = path("zip.h5")
    with open(good_keras, "rb") as f, open(found["zip file named .h5"], "wb") as out:
        out.write(f.read())
    return found


def measure(path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, timeout=600)
    if done.returncode:
        return {"outcome": f"crashed (exit {done.returncode})", "message": done.stderr[-300:], "seconds": None,
                "extra_mb": None}
    return json.loads(done.stdout.splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_files", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        found = cases(folder)
        print("| file | size | outcome | message | s | extra peak MB |\n|---|--:|---|---|--:|--:|")
        for description, path in found.items():
            result = measure(path)
            message = result["message"].replace(folder + os.sep, "").replace("|", "/")
            message = message if len(message) <= 160 else message[:157] + "..."
            seconds = "-" if result["seconds"] is None else f"{result['seconds']:.2f}"
            extra = "-" if result["extra_mb"] is None else f"{result['extra_mb']:.0f}"
            print(f"| {description} | {os.path.getsize(path):,} | {result['outcome']} | {message} | {seconds} "
                  f"| {extra} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
