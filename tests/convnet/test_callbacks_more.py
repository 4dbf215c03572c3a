"""ReduceLROnPlateau, LearningRateScheduler, CSVLogger, LambdaCallback, ProgbarLogger, BackupAndRestore
(resume after a crash), TensorBoard (event files read back), constraints and activity regularizers."""

import csv
import os
import struct

import numpy as np
import pytest

import convnet
from convnet import callbacks, constraints, layers, regularizers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype("float32")
    return x, (x[:, :3].sum(axis=1) > 0).astype("int64")


def small_model(seed=0, **dense):
    convnet.set_seed(seed)
    model = convnet.Sequential([convnet.Input((6,)), layers.Dense(8, activation="relu", **dense),
                                layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=convnet.optimizers.Adam(0.01),
                  metrics=["accuracy"])
    return model


class Stall(callbacks.Callback):
    """Reports a constant validation loss, so plateaus happen on schedule."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = 1.0


def test_reduce_lr_on_plateau_reduces_after_patience_and_respects_min_lr():
    x, y = data()
    model = small_model()
    reduce = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.003)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[Stall(), reduce])
    # epoch 0 sets the best; epochs 1-2 wait; the rate halves at 2 and 4, then stops at min_lr
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.003, 0.003])


def test_learning_rate_scheduler_sets_each_epoch_and_accepts_one_argument():
    x, y = data()
    model = small_model()
    seen = []
    schedule = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    probe = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(
        model.optimizer.current_learning_rate()))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[schedule, probe])
    assert seen == pytest.approx([0.01, 0.005, 0.0025]) and history.history["learning_rate"] == pytest.approx(seen)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_csv_logger_writes_keras_columns_and_appends(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"] and all(len(r) == 5 for r in rows)


def test_lambda_callback_hooks_and_progbar_logger(capsys):
    x, y = data()
    events = []
    model = small_model()
    hooks = callbacks.LambdaCallback(on_train_begin=lambda logs: events.append("begin"),
                                     on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, "loss" in logs)),
                                     on_batch_end=lambda batch, logs: events.append("batch"),
                                     on_train_end=lambda logs: events.append("end"))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[hooks, callbacks.ProgbarLogger()])
    assert events == ["begin", "batch", "batch", ("epoch", 0, True), "batch", "batch", ("epoch", 1, True), "end"]
    assert capsys.readouterr().out == ""  # verbose=0 silences a given ProgbarLogger too
    model.fit(x, y, epochs=1, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n2/2 [") and out.count("\n") == 2


class Crash(callbacks.Callback):
    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("killed")


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "nadam", "adagrad"])
def test_backup_and_restore_resumes_a_crashed_fit_exactly(tmp_path, optimizer):
    x, y = data(48)

    def model():
        built = small_model()
        built.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
        return built

    whole = model()
    whole_history = whole.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0)
    crashed = model()
    backup = callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0, callbacks=[backup, Crash(3)])
    assert os.path.exists(tmp_path / "backup" / "backup.npz")
    resumed = model()  # a fresh process would build the model afresh
    history = resumed.fit(x, y, epochs=5, batch_size=16, shuffle=False, verbose=0,
                          callbacks=[callbacks.BackupAndRestore(tmp_path / "backup")])
    assert history.epoch == [3, 4]
    np.testing.assert_allclose(history.history["loss"], whole_history.history["loss"][3:], rtol=1e-5)
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not os.path.exists(tmp_path / "backup" / "backup.npz")  # a finished run removes its backup


def test_a_corrupt_backup_is_a_clear_error(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "backup.npz").write_bytes(b"garbage")
    x, y = data()
    with pytest.raises(convnet.ModelFileError, match="cannot be restored.*remove it"):
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.BackupAndRestore(tmp_path / "backup")])


def read_scalars(folder):
    """{tag: [(step, value)]} from the TFRecord event files in ``folder`` (tensorboardX's own protos)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    for name in sorted(os.listdir(folder)):
        raw = open(os.path.join(folder, name), "rb").read()
        offset = 0
        while offset < len(raw):
            (length,) = struct.unpack("<Q", raw[offset:offset + 8])
            event = event_pb2.Event.FromString(raw[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_keras_scalar_names(tmp_path):
    pytest.importorskip("tensorboardX")
    x, y = data()
    model = small_model()
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, validation_split=0.25,
                        callbacks=[callbacks.TensorBoard(tmp_path / "logs", update_freq=2)])
    train = read_scalars(tmp_path / "logs" / "train")
    validation = read_scalars(tmp_path / "logs" / "validation")
    assert [v for _, v in train["epoch_loss"]] == pytest.approx(history.history["loss"], rel=1e-6)
    assert [s for s, _ in validation["epoch_accuracy"]] == [0, 1, 2]
    assert [v for _, v in validation["epoch_loss"]] == pytest.approx(history.history["val_loss"], rel=1e-6)
    assert [s for s, _ in train["batch_loss"]] == [2, 4, 6, 8]  # 3 batches an epoch, every second one


def test_tensorboard_arguments_it_cannot_honour_are_refused(tmp_path):
    pytest.importorskip("tensorboardX")
    with pytest.raises(ValueError, match="histogram_freq"):
        callbacks.TensorBoard(tmp_path, histogram_freq=1)


def test_max_norm_and_non_neg_constraints_hold_after_every_step():
    x, y = data()
    model = small_model(kernel_constraint=constraints.max_norm(0.5), bias_constraint=constraints.non_neg())
    norms = []
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callbacks.LambdaCallback(
        on_batch_end=lambda batch, logs: norms.append(np.linalg.norm(model.layers[0].get_weights()[0], axis=0)))])
    assert max(n.max() for n in norms) <= 0.5 + 1e-6 and model.layers[0].get_weights()[1].min() >= 0
    config = model.layers[0].get_config()
    assert config["kernel_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 0.5, "axis": 0}}
    assert convnet.layers.Dense.from_config(config).constraints["kernel"].max_value == 0.5


def test_constraints_and_activity_regularizer_train_as_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    # Keras caches its global dtype policy on first use: set it, and put back the one that was
    policy = keras.config.dtype_policy()
    convnet.set_floatx("float64")
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        x, y = data(24)

        def build(lib):
            model = lib.Sequential([
                lib.Input((6,)),
                lib.layers.Dense(5, activation="tanh", kernel_constraint=lib.constraints.UnitNorm(axis=0),
                                 activity_regularizer=lib.regularizers.L2(0.05)),
                lib.layers.Dense(2, activation="softmax", bias_constraint=lib.constraints.MinMaxNorm(0.1, 0.4))])
            model.compile(loss="sparse_categorical_crossentropy", optimizer=lib.optimizers.SGD(0.1))
            return model

        ours, theirs = build(convnet), build(keras)
        ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
        # Keras's loss tracker sums in float32
        np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-6)
        mine = ours.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history["loss"]
        keras_history = theirs.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history["loss"]
        np.testing.assert_allclose(mine, keras_history, rtol=1e-6)
        for a, b in zip(ours.get_weights(), theirs.get_weights()):  # Keras keeps its learning rate in float32
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-6, atol=1e-7)
    finally:
        convnet.set_floatx("float32")
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy(policy)


def test_activity_regularization_layer_adds_its_penalty_per_sample():
    x, y = data(8)
    model = convnet.Sequential([convnet.Input((6,)), layers.ActivityRegularization(l1=0.1),
                                layers.Dense(2, activation="softmax", kernel_initializer="zeros")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    loss = model.evaluate(x, y, verbose=0, batch_size=8)
    assert loss == pytest.approx(np.log(2) + 0.1 * np.abs(x).sum() / len(x), rel=1e-5)
    assert regularizers.serialize(model.layers[0].activity_regularizer)["class_name"] == "L1L2"
