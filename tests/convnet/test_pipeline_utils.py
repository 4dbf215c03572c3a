"""convnet.pipeline (tf.data's methods), convnet.utils, convnet.ops, convnet.datasets (Keras's cached
files, made here) and convnet.preprocessing."""

import gzip
import os
import pickle
import threading
import time

import numpy as np
import pytest

import convnet
from convnet import datasets, ops, utils
from convnet.pipeline import AUTOTUNE, INFINITE, UNKNOWN, Dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def numbers(n=10):
    return Dataset.from_tensor_slices((np.arange(n), np.arange(n) * 10))


def firsts(dataset):
    return [int(np.asarray(e[0] if isinstance(e, tuple) else e).ravel()[0]) for e in dataset]


def test_take_skip_map_filter_batch_unbatch_and_cardinality():
    ds = numbers()
    assert ds.cardinality() == 10 and len(ds) == 10
    assert firsts(ds.take(3)) == [0, 1, 2] and ds.take(3).cardinality() == 3
    assert firsts(ds.skip(7)) == [7, 8, 9] and ds.skip(7).cardinality() == 3
    doubled = ds.map(lambda a, b: (a * 2, b + 1))  # a tuple's parts as separate arguments, as tf.data
    assert list(doubled.as_numpy_iterator())[4] == (8, 41)
    evens = ds.filter(lambda a, b: a % 2 == 0)
    assert firsts(evens) == [0, 2, 4, 6, 8] and evens.cardinality() == UNKNOWN
    batches = list(ds.batch(4))
    assert [b[0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert ds.batch(4).cardinality() == 3 and ds.batch(4, drop_remainder=True).cardinality() == 2
    assert [e[1] for e in ds.batch(3).unbatch()] == list(range(0, 100, 10))
    assert ds.repeat().cardinality() == INFINITE and firsts(ds.repeat(2)) == list(range(10)) * 2
    assert firsts(ds.repeat().take(12)) == [*range(10), 0, 1]
    with pytest.raises(TypeError, match="infinite"):
        len(ds.repeat())


def test_dict_elements_batch_and_unbatch():
    ds = Dataset.from_tensor_slices({"image": np.zeros((5, 2, 2)), "label": np.arange(5)}).batch(2)
    first = next(iter(ds))
    assert first["image"].shape == (2, 2, 2) and first["label"].tolist() == [0, 1]
    assert [e["label"] for e in ds.unbatch()] == [0, 1, 2, 3, 4]


def test_shuffle_is_a_buffer_shuffle_seeded_and_reshuffled_each_pass():
    ds = Dataset.from_tensor_slices(np.arange(100))
    once, twice = list(ds.shuffle(100, seed=3)), list(ds.shuffle(100, seed=3))
    assert sorted(once) == list(range(100)) and once == twice and once != list(range(100))
    shuffled = ds.shuffle(100, seed=3)
    assert list(shuffled) != list(shuffled)  # a new order every epoch
    fixed = ds.shuffle(100, seed=3, reshuffle_each_iteration=False)
    assert list(fixed) == list(fixed)
    local = list(ds.shuffle(2, seed=0))  # a small buffer moves elements only a little
    assert all(abs(v - i) <= 50 for i, v in enumerate(local)) and local[0] in (0, 1, 2)


def test_cache_reads_the_source_once_and_drops_a_partial_pass():
    reads = []

    class Counting(Dataset):
        def cardinality(self):
            return 5

        def __iter__(self):
            for i in range(5):
                reads.append(i)
                yield i

    cached = Counting().cache()
    assert list(cached.take(2)) == [0, 1]  # a partial pass is not kept
    assert list(cached) == list(range(5)) and list(cached) == list(range(5))
    assert reads == [0, 1, 0, 1, 2, 3, 4]


def test_prefetch_reads_ahead_in_a_thread_stops_early_and_passes_errors_on():
    started = []

    class Slow(Dataset):
        def __iter__(self):
            for i in range(6):
                started.append(threading.current_thread().name)
                time.sleep(0.01)
                yield i

    prefetched = Slow().prefetch(2)
    assert list(prefetched) == list(range(6)) and set(started) == {"convnet-prefetch"}
    assert list(Slow().prefetch(AUTOTUNE).take(2)) == [0, 1]
    time.sleep(0.2)
    assert not any(t.name == "convnet-prefetch" for t in threading.enumerate())  # the reader stopped it

    class Broken(Dataset):
        def __iter__(self):
            yield 1
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(Broken().prefetch(1))


@pytest.mark.filterwarnings("ignore::convnet.data.UnreadableImageWarning")  # the fixture's corrupt file
def test_fit_reads_a_chained_image_dataset(image_folder):
    train = utils.image_dataset_from_directory(image_folder, image_size=(8, 8), batch_size=8, seed=1)
    assert train.class_names == ["blue", "green", "red"]
    pixels, labels = next(iter(train))
    assert pixels.dtype == np.float32 and pixels.max() > 150 and pixels.max() <= 255  # Keras's [0, 255]
    ds = train.map(lambda x, y: (x / 255, y)).cache().shuffle(4, seed=0).prefetch(AUTOTUNE)
    assert ds.class_names == train.class_names  # attributes survive chaining
    model = convnet.Sequential([convnet.Input((8, 8, 3)), convnet.layers.Flatten(),
                                convnet.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(ds, epochs=2, verbose=0, validation_data=ds.take(1))
    assert len(history.history["val_accuracy"]) == 2
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(ds.repeat(), epochs=1, verbose=0)
    assert model.fit(ds.repeat(), epochs=1, steps_per_epoch=3, verbose=0).history["loss"]


def test_a_pydataset_gets_its_epoch_end_hook():
    class Batches(utils.PyDataset):
        epochs_ended = 0

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return np.ones((4, 3), "float32") * index, np.zeros(4)

        def on_epoch_end(self):
            self.epochs_ended += 1

    data = Batches()
    model = convnet.Sequential([convnet.Input((3,)), convnet.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(data, epochs=3, verbose=0)
    assert data.epochs_ended == 3


def test_to_categorical_and_normalize_equal_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    labels = np.array([[0], [3], [1]])
    np.testing.assert_array_equal(utils.to_categorical(labels), keras.utils.to_categorical(labels))
    np.testing.assert_array_equal(utils.to_categorical([1, 0], 4), keras.utils.to_categorical([1, 0], 4))
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(utils.normalize(x), keras.ops.convert_to_numpy(keras.utils.normalize(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="non-negative integer labels"):
        utils.to_categorical([0.5, 1])


def test_image_utilities_round_trip_and_match_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pixels = np.random.default_rng(0).integers(0, 256, (10, 14, 3)).astype("uint8")
    utils.save_img(tmp_path / "a.png", pixels, scale=False)
    image = utils.load_img(tmp_path / "a.png")
    np.testing.assert_array_equal(utils.img_to_array(image), pixels.astype("float32"))
    for arguments in [dict(target_size=(6, 9)), dict(target_size=(6, 9), interpolation="bilinear"),
                      dict(color_mode="grayscale"), dict(target_size=(5, 5), keep_aspect_ratio=True)]:
        ours = utils.img_to_array(utils.load_img(tmp_path / "a.png", **arguments))
        theirs = keras.utils.img_to_array(keras.utils.load_img(tmp_path / "a.png", **arguments))
        np.testing.assert_array_equal(ours, theirs, err_msg=str(arguments))
    stretched = utils.img_to_array(utils.array_to_img(pixels / 255.0))
    np.testing.assert_array_equal(stretched, keras.utils.img_to_array(keras.utils.array_to_img(pixels / 255.0)))
    assert convnet.preprocessing.image.load_img is utils.load_img
    resized = convnet.preprocessing.image.smart_resize(pixels, (4, 4))
    np.testing.assert_allclose(resized, keras.ops.convert_to_numpy(keras.preprocessing.image.smart_resize(
        pixels.astype("float32"), (4, 4))), atol=1e-3)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(convnet.data.ImageFileError, match="bad.png"):
        utils.load_img(tmp_path / "bad.png")


def test_plot_model_draws_the_graph(tmp_path):
    from PIL import Image

    from tests.convnet.keras_scripts import toy_resnet

    path = utils.plot_model(toy_resnet(convnet), to_file=tmp_path / "model.png", show_shapes=True, dpi=50)
    with Image.open(path) as picture:
        assert picture.height > 2 * picture.width  # 15 layers stacked top to bottom
        assert np.asarray(picture.convert("L")).std() > 10  # not blank
    assert utils.plot_model(toy_resnet(convnet), to_file=tmp_path / "m.svg", rankdir="LR").endswith("m.svg")


def test_ops_subset():
    x = np.array([[1.0, 3.0, 2.0]])
    assert ops.argmax(x, axis=-1).tolist() == [1] and ops.expand_dims(x, 0).shape == (1, 1, 3)
    np.testing.assert_allclose(ops.softmax(x).sum(), 1.0)
    np.testing.assert_allclose(ops.sigmoid(np.array(0.0)), 0.5)
    values, indices = ops.top_k(x, 2)
    assert values.tolist() == [[3.0, 2.0]] and indices.tolist() == [[1, 2]]
    assert ops.one_hot([2, 0], 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert isinstance(ops.convert_to_numpy([1, 2]), np.ndarray)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    return tmp_path / "datasets"


def test_datasets_read_keras_caches(keras_home):
    rng = np.random.default_rng(0)
    np.savez(keras_home / "mnist.npz", x_train=rng.integers(0, 255, (6, 28, 28), dtype=np.uint8),
             y_train=np.arange(6, dtype=np.uint8), x_test=np.zeros((2, 28, 28), np.uint8),
             y_test=np.ones(2, np.uint8))
    (x_train, y_train), (x_test, y_test) = datasets.mnist.load_data()
    assert x_train.shape == (6, 28, 28) and y_test.tolist() == [1, 1]

    fashion = keras_home / "fashion-mnist"
    fashion.mkdir()
    for prefix, n in (("train", 3), ("t10k", 2)):
        with gzip.open(fashion / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes(8) + bytes(range(n)))
        with gzip.open(fashion / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes(16) + bytes([7]) * (n * 28 * 28))
    (x_train, y_train), (x_test, _) = datasets.fashion_mnist.load_data()
    assert x_train.shape == (3, 28, 28) and y_train.tolist() == [0, 1, 2] and x_test.max() == 7

    cifar = keras_home / "cifar-10-batches-py"
    cifar.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4],
                 b"batch_label": name.encode(), b"filenames": [b"a.png"] * 4}
        (cifar / name).write_bytes(pickle.dumps(batch, protocol=2))
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and y_train.shape == (20, 1) and x_test.dtype == np.uint8
    raw = pickle.loads((cifar / "test_batch").read_bytes())[b"data"]
    np.testing.assert_array_equal(x_test[0, :, :, 0], raw[0, :1024].reshape(32, 32))  # red plane first

    hundred = keras_home / "cifar-100-python-target" / "cifar-100-python"
    hundred.mkdir(parents=True)
    for name in ("train", "test"):
        batch = {b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [5, 6, 7], b"coarse_labels": [1, 1, 2]}
        (hundred / name).write_bytes(pickle.dumps(batch))
    assert datasets.cifar100.load_data(label_mode="coarse")[0][1].ravel().tolist() == [1, 1, 2]
    (x, y), _ = datasets.digits.load_data()
    assert x.dtype == np.uint8 and x.shape[1:] == (8, 8) and x.max() == 16


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_datasets_refuse_a_tampered_pickle_and_say_where_files_go(keras_home):
    cifar = keras_home / "cifar-10-batches-py"
    cifar.mkdir()
    (cifar / "data_batch_1").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(ValueError, match="refused: the file asks for posix.system"):
        datasets.cifar10.load_data()
    with pytest.raises(FileNotFoundError, match="mnist.npz.*put it there.*does not download"):
        datasets.mnist.load_data()
    with pytest.raises(FileNotFoundError, match="does not download"):
        utils.get_file("cats.zip", origin="https://example.invalid/cats.zip")


def test_set_random_seed_seeds_everything():
    import random

    utils.set_random_seed(11)
    first = (random.random(), np.random.random(), convnet.layers.Dense(2)(np.ones((1, 3))).tolist())
    utils.set_random_seed(11)
    assert first == (random.random(), np.random.random(), convnet.layers.Dense(2)(np.ones((1, 3))).tolist())
