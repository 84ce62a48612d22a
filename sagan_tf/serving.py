"""Versioned SavedModels of a generator, in the layout TF Serving watches.

`savedmodels/NAME/VERSION/saved_model.pb`, VERSION an increasing integer. The
model is written to a hidden temporary directory beside the versions and
renamed into place, so a crash never leaves a half-written version, and an
existing version is never overwritten.

Signatures (inputs checked inside the graph; bad values give INVALID_ARGUMENT
naming the input):
  - serving_default: z float32 [batch, z_dim] (+ labels int32 [batch]) -> images uint8 [batch, H, W, 3]
  - generate: seed int64, num int32, truncation float32 (+ labels int32 [num] or [])
    -> images and z; z is drawn from a normal truncated to [-truncation, truncation]
    (truncation in (0, 2]) or, for truncation 0, from N(0, 1) untruncated, as
    training samples; by stateless ops, so the same seed gives the same images.
  - attention: z (+ labels) and queries int32 [Q, 2] (row, col in image pixels)
    -> images and, per attention layer `attention_<name>`, float32 [batch, Q, Hk, Wk]:
    where each query pixel looks.
"""

import json
import os
import re
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from sagan_tf import files
from sagan_tf.errors import UserError
from sagan_tf.names import SERVING_MAX_BATCH as MAX_BATCH
from sagan_tf.visualize import to_rgb, to_uint8

# The attention signature computes every layer's dense (B, N, N_key) map (4 MiB per image
# at 32x32 with all keys): it takes fewer images, and a bounded number of queries.
MAX_ATTENTION_BATCH = 16
MAX_QUERIES = 64


class ExportError(UserError, RuntimeError):
    """A problem that stops an export, reported as one line."""


class ExportAbandoned(Exception):
    """An export stopped by a stop signal before its version was claimed: nothing
    was written."""


def graph_error_message(error):
    """The one-line message of an input check that failed inside a signature
    (`z: must have shape [batch, 128]`), without TensorFlow's function-node prefix."""
    text = getattr(error, "message", None) or str(error)
    # The message is the first bracket, up to the "] [" that opens TF's own detail (the
    # message itself may hold brackets: "(0, 2]").
    found = re.search(r"assertion failed: \[(.*?)\](?= \[|$)", text, re.M)
    if found:
        return found.group(1)
    line = re.sub(r"\{\{[^}]*\}\}", "", text.strip().splitlines()[0]).strip()
    return line or type(error).__name__


def next_version(model_dir):
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()] if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


class _ServingModule(tf.Module):
    def __init__(self, generator, max_batch, class_names=()):
        super().__init__()
        self.generator = generator
        self.max_batch = max_batch
        self.z_dim = tf.Variable(generator.z_dim, trainable=False, name="z_dim")
        self.num_classes = tf.Variable(generator.num_classes, trainable=False, name="num_classes")
        self.image_size = tf.Variable(generator.image_size, trainable=False, name="image_size")
        # class_names[i] names label i (empty when the training data had no names).
        self.class_names = tf.Variable(tf.constant(list(class_names), tf.string, [len(class_names)]),
                                       trainable=False, name="class_names")

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _shape(x, rank):
        """x's shape padded with -1 to rank + 1 entries: readable for an input of any
        rank (indexing tf.shape(x) fails on a lower rank than the signature's), and
        a higher rank shows as a last entry other than -1."""
        return tf.concat([tf.shape(x), tf.fill([rank + 1], -1)], 0)[:rank + 1]

    def _check_batch(self, n, name):
        return [tf.debugging.assert_greater(n, 0, message=f"{name}: batch must be > 0"),
                tf.debugging.assert_less_equal(n, self.max_batch,
                                               message=f"{name}: batch must be <= {self.max_batch}")]

    def _check_z(self, z):
        z_dim = self.generator.z_dim
        shape = self._shape(z, 2)  # (B, z_dim, -1) when z is [B, z_dim]
        return [tf.debugging.assert_equal(shape[1:], [z_dim, -1],
                                          message=f"z: must have shape [batch, {z_dim}]"),
                tf.debugging.assert_all_finite(z, message="z: must be finite")
                ] + self._check_batch(shape[0], "z")

    def _check_labels(self, labels, batch):
        k = self.generator.num_classes
        shape = self._shape(labels, 1)  # (B, -1) when labels is [B]
        return [tf.debugging.assert_equal(shape, tf.stack([batch, -1]), message=(
                    "labels: must have one label per image (shape [batch], int32)")),
                tf.debugging.assert_greater_equal(labels, 0, message=f"labels: must be in [0, {k})"),
                tf.debugging.assert_less(labels, k, message=f"labels: must be in [0, {k})")]

    # ------------------------------------------------------------------ graph pieces
    def images(self, z, labels):
        return to_uint8(self.generator(z, labels, training=False))

    def serve(self, z, labels=None):
        checks = self._check_z(z)
        if labels is not None:
            checks += self._check_labels(labels, self._shape(z, 2)[0])
        with tf.control_dependencies(checks):
            z = tf.ensure_shape(tf.identity(z), [None, self.generator.z_dim])
            labels = None if labels is None else tf.identity(labels)
        return {"images": to_rgb(self.images(z, labels))}

    def generate(self, seed, num, truncation, labels=None):
        from sagan_tf.sampling import MAX_TRUNCATION, TRUNCATION_RULE

        message = f"truncation: must be {TRUNCATION_RULE}"
        checks = self._check_batch(num, "num") + [
            tf.debugging.assert_greater_equal(truncation, 0.0, message=message),  # NaN fails
            tf.debugging.assert_less_equal(truncation, MAX_TRUNCATION, message=message),
        ]
        with tf.control_dependencies(checks):
            num = tf.identity(num)
        seeds = tf.stack([seed, tf.constant(0, tf.int64)])
        shape = tf.stack([num, self.generator.z_dim])
        # Normal truncated to [-t, t] by inverse CDF: u ~ U(Phi(-t), Phi(t)); t = 0: N(0, 1).
        u = tf.random.stateless_uniform(shape, seed=seeds)
        edge = tf.math.erf(truncation / np.sqrt(2.0))
        z = tf.cond(truncation > 0.0,
                    lambda: np.sqrt(2.0) * tf.math.erfinv((2.0 * u - 1.0) * edge),
                    lambda: tf.random.stateless_normal(shape, seed=seeds))
        z = tf.ensure_shape(z, [None, self.generator.z_dim])
        if labels is not None:
            random_labels = tf.random.stateless_uniform(
                [num], seed=seeds + 1, maxval=self.generator.num_classes, dtype=tf.int32)
            labels = tf.cond(tf.size(labels) == 0, lambda: random_labels, lambda: labels)
            with tf.control_dependencies(self._check_labels(labels, num)):
                labels = tf.identity(labels)
        return {"images": to_rgb(self.images(z, labels)), "z": z}

    def attention(self, z, queries, labels=None):
        checks = self._check_z(z)
        size = self.generator.image_size
        batch_cap = min(self.max_batch, MAX_ATTENTION_BATCH)
        batch, queries_shape = self._shape(z, 2)[0], self._shape(queries, 2)  # (Q, 2, -1)
        checks += [tf.debugging.assert_less_equal(
                       batch, batch_cap,
                       message=f"z: the attention signature takes at most {batch_cap} images"),
                   tf.debugging.assert_equal(queries_shape[1:], [2, -1],
                                             message="queries: must have shape [Q, 2] (row, col)"),
                   tf.debugging.assert_greater(queries_shape[0], 0,
                                               message="queries: at least one query pixel"),
                   tf.debugging.assert_less_equal(
                       queries_shape[0], MAX_QUERIES,
                       message=f"queries: at most {MAX_QUERIES} query pixels"),
                   tf.debugging.assert_greater_equal(queries, 0,
                                                     message=f"queries: must be in [0, {size})"),
                   tf.debugging.assert_less(queries, size, message=f"queries: must be in [0, {size})")]
        if labels is not None:
            checks += self._check_labels(labels, batch)
        with tf.control_dependencies(checks):
            z = tf.ensure_shape(tf.identity(z), [None, self.generator.z_dim])
            labels = None if labels is None else tf.identity(labels)
            queries = tf.identity(queries)
        images, maps = self.generator(z, labels, training=False, return_attention=True)
        out = {"images": to_rgb(to_uint8(images))}
        for layer, amap in zip(self.generator.attention_layers, maps):
            q_side, k_side = layer.height, layer.height if layer.variant == "paper" else layer.height // 2
            rows = queries[:, 0] * q_side // size
            cols = queries[:, 1] * q_side // size
            picked = tf.gather(amap, rows * q_side + cols, axis=1)  # (B, Q, N_key)
            out[f"attention_{layer.name}"] = tf.reshape(
                picked, [tf.shape(z)[0], tf.shape(queries)[0], k_side, k_side])
        return out


def check_name(name):
    """A model name is one directory level under the export dir: no separators, no '..'."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ExportError(f"model name {name!r} must be a plain directory name (no '/' or '..')")


def latest_export(export_dir, name):
    """(path, metadata) of the newest version of `export_dir/name`, or None; metadata
    is its `assets.extra.json` (generator config, z_dim, source)."""
    model_dir = os.path.join(export_dir, name)
    version = next_version(model_dir) - 1
    if version < 1:
        return None
    path = os.path.join(model_dir, str(version))
    try:
        with open(os.path.join(path, "assets.extra.json")) as f:
            return path, json.load(f)
    except (OSError, ValueError):
        return path, {}


def export_generator(generator, export_dir, name, max_batch=MAX_BATCH, source=None,
                     class_names=(), should_stop=None):
    """Writes `export_dir/name/VERSION/` and returns its path. `source` (e.g. the
    run's workdir and step) is recorded in the version's `assets.extra.json`;
    `class_names` (label i is `class_names[i]`) there too and in the SavedModel's
    `class_names` variable.

    The model is written to a temporary directory `.tmp-PID@HOST-*` and renamed
    into place. When `should_stop()` is true before the rename (a stop signal came
    during the save), the temporary directory is removed and ExportAbandoned is
    raised. Any write failure (OSError, or a TensorFlow error such as a full disk
    in SaveV2) is a one-line ExportError; neither leaves a temporary directory,
    nor a model directory this call created and left empty."""
    check_name(name)
    if int(max_batch) < 1:
        raise ExportError(f"max_batch must be >= 1 (a model that refuses every request); "
                          f"got {max_batch}")
    model_dir = os.path.join(export_dir, name)
    created = not os.path.isdir(model_dir)
    try:
        os.makedirs(model_dir, exist_ok=True)
        remove_stale_temporaries(model_dir)
        tmp = tempfile.mkdtemp(prefix=_temporary_prefix(), dir=model_dir)
    except OSError as e:
        raise ExportError(f"cannot write to {model_dir}: {e.strerror}") from None

    def clean_up():
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            try:
                os.rmdir(model_dir)  # only when empty
            except OSError:
                pass

    module = _ServingModule(generator, max_batch, class_names)
    z_dim, conditional = generator.z_dim, generator.num_classes > 0
    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
    labels_spec = tf.TensorSpec([None], tf.int32, name="labels")
    queries_spec = tf.TensorSpec([None, 2], tf.int32, name="queries")
    scalar = dict(seed=tf.TensorSpec([], tf.int64, name="seed"),
                  num=tf.TensorSpec([], tf.int32, name="num"),
                  truncation=tf.TensorSpec([], tf.float32, name="truncation"))
    if conditional:
        serve = tf.function(lambda z, labels: module.serve(z, labels),
                            input_signature=[z_spec, labels_spec])
        generate = tf.function(lambda seed, num, truncation, labels: module.generate(
            seed, num, truncation, labels), input_signature=[*scalar.values(), labels_spec])
        attention = tf.function(lambda z, queries, labels: module.attention(z, queries, labels),
                                input_signature=[z_spec, queries_spec, labels_spec])
    else:
        serve = tf.function(lambda z: module.serve(z), input_signature=[z_spec])
        generate = tf.function(lambda seed, num, truncation: module.generate(seed, num, truncation),
                               input_signature=list(scalar.values()))
        attention = tf.function(lambda z, queries: module.attention(z, queries),
                                input_signature=[z_spec, queries_spec])
    signatures = {"serving_default": serve, "generate": generate}
    if generator.attention_layers:
        signatures["attention"] = attention
    module.serve_fn, module.generate_fn = serve, generate
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        with open(os.path.join(tmp, "assets.extra.json"), "w") as f:
            json.dump({"generator": generator.get_config(), "z_dim": z_dim, "source": source,
                       "class_names": list(class_names)}, f, indent=1)
        if should_stop is not None and should_stop():
            raise ExportAbandoned(f"the export to {model_dir} was abandoned (stop signal)")
        # mkdtemp made the directory private (0700): give it the umask's permissions, so a
        # model server running as another user can read it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for _ in range(100):  # another export may take the same number: take the next one
            version_dir = os.path.join(model_dir, str(next_version(model_dir)))
            try:
                os.rename(tmp, version_dir)  # atomic; fails rather than overwrite a version
                break
            except OSError:
                if not os.path.isdir(version_dir):
                    raise
        else:
            raise ExportError(f"could not claim a new version number under {model_dir}")
    except (OSError, tf.errors.OpError) as e:
        clean_up()
        raise ExportError(f"cannot write the SavedModel under {model_dir}: "
                          f"{files.write_error_cause(e, 200)} "
                          f"({files.free_space(model_dir)}); earlier versions are intact") from None
    except BaseException:
        clean_up()
        raise
    return version_dir


STALE_SECONDS = 3600


def _temporary_prefix():
    import socket

    return f".tmp-{os.getpid()}@{socket.gethostname()}-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def remove_stale_temporaries(model_dir, older_than=STALE_SECONDS):
    """Removes the `.tmp-*` directories that killed exports left: those named by a
    process of this machine that no longer runs (`.tmp-PID@HOST-*`) at once, any
    other (another machine's, or an older name) after `older_than` seconds, since
    it may belong to an export running now."""
    import socket
    import time

    host = socket.gethostname()
    for name in os.listdir(model_dir):
        if not name.startswith(".tmp-"):
            continue
        path = os.path.join(model_dir, name)
        owner = re.match(r"\.tmp-(\d+)@(.+)-[^-]*$", name)
        dead = owner is not None and owner.group(2) == host and \
            not _pid_alive(int(owner.group(1)))
        try:
            old = time.time() - os.path.getmtime(path) > older_than
        except OSError:
            continue
        if dead or old:
            shutil.rmtree(path, ignore_errors=True)


def default_name(workdir):
    """The model name a run's SavedModels take unless told: its workdir's name."""
    return os.path.basename(os.path.normpath(workdir))


def export_workdir(workdir, export_dir="savedmodels", name=None, max_batch=MAX_BATCH,
                   should_stop=None):
    """Restores a run's generator (EMA when present) and exports it
    (`export_generator`)."""
    from sagan_tf import checkpoints

    record = checkpoints.run_config(workdir)
    generator, step = checkpoints.restore_generator_for_export(workdir, record)
    source = {"workdir": os.path.abspath(workdir), "step": step}
    class_names = record.get("dataset", {}).get("class_names", ())
    return export_generator(generator, export_dir, name or default_name(workdir), max_batch,
                            source=source, class_names=class_names, should_stop=should_stop)
