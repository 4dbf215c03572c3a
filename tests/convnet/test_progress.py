"""The progress bar: an ETA while an epoch runs, its time per step at the end, and warnings below it; evaluate's
and predict's bars."""

import io
import sys
import warnings

import numpy as np
import pytest

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


def _fitted_model():
    convnet.set_seed(0)
    model = convnet.Sequential([layers.Input((4,)), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model, np.random.default_rng(0).random((40, 4), dtype=np.float32), np.zeros(40, np.int64)


def test_evaluate_and_predict_show_keras_s_bar(capsys):
    model, x, y = _fitted_model()
    logs = model.evaluate(x, y, batch_size=16, return_dict=True)  # verbose="auto": 1, as in Keras
    line, = capsys.readouterr().out.splitlines()  # not a terminal: the final line only
    assert line.startswith("3/3 [==============================] - ") and "ms/step" in line
    assert line.endswith(f"loss: {logs['loss']:.4f} - accuracy: {logs['accuracy']:.4f}")
    model.predict(x, batch_size=16, verbose=2)
    line, = capsys.readouterr().out.splitlines()
    assert line.startswith("3/3 [==============================] - ") and line.endswith("ms/step")
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="verbose must be 'auto', 0, 1 or 2; received 'loud'"):
        model.predict(x, verbose="loud")


def test_on_a_terminal_the_bar_moves_batch_by_batch(monkeypatch):
    model, x, y = _fitted_model()
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    model.predict(x, batch_size=8)
    screen = terminal.getvalue()
    assert screen.count("\r") == 5 and "\r1/5 [=====>" in screen and "ETA" in screen
    assert screen.endswith("ms/step\n")
