"""Keras's own files: .keras, .weights.h5 and legacy .h5, read and written without Keras, and
hostile or foreign files refused with a clear error."""

import json
import os
import zipfile

import numpy as np
import pytest

import convnet
from convnet import layers

h5py = pytest.importorskip("h5py")


def small_model():
    convnet.clear_session()
    convnet.set_seed(0)
    inputs = convnet.Input((8, 8, 3), name="img")
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    y = layers.BatchNormalization()(x)
    y = layers.ReLU()(y)
    out = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(layers.Add()([x, y])))
    model = convnet.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def batch():
    return np.random.default_rng(1).random((4, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_saved_model_loads_back_with_its_predictions(tmp_path, suffix):
    model = small_model()
    path = tmp_path / f"m{suffix}"
    model.save(path)
    back = convnet.load_model(path)
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_array_equal(back.predict(batch(), verbose=0), model.predict(batch(), verbose=0))
    assert back.compiled and type(back.optimizer).__name__ == "Adam"
    if suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
            config = json.loads(archive.read("config.json"))
        assert config["class_name"] == "Functional" and config["compile_config"]["loss"] == \
            "sparse_categorical_crossentropy"


def test_weights_files_use_keras_3_paths(tmp_path):
    model = small_model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        assert f["layers/conv2d/vars/0"].shape == (3, 3, 3, 4)  # the class name in snake case, not the layer's
        assert f["layers/batch_normalization/vars"].attrs["name"] == "batch_normalization"
        assert len(f["layers/batch_normalization/vars"]) == 4 and "layers/input_layer/vars" in f
    other = small_model()
    for w in other.weights:
        w[...] = 0
    other.load_weights(tmp_path / "w.weights.h5")
    for got, want in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_checkpoints_named_keras_are_keras_archives(tmp_path):
    model = small_model()
    pattern = str(tmp_path / "save_at_{epoch}.keras")
    model.fit(batch(), np.array([0, 1, 0, 1]), epochs=2, verbose=0,
              callbacks=[convnet.callbacks.ModelCheckpoint(pattern)])
    for epoch in (1, 2):
        with zipfile.ZipFile(tmp_path / f"save_at_{epoch}.keras") as archive:
            assert "config.json" in archive.namelist()
    np.testing.assert_array_equal(convnet.load_model(tmp_path / "save_at_2.keras").predict(batch(), verbose=0),
                                  model.predict(batch(), verbose=0))


def test_the_format_follows_the_name(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match=r"\.keras, \.h5 or \.npz.*model\.bin"):
        model.save(tmp_path / "model.bin")
    with pytest.raises(ValueError, match="save_weights"):
        model.save(tmp_path / "model.weights.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5, \.h5 or \.npz"):
        model.save_weights(tmp_path / "w.keras")


def test_a_layer_keras_lacks_is_refused_and_the_old_file_kept(tmp_path):
    path = tmp_path / "m.keras"
    small_model().save(path)
    before = path.read_bytes()
    ours_only = convnet.Sequential([convnet.Input((8, 8, 3)), layers.SumPooling2D(2)])
    with pytest.raises(convnet.ModelFileError, match="SumPooling2D.*no Keras equivalent"):
        ours_only.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.keras"]


def write_keras(path, config, weights=b"", members=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", config if isinstance(config, (str, bytes)) else json.dumps(config))
        archive.writestr("model.weights.h5", weights)
        for name, data in (members or {}).items():
            archive.writestr(name, data)


def saved_config(tmp_path):
    small_model().save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as archive:
        return json.loads(archive.read("config.json")), archive.read("model.weights.h5")


def test_hostile_and_foreign_files(tmp_path):
    config, weights = saved_config(tmp_path)
    cases = {}

    bomb = tmp_path / "bomb.keras"  # 200 MB of zeros in a few hundred kB
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", json.dumps(config))
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(200):
                member.write(bytes(1 << 20))
    cases[bomb] = "zip bomb"

    deep = tmp_path / "deep.keras"
    write_keras(deep, "[" * 200_000 + "]" * 200_000, weights)
    cases[deep] = "nested too deeply"

    huge = tmp_path / "huge.keras"
    big = json.loads(json.dumps(config))
    next(e for e in big["config"]["layers"] if e["class_name"] == "Conv2D")["config"]["filters"] = 10**9
    write_keras(huge, big, weights)
    cases[huge] = r"asks for a weight of shape \(3, 3, 3, 1000000000\), more values than the \d+ the file holds"

    def edited(name, key, value):  # the config with its second layer's key set to value
        changed = json.loads(json.dumps(config))
        changed["config"]["layers"][1][key] = value
        write_keras(tmp_path / name, changed, weights)
        return tmp_path / name

    cases[edited("lambda.keras", "class_name", "Lambda")] = "Lambda layers and serialized Python code are refused"
    cases[edited("custom.keras", "module", "my_project.layers")] = "custom object 'my_project.layers'"
    cases[edited("lstm.keras", "class_name", "LSTM")] = "layer class 'LSTM' is not supported by convnet; it has .*Conv2D"

    absurd = tmp_path / "absurd.keras"
    absurd_h5 = tmp_path / "absurd.h5"
    with open(absurd_h5, "wb") as f:
        f.write(weights)
    with h5py.File(absurd_h5, "r+") as f:
        del f["layers/conv2d/vars/0"]
        f.create_dataset("layers/conv2d/vars/0", shape=(10**6, 10**6), dtype="f4", chunks=(1, 1024))
    write_keras(absurd, config, absurd_h5.read_bytes())
    cases[absurd] = r"is float32 \(1000000, 1000000\); the layer needs floats of shape \(3, 3, 3, 4\)"

    no_config = tmp_path / "noconfig.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("weights.bin", b"0")
    cases[no_config] = "a zip without 'config.json'"

    not_zip = tmp_path / "text.keras"
    not_zip.write_bytes(b"hello world")
    cases[not_zip] = "not a Keras .keras archive: it is neither zip nor HDF5"

    zip_as_h5 = tmp_path / "zip.h5"
    zip_as_h5.write_bytes((tmp_path / "good.keras").read_bytes())
    cases[zip_as_h5] = "not an HDF5 file: it is a zip file"

    h5_as_npz = tmp_path / "weights.npz"
    h5_as_npz.write_bytes(weights)
    cases[h5_as_npz] = "not a convnet .npz file: it is an HDF5 file"

    for path, message in cases.items():
        with pytest.raises(convnet.ModelFileError, match=message):
            convnet.load_model(path)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".convnet-")]


def test_a_failed_weights_load_changes_nothing(tmp_path):
    model = small_model()
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r+") as f:  # the last layer's kernel of the wrong shape
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", data=np.zeros((3, 2), np.float32))
    target = small_model()
    for w in target.weights:
        w[...] = 7
    with pytest.raises(convnet.ModelFileError, match="layer 'dense'"):
        target.load_weights(tmp_path / "w.weights.h5")
    assert all(np.all(w == 7) for w in target.get_weights())


# What tf.keras 2 writes for every Conv2D and Dense: dtype strings, initializers without a module.
KERAS2_WEIGHTED = {"trainable": True, "dtype": "float32", "use_bias": True,
                   "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                   "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                   "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                   "bias_constraint": None}


def test_keras_2_configs_load(tmp_path):
    """A tf.keras 2 full-model .h5: Keras 2's config layout (batch_input_shape, inbound nodes as
    lists, dtype strings, initializers without module) and its weights layout."""
    model = convnet.Sequential([convnet.Input((6, 6, 2)), layers.Conv2D(3, 3, name="conv2d"),
                                layers.Flatten(name="flatten"), layers.Dense(2, activation="softmax", name="dense")])
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 6, 6, 2], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 3, "kernel_size": [3, 3], "strides": [1, 1],
                                            "padding": "valid", "data_format": "channels_last",
                                            "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
                                            **KERAS2_WEIGHTED},
         "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32",
                                             "data_format": "channels_last"},
         "name": "flatten", "inbound_nodes": [[["conv2d", 0, 0, {}]]]},
        {"class_name": "Dense", "config": {"name": "dense", "units": 2, "activation": "softmax", **KERAS2_WEIGHTED},
         "name": "dense", "inbound_nodes": [[["flatten", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    path = tmp_path / "tf2.h5"
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [b"input_1", b"conv2d", b"flatten", b"dense"]
        for layer in model.layers:
            g = group.create_group(layer.name)
            names = [f"{layer.name}/{n}:0" for n in ("kernel", "bias")][: len(layer.get_weights())]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                g.create_dataset(name, data=value)
        group.create_group("input_1").attrs["weight_names"] = []
    loaded = convnet.load_model(path)
    x = np.random.default_rng(0).random((3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_an_npz_zip_bomb_is_refused_before_decompressing(tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("weight_0000.npy", "w", force_zip64=True) as member:
            for _ in range(200):
                member.write(bytes(1 << 20))
    with pytest.raises(convnet.ModelFileError, match="would expand from .* to 209715200 bytes: refused"):
        convnet.load_model(bomb)


@pytest.mark.parametrize("name", ["m.npz", "m.keras", "m.h5"])
def test_saved_files_get_ordinary_permissions(tmp_path, name):
    """Saved files are written to a private temporary file, then renamed: they must end with the
    mode open() would give (0666 less the umask), or keep the mode of the file they replace."""
    mask = os.umask(0o022)
    os.umask(mask)
    model = small_model()
    path = tmp_path / name
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    os.chmod(path, 0o640)
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o640


def _npz_with(tmp_path, name, edit_header=None, weight=None):
    """The saved small model's .npz with its config or its first weight changed."""
    small_model().save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    if edit_header:
        header = json.loads(arrays["__convnet__"].tobytes())
        edit_header(header)
        arrays["__convnet__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    if weight is not None:
        arrays["weight_0000"] = weight
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


def _set_filters(value):
    def edit(header):
        conv = next(layer for layer in header["model"]["config"]["layers"] if layer["class_name"] == "Conv2D")
        conv["config"]["filters"] = value
    return edit


@pytest.mark.parametrize("filters", [10**7, 10**9, 10**400])
def test_an_npz_asking_for_more_weights_than_it_holds_is_refused_before_building(tmp_path, filters):
    import time

    path = _npz_with(tmp_path, "big.npz", edit_header=_set_filters(filters))
    start = time.perf_counter()
    with pytest.raises(convnet.ModelFileError, match=r"asks for a weight of shape \(3, 3, 3, \d+\), more values than"):
        convnet.load_model(path)
    assert time.perf_counter() - start < 5  # refused at the layer, not after drawing 10**7 x 27 values (17 s)


@pytest.mark.parametrize("weight, message", [
    (np.zeros((3, 3, 3, 4), np.complex64), "weight 0 is complex64 .*; weights are real floats"),
    (np.zeros((3, 3, 3, 4), bool), "weight 0 is bool"),
    (np.zeros((3, 3, 3, 4), np.int8), "weight 0 is int8"),
    (np.full((3, 3, 3, 4), np.nan, np.float32), r"weight 0 \(3, 3, 3, 4\) holds NaN or infinite values"),
])
def test_what_cannot_be_a_weight_is_refused(tmp_path, weight, message):
    path = _npz_with(tmp_path, "odd.npz", weight=weight)
    with pytest.raises(convnet.ModelFileError, match=message):
        convnet.load_model(path)
    model = small_model()
    model.save_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    np.savez(tmp_path / "w.npz", **{**arrays, "weight_0000": weight})
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(convnet.ModelFileError, match=message):
        model.load_weights(tmp_path / "w.npz")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".weights.h5"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_keras_files_with_nan_or_infinite_weights_are_refused(tmp_path, suffix, bad):
    model = small_model()
    weights = model.get_weights()
    weights[0] = weights[0].copy()
    weights[0].flat[3] = bad
    model.set_weights(weights)
    path = tmp_path / f"m{suffix}"
    (model.save_weights if suffix == ".weights.h5" else model.save)(path)
    with pytest.raises(convnet.ModelFileError, match=r"layer 'conv' weight .* holds NaN or infinite values"):
        if suffix == ".weights.h5":
            small_model().load_weights(path)
        else:
            convnet.load_model(path)
