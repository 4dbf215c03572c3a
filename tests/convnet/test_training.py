"""The trainer's Keras arguments: steps, validation frequency, initial epoch, sample and class
weights, regularizers, and every kind of data source through the one batch iterator."""

import numpy as np
import pytest

import convnet
from convnet import layers


@pytest.fixture(autouse=True)
def float64():
    convnet.set_floatx("float64")
    convnet.set_seed(0)
    yield
    convnet.set_floatx("float32")


def dense_model(seed=0, **compile_args):
    convnet.set_seed(seed)
    model = convnet.Sequential([convnet.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=compile_args.pop("optimizer", "sgd"),
                  loss=compile_args.pop("loss", "sparse_categorical_crossentropy"),
                  metrics=compile_args.pop("metrics", ["accuracy"]), **compile_args)
    return model


def data(n=20, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def test_steps_validation_freq_initial_epoch_and_params():
    x, y = data()
    model = dense_model()
    history = model.fit(x, y, batch_size=4, epochs=5, initial_epoch=1, steps_per_epoch=2, validation_data=(x, y),
                        validation_freq=2, verbose=0)
    assert history.epoch == [1, 2, 3, 4]
    assert history.params == {"verbose": 0, "epochs": 5, "steps": 2}
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2  # epochs 2 and 4
    assert model.optimizer.iterations == 8
    assert model.history is history


def test_sample_weight_is_keras_sum_over_batch_size():
    x, y = data(8)
    weights = np.array([0, 1, 2, 3, 0, 1, 2, 3], float)
    model = dense_model()
    per_sample = [dense_model().evaluate(x[i : i + 1], y[i : i + 1], verbose=0, return_dict=True)["loss"]
                  for i in range(8)]
    logs = model.evaluate(x, y, sample_weight=weights, batch_size=8, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(np.dot(weights, per_sample) / 8)
    # a zero weight removes a sample from training entirely
    a, b = dense_model(), dense_model()
    a.fit(x, y, sample_weight=np.r_[np.ones(7), 0.0], batch_size=8, verbose=0, shuffle=False)
    b.fit(x[:7], y[:7], batch_size=8, verbose=0, shuffle=False)
    # one SGD step on Σ_{i<7} l_i / 8 is 7/8 of the step on Σ_{i<7} l_i / 7
    np.testing.assert_allclose(a.get_weights()[0] - dense_model().get_weights()[0],
                               (b.get_weights()[0] - dense_model().get_weights()[0]) * 7 / 8, rtol=1e-10)


def test_class_weight_equals_the_matching_sample_weight():
    x, y = data(12)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    a, b = dense_model(), dense_model()
    a.fit(x, y, class_weight=class_weight, batch_size=6, epochs=2, verbose=0, shuffle=False)
    b.fit(x, y, sample_weight=np.array([class_weight[int(c)] for c in y]), batch_size=6, epochs=2, verbose=0,
          shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb)
    with pytest.raises(ValueError, match="class_weight has no entry for class 2"):
        dense_model().fit(x, y, class_weight={0: 1.0, 1: 2.0}, verbose=0)


class Batches:
    """A Keras Sequence / PyDataset: len() batches, indexable."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        return self.x[i * self.size : (i + 1) * self.size], self.y[i * self.size : (i + 1) * self.size]


def test_sequences_generators_and_arrays_train_alike():
    x, y = data(12)
    arrays, sequence, generator = dense_model(), dense_model(), dense_model()
    arrays.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    sequence.fit(Batches(x, y, 4), epochs=2, verbose=0)

    def endless():
        while True:
            for i in range(0, 12, 4):
                yield x[i : i + 4], y[i : i + 4]

    history = generator.fit(endless(), steps_per_epoch=3, epochs=2, verbose=0,
                            validation_data=Batches(x, y, 6), validation_steps=1)
    for model in (sequence, generator):
        for got, want in zip(model.get_weights(), arrays.get_weights()):
            np.testing.assert_allclose(got, want)
    assert len(history.history["val_loss"]) == 2
    np.testing.assert_allclose(arrays.predict(Batches(x, y, 5)), arrays.predict(x))


def test_validation_split_on_a_dataset_raises_as_keras():
    x, y = data(12)
    with pytest.raises(ValueError, match="validation_split is only supported for arrays"):
        dense_model().fit(Batches(x, y, 4), validation_split=0.2, verbose=0)


def test_regularizer_penalty_is_in_the_loss_and_its_gradient_in_the_step():
    x, y = data(6)
    convnet.set_seed(3)
    plain = convnet.Sequential([convnet.Input((4,)), layers.Dense(3)])
    convnet.set_seed(3)
    regular = convnet.Sequential([convnet.Input((4,)),
                                  layers.Dense(3, kernel_regularizer=convnet.regularizers.l2(0.1))])
    for model in (plain, regular):
        model.compile(optimizer=convnet.optimizers.SGD(0.5), loss="mse")
    kernel = regular.get_weights()[0]
    target = np.zeros((6, 3))
    assert regular.evaluate(x, target, verbose=0) == pytest.approx(
        plain.evaluate(x, target, verbose=0) + 0.1 * np.sum(kernel**2))
    plain.train_on_batch(x, target)
    regular.train_on_batch(x, target)
    np.testing.assert_allclose(regular.get_weights()[0], plain.get_weights()[0] - 0.5 * 2 * 0.1 * kernel)
    assert regular.layers[0].get_config()["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.1}}


def test_models_training_in_two_python_threads_match_one_trained_alone():
    """Two models fit at once in two Python threads (at different kernel thread counts) end with
    the weights of the same model fit alone: no shared scratch, thread count or BLAS setting."""
    import threading

    import cnnkernels

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((24, 8, 8, 2)), rng.integers(0, 3, 24)

    def conv_model():
        convnet.set_seed(5)
        model = convnet.Sequential([convnet.Input((8, 8, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                                    layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    alone = conv_model()
    alone.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0)
    models = [conv_model(), conv_model()]

    def fit(model, n_threads):
        with cnnkernels.threads(n_threads):
            model.fit(x, y, batch_size=6, epochs=3, shuffle=False, verbose=0)

    workers = [threading.Thread(target=fit, args=(model, n)) for model, n in zip(models, (1, 2))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for model in models:
        for got, want in zip(model.get_weights(), alone.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
