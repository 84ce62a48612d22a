"""FID, KID and IS of a generator against a dataset split: real statistics from
the split, fake ones from a sampler (a Keras generator or a SavedModel's
`generate` signature), both streamed in batches (see `sagan_tf.metrics`)."""

import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf import backbones, data, metrics


class Abandoned(Exception):
    """An evaluation stopped between two batches because `should_stop()` said so
    (a stop signal)."""


def _stream(batches, backbone, num, inception_score=None, predictions=None, should_stop=None):
    """Feature statistics of the first `num` images of `batches`, an iterator of
    (images, labels or None); `predictions` (a list) collects (logits, labels).
    Raises Abandoned when `should_stop()` turns true between batches."""
    stats = metrics.FeatureStats(backbone.feature_dim)
    report = max(num // 10, 5000)  # progress lines on long runs only
    for images, labels in batches:
        if should_stop is not None and should_stop():
            raise Abandoned(f"abandoned after {stats.n} of {num} images")
        images = images[:num - stats.n]
        features, logits = backbone(images)
        stats.update(features)
        stats.mirror.update(images, None if labels is None else np.asarray(labels)[:len(images)])
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
    """One pass over a split in batches (of the whole split when it is smaller)."""
    num_examples = data.describe(spec).num_examples
    if num_examples:
        batch_size = min(batch_size, num_examples)
    for images, labels in data.input_fn(spec, batch_size, repeat=False):
        yield images, labels


def real_stats(backbone, real_spec, num_real, batch_size=100):
    """Streaming feature statistics of up to `num_real` images of a dataset split."""
    return _stream(real_batches(real_spec, batch_size), backbone, num_real)


def evaluate(sample_fn, backbone, real, num_samples, batch_size=100, kid_subsets=100,
             kid_subset_size=1000, k=3, should_stop=None):
    """Metrics of `sample_fn(n, offset) -> (images in [-1, 1], labels or None)`
    against real `FeatureStats`.

    Returns a dict: FID, KID, IS, precision and recall (k-th neighbour
    manifolds, `k`) and, for labelled samples scored by a backbone that
    classifies the dataset's classes, `class_accuracy` (the share of samples
    of label y that the backbone reads as y; None otherwise) beside
    `real_class_accuracy`, the backbone's own accuracy on held-out real
    images, which bounds what samples can reach; `mirror_gap` and
    `real_mirror_gap`, the samples' and the real images' mean distance from their
    mirror images (`metrics.MirrorGap`), and, when both carry the same labels,
    `mirror_gap_by_class` ({label: [samples, real]}). `warnings` lists
    what makes the numbers weaker (few samples). Raises Abandoned when
    `should_stop()` turns true between two batches of samples.
    """
    def fake_batches():
        offset = 0
        while True:
            n = min(batch_size, num_samples - offset)
            yield sample_fn(n, offset)
            offset += n

    inception_score = metrics.InceptionScore(num_samples, _num_logits(backbone), splits=10)
    predictions = [] if getattr(backbone, "classifies_dataset", False) else None
    fake = _stream(fake_batches(), backbone, num_samples, inception_score, predictions,
                   should_stop)
    warnings = []
    for name, stats in (("real", real), ("fake", fake)):
        if stats.n <= backbone.feature_dim:
            warnings.append(
                f"only {stats.n} {name} samples for {backbone.feature_dim}-d features: the "
                "covariance is rank-deficient, so FID is biased upward and comparable only "
                "between runs with the same sample counts")
    if real.n < 2:
        raise metrics.MetricError(f"the real set gave {real.n} image(s); FID, KID and recall "
                                  "need at least 2 (a larger split or folder)")
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
            "class_accuracy": accuracy,
            "mirror_gap": _rounded(fake.mirror.mean()),
            "real_mirror_gap": _rounded(real.mirror.mean()),
            "mirror_gap_by_class": {
                label: [_rounded(fake.mirror.mean(label)), _rounded(real.mirror.mean(label))]
                for label in sorted(fake.mirror.counts) if label in real.mirror.counts}
            if predictions and len(real.mirror.counts) > 1 else None,
            "real_class_accuracy": getattr(backbone, "accuracy", None) if accuracy is not None
            else None,
            "num_real": real.n, "num_fake": fake.n,
            "warnings": warnings}


def _rounded(value, digits=4):
    return None if value is None else round(value, digits)


def _sample_labels(n, num_classes, seed, offset):
    if not num_classes:
        return None
    return tf.random.stateless_uniform([n], seed=[seed + 7920, offset], maxval=num_classes,
                                       dtype=tf.int32)


# Periodic evaluation during training (callbacks.PeriodicEvaluation) and sagan-evaluate
# (--model and --workdir alike) use fewer, smaller KID subsets than `evaluate`'s defaults
# (the paper's 100 of 1,000); KID is unbiased for any subset size, only noisier.
TRAINING_KID_SUBSETS = 20
TRAINING_KID_SUBSET_SIZE = 500


def _latents(n, z_dim, seed, offset):
    return tf.random.stateless_normal([n, z_dim], seed=[seed + 7919, offset])


def generator_sampler(generator, seed=0):
    """sample_fn of a Keras generator (inference mode, stateless seeded z and labels)."""
    def sample(n, offset):
        z = _latents(n, generator.z_dim, seed, offset)
        labels = _sample_labels(n, generator.num_classes, seed, offset)
        return generator(z, labels, training=False), labels
    return sample


def _num_logits(backbone):
    probe = backbone(tf.zeros([1, 32, 32, 3]))
    return probe[1].shape[-1]


def savedmodel_sampler(path, truncation=0.0, seed=0):
    """sample_fn of an exported model (uint8 -> [-1, 1]). With `truncation` 0 it
    feeds `serving_default` the z and labels `generator_sampler` draws for the same
    seed, so a model scores as its run's evaluation did (up to the uint8 rounding);
    with a truncation in (0, 2] it calls the `generate` signature, which draws z
    truncated to [-truncation, truncation]."""
    from sagan_tf.sampling import load_model

    loaded = load_model(path)
    serve, generate = loaded.signatures["serving_default"], loaded.signatures["generate"]
    num_classes, z_dim = int(loaded.num_classes.numpy()), int(loaded.z_dim.numpy())

    def sample(n, offset):
        labels = _sample_labels(n, num_classes, seed, offset)
        kwargs = {} if labels is None else {"labels": labels}
        if truncation:
            images = generate(seed=tf.constant(seed * 1_000_003 + offset, tf.int64),
                              num=tf.constant(n, tf.int32),
                              truncation=tf.constant(truncation, tf.float32), **kwargs)["images"]
        else:
            images = serve(z=_latents(n, z_dim, seed, offset), **kwargs)["images"]
        return data.to_model_range(images), labels

    return sample, int(loaded.image_size.numpy())
