"""Images from an exported SavedModel: finding a version, loading it, sample
grids and latent interpolations. Reads only the SavedModel (no training code,
no checkpoint), so it works on any model written by `sagan_tf.serving`."""

import os

import numpy as np
import tensorflow as tf

from sagan_tf import visualize


class GenerateError(RuntimeError):
    pass


def resolve_model_dir(model, version=None):
    """The version directory holding saved_model.pb."""
    if model is None:
        raise GenerateError("--model is required")
    if version is None and os.path.exists(os.path.join(model, "saved_model.pb")):
        return model
    if not os.path.isdir(model):
        raise GenerateError(f"model directory {model} does not exist")
    versions = sorted(int(d) for d in os.listdir(model) if d.isdigit())
    if version is not None:
        versions = [v for v in versions if v == version]
    for v in reversed(versions):
        path = os.path.join(model, str(v))
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return path
    which = f"version {version}" if version is not None else "any version"
    raise GenerateError(f"no SavedModel under {model} ({which})")


def load_model(path):
    """`tf.saved_model.load(path)`; any failure (truncated or corrupt files fail in
    many ways) is a one-line GenerateError naming the path."""
    try:
        return tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001
        message = getattr(e, "message", None) or str(e)
        raise GenerateError(f"cannot load the SavedModel at {path}: "
                            f"{' '.join(message.split())[:200]}") from None


def parse_labels(labels):
    """`["0", "3"]` -> [0, 3]; a value that is not an integer is a GenerateError."""
    values = []
    for value in labels or []:
        try:
            values.append(int(value))
        except ValueError:
            raise GenerateError(f"--labels must be comma-separated integers; got {value!r}") from None
    return values


def _call(fn, **kwargs):
    from sagan_tf.serving import graph_error_message

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return fn(**kwargs)["images"].numpy()
    except tf.errors.InvalidArgumentError as e:
        raise GenerateError(graph_error_message(e)) from None


def grid(loaded, num, truncation, labels, seed):
    """A grid of `num` samples; for a conditional model with `labels`, one row per
    listed class (`num // len(labels)` images each, at least 1), like the training
    grids; without labels, random classes."""
    labels = parse_labels(labels)
    columns = None
    label_tensor = None
    if int(loaded.num_classes.numpy()):
        label_tensor = tf.constant([], tf.int32)
        if labels:
            columns = max(1, num // len(labels))
            num = columns * len(labels)
            label_tensor = tf.constant(np.repeat(labels, columns), tf.int32)
    images = _call(loaded.signatures["generate"], seed=tf.constant(seed, tf.int64),
                   num=tf.constant(num, tf.int32), truncation=tf.constant(truncation, tf.float32),
                   labels=label_tensor)
    return visualize.make_grid(images, columns=columns)


def slerp(a, b, t):
    a_n, b_n = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(np.dot(a_n, b_n), -1, 1))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def truncated_normal(rng, shape, truncation):
    """Standard normal values, those outside [-truncation, truncation] redrawn."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > truncation
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > truncation
    return values


def interpolation(loaded, steps, rows, labels, seed, truncation=2.0):
    """`rows` spherical interpolations of `steps` images between two latents drawn
    from the normal truncated to [-truncation, truncation] (points between them
    clipped to it)."""
    z_dim = int(loaded.z_dim.numpy())
    rng = np.random.default_rng(seed)
    ends = truncated_normal(rng, (rows, 2, z_dim), truncation)
    z = np.stack([slerp(a, b, t) for a, b in ends for t in np.linspace(0, 1, steps)])
    z = np.clip(z, -truncation, truncation)
    row_labels = None
    labels = parse_labels(labels)
    if int(loaded.num_classes.numpy()):
        base = labels or list(range(rows))
        row_labels = tf.constant(np.repeat([base[i % len(base)] for i in range(rows)], steps), tf.int32)
    images = _call(loaded.signatures["serving_default"], z=tf.constant(z, tf.float32),
                   labels=row_labels)
    return visualize.make_grid(images, columns=steps)
