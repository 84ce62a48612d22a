"""python -m sagan_tf.generate: PNG grids and latent interpolations from an exported model.

Reads only the SavedModel (no training code, no checkpoint), so it works on any
model written by `sagan_tf.export`:

    python -m sagan_tf.generate --model=savedmodels/mnist5k --num=64 --out=grid.png
    python -m sagan_tf.generate --model=savedmodels/mnist5k --interpolate=10 --out=lerp.png
"""

import os
import sys

from sagan_tf import runtime  # noqa: E402  (before TensorFlow is imported)

runtime.setup()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from sagan_tf import visualize  # noqa: E402

FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_string("model", None, "savedmodels/NAME (latest version) or a version directory.")
    flags.DEFINE_integer("version", None, "Version to load (default: the highest).")
    flags.DEFINE_integer("num", 64, "Images in the grid.")
    flags.DEFINE_string("out", "samples.png", "Output PNG path.")
    flags.DEFINE_float("truncation", 2.0, "Truncate z to [-t, t], t in (0, 2]; smaller = safer samples.")
    flags.DEFINE_list("labels", None, "Class labels for conditional models (cycled to --num).")
    flags.DEFINE_integer("interpolate", 0, "If > 0: rows of STEPS images interpolating between two latents.")
    flags.DEFINE_integer("rows", 8, "Interpolation rows.")
    flags.DEFINE_integer("seed", 0, "Random seed.")

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


def _labels(loaded, labels, num):
    if int(loaded.num_classes.numpy()) == 0:
        return None
    if not labels:
        return tf.constant([], tf.int32)
    values = [int(v) for v in labels]
    return tf.constant([values[i % len(values)] for i in range(num)], tf.int32)


def _call(fn, **kwargs):
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        return fn(**kwargs)["images"].numpy()
    except tf.errors.InvalidArgumentError as e:
        raise GenerateError(e.message.splitlines()[0]) from None


def grid(loaded, num, truncation, labels, seed):
    images = _call(loaded.signatures["generate"], seed=tf.constant(seed, tf.int64),
                   num=tf.constant(num, tf.int32), truncation=tf.constant(truncation, tf.float32),
                   labels=_labels(loaded, labels, num))
    return visualize.make_grid(images)


def slerp(a, b, t):
    a_n, b_n = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(np.dot(a_n, b_n), -1, 1))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def interpolation(loaded, steps, rows, labels, seed):
    z_dim = int(loaded.z_dim.numpy())
    rng = np.random.default_rng(seed)
    ends = rng.standard_normal((rows, 2, z_dim))
    z = np.stack([slerp(a, b, t) for a, b in ends for t in np.linspace(0, 1, steps)])
    row_labels = None
    if int(loaded.num_classes.numpy()):
        base = [int(v) for v in labels] if labels else list(range(rows))
        row_labels = tf.constant(np.repeat([base[i % len(base)] for i in range(rows)], steps), tf.int32)
    images = _call(loaded.signatures["serving_default"], z=tf.constant(z, tf.float32),
                   labels=row_labels)
    return visualize.make_grid(images, columns=steps)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    try:
        path = resolve_model_dir(FLAGS.model, FLAGS.version)
        try:
            loaded = tf.saved_model.load(path)
        except (OSError, ValueError) as e:
            raise GenerateError(f"cannot load the SavedModel at {path}: {e}") from None
        if FLAGS.interpolate > 0:
            image = interpolation(loaded, FLAGS.interpolate, FLAGS.rows, FLAGS.labels, FLAGS.seed)
        else:
            image = grid(loaded, FLAGS.num, FLAGS.truncation, FLAGS.labels, FLAGS.seed)
        out_dir = os.path.dirname(os.path.abspath(FLAGS.out))
        if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
            raise GenerateError(f"cannot write {FLAGS.out}: directory {out_dir} is missing or not writable")
        visualize.write_png(FLAGS.out, image)
    except GenerateError as e:
        sys.exit(f"error: {e}")
    print(FLAGS.out)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
