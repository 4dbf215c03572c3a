"""Sequential: building, summary, training, evaluation, callbacks, saving and loading."""

import os

import numpy as np
import pytest

import convnet
from convnet import callbacks, layers, optimizers
from convnet.cli import tutorial_model as cli_tutorial_model
from convnet.io import ModelFileError


def tutorial_model():
    """The Keras fruit-classifier tutorial's model on 20x20x3 images, 16 classes (as `convnet train` builds it)."""
    return cli_tutorial_model((20, 20, 3), 16)


def quadrant_images(n, seed=0, size=12, channels_last=True):
    """Four classes: which quadrant holds a bright square. Separable by a small CNN."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    x = rng.random((n, size, size, 1), dtype=np.float32) * 0.3
    half = size // 2
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        x[i, r * half : r * half + half, c * half : c * half + half, 0] += 0.7
    return (x if channels_last else x.transpose(0, 3, 1, 2)), labels


def small_cnn(**conv_kwargs):
    return convnet.Sequential([
        layers.Conv2D(8, 3, padding="same", activation="relu", **conv_kwargs),
        layers.MaxPooling2D(2, **conv_kwargs),
        layers.Flatten(**conv_kwargs),
        layers.Dense(4, activation="softmax"),
    ])


def test_tutorial_model_summary_matches_keras(capsys):
    convnet.clear_session()  # automatic names restart at conv2d, as after keras.backend.clear_session()
    model = tutorial_model()
    model.summary()
    text = capsys.readouterr().out
    for expected in ["conv2d (Conv2D)", "(None, 20, 20, 32)", "896", "4,624", "(None, 10, 10, 16)",
                     "(None, 1600)", "160,100", "1,616", "Total params: 167,300", "Trainable params: 167,268",
                     "Non-trainable params: 32", "batch_normalization (BatchNormalization)"]:
        assert expected in text, expected
    assert model.count_params() == 167_300


def test_trains_to_high_accuracy_on_a_separable_problem(capsys):
    convnet.set_seed(0)
    x, y = quadrant_images(400)
    model = small_cnn()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizers.Adam(0.01), metrics=["accuracy"])
    history = model.fit(x[:300], y[:300], batch_size=32, epochs=4, validation_data=(x[300:], y[300:]), verbose=1)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x[300:], y[300:], verbose=0)
    assert accuracy >= 0.95
    printed = capsys.readouterr().out
    assert "Epoch 1/4" in printed and "val_accuracy" in printed and "10/10 [====" in printed


def test_channels_first_model_gives_the_same_numbers():
    convnet.set_seed(1)
    x, y = quadrant_images(16)
    last = small_cnn()
    first = small_cnn(data_format="channels_first")
    last.build((12, 12, 1))
    first.build((1, 12, 12))
    kernel, bias, dense, dense_bias = last.get_weights()
    # Flatten orders features (h, w, c) in channels_last and (c, h, w) in channels_first, as in Keras
    dense_first = dense.reshape(6, 6, 8, 4).transpose(2, 0, 1, 3).reshape(-1, 4)
    first.set_weights([kernel, bias, dense_first, dense_bias])
    np.testing.assert_allclose(first.predict(x.transpose(0, 3, 1, 2)), last.predict(x), rtol=1e-5, atol=1e-6)


def test_set_seed_makes_training_reproducible():
    results = []
    for _ in range(2):
        convnet.set_seed(42)
        x, y = quadrant_images(64, seed=3)
        model = convnet.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.Dropout(0.3), layers.Flatten(),
                                    layers.Dense(4, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_evaluate_and_predict_shapes():
    x, y = quadrant_images(20)
    model = small_cnn()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    loss, accuracy = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    assert model.predict(x, batch_size=7).shape == (20, 4)
    result = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(result) == {"loss", "accuracy"}


def test_losses_and_one_hot_targets():
    x, labels = quadrant_images(32)
    for loss, targets in [("categorical_crossentropy", np.eye(4)[labels]), ("mse", np.eye(4)[labels]),
                          ("binary_crossentropy", np.eye(4)[labels])]:
        model = small_cnn()
        model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
        history = model.fit(x, targets, epochs=2, verbose=0)
        assert all(np.isfinite(history.history["loss"]))


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_callbacks_early_stopping_checkpoint_terminate_and_custom(tmp_path):
    x, y = quadrant_images(64)
    model = small_cnn()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizers.SGD(1e-12), metrics=["accuracy"])
    seen = []

    class Recorder(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e-3)
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "model-{epoch:02d}.npz"))
    history = model.fit(x, y, epochs=10, validation_split=0.25, verbose=0,
                        callbacks=[stopper, checkpoint, Recorder()])
    assert len(history.history["loss"]) == 2  # no improvement: stopped after patience 1
    assert stopper.stopped_epoch == 1
    assert sorted(os.listdir(tmp_path)) == ["model-01.npz", "model-02.npz"]
    assert seen[0] == (0, ["accuracy", "loss", "val_accuracy", "val_loss"])
    assert convnet.load_model(tmp_path / "model-02.npz").predict(x).shape == (64, 4)

    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizers.SGD(1e30))
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    convnet.set_seed(5)
    model = tutorial_model()
    model.compile(loss="categorical_crossentropy", optimizer=optimizers.RMSprop(1e-4, decay=1e-6),
                  metrics=["accuracy"])
    x = np.random.default_rng(0).random((8, 20, 20, 3), dtype=np.float32)
    y = np.eye(16)[np.arange(8)]
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = convnet.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))

    weights = tmp_path / "weights.npz"
    model.save_weights(weights)
    fresh = tutorial_model()
    fresh.build((20, 20, 3))
    fresh.load_weights(weights)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_containers_save_and_load(tmp_path):
    model = convnet.Sequential([
        layers.Input((8, 8, 3)),
        layers.Residual([layers.Conv2D(3, 3, padding="same", activation="relu"), layers.Conv2D(3, 3, padding="same")]),
        layers.Parallel([[layers.Conv2D(2, 1)], [layers.MaxPooling2D(3, strides=1, padding="same")]]),
        layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax"),
    ])
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(convnet.load_model(tmp_path / "m.npz").predict(x), model.predict(x))


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = small_cnn()
    model.build((12, 12, 1))
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04truncated"])
def test_corrupt_files_raise_clear_errors(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.npz"):
        convnet.load_model(path)


def test_foreign_and_truncated_files_raise_clear_errors(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a convnet file"):
        convnet.load_model(foreign)
    model = small_cnn()
    model.build((12, 12, 1))
    good = tmp_path / "good.npz"
    model.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ModelFileError):
        convnet.load_model(truncated)
    with pytest.raises(ModelFileError, match="use load_model"):
        model.load_weights(good)
    with pytest.raises(ValueError):
        convnet.load_model(tmp_path / "missing.npz")
    assert issubclass(ModelFileError, ValueError)


def test_bad_arguments_name_what_was_received():
    x, y = quadrant_images(10)
    model = small_cnn()
    with pytest.raises(ValueError, match="'hinge2'"):
        model.compile(loss="hinge2", optimizer="sgd")
    with pytest.raises(ValueError, match="'adamw9'"):
        model.compile(loss="mse", optimizer="adamw9")
    with pytest.raises(ValueError, match="'precision9'"):
        model.compile(loss="mse", optimizer="sgd", metrics=["precision9"])
    with pytest.raises(ValueError, match="learning_rate=-1"):
        optimizers.Adam(learning_rate=-1)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    with pytest.raises(ValueError, match="10 and 9"):
        model.fit(x, y[:9], verbose=0)
    model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"\(10, 13, 12, 1\)"):
        model.fit(np.zeros((10, 13, 12, 1)), y, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.fit(x, y + 4, verbose=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="received 1"):
        model.set_weights([np.zeros(3)])
    weights = model.get_weights()
    weights[0] = weights[0][..., :2]
    with pytest.raises(ValueError, match=r"\(3, 3, 1, 2\)"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="one-hot"):
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        model.fit(x, y, verbose=0)


def test_float64_models(tmp_path):
    convnet.set_floatx("float64")
    try:
        x, y = quadrant_images(16)
        model = small_cnn()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.fit(x, y, epochs=1, verbose=0)
        assert all(w.dtype == np.float64 for w in model.get_weights())
        assert model.predict(x).dtype == np.float64
        model.save(tmp_path / "m.npz")
        assert convnet.load_model(tmp_path / "m.npz").predict(x).dtype == np.float64
    finally:
        convnet.set_floatx("float32")
    assert small_cnn().predict(x).dtype == np.float32
    for unknown in ("float16", "bfloat16", "nonsense", None):
        with pytest.raises(ValueError, match=repr(unknown)):
            convnet.set_floatx(unknown)
        assert convnet.floatx() == np.float32


def test_training_steps_reuse_the_blocks_the_last_step_freed():
    """fit/train_on_batch allocate from cnnkernels' caching allocator: a step's freed arrays wait for the next
    step (no page faults); convnet.clear_session() gives them back."""
    pytest.importorskip("cnnkernels._memory", reason="the compiled extension did not build")
    import cnnkernels

    convnet.clear_session()
    assert cnnkernels.cached_memory() == 0
    model = tutorial_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop")
    x = np.random.default_rng(0).random((32, 20, 20, 3), dtype=np.float32)
    y = np.arange(32) % 16
    first = model.train_on_batch(x, y)
    held = cnnkernels.cached_memory()
    assert held > 1 << 20  # the step's activations and gradients
    second = model.train_on_batch(x, y)
    assert np.isfinite([first, second]).all()
    assert cnnkernels.cached_memory() <= held * 1.5  # reused, not grown step by step
    convnet.clear_session()
    assert cnnkernels.cached_memory() == 0
