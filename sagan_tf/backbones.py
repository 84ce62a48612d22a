"""Feature extractors for FID/KID/IS.

- `InceptionGraph`: the standard FID network, the 2015-12-05 Inception GraphDef
  (`classify_image_graph_def.pb`) used by the TTUR reference code and TF-GAN:
  pool_3 (2048-d) for FID/KID, softmax logits (1008) for IS. Numbers are
  comparable with papers. Loaded from a local file, or, without one,
  downloaded once into the cache (`sagan_tf.downloads`).
- `KerasInceptionV3`: Keras InceptionV3 with ImageNet weights, when they can be
  loaded; the numbers are *not* comparable with papers.
- `DatasetClassifier`: offline; a small CNN trained on the labelled dataset it
  scores (mnist5k's train split, or 80% of a folder's class sub-folders) and
  cached, whose penultimate features give a "classifier FID/KID" (and its logits
  a "classifier IS" and class accuracy), comparable only with itself.

Every backbone maps images in [-1, 1] (NHWC, 1 or 3 channels) to
`(features (B, d), logits (B, k))`.
"""

import os

import numpy as np
import tensorflow as tf

from sagan_tf.errors import UserError
from sagan_tf.names import BACKBONES
from sagan_tf.visualize import to_rgb

INCEPTION_INPUT = "ExpandDims:0"
INCEPTION_POOL = "pool_3:0"
INCEPTION_WEIGHTS = "softmax/weights:0"
INCEPTION_BIASES = "softmax/biases:0"


class BackboneError(UserError, RuntimeError):
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


def _digit_model():
    """The digit classifier: two convs, 128 features, 10 logits (32x32 grayscale)."""
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


def _folder_model(size, num_classes):
    """The folder classifier: three stages of two 3x3 convs with batch norm (32, 64,
    128 channels, 2x2 max-pooled), global average pooling, 128 features, logits."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = inputs
    for width in (32, 64, 128):
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)                # (B, S/2, S/2, width)
    x = keras.layers.GlobalAveragePooling2D()(x)          # (B, 128)
    features = keras.layers.Dense(128, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Dropout(0.3)(features))
    return keras.Model(inputs, [features, logits])


def default_cache_dir():
    from sagan_tf import downloads

    return downloads.cache_dir()


def _fit(model, images, labels, epochs, augment=(), schedule=False, smoothing=0.0):
    """Trains `model`'s logits on (images in [-1, 1], int labels) with cross-entropy,
    through the Keras augmentation layers `augment` (seeded by the caller, with
    `keras.utils.set_random_seed`, before `model` is built). Plain Adam (1e-3), or
    with `schedule` AdamW (weight decay 1e-4) whose rate decays from 2e-3 to 0 on a
    cosine; `smoothing`: label smoothing."""
    import keras

    logits = model(keras.Sequential(list(augment))(model.input))[1] if augment else model.outputs[1]
    trainer = keras.Model(model.input, logits)
    if schedule:
        steps = epochs * -(-len(labels) // 64)
        optimizer = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(2e-3, steps),
                                           weight_decay=1e-4)
    else:
        optimizer = keras.optimizers.Adam(1e-3)
    if smoothing:
        num_classes = model.outputs[1].shape[-1]
        labels = keras.utils.to_categorical(labels, num_classes)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer.compile(optimizer, loss)
    trainer.fit(images, labels, batch_size=64, epochs=epochs, verbose=0)


def _save_atomically(model, path, meta=None):
    import json

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.keras"
    model.save(tmp)
    if meta is not None:
        with open(path + ".json.tmp", "w") as f:
            json.dump(meta, f, indent=1)
        os.replace(path + ".json.tmp", path + ".json")
    os.replace(tmp, path)


def _digits_spec():
    """The dataset the classifier is trained on when none is named: mnist5k."""
    from sagan_tf import data

    return data.DataSpec("mnist5k", 32, 1)


def heldout_split(labels, fraction, seed):
    """(train rows, held-out rows) of `labels`: per class, `fraction` of its images
    (rounded, at least one of a class with two or more) drawn with `seed`."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    heldout = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) >= 2:
            heldout.extend(rows[:max(1, int(round(fraction * len(rows))))])
    heldout = np.sort(np.asarray(heldout, np.int64))
    return np.setdiff1d(np.arange(len(labels)), heldout), heldout


class DatasetClassifier:
    """Offline backbone: a CNN trained on the labelled dataset it scores (cached).

    Its penultimate features give a "classifier FID/KID" (and its logits a
    "classifier IS" and the class accuracy of conditional samples), comparable
    only with other scores of the same classifier. Two cases:

    - `mnist5k`: the digit classifier, trained on mnist5k's train split (4,500
      digits, 8 epochs); `accuracy` on the 500 held-out digits.
    - `folder:PATH` with class sub-folders: a colour CNN (`_folder_model`) trained
      at 32 px (64 px for images of 64 px and up) on 80% of each class's images,
      drawn with a fixed seed, with random mirror images, shifts and zooms, label
      smoothing 0.1 and AdamW on a cosine schedule, for `FOLDER_EPOCHS`;
      `accuracy` on the other 20%. It is cached by the folder's content (every
      file's bytes, path inside the folder and class) and the decode settings, so
      a changed folder trains a new one and a copy elsewhere reuses it.

    Args:
        spec: the `sagan_tf.data.DataSpec` of the dataset (mnist5k or a folder;
            its background and crop are used, its size picks the resolution).
        cache_dir: where trained classifiers are kept (default: the download cache).
        seed: training seed.
    """

    name = "classifier"
    comparable_with_papers = False
    feature_dim = 128
    classifies_dataset = True  # its logits are the dataset's classes: class accuracy applies
    FOLDER_EPOCHS = 80
    HELDOUT = 0.2
    SPLIT_SEED = 29

    def __init__(self, spec=None, cache_dir=None, seed=0):
        spec = spec or _digits_spec()
        self.cache_dir = cache_dir or default_cache_dir()
        if spec.dataset == "mnist5k":
            self._digits(seed)
        elif spec.dataset.startswith("folder:"):
            self._folder(spec, seed)
        else:
            raise BackboneError(f"the classifier backbone learns from a labelled dataset it can "
                                f"read offline (mnist5k, or folder:PATH with class sub-folders), "
                                f"not {spec.dataset}; use inception_graph")
        self.label = (f"classifier FID/KID/IS ({self.what} CNN features): comparable only with "
                      "itself, not with papers")

    def _digits(self, seed, epochs=8):
        import keras

        from sagan_tf import data

        self.what, self.resolution, self.channels = "mnist5k", 32, 1
        self.class_names = tuple(str(d) for d in range(10))
        path = os.path.join(self.cache_dir, f"mnist5k_classifier_s{seed}_e{epochs}.keras")
        test_x, test_y = data.load_mnist5k("test")
        test_x = self._pad_digits(test_x)
        if os.path.exists(path):
            model = keras.saving.load_model(path)
        else:
            from absl import logging

            logging.info("training the offline classifier backbone on mnist5k's train split "
                         "(once, about half a minute; cached as %s)", path)
            train_x, train_y = data.load_mnist5k("train")
            keras.utils.set_random_seed(seed)
            model = _digit_model()
            _fit(model, self._pad_digits(train_x), train_y, epochs)
            _save_atomically(model, path)
        self._model = model
        logits = np.asarray(model(test_x, training=False)[1])
        self.accuracy = float((logits.argmax(1) == test_y).mean())
        self.num_heldout = len(test_y)

    @staticmethod
    def _pad_digits(digits_uint8):
        x = np.pad(digits_uint8, ((0, 0), (2, 2), (2, 2), (0, 0))).astype(np.float32)
        return x / 127.5 - 1.0

    def _folder(self, spec, seed):
        import dataclasses
        import hashlib
        import json

        import keras

        from sagan_tf import data

        root = spec.dataset[len("folder:"):]
        self.what, self.channels = f"folder {os.path.basename(os.path.normpath(root))}", 3
        self.resolution = 32 if spec.image_size <= 32 else 64
        spec = dataclasses.replace(spec, image_size=self.resolution, channels=3,
                                   folder_labels=True, subset=None, split="train")
        try:
            paths, labels, classes, _, _, _ = data.scan_folder(root, self.resolution, True)
        except data.DataError as e:
            raise BackboneError(f"the classifier backbone learns from the folder's class "
                                f"sub-folders: {e}; use inception_graph for a folder without "
                                "classes (or --eval_every=0: training without evaluation)") \
                from None
        if len(classes) < 2:
            raise BackboneError(f"image folder {root!r} has one class sub-folder "
                                f"({classes[0]}); the classifier backbone needs two or more to "
                                "learn features (use inception_graph, or --eval_every=0: "
                                "training without evaluation)")
        self.class_names = tuple(classes)
        digest = hashlib.sha256(json.dumps(dict(
            recipe=2, epochs=self.FOLDER_EPOCHS, heldout=self.HELDOUT, seed=seed,
            split_seed=self.SPLIT_SEED, resolution=self.resolution, crop=spec.crop,
            background=list(spec.background))).encode())
        for path, label in zip(paths, labels):
            digest.update(os.path.relpath(os.fsdecode(path), root).encode("utf-8", "replace"))
            digest.update(f":{label}:".encode())
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
        path = os.path.join(self.cache_dir, f"folder_classifier_{digest.hexdigest()[:20]}.keras")
        if os.path.exists(path) and os.path.exists(path + ".json"):
            model = keras.saving.load_model(path)
            with open(path + ".json") as f:
                meta = json.load(f)
        else:
            from absl import logging

            logging.info("training the classifier backbone on %d images of %s (%d classes; "
                         "once, cached as %s)", len(paths), root, len(classes), path)
            images, labels, _ = data.load_images(spec)
            images = images.astype(np.float32) / 127.5 - 1.0
            train, heldout = heldout_split(labels, self.HELDOUT, self.SPLIT_SEED)
            keras.utils.set_random_seed(seed)
            model = _folder_model(self.resolution, len(classes))
            _fit(model, images[train], labels[train], self.FOLDER_EPOCHS, schedule=True,
                 smoothing=0.1, augment=(
                     keras.layers.RandomFlip("horizontal", seed=seed),
                     keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed),
                     keras.layers.RandomZoom(0.1, fill_mode="nearest", seed=seed)))
            logits = np.asarray(model.predict(images[heldout], batch_size=256, verbose=0)[1])
            meta = dict(dataset=spec.dataset, classes=list(classes), images=len(labels),
                        heldout=len(heldout),
                        accuracy=float((logits.argmax(1) == labels[heldout]).mean()))
            _save_atomically(model, path, meta)
            logging.info("classifier backbone: %.3f accuracy on %d held-out images of %s",
                         meta["accuracy"], len(heldout), root)
        self._model = model
        self.accuracy, self.num_heldout = meta["accuracy"], meta["heldout"]

    def __call__(self, images):
        images = check_range(images)
        if self.channels == 1 and images.shape[-1] == 3:
            images = tf.reduce_mean(images, axis=-1, keepdims=True)
        elif self.channels == 3:
            images = to_rgb(images)
        if images.shape[1] != self.resolution:
            images = tf.image.resize(images, [self.resolution] * 2, antialias=True)
        features, logits = self._model(images, training=False)
        return np.asarray(features), np.asarray(logits)


def check_fits(name, dataset):
    """Raises BackboneError when backbone `name` cannot score images of `dataset`
    (the classifier reads mnist5k and labelled folders only)."""
    if name == "classifier" and not (dataset == "mnist5k" or dataset.startswith("folder:")):
        others = [b for b in BACKBONES if b != "classifier"]
        raise BackboneError(f"the classifier backbone is trained on the dataset it scores and "
                            f"reads mnist5k and labelled folders (folder:PATH with class "
                            f"sub-folders) only, not {dataset}; use one of {others} "
                            "(inception_graph for FIDs comparable with papers)")


def get(name, inception_graph=None, keras_weights="imagenet", cache_dir=None, data_spec=None,
        classifier_dataset=None):
    """The backbone `name`. The classifier is trained on `data_spec`'s dataset (default:
    mnist5k), or on `classifier_dataset` read with `data_spec`'s settings; then its
    classes are not the scored data's, and it reports no class accuracy."""
    if name == "classifier":
        import dataclasses

        from sagan_tf import data

        spec = data_spec or _digits_spec()
        if classifier_dataset and classifier_dataset != spec.dataset:
            try:
                spec = dataclasses.replace(spec, dataset=classifier_dataset)
            except data.DataError as e:
                raise BackboneError(f"classifier dataset: {e}") from None
            check_fits(name, classifier_dataset)
            classifier = DatasetClassifier(spec, cache_dir)
            classifier.classifies_dataset = False
            return classifier
        return DatasetClassifier(spec, cache_dir)
    if name == "inception_graph":
        return InceptionGraph(inception_graph)
    if name == "keras_inception":
        return KerasInceptionV3(keras_weights)
    raise BackboneError(f"unknown backbone {name!r}; use one of {list(BACKBONES)}")
