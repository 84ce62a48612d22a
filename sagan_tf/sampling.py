"""Images from an exported SavedModel: finding a version, loading it, sample
grids and latent interpolations. Reads only the SavedModel (no training code,
no checkpoint), so it works on any model written by `sagan_tf.serving`."""

import math
import os

import numpy as np
import tensorflow as tf

from sagan_tf import visualize
from sagan_tf.errors import UserError


class GenerateError(UserError, RuntimeError):
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


def class_names(loaded):
    """The names of a conditional model's labels (label i is names[i]); empty for
    models exported without them."""
    names = getattr(loaded, "class_names", None)
    return [n.decode() for n in names.numpy()] if names is not None else []


def parse_labels(labels, names=()):
    """`["0", "3"]` -> [0, 3]; with the model's class `names`, a name is its label.
    Anything else is a GenerateError."""
    values = []
    for value in labels or []:
        if value in names:
            values.append(list(names).index(value))
            continue
        try:
            values.append(int(value))
        except ValueError:
            known = f" or one of the class names {', '.join(names)}" if names else ""
            raise GenerateError(f"--labels must be comma-separated integers{known}; got "
                                f"{value!r}") from None
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
    labels = parse_labels(labels, class_names(loaded))
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
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if min(norm_a, norm_b) < 1e-12:  # no direction to turn through (e.g. a tiny truncation)
        return (1 - t) * a + t * b
    omega = np.arccos(np.clip(np.dot(a / norm_a, b / norm_b), -1, 1))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


MAX_TRUNCATION = 2.0
TRUNCATION_RULE = (f"0 (no truncation: z ~ N(0, 1), as training samples) or in "
                   f"(0, {MAX_TRUNCATION:g}] (z ~ N(0, 1) truncated to [-t, t])")


def check_truncation(truncation):
    """`truncation` as a float; GenerateError unless it is finite and in
    [0, MAX_TRUNCATION]. 0 means no truncation. The `generate` signature checks
    the same rule in the graph (`serving`)."""
    value = float(truncation)
    if not 0 <= value <= MAX_TRUNCATION:  # False for NaN too
        raise GenerateError(f"--truncation must be {TRUNCATION_RULE}; got {truncation}")
    return value


def truncated_normal(rng, shape, truncation):
    """Standard normal values truncated to [-truncation, truncation] (0: not
    truncated), in closed form by the inverse CDF, as the `generate` signature
    draws them: u ~ U(Phi(-t), Phi(t)), z = Phi^-1(u). No redraw loop, so any
    truncation ends at once."""
    truncation = check_truncation(truncation)
    if truncation == 0:
        return rng.standard_normal(shape)
    edge = math.erf(truncation / math.sqrt(2.0))
    u = rng.uniform(-1.0, 1.0, shape) * edge  # (2 Phi(z) - 1), inside (-edge, edge)
    z = math.sqrt(2.0) * tf.math.erfinv(tf.constant(u, tf.float64)).numpy()
    return np.clip(z, -truncation, truncation)


def interpolation(loaded, steps, rows, labels, seed, truncation=2.0):
    """`rows` spherical interpolations of `steps` images between two latents drawn
    from the normal truncated to [-truncation, truncation] (points between them
    clipped to it; 0: neither truncated nor clipped)."""
    z_dim = int(loaded.z_dim.numpy())
    rng = np.random.default_rng(seed)
    ends = truncated_normal(rng, (rows, 2, z_dim), truncation)
    z = np.stack([slerp(a, b, t) for a, b in ends for t in np.linspace(0, 1, steps)])
    if truncation:
        z = np.clip(z, -truncation, truncation)
    row_labels = None
    labels = parse_labels(labels, class_names(loaded))
    if int(loaded.num_classes.numpy()):
        base = labels or list(range(rows))
        row_labels = tf.constant(np.repeat([base[i % len(base)] for i in range(rows)], steps), tf.int32)
    images = _call(loaded.signatures["serving_default"], z=tf.constant(z, tf.float32),
                   labels=row_labels)
    return visualize.make_grid(images, columns=steps)


def attention_figure(loaded, num=4, labels=None, seed=0, truncation=2.0):
    """Where G's attention looks (the SavedModel's `attention` signature): per image,
    the image with three query pixels outlined, then one heat map per query, for
    the attention layer at the highest resolution; one row per image."""
    size, z_dim = int(loaded.image_size.numpy()), int(loaded.z_dim.numpy())
    z = truncated_normal(np.random.default_rng(seed), (num, z_dim), truncation)
    label_tensor = None
    if int(loaded.num_classes.numpy()):
        chosen = parse_labels(labels, class_names(loaded)) or list(range(num))
        label_tensor = tf.constant([chosen[i % len(chosen)] for i in range(num)], tf.int32)
    queries = visualize.default_queries(size)
    try:
        out = loaded.signatures["attention"](**{k: v for k, v in dict(
            z=tf.constant(z, tf.float32), queries=tf.constant(queries, tf.int32),
            labels=label_tensor).items() if v is not None})
    except tf.errors.InvalidArgumentError as e:
        from sagan_tf.serving import graph_error_message

        raise GenerateError(graph_error_message(e)) from None
    layers = {int(name.rsplit("attention", 1)[1]): name for name in out
              if name.startswith("attention_")}
    if not layers:
        raise GenerateError("this model has no attention layer")
    q_side = max(layers)
    maps = out[layers[q_side]].numpy()  # (B, Q, Hk, Wk)
    rows = maps.reshape(maps.shape[0], maps.shape[1], -1)  # (B, Q, Hk*Wk)
    cell = size // q_side
    boxes = [(qy // cell * cell, qx // cell * cell, qy // cell * cell + cell,
              qx // cell * cell + cell) for qy, qx in queries]
    images = out["images"].numpy().astype(np.float32) / 127.5 - 1.0
    panels = visualize.query_panels(images, rows, boxes)
    return visualize.make_grid(panels, columns=1 + len(queries))
