"""The progress bar: an ETA while an epoch runs, its time per step at the end, and warnings below it."""

import io
import warnings

import numpy as np

import convnet
from convnet import layers
from convnet.callbacks import ProgressBar, _duration


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_eta_while_running_then_time_per_step():
    bar = ProgressBar(10, Terminal())
    assert bar.line(4, {"loss": 0.5}, 8.0) == " 4/10 [===========>..................] - ETA 12s - loss: 0.5000"
    assert bar.line(10, {}, 20.0) == "10/10 [==============================] - 20s 2000ms/step"
    assert [_duration(s) for s in (3, 59.6, 185, 3723)] == ["3s", "1:00", "3:05", "1:02:03"]


def test_a_warning_mid_epoch_starts_on_its_own_line():
    terminal = Terminal()
    convnet.set_seed(0)
    model = convnet.Sequential([layers.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x, y = np.random.default_rng(0).random((40, 4), dtype=np.float32), np.zeros(40, np.int64)

    class WarnMidway(convnet.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                warnings.warn("skipping unreadable image: broken.png")

    printed = []

    def show(message, *args, **kwargs):
        printed.append((terminal.getvalue(), str(message)))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        model.fit(x, y, batch_size=4, epochs=1, callbacks=[WarnMidway(), convnet.callbacks.ProgbarLogger(terminal)])
        assert warnings.showwarning is show  # given back after the epoch
    (screen, message), = printed
    assert message == "skipping unreadable image: broken.png"
    assert screen.endswith("\n") and "\r" in screen  # the bar's line was ended before the warning was shown
