"""The functional API: graphs of layers, their gradients, introspection, configs and saving."""

import json

import numpy as np
import pytest

import convnet
from convnet import layers
from tests.conftest import numerical_gradient


@pytest.fixture(autouse=True)
def float64_and_fresh_names():
    convnet.set_floatx("float64")
    convnet.clear_session()
    convnet.set_seed(0)
    yield
    convnet.set_floatx("float32")


def check_model_gradients(model, xs, seed=0):
    """Every trainable weight's gradient from the graph's backward pass vs central differences
    of sum(outputs · dy) (float64, inference behaviour so the loss is deterministic)."""
    rng = np.random.default_rng(seed)
    xs = [np.asarray(x, np.float64) for x in xs]
    outputs, _ = model._run(xs, training=False)
    dys = [rng.standard_normal(o.shape) for o in outputs]

    def loss():
        outs, _ = model._run(xs, training=False)
        return float(sum(np.sum(o * d) for o, d in zip(outs, dys)))

    _, tape = model._run(xs, training=False)
    model._backprop(tape, dys)
    variables = model.trainable_variables()
    assert variables, "the model has no trainable weights to check"
    for owner, key in variables:
        np.testing.assert_allclose(owner.grads[key], numerical_gradient(loss, owner.params[key]),
                                   rtol=1e-5, atol=1e-7, err_msg=f"{owner.name}.{key}")


def images(n=2, shape=(6, 5, 3), seed=1):
    return np.random.default_rng(seed).standard_normal((n, *shape))


@pytest.mark.parametrize("merge", ["add", "subtract", "multiply", "average", "maximum", "minimum",
                                   "concatenate"])
def test_merge_layers_backward_matches_finite_differences(merge):
    inputs = convnet.Input((6, 5, 3))
    left = layers.Conv2D(4, 3, padding="same", activation="tanh")(inputs)
    right = layers.Conv2D(4, 1)(inputs)
    merged = getattr(layers, merge)([left, right])
    outputs = layers.Dense(2)(layers.Flatten()(merged))
    check_model_gradients(convnet.Model(inputs, outputs), [images()])


def test_concatenate_axes_follow_the_users_layout():
    inputs = convnet.Input((6, 5, 3))
    wide = layers.concatenate([inputs, inputs], axis=2)  # width, in (H, W, C)
    tall = layers.Concatenate(axis=1)([inputs, inputs])
    model = convnet.Model(inputs, [wide, tall, layers.concatenate([inputs, inputs])])
    x = images()
    got = model.predict(x)
    np.testing.assert_array_equal(got[0], np.concatenate([x, x], axis=2))
    np.testing.assert_array_equal(got[1], np.concatenate([x, x], axis=1))
    np.testing.assert_array_equal(got[2], np.concatenate([x, x], axis=3))
    assert [t.shape for t in model.outputs] == [(None, 6, 10, 3), (None, 12, 5, 3), (None, 6, 5, 6)]


def test_shared_layer_sums_its_gradients():
    shared = layers.Dense(3, activation="tanh")
    a, b = convnet.Input((4,)), convnet.Input((4,))
    out = layers.add([shared(a), shared(b)])
    model = convnet.Model([a, b], out)
    assert len(shared._inbound_nodes) == 2
    rng = np.random.default_rng(2)
    check_model_gradients(model, [rng.standard_normal((5, 4)), rng.standard_normal((5, 4))])
    with pytest.raises(AttributeError, match="called 2 times"):
        shared.output


def test_nested_and_shared_models():
    block = convnet.Sequential([layers.Conv2D(3, 3, padding="same", activation="tanh"),
                                layers.BatchNormalization()], name="block")
    inputs = convnet.Input((6, 5, 3))
    first = layers.Conv2D(3, 1)(inputs)
    twice = block(block(first))  # one nested model called twice
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.add([twice, first])))
    model = convnet.Model(inputs, outputs)
    assert [layer.name for layer in model.layers][:3] == ["input_layer", "conv2d_1", "block"]
    check_model_gradients(model, [images()])


def test_feature_extraction_and_activations():
    model = convnet.Sequential([convnet.Input((6, 5, 3)), layers.Conv2D(4, 3, name="c"), layers.MaxPooling2D(2),
                                layers.Flatten(), layers.Dense(2, name="d")])
    extractor = convnet.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = images(3)
    maps = extractor.predict(x)
    assert [m.shape for m in maps] == [(3, 4, 3, 4), (3, 2, 1, 4), (3, 8), (3, 2)]
    np.testing.assert_allclose(maps[-1], model.predict(x))
    np.testing.assert_allclose(model.activations(x)["c"], maps[0])
    np.testing.assert_allclose(model.get_layer("c")(x), maps[0])  # a layer called on an array


def test_introspection():
    inputs = convnet.Input((4,), name="features")
    hidden = layers.Dense(3, name="hidden")
    norm = layers.BatchNormalization(name="norm")
    outputs = layers.Dense(2, name="head")(norm(hidden(inputs)))
    model = convnet.Model(inputs=inputs, outputs=outputs, name="probe")
    assert model.name == "probe" and model.inputs == [inputs] and model.outputs == [outputs]
    assert [layer.name for layer in model.layers] == ["features", "hidden", "norm", "head"]
    assert model.get_layer(index=1) is hidden and model.get_layer("norm") is norm
    assert hidden.input is inputs and hidden.output is norm.input
    assert [w.shape for w in model.weights] == [(4, 3), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    norm.trainable = False
    assert len(model.trainable_weights) == 4 and len(model.non_trainable_weights) == 4
    model.trainable = False
    assert all(not layer.trainable for layer in model.layers[1:]) and model.trainable_weights == []
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")


def test_graph_errors_are_clear():
    a, b = convnet.Input((4,)), convnet.Input((4,))
    with pytest.raises(ValueError, match="Graph disconnected"):
        convnet.Model(a, layers.add([layers.Dense(4)(a), b]))
    with pytest.raises(ValueError, match="one shape"):
        layers.add([layers.Dense(3)(a), layers.Dense(4)(b)])
    with pytest.raises(ValueError, match="Conv2D expects image input"):
        layers.Conv2D(2, 3)(a)
    with pytest.raises(ValueError, match="inputs and outputs"):
        convnet.Model(a)


def test_config_json_and_file_round_trips(tmp_path):
    shared = layers.Conv2D(3, 3, padding="same", name="shared")
    inputs = convnet.Input((6, 5, 3))
    inner = convnet.Sequential([layers.Conv2D(3, 1), layers.LeakyReLU(0.2)], name="inner")
    x = shared(inputs)
    y = shared(inner(x))
    z = layers.concatenate([x, y, layers.Residual([layers.Conv2D(3, 3, padding="same")])(y)])
    outputs = layers.Dense(2, activation="softmax")(layers.GlobalMaxPooling2D()(z))
    model = convnet.Model(inputs, outputs, name="roundtrip")
    x_data = images(4)
    expected = model.predict(x_data)

    config = model.get_config()
    json.dumps(config)  # plain JSON
    rebuilt = convnet.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x_data), expected)

    from_json = convnet.models.model_from_json(model.to_json())
    assert [layer.name for layer in from_json.layers] == [layer.name for layer in model.layers]

    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.save(tmp_path / "m.npz")
    loaded = convnet.models.load_model(tmp_path / "m.npz")
    np.testing.assert_allclose(loaded.predict(x_data), expected)
    assert loaded.compiled and type(loaded) is convnet.Model
    assert len(loaded.get_layer("shared")._inbound_nodes) == 2


def test_subclassed_model_traces_call():
    class TwoLayers(convnet.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(5, activation="relu")
            self.head = layers.Dense(2)

        def call(self, inputs, training=None):
            return self.head(self.hidden(inputs))

    model = TwoLayers()
    assert model.name == "two_layers"
    out = model(np.ones((3, 4)))
    assert out.shape == (3, 2) and model.count_params() == 4 * 5 + 5 + 5 * 2 + 2


def test_sequential_add_pop_and_input_shape_keep_weights():
    model = convnet.Sequential([layers.Dense(3, input_shape=(4,)), layers.Dense(2)])
    assert model.built and model.inputs[0].shape == (None, 4)
    before = model.get_weights()
    model.add(layers.Dense(1))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert model.pop().units == 1
    assert [w.shape for w in model.get_weights()] == [w.shape for w in before]
    model.build((None, 4))
    with pytest.raises(ValueError, match="expects input of shape"):
        model.predict(np.ones((2, 5)))


def test_multi_input_multi_output_training_logs():
    image, meta = convnet.Input((6, 5, 3), name="image"), convnet.Input((2,), name="meta")
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(image))
    joined = layers.concatenate([x, meta])
    kind = layers.Dense(3, activation="softmax", name="kind")(joined)
    score = layers.Dense(1, name="score")(joined)
    model = convnet.Model([image, meta], [kind, score])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics={"kind": ["accuracy"], "score": []})
    rng = np.random.default_rng(0)
    xs = {"image": images(12), "meta": rng.standard_normal((12, 2))}
    ys = [rng.integers(0, 3, 12), rng.standard_normal((12, 1))]
    history = model.fit(xs, ys, batch_size=4, epochs=2, verbose=0, validation_data=(xs, ys))
    assert set(history.history) == {"loss", "kind_loss", "score_loss", "kind_accuracy",
                                    "val_loss", "val_kind_loss", "val_score_loss", "val_kind_accuracy"}
    logs = model.evaluate(xs, ys, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["kind_loss"] + 0.5 * logs["score_loss"])
    assert [p.shape for p in model.predict(xs)] == [(12, 3), (12, 1)]


def test_an_output_without_loss_gets_no_stale_update():
    inputs = convnet.Input((3,))
    used, unused = layers.Dense(2, name="used"), layers.Dense(2, name="unused")
    model = convnet.Model(inputs, [used(inputs), unused(inputs)])
    model.compile(optimizer="sgd", loss={"used": "mse", "unused": "mse"}, loss_weights={"used": 1.0, "unused": 0.0})
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    model.train_on_batch(x, [y, y])
    model.compile(optimizer="sgd", loss="mse")
    inner = convnet.Model(inputs, used(inputs))
    inner.compile(optimizer="sgd", loss="mse")
    before = unused.get_weights()
    inner.train_on_batch(x, y)  # `unused` is not in this model: its old gradient must not be applied
    for old, new in zip(before, unused.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_freezing_mid_training_keeps_each_weights_own_optimizer_state():
    for optimizer in (convnet.optimizers.SGD(0.1, momentum=0.9), convnet.optimizers.Adam(0.01)):
        a = layers.Dense(3, name="a")
        b = layers.Dense(3, name="b")  # same shapes as a: slots must not swap
        inputs = convnet.Input((3,))
        model = convnet.Model(inputs, b(a(inputs)))
        model.compile(optimizer=optimizer, loss="mse")
        x, y = np.random.default_rng(0).standard_normal((8, 3)), np.zeros((8, 3))
        model.train_on_batch(x, y)
        a.trainable = False
        frozen = a.get_weights()
        model.train_on_batch(x, y)  # raised "operands could not be broadcast" when slots were by position
        for old, new in zip(frozen, a.get_weights()):
            np.testing.assert_array_equal(old, new)
        assert optimizer._slots[id(b.params["kernel"])][0] is b.params["kernel"]


def test_keras_guides_toy_resnet_and_resnet20_train_as_written():
    """The guide's own compile and fit lines, with arrays of CIFAR-10's shapes for the data."""
    from tests.convnet.keras_scripts import resnet20, toy_resnet

    keras = convnet  # the port: `import convnet as keras`
    convnet.set_floatx("float32")
    rng = np.random.default_rng(0)
    x_train = rng.random((96, 32, 32, 3), dtype=np.float32)
    y_labels = rng.integers(0, 10, 96)
    y_train = np.eye(10, dtype=np.float32)[y_labels]

    model = toy_resnet(keras)
    assert model.count_params() == 223_242
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
    history = model.fit(x_train, y_train, batch_size=64, epochs=1, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}  # named as given, as Keras

    model = resnet20(keras)
    assert model.count_params() == 274_442
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=["accuracy"])
    history = model.fit(x_train[:32], y_train[:32], batch_size=16, epochs=1, validation_data=(x_train[32:48],
                                                                                          y_train[32:48]),
                        shuffle=True, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    scores = model.evaluate(x_train[:16], y_train[:16], verbose=0)
    assert len(scores) == 2


def test_summary_lists_inputs_and_what_each_layer_reads():
    inputs = convnet.Input((6, 5, 3), name="img")
    x = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    y = layers.Conv2D(4, 1, name="b")(inputs)
    model = convnet.Model(inputs, layers.add([x, y], name="sum"))
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "img (InputLayer)" in text and "(None, 6, 5, 3)" in text
    assert "sum (Add)" in text and "a[0][0], b[0][0]" in text and "Connected to" in text
    assert " Total params: 128" in text  # 3·3·3·4 + 4 + 3·4 + 4
