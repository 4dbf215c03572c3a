"""Models from public Keras examples, written against a library argument (``convnet`` or
``keras``) exactly as a script ported with ``import convnet as keras`` runs them."""


def branchy(lib):
    """A skip connection, a Concatenate branch and a layer shared by two calls."""
    inputs = lib.Input((12, 12, 3), name="img")
    x = lib.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    shared = lib.layers.Conv2D(8, 3, padding="same", activation="tanh", name="shared")
    y = shared(shared(x))
    skip = lib.layers.add([x, y], name="skip")
    branch = lib.layers.Conv2D(4, 1, use_bias=False, name="branch")(x)  # feeds BatchNorm: no bias
    merged = lib.layers.concatenate([skip, branch], name="merge")
    z = lib.layers.BatchNormalization(name="bn")(merged)
    z = lib.layers.MaxPooling2D(2, name="pool")(z)
    z = lib.layers.GlobalAveragePooling2D(name="gap")(z)
    outputs = lib.layers.Dense(5, activation="softmax", name="head")(z)
    return lib.Model(inputs, outputs, name="branchy")


def toy_resnet(lib):
    """The keras.io functional-API guide's toy ResNet for CIFAR-10, verbatim but for ``lib``."""
    layers = lib.layers
    inputs = lib.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.add([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    return lib.Model(inputs, outputs, name="toy_resnet")


def resnet20(lib):
    """ResNet v1, depth 20, as in the keras.io CIFAR-10 ResNet example (he_normal, l2(1e-4))."""
    layers = lib.layers

    def resnet_layer(inputs, num_filters=16, kernel_size=3, strides=1, activation="relu",
                     batch_normalization=True):
        x = layers.Conv2D(num_filters, kernel_size=kernel_size, strides=strides, padding="same",
                          kernel_initializer="he_normal", kernel_regularizer=lib.regularizers.l2(1e-4))(inputs)
        if batch_normalization:
            x = layers.BatchNormalization()(x)
        if activation is not None:
            x = layers.Activation(activation)(x)
        return x

    inputs = lib.Input(shape=(32, 32, 3))
    num_filters = 16
    x = resnet_layer(inputs)
    for stack in range(3):
        for res_block in range(3):
            strides = 2 if stack > 0 and res_block == 0 else 1
            y = resnet_layer(x, num_filters, strides=strides)
            y = resnet_layer(y, num_filters, activation=None)
            if stack > 0 and res_block == 0:
                x = resnet_layer(x, num_filters, kernel_size=1, strides=strides, activation=None,
                                 batch_normalization=False)
            x = layers.add([x, y])
            x = layers.Activation("relu")(x)
        num_filters *= 2
    x = layers.AveragePooling2D(pool_size=8)(x)
    y = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax", kernel_initializer="he_normal")(y)
    return lib.Model(inputs=inputs, outputs=outputs)
