"""Jobs for tests/convnet/test_distributed.py, run as ``mpiexec -n 2 python mpi_job.py CASE OUT`` (and
in one process, for the reference). Rank 0 writes what the test compares into OUT."""

import json
import os
import signal
import sys

import numpy as np

import cnnkernels
import convnet
from convnet import callbacks, distributed, layers


def data(n=64, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 6, 2)).astype(dtype)
    y = (x[:, :3].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, :, :2].mean(axis=(1, 2, 3)) > 0)
    return x, y


def model(optimizer="adam", synchronized=True):
    convnet.set_seed(1)
    built = convnet.Sequential([convnet.Input((6, 6, 2)), layers.Conv2D(4, 3, padding="same"),
                                layers.BatchNormalization(synchronized=synchronized), layers.Activation("relu"),
                                layers.Flatten(), layers.Dense(3, activation="softmax", kernel_regularizer="l2")])
    built.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy", "auc"])
    return built


def save(out, name, **arrays):
    if distributed.is_chief():
        np.savez(os.path.join(out, name), **arrays)


class KillRank(callbacks.Callback):
    """Rank 1 dies (SIGKILL) at a given epoch and batch: a node lost mid-epoch."""

    def __init__(self, epoch, batch):
        self.epoch, self.batch, self.now = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.now = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.now == self.epoch and batch == self.batch and distributed.current().rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)


class RaiseOnRank(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and distributed.current().rank == 1:
            raise ValueError("a bug on rank 1 only")


def main(case, out, *options):
    dtype = "float32" if "float32" in options else "float64"
    convnet.set_floatx(dtype)
    x, y = data(dtype=dtype)
    one_process = distributed.current() is None
    batch = 32 if one_process else 16  # 2 ranks x 16 = the one process's 32
    if case == "fit":
        trained = model("sgd" if "sgd" in options else "adam")
        history = trained.fit(x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0,
                              validation_data=data(37, seed=5, dtype=dtype))
        save(out, "fit.npz", history=json.dumps(history.history), threads=cnnkernels.get_num_threads(),
             **{f"w{i}": w for i, w in enumerate(trained.get_weights())})
    elif case == "stream":
        trained = model()
        dataset = convnet.pipeline.Dataset.from_tensor_slices((x, y)).batch(batch // 2 if one_process else 8)
        if one_process:  # two 8-batches together are one global batch of 16
            dataset = convnet.pipeline.Dataset.from_tensor_slices((x, y)).batch(16)
        history = trained.fit(dataset, epochs=2, verbose=0)
        save(out, "stream.npz", history=json.dumps(history.history),
             **{f"w{i}": w for i, w in enumerate(trained.get_weights())})
    elif case == "sequence":  # a PyDataset: each rank reads only its own batches
        size = 16 if one_process else 8

        class Batches(convnet.utils.PyDataset):
            def __len__(self):
                return len(x) // size

            def __getitem__(self, index):
                return x[index * size:(index + 1) * size], y[index * size:(index + 1) * size]

        trained = model()
        history = trained.fit(Batches(), epochs=2, verbose=0)
        save(out, "sequence.npz", history=json.dumps(history.history),
             **{f"w{i}": w for i, w in enumerate(trained.get_weights())})
    elif case == "infer":
        trained = model()
        trained.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        held_out = data(37, seed=7, dtype=dtype)
        predictions = trained.predict(held_out[0], batch_size=5, verbose=0)
        streamed = trained.predict(convnet.pipeline.Dataset.from_tensor_slices(held_out[0]).batch(6), verbose=0)
        result = trained.evaluate(*held_out, batch_size=4, verbose=0, return_dict=True)
        save(out, "infer.npz", predictions=predictions, streamed=streamed, result=json.dumps(result))
    elif case in ("crash", "resume"):
        trained = model()
        backup = callbacks.BackupAndRestore(os.path.join(out, "backup"))
        extra = [KillRank(2, 1)] if case == "crash" else []
        history = trained.fit(x, y, batch_size=batch // 2, epochs=4, shuffle=False, verbose=0,
                              callbacks=[backup, *extra])
        save(out, f"{case}.npz", history=json.dumps(history.history), epochs=np.array(history.epoch),
             **{f"w{i}": w for i, w in enumerate(trained.get_weights())})
    elif case == "raise":
        model().fit(x, y, batch_size=batch, epochs=3, verbose=0, callbacks=[RaiseOnRank()])
    elif case == "disagree":
        rank = distributed.current().rank
        model().fit(x + rank, y, batch_size=batch, epochs=1, verbose=0)
    else:
        raise SystemExit(f"unknown case {case!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
