"""python -m sagan_tf.evaluate: FID, KID and IS of an exported generator, one JSON line.

    python -m sagan_tf.evaluate --model=savedmodels/mnist5k --dataset=mnist5k --split=test
    python -m sagan_tf.evaluate --model=savedmodels/celeba --dataset=celeb_a \
        --backbone=inception_graph --inception_graph=classify_image_graph_def.pb --num_samples=50000

Real statistics come from the dataset split, fake ones from the SavedModel's
`generate` signature; both are streamed in batches (see `sagan_tf.metrics`).
"""

import json
import sys

from sagan_tf import runtime  # noqa: E402  (before TensorFlow is imported)

runtime.setup()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from sagan_tf import backbones, data, metrics  # noqa: E402


def _stream(batches, backbone, num, inception_score=None, predictions=None):
    """Feature statistics of the first `num` images of `batches`, an iterator of
    (images, labels or None); `predictions` (a list) collects (logits, labels)."""
    stats = metrics.FeatureStats(backbone.feature_dim)
    report = max(num // 10, 5000)  # progress lines on long runs only
    for images, labels in batches:
        images = images[:num - stats.n]
        features, logits = backbone(images)
        stats.update(features)
        if inception_score is not None:
            inception_score.update(logits)
        if predictions is not None and labels is not None:
            predictions.append((logits, np.asarray(labels)[:len(logits)]))
        if stats.n // report > (stats.n - len(images)) // report and stats.n < num:
            logging.info("features of %d / %d images", stats.n, num)
        if stats.n >= num:
            break
    return stats


def real_batches(spec, batch_size):
    for images, labels in data.input_fn(spec, batch_size, repeat=False):
        yield images, labels


def real_stats(backbone, real_spec, num_real, batch_size=100):
    """Streaming feature statistics of up to `num_real` images of a dataset split."""
    return _stream(real_batches(real_spec, batch_size), backbone, num_real)


def evaluate(sample_fn, backbone, real, num_samples, batch_size=100, kid_subsets=100,
             kid_subset_size=1000, k=3):
    """Metrics of `sample_fn(n, offset) -> (images in [-1, 1], labels or None)`
    against real `FeatureStats`.

    Returns a dict: FID, KID, IS, precision and recall (k-th neighbour
    manifolds, `k`) and, for labelled samples scored by a backbone that
    classifies the dataset's classes, `class_accuracy` (the share of samples
    of label y that the backbone reads as y; None otherwise). `warnings` lists
    what makes the numbers weaker (few samples).
    """
    def fake_batches():
        offset = 0
        while True:
            n = min(batch_size, num_samples - offset)
            yield sample_fn(n, offset)
            offset += n

    inception_score = metrics.InceptionScore(num_samples, _num_logits(backbone), splits=10)
    predictions = [] if getattr(backbone, "classifies_dataset", False) else None
    fake = _stream(fake_batches(), backbone, num_samples, inception_score, predictions)
    warnings = []
    for name, stats in (("real", real), ("fake", fake)):
        if stats.n <= backbone.feature_dim:
            warnings.append(
                f"only {stats.n} {name} samples for {backbone.feature_dim}-d features: the "
                "covariance is rank-deficient, so FID is biased upward and comparable only "
                "between runs with the same sample counts")
    kid_mean, kid_std = metrics.kid(real.kid_features, fake.kid_features, kid_subsets,
                                    kid_subset_size)
    is_mean, is_std = inception_score.result()
    precision, recall = metrics.precision_recall(real.kid_features, fake.kid_features, k)
    accuracy = None
    if predictions:
        accuracy = round(metrics.class_accuracy(np.concatenate([p[0] for p in predictions]),
                                                np.concatenate([p[1] for p in predictions])), 4)
    return {"backbone": backbone.name, "label": backbone.label,
            "comparable_with_papers": backbone.comparable_with_papers,
            "fid": round(metrics.fid(real, fake), 4), "kid": round(kid_mean, 6),
            "kid_std": round(kid_std, 6), "is": round(is_mean, 4), "is_std": round(is_std, 4),
            "precision": round(precision, 4), "recall": round(recall, 4),
            "class_accuracy": accuracy, "num_real": real.n, "num_fake": fake.n,
            "warnings": warnings}


def _sample_labels(n, num_classes, seed, offset):
    if not num_classes:
        return None
    return tf.random.stateless_uniform([n], seed=[seed + 7920, offset], maxval=num_classes,
                                       dtype=tf.int32)


def generator_sampler(generator, seed=0):
    """sample_fn of a Keras generator (inference mode, stateless seeded z and labels)."""
    def sample(n, offset):
        z = tf.random.stateless_normal([n, generator.z_dim], seed=[seed + 7919, offset])
        labels = _sample_labels(n, generator.num_classes, seed, offset)
        return generator(z, labels, training=False), labels
    return sample


def _num_logits(backbone):
    probe = backbone(tf.zeros([1, 32, 32, 3]))
    return probe[1].shape[-1]


def savedmodel_sampler(path, truncation=2.0, seed=0):
    """sample_fn of an exported model's `generate` signature (uint8 -> [-1, 1])."""
    from sagan_tf.generate import load_model

    loaded = load_model(path)
    generate = loaded.signatures["generate"]
    num_classes = int(loaded.num_classes.numpy())

    def sample(n, offset):
        kwargs = dict(seed=tf.constant(seed * 1_000_003 + offset, tf.int64),
                      num=tf.constant(n, tf.int32), truncation=tf.constant(truncation, tf.float32))
        labels = _sample_labels(n, num_classes, seed, offset)
        if labels is not None:
            kwargs["labels"] = labels
        images = generate(**kwargs)["images"]
        return data.to_model_range(images), labels

    return sample, int(loaded.image_size.numpy())


FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_string("model", None, "Exported model: savedmodels/NAME or a version directory.")
    flags.DEFINE_string("dataset", "mnist5k", "Real data (as in training).")
    flags.DEFINE_string("split", None, "Real split (default: test for mnist5k, train otherwise).")
    flags.DEFINE_integer("num_samples", 5000, "Generated samples.", lower_bound=10)
    flags.DEFINE_integer("num_real", None, "Real samples (default: --num_samples, or the split).",
                         lower_bound=4)
    flags.DEFINE_enum("backbone", "classifier", list(backbones.BACKBONES), "Feature network.")
    flags.DEFINE_string("inception_graph", None, "Path of classify_image_graph_def.pb.")
    flags.DEFINE_string("keras_inception_weights", "imagenet", "Keras InceptionV3 weights.")
    flags.DEFINE_float("truncation", 2.0, "Truncation of z, in (0, 2].", lower_bound=1e-3,
                       upper_bound=2.0)
    flags.DEFINE_integer("batch_size", 100, "Batch size.", lower_bound=1, upper_bound=1024)
    flags.DEFINE_integer("seed", 0, "Sampling seed.", lower_bound=0, upper_bound=2**31 - 1)
    flags.DEFINE_string("data_dir", None, "TFDS data directory.")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    from sagan_tf.generate import GenerateError, resolve_model_dir

    try:
        path = resolve_model_dir(FLAGS.model)
        sample, size = savedmodel_sampler(path, FLAGS.truncation, FLAGS.seed)
        split = FLAGS.split or ("test" if FLAGS.dataset == "mnist5k" else "train")
        spec = data.DataSpec(FLAGS.dataset, size, 3, split=split, data_dir=FLAGS.data_dir,
                             deterministic=True)
        backbone = backbones.get(FLAGS.backbone, FLAGS.inception_graph, FLAGS.keras_inception_weights)
        real = real_stats(backbone, spec, FLAGS.num_real or FLAGS.num_samples, FLAGS.batch_size)
        result = evaluate(sample, backbone, real, FLAGS.num_samples, FLAGS.batch_size)
    except (GenerateError, data.DataError, backbones.BackboneError, metrics.MetricError) as e:
        sys.exit(f"error: {e}")
    for warning in result["warnings"]:
        logging.warning("%s", warning)
    result.update(model=path, dataset=FLAGS.dataset, split=split)
    print(json.dumps(result))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
