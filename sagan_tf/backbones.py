"""Feature extractors for FID/KID/IS.

- `InceptionGraph`: the standard FID network, the 2015-12-05 Inception GraphDef
  (`classify_image_graph_def.pb`) used by the TTUR reference code and TF-GAN:
  pool_3 (2048-d) for FID/KID, softmax logits (1008) for IS. Numbers are
  comparable with papers. Loaded from a local file, or, without one,
  downloaded once into the cache (`sagan_tf.downloads`).
- `KerasInceptionV3`: Keras InceptionV3 with ImageNet weights, when they can be
  loaded; the numbers are *not* comparable with papers.
- `MnistClassifier`: offline; a small CNN trained on the mnist5k train split and
  cached, whose penultimate features give a "classifier FID/KID" (and its logits
  a "classifier IS"), comparable only with itself.

Every backbone maps images in [-1, 1] (NHWC, 1 or 3 channels) to
`(features (B, d), logits (B, k))`.
"""

import os

import numpy as np
import tensorflow as tf

from sagan_tf.visualize import to_rgb

INCEPTION_INPUT = "ExpandDims:0"
INCEPTION_POOL = "pool_3:0"
INCEPTION_WEIGHTS = "softmax/weights:0"
INCEPTION_BIASES = "softmax/biases:0"
BACKBONES = ("classifier", "inception_graph", "keras_inception")


class BackboneError(RuntimeError):
    """A backbone that cannot be loaded, reported as one line."""


def check_range(images):
    images = tf.convert_to_tensor(images, tf.float32)
    low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
    if low < -1.0001 or high > 1.0001:
        raise BackboneError(f"images must be in [-1, 1]; got values in [{low:.3g}, {high:.3g}]")
    return images


def check_inception_graph(graph_bytes, origin):
    """The GraphDef in `graph_bytes`; raises BackboneError (naming `origin`) unless
    it parses and has the FID Inception graph's tensors, with softmax weights of
    shape (2048, 1008)."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(graph_bytes)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BackboneError(f"{origin} is not a GraphDef: {e}") from None
    nodes = {node.name: node for node in graph_def.node}
    missing = [t for t in (INCEPTION_INPUT, INCEPTION_POOL, INCEPTION_WEIGHTS, INCEPTION_BIASES)
               if t.split(":")[0] not in nodes]
    if missing:
        raise BackboneError(f"{origin} lacks the tensors {missing} of the FID Inception graph")
    weights = nodes[INCEPTION_WEIGHTS.split(":")[0]]
    shape = [d.size for d in weights.attr["value"].tensor.tensor_shape.dim]
    if shape != [2048, 1008]:
        raise BackboneError(f"{origin}: {INCEPTION_WEIGHTS} has shape {shape}, not the FID "
                            "Inception graph's [2048, 1008]")
    return graph_def


class InceptionGraph:
    """The FID Inception GraphDef from `path`: images are mapped to [0, 255],
    resized to 299x299 (bilinear) and fed in place of `ExpandDims:0`; the graph
    itself normalizes to [-1, 1] as in the TTUR code."""

    name = "inception_graph"
    label = "FID/KID/IS on the 2015 Inception graph (pool_3, logits): comparable with papers"
    comparable_with_papers = True

    def __init__(self, path=None, url=None):
        from sagan_tf import downloads

        if path is None:  # the cached download
            try:
                path = downloads.inception_graph_file(url or downloads.INCEPTION_URL)
            except downloads.DownloadError as e:
                raise BackboneError(str(e)) from None
        if not os.path.exists(path):
            raise BackboneError(f"Inception graph file {path!r} not found (leave "
                                "--inception_graph out to download it, or pass "
                                "classify_image_graph_def.pb from inception-2015-12-05.tgz)")
        with open(path, "rb") as f:
            graph_def = check_inception_graph(f.read(), path)

        def imported(images):
            pool, weights, biases = tf.compat.v1.import_graph_def(
                graph_def, input_map={INCEPTION_INPUT: images},
                return_elements=[INCEPTION_POOL, INCEPTION_WEIGHTS, INCEPTION_BIASES], name="")
            features = tf.reshape(pool, [tf.shape(images)[0], -1])
            return features, tf.matmul(features, weights) + biases

        self._fn = tf.compat.v1.wrap_function(
            imported, [tf.TensorSpec([None, 299, 299, 3], tf.float32)])
        self.feature_dim = int(self._fn.outputs[0].shape[-1] or 2048)

    @staticmethod
    def preprocess(images):
        """[-1, 1] NHWC -> [0, 255] float32, 299x299 bilinear, 3 channels."""
        images = (to_rgb(check_range(images)) + 1.0) * 127.5
        return tf.image.resize(images, [299, 299], method="bilinear")

    def __call__(self, images):
        features, logits = self._fn(self.preprocess(images))
        return features.numpy(), logits.numpy()


class KerasInceptionV3:
    """Keras InceptionV3 (ImageNet weights from `weights`: "imagenet" downloads)."""

    name = "keras_inception"
    label = "FID/KID/IS on Keras InceptionV3: NOT comparable with papers"
    comparable_with_papers = False
    feature_dim = 2048

    def __init__(self, weights="imagenet"):
        import keras

        try:
            model = keras.applications.InceptionV3(weights=weights, classifier_activation=None)
        except Exception as e:  # noqa: BLE001 - download or file errors
            raise BackboneError("cannot load Keras InceptionV3 ImageNet weights "
                                f"({' '.join(str(e).split())[:200]}); pass a local weights file")
        pool = model.get_layer("avg_pool").output
        self._model = keras.Model(model.input, [pool, model.output])

    @staticmethod
    def preprocess(images):
        images = tf.image.resize(to_rgb(check_range(images)), [299, 299], method="bilinear")
        return images  # InceptionV3 takes [-1, 1]

    def __call__(self, images):
        features, logits = self._model(self.preprocess(images), training=False)
        return np.asarray(features), np.asarray(logits)


def _classifier_model():
    import keras

    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    features = keras.layers.Dense(128, activation="relu", name="features")(x)
    logits = keras.layers.Dense(10, name="logits")(features)
    return keras.Model(inputs, [features, logits])


def default_cache_dir():
    from sagan_tf import downloads

    return downloads.cache_dir()


class MnistClassifier:
    """Offline backbone: a CNN trained on mnist5k's train split (cached).

    `accuracy` is its accuracy on the 500 held-out digits.
    """

    name = "classifier"
    label = "classifier FID/KID/IS (mnist5k CNN features): comparable only with itself, not with papers"
    comparable_with_papers = False
    feature_dim = 128
    classifies_dataset = True  # its logits are the 10 digit classes: class accuracy applies

    def __init__(self, cache_dir=None, epochs=8, seed=0):
        import keras

        from sagan_tf import data

        cache_dir = cache_dir or default_cache_dir()
        path = os.path.join(cache_dir, f"mnist5k_classifier_s{seed}_e{epochs}.keras")
        test_x, test_y = data.load_mnist5k("test")
        test_x = self._prepare(test_x)
        if os.path.exists(path):
            model = keras.saving.load_model(path)
        else:
            from absl import logging

            logging.info("training the offline classifier backbone on mnist5k's train split "
                         "(once, about half a minute; cached as %s)", path)
            keras.utils.set_random_seed(seed)
            train_x, train_y = data.load_mnist5k("train")
            model = _classifier_model()
            trainer = keras.Model(model.input, model.outputs[1])
            trainer.compile(keras.optimizers.Adam(1e-3),
                            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            trainer.fit(self._prepare(train_x), train_y, batch_size=64, epochs=epochs, verbose=0)
            os.makedirs(cache_dir, exist_ok=True)
            tmp = path + ".tmp.keras"
            model.save(tmp)
            os.replace(tmp, path)
        self._model = model
        logits = np.asarray(model(test_x, training=False)[1])
        self.accuracy = float((logits.argmax(1) == test_y).mean())

    @staticmethod
    def _prepare(digits_uint8):
        x = np.pad(digits_uint8, ((0, 0), (2, 2), (2, 2), (0, 0))).astype(np.float32)
        return x / 127.5 - 1.0

    def __call__(self, images):
        images = check_range(images)
        if images.shape[-1] == 3:
            images = tf.reduce_mean(images, axis=-1, keepdims=True)
        if images.shape[1] != 32:
            images = tf.image.resize(images, [32, 32], antialias=True)
        features, logits = self._model(images, training=False)
        return np.asarray(features), np.asarray(logits)


# Backbones trained on one dataset's images, which score nothing else meaningfully.
DATASET_BACKBONES = {"classifier": "mnist5k"}


def check_fits(name, dataset):
    """Raises BackboneError when backbone `name` cannot score images of `dataset`."""
    fits = DATASET_BACKBONES.get(name)
    if fits is not None and dataset != fits:
        others = [b for b in BACKBONES if b not in DATASET_BACKBONES]
        raise BackboneError(f"the {name} backbone is the {fits} digit classifier and scores "
                            f"{fits} only, not {dataset}; use one of {others} "
                            "(inception_graph for FIDs comparable with papers)")


def get(name, inception_graph=None, keras_weights="imagenet", cache_dir=None):
    if name == "classifier":
        return MnistClassifier(cache_dir)
    if name == "inception_graph":
        return InceptionGraph(inception_graph)
    if name == "keras_inception":
        return KerasInceptionV3(keras_weights)
    raise BackboneError(f"unknown backbone {name!r}; use one of {list(BACKBONES)}")
