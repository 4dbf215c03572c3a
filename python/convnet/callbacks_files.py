"""Callbacks that write files as training goes: BackupAndRestore (resume after a crash) and
TensorBoard (scalar event files, through the optional ``tensorboardX`` writer)."""

from __future__ import annotations

import json
import os

import numpy as np

from .callbacks import Callback
from .io import atomic_write

BACKUP_FILE = "backup.npz"


def optimizer_state(model) -> dict:
    """The optimizer's step count, learning rate and slots as named arrays (slots by the position of
    their variable among the model's trainable variables)."""
    optimizer = model.optimizer
    arrays = {"optimizer/iterations": np.int64(optimizer.iterations)}
    if not isinstance(optimizer.learning_rate, (int, float)):
        arrays["optimizer/schedule"] = np.str_(json.dumps(optimizer.get_config()["learning_rate"]))
    else:
        arrays["optimizer/learning_rate"] = np.float64(optimizer.learning_rate)
    if hasattr(optimizer, "u_product"):
        arrays["optimizer/u_product"] = np.float64(optimizer.u_product)
    for index, (layer, key) in enumerate(model.trainable_variables()):
        for name, value in optimizer._slots.get(id(layer.params[key]), (None, {}))[1].items():
            arrays[f"optimizer/slot/{index}/{name}"] = value
    return arrays


def restore_optimizer_state(model, arrays) -> None:
    """The inverse of :func:`optimizer_state`, into ``model.optimizer``."""
    optimizer = model.optimizer
    optimizer.iterations = int(arrays["optimizer/iterations"])
    if "optimizer/learning_rate" in arrays:
        optimizer.learning_rate = float(arrays["optimizer/learning_rate"])
    if "optimizer/u_product" in arrays:
        optimizer.u_product = float(arrays["optimizer/u_product"])
    variables = model.trainable_variables()
    optimizer._slots.clear()
    for key in arrays:
        if key.startswith("optimizer/slot/"):
            index, name = key.split("/")[2:]
            layer, param = variables[int(index)]
            variable = layer.params[param]
            optimizer._slot(variable, name)[...] = arrays[key]


class BackupAndRestore(Callback):
    """Keep a backup of the training state in ``backup_dir`` (weights, optimizer state, the epoch)
    after every epoch; a ``fit`` that starts where a backup exists resumes from it — after a crash
    or a kill — at the next epoch, as Keras's. A run that finishes removes the backup
    (``delete_checkpoint``). Writes are atomic: a kill during one leaves the previous backup. On MPI
    ranks rank 0 alone reads and writes it; the others start from rank 0's state."""

    chief_only = True

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, double_checkpoint=False):
        if save_freq != "epoch":
            raise ValueError(f"BackupAndRestore supports save_freq='epoch'; received save_freq={save_freq!r}")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq, self.delete_checkpoint = save_freq, bool(delete_checkpoint)
        self.path = os.path.join(self.backup_dir, BACKUP_FILE)

    def on_train_begin(self, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        if not os.path.exists(self.path):
            return
        from .io import ModelFileError

        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            weights = [arrays[f"weights/{i}"] for i in range(int(arrays["weights/count"]))]
            self.model.set_weights(weights)
            restore_optimizer_state(self.model, arrays)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"backup {self.path!r} cannot be restored ({type(exc).__name__}: {exc}); "
                                 "remove it to start afresh") from None
        self.model._initial_epoch = int(arrays["epoch"]) + 1

    def on_epoch_end(self, epoch, logs=None):
        weights = self.model.get_weights()
        arrays = {"epoch": np.int64(epoch), "weights/count": np.int64(len(weights)),
                  **{f"weights/{i}": w for i, w in enumerate(weights)}, **optimizer_state(self.model)}
        atomic_write(self.path, lambda f: np.savez(f, **arrays))

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.path):
            os.remove(self.path)


class TensorBoard(Callback):
    """Scalar summaries TensorBoard reads: ``epoch_<metric>`` per epoch under ``log_dir/train`` and
    ``log_dir/validation`` (Keras's names), and with ``update_freq`` a number of batches also
    ``batch_<metric>`` under ``train``. Needs ``tensorboardX`` (``pip install tensorboardX``)."""

    chief_only = True

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("the TensorBoard callback writes its event files with tensorboardX: "
                              "pip install tensorboardX") from None
        if histogram_freq or write_images or embeddings_freq or profile_batch:
            raise ValueError("TensorBoard writes scalars only: histogram_freq, write_images, embeddings_freq and "
                             "profile_batch must be 0/False")
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq < 1) and update_freq != "batch":
            raise ValueError(f"update_freq must be 'epoch', 'batch' or a positive int; received "
                             f"update_freq={update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._writer_class = SummaryWriter
        self._writers = {}
        self._step = 0

    def _writer(self, part):
        if part not in self._writers:
            self._writers[part] = self._writer_class(os.path.join(self.log_dir, part))
        return self._writers[part]

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            for key, value in (logs or {}).items():
                self._writer("train").add_scalar(f"batch_{key}", float(value), self._step)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(part).add_scalar(f"epoch_{name}", float(value), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
