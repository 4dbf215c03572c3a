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


def image_classification_from_scratch(lib, data_dir, image_size=(180, 180), batch_size=128, epochs=25,
                                      workdir="."):
    """keras.io's "Image classification from scratch" (Keras 3 version), verbatim but for ``lib``, the
    data folder, the sizes and ``tf_data.AUTOTUNE`` (``lib.data.AUTOTUNE``); returns what it printed."""
    import os

    import numpy as np

    keras, layers, tf_data = lib, lib.layers, lib.data
    train_ds, val_ds = keras.utils.image_dataset_from_directory(
        data_dir,
        validation_split=0.2,
        subset="both",
        seed=1337,
        image_size=image_size,
        batch_size=batch_size,
    )
    shown = []
    for images, labels in train_ds.take(1):
        for i in range(min(9, len(images))):
            shown.append((np.array(images[i]).astype("uint8"), int(labels[i])))

    data_augmentation_layers = [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
    ]

    def data_augmentation(images):
        for layer in data_augmentation_layers:
            images = layer(images)
        return images

    for images, _ in train_ds.take(1):
        for i in range(9):
            augmented_images = data_augmentation(images)
            shown.append(np.array(augmented_images[0]).astype("uint8"))

    # Apply `data_augmentation` to the training images.
    train_ds = train_ds.map(
        lambda img, label: (data_augmentation(img), label),
        num_parallel_calls=tf_data.AUTOTUNE,
    )
    # Prefetching samples in GPU memory helps maximize GPU utilization.
    train_ds = train_ds.prefetch(tf_data.AUTOTUNE)
    val_ds = val_ds.prefetch(tf_data.AUTOTUNE)

    def make_model(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)

        # Entry block
        x = layers.Rescaling(1.0 / 255)(inputs)
        x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)

        previous_block_activation = x  # Set aside residual

        for size in [256, 512, 728]:
            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)

            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)

            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

            # Project residual
            residual = layers.Conv2D(size, 1, strides=2, padding="same")(
                previous_block_activation
            )
            x = layers.add([x, residual])  # Add back residual
            previous_block_activation = x  # Set aside next residual

        x = layers.SeparableConv2D(1024, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)

        x = layers.GlobalAveragePooling2D()(x)
        if num_classes == 2:
            units = 1
        else:
            units = num_classes

        x = layers.Dropout(0.25)(x)
        # We specify activation=None so as to return logits
        outputs = layers.Dense(units, activation=None)(x)
        return keras.Model(inputs, outputs)

    model = make_model(input_shape=image_size + (3,), num_classes=2)
    keras.utils.plot_model(model, to_file=os.path.join(workdir, "model.png"), show_shapes=True)

    callbacks = [
        keras.callbacks.ModelCheckpoint(os.path.join(workdir, "save_at_{epoch}.keras")),
    ]
    model.compile(
        optimizer=keras.optimizers.Adam(3e-4),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="acc")],
    )
    history = model.fit(
        train_ds,
        epochs=epochs,
        callbacks=callbacks,
        validation_data=val_ds,
    )

    img = keras.utils.load_img(os.path.join(data_dir, "Cat", sorted(os.listdir(os.path.join(data_dir, "Cat")))[0]),
                               target_size=image_size)
    img_array = keras.utils.img_to_array(img)
    img_array = keras.ops.expand_dims(img_array, 0)  # Create batch axis

    predictions = model.predict(img_array)
    score = float(keras.ops.sigmoid(predictions[0][0]))
    return model, history, score, shown


def tensorflow_images_tutorial(lib, data_dir, img_height=180, img_width=180, batch_size=32, epochs=10):
    """The TensorFlow "Image classification" tutorial (flowers), as ported with ``import convnet as keras``:
    ``tf.keras`` → ``lib``, ``tf.data.AUTOTUNE`` → ``lib.data.AUTOTUNE``, ``.numpy()`` dropped (the batches
    are NumPy arrays), ``tf.expand_dims`` / ``tf.nn.softmax`` → ``lib.ops``. Returns both models' histories
    and the last prediction."""
    import os

    import numpy as np

    keras, layers, Sequential = lib, lib.layers, lib.Sequential
    train_ds = keras.utils.image_dataset_from_directory(
        data_dir,
        validation_split=0.2,
        subset="training",
        seed=123,
        image_size=(img_height, img_width),
        batch_size=batch_size)
    val_ds = keras.utils.image_dataset_from_directory(
        data_dir,
        validation_split=0.2,
        subset="validation",
        seed=123,
        image_size=(img_height, img_width),
        batch_size=batch_size)
    class_names = train_ds.class_names
    for image_batch, labels_batch in train_ds:
        assert image_batch.shape == (batch_size, img_height, img_width, 3)
        assert labels_batch.shape == (batch_size,)
        break

    AUTOTUNE = keras.data.AUTOTUNE
    train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
    val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)

    normalization_layer = layers.Rescaling(1./255)
    normalized_ds = train_ds.map(lambda x, y: (normalization_layer(x), y))
    image_batch, labels_batch = next(iter(normalized_ds))
    first_image = image_batch[0]
    value_range = (np.min(first_image), np.max(first_image))

    num_classes = len(class_names)
    model = Sequential([
        layers.Rescaling(1./255, input_shape=(img_height, img_width, 3)),
        layers.Conv2D(16, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation='relu'),
        layers.Dense(num_classes)
    ])
    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    model.summary()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs)
    acc = history.history['accuracy']
    val_acc = history.history['val_accuracy']
    loss = history.history['loss']
    val_loss = history.history['val_loss']
    assert len(acc) == len(val_acc) == len(loss) == len(val_loss) == epochs

    data_augmentation = keras.Sequential(
      [
        layers.RandomFlip("horizontal",
                          input_shape=(img_height,
                                       img_width,
                                       3)),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.1),
      ]
    )
    for images, _ in train_ds.take(1):
        for i in range(9):
            augmented_images = data_augmentation(images)
            assert augmented_images[0].astype("uint8").shape == (img_height, img_width, 3)

    model = Sequential([
      data_augmentation,
      layers.Rescaling(1./255),
      layers.Conv2D(16, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.Conv2D(32, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.Conv2D(64, 3, padding='same', activation='relu'),
      layers.MaxPooling2D(),
      layers.Dropout(0.2),
      layers.Flatten(),
      layers.Dense(128, activation='relu'),
      layers.Dense(num_classes, name="outputs")
    ])
    model.compile(optimizer='adam',
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    model.summary()
    augmented_history = model.fit(train_ds, validation_data=val_ds, epochs=epochs)

    first = sorted(os.listdir(os.path.join(data_dir, class_names[0])))[0]
    img = keras.utils.load_img(os.path.join(data_dir, class_names[0], first), target_size=(img_height, img_width))
    img_array = keras.utils.img_to_array(img)
    img_array = keras.ops.expand_dims(img_array, 0)  # Create a batch
    predictions = model.predict(img_array)
    score = keras.ops.softmax(predictions[0])
    message = ("This image most likely belongs to {} with a {:.2f} percent confidence."
               .format(class_names[np.argmax(score)], 100 * np.max(score)))
    return history, augmented_history, value_range, message
