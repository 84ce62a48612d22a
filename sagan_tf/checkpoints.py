"""The layout of a run's checkpoints: what they hold, the architecture guard of
a workdir, and restoring the generator for export.

`<workdir>/config.json` records the architecture (G and D configs, EMA or not);
`<workdir>/checkpoints/ckpt-STEP` holds G, D and EMA weights and both optimizers'
state, each variable under its path (`checkpoint_objects`), so a variable is
restored by name or the restore fails naming it. Checkpoints of sagan_tf 0.1 and
0.2 held weight lists by position; they are still restored, in that layout
(`restore`). The guard of config.json keeps a workdir from being resumed by
another architecture.
"""

import json
import os

import tensorflow as tf
from absl import logging

from sagan_tf.config import ConfigError
from sagan_tf.models import Discriminator, Generator


class WorkdirError(ConfigError):
    """A run directory that cannot be used as asked: not a run, unreadable or
    hand-broken config.json, another architecture, no readable checkpoint, in use."""


def weights_by_path(model):
    """{path: variable} of `model.weights`, each path relative to the model
    (`"block0/sn_conv1/conv1/kernel"`), the form in which checkpoints hold a model.

    Keras 3 keeps sublayers in Keras-tracked lists that TF's object graph does
    not follow: `tf.train.Checkpoint(generator=model)` saves only directly
    assigned sublayers and silently drops the rest (spectral-norm `u`, batch-norm
    statistics, the EMA generator). A dict keyed by the layers' own names is
    saved entry by entry: a family that creates its layers in another order
    restores each variable into its own place, and a renamed or missing layer
    fails by name. Every family names its layers, so paths do not depend on what
    else the process built.
    """
    weights = {}
    for variable in model.weights:
        owner, _, path = variable.path.partition("/")
        if owner != model.name or path in weights:
            raise ValueError(f"{model.name}: variable path {variable.path!r} is "
                             f"{'outside the model' if owner != model.name else 'not unique'}")
        weights[path] = variable
    return weights


def optimizer_state(optimizer):
    """{name: variable} of an optimizer's variables: the step, the learning rate and
    one slot per model variable, named after it (`generator_conv0_kernel_momentum`),
    so slots follow their variables by name too. A wrapped optimizer's variables
    (`LossScaleOptimizer`) are under `inner/`; the optimizer's own auto-numbered
    name (`adam_2`) is left out."""
    state = {}
    for variable in optimizer.variables:
        owner, _, name = variable.path.partition("/")
        key = name if owner == optimizer.name else f"inner/{name}"
        if key in state:
            raise ValueError(f"{optimizer.name}: two variables named {key!r}")
        state[key] = variable
    return state


# How a checkpoint holds each model: "path" (by variable path, this version) or "list"
# (sagan_tf 0.1 and 0.2: `list(model.weights)` by position, the optimizers as objects).
LAYOUTS = ("path", "list")
REGULARIZER_GROUPS = {"augment", "lecam"}  # SAGAN.regularizer_state's groups


def model_weights(model, layout="path"):
    """How a checkpoint in `layout` holds `model`: `weights_by_path`, or the list."""
    return weights_by_path(model) if layout == "path" else list(model.weights)


def checkpoint_objects(gan, layout="path"):
    """What a checkpoint of `gan` holds, in `layout`: G, D, the EMA generator, both
    optimizers and, when they are on, ADA's and LeCam's state (`augment`, `lecam`)."""
    optimizer = optimizer_state if layout == "path" else (lambda o: o)

    def model(m):
        return model_weights(m, layout)

    objects = dict(generator=model(gan.generator), discriminator=model(gan.discriminator),
                   g_optimizer=optimizer(gan.g_optimizer),
                   d_optimizer=optimizer(gan.d_optimizer))
    if gan.ema_generator is not None:
        objects["ema_generator"] = model(gan.ema_generator)
    for name, variable in gan.regularizer_state.items():
        group, _, key = name.partition("/")
        if layout == "path":
            objects.setdefault(group, {})[key] = variable
        else:
            objects.setdefault(group, []).append(variable)
    return objects


def make_checkpoint(gan):
    """A `tf.train.Checkpoint` of `gan` (`checkpoint_objects`, by variable path):
    what training saves."""
    return tf.train.Checkpoint(**checkpoint_objects(gan))


def saved_names(path):
    """{object: [names]} of the checkpoint at `path` (a prefix): the names under
    each top-level object (`generator`: its variables' paths, or 0, 1, ... in the
    list layout)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor(
        "_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name: [c.local_name for c in graph.nodes[child.node_id].children]
            for child in graph.nodes[0].children}


def layout_of(path, saved=None):
    """The layout (`LAYOUTS`) of the checkpoint at `path` (`saved`: its `saved_names`,
    when read already)."""
    names = (saved or saved_names(path)).get("generator", [])
    return "list" if names and all(n.isdigit() for n in names) else "path"


def restore(objects_of, path, what):
    """Restores the checkpoint at `path` into `objects_of(layout)` (a dict as
    `checkpoint_objects` gives) in the layout the checkpoint was written in. In the
    path layout every variable is matched by name: one the checkpoint lacks, or
    one it holds that nothing here has, raises WorkdirError naming it."""
    saved = saved_names(path)
    layout = layout_of(path, saved)
    objects = objects_of(layout)
    for group in REGULARIZER_GROUPS & set(objects) - set(saved):
        # Turned on at this resume (--allow_config_change): it starts from its initial state.
        logging.info("%s holds no %s state; it starts afresh", path, group)
        del objects[group]
    if layout == "path":
        for group, value in objects.items():
            if not isinstance(value, dict):
                continue
            ours, theirs = set(value), set(saved.get(group, ()))
            missing, extra = sorted(ours - theirs), sorted(theirs - ours)
            if missing or extra:
                problem = (f"has no {group} variable {missing[0]!r}" if missing
                           else f"holds a {group} variable {extra[0]!r} unknown to {what}")
                raise WorkdirError(f"{path} {problem} ({len(missing)} missing, {len(extra)} "
                                   "unknown): it was written by another version of the model")
    status = tf.train.Checkpoint(**objects).restore(path)
    status.assert_existing_objects_matched()
    return status


def architecture(gan):
    """What config.json records to guard a workdir: both models' configs, EMA or not."""
    return {"generator": gan.generator.get_config(),
            "discriminator": gan.discriminator.get_config(),
            "ema": gan.ema_generator is not None}


# config.json's keys: (path, JSON type, required). "flags" may be missing only for the
# resume guard to refuse (training) or to fall back on defaults (evaluate).
CONFIG_SCHEMA = (("architecture", dict, True), ("architecture.generator", dict, True),
                 ("architecture.discriminator", dict, True), ("architecture.ema", bool, True),
                 ("flags", dict, False), ("dataset", dict, False), ("history", list, False),
                 # sagan-import-torch's workdirs: no flags until their first training run.
                 ("imported_from", dict, False))
_JSON_NAMES = {dict: "an object", list: "a list", bool: "true or false"}
_WARNED = set()  # config.json paths whose unknown keys were logged


def read_config(path):
    """A workdir's config.json, checked against CONFIG_SCHEMA: a file that is not
    JSON, a missing required key, or a value of the wrong type (a null where an
    object belongs) raises WorkdirError, one line naming the key. Unknown top-level
    keys are logged once."""
    def bad(what):
        raise WorkdirError(f"{path}: {what}; restore it or use another --workdir")

    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        bad(f"not a readable sagan_tf config.json ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:80]})")
    if not isinstance(config, dict):
        bad(f"not a sagan_tf config.json (a JSON {type(config).__name__}, not an object)")
    for key, kind, required in CONFIG_SCHEMA:
        value = config
        for part in key.split("."):
            value = value.get(part, KeyError)
        if value is KeyError:
            if required:
                bad(f"the key {key!r} is missing")
            continue
        if not isinstance(value, kind):
            bad(f"{key!r} must be {_JSON_NAMES[kind]}, not {json.dumps(value)[:40]}")
    unknown = sorted(set(config) - {key for key, _, _ in CONFIG_SCHEMA if "." not in key})
    if unknown and path not in _WARNED:
        _WARNED.add(path)
        logging.warning("%s: unknown key(s) %s, ignored", path, ", ".join(unknown))
    return config


def run_config(workdir):
    """The config.json of the training run in `workdir` (`read_config`);
    WorkdirError when there is none."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise WorkdirError(f"{workdir} is not a training run (no config.json)")
    return read_config(path)


def with_defaults(architecture):
    """`architecture` with the model arguments a config.json written before they existed
    lacks filled in with their defaults (what that run's models were built with)."""
    filled = dict(architecture)
    for net, cls in (("generator", Generator), ("discriminator", Discriminator)):
        try:
            filled[net] = json.loads(json.dumps(cls.from_config(architecture[net]).get_config()))
        except (TypeError, ValueError, KeyError):
            pass  # compared as written: any difference is reported
    return filled


def check_workdir(workdir, architecture):
    """Raises WorkdirError when `workdir` holds a checkpoint of another architecture
    (or a checkpoint without the config.json that says which)."""
    path = os.path.join(workdir, "config.json")
    has_checkpoint = bool(checkpoint_steps(os.path.join(workdir, "checkpoints")))
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a directory")
    try:
        if not os.path.isdir(workdir):
            os.makedirs(workdir)
            logging.info("created the run directory %s (checkpoints, logs, samples, "
                         "config.json)", os.path.abspath(workdir))
        with open(os.path.join(workdir, ".write_test"), "w"):
            pass
        os.remove(os.path.join(workdir, ".write_test"))
    except OSError as e:
        raise WorkdirError(f"workdir {workdir} cannot be written: {e.strerror or e}") from None
    if os.path.exists(path):
        saved = with_defaults(read_config(path)["architecture"])
        ours = json.loads(json.dumps(architecture))
        if saved != ours:
            diffs = [f"{net}.{k}: {saved[net].get(k)} != {ours[net].get(k)}"
                     for net in ("generator", "discriminator")
                     for k in sorted(set(ours[net]) | set(saved[net]))
                     if saved[net].get(k) != ours[net].get(k)]
            if saved["ema"] != ours["ema"]:
                diffs.append(f"ema: {saved['ema']} != {ours['ema']}")
            raise WorkdirError(f"workdir {workdir} holds a checkpoint of a different "
                               f"architecture ({'; '.join(diffs[:3])}); use another --workdir")
    elif has_checkpoint:
        raise WorkdirError(f"workdir {workdir} holds a checkpoint without config.json; "
                           "use another --workdir")


def restore_generator_for_export(workdir, record=None):
    """(generator, step): the run's generator (EMA when the run has one) restored
    from its latest checkpoint, and that checkpoint's step. `record`: the run's
    config.json when the caller has read it (`run_config`)."""
    architecture = (record or run_config(workdir))["architecture"]
    try:
        generator = Generator.from_config(architecture["generator"])
    except (TypeError, ValueError) as e:
        raise WorkdirError(f"{os.path.join(workdir, 'config.json')}: architecture.generator "
                           f"does not build a generator ({' '.join(str(e).split())[:160]}); "
                           "restore it or use another --workdir") from None
    generator.build()
    key = "ema_generator" if architecture["ema"] else "generator"

    def objects(layout):
        return {key: model_weights(generator, layout)}

    # A live run (a small --keep_checkpoints) may delete the checkpoint found here
    # before it is read: look again for the newest readable one.
    for attempt in range(RESTORE_ATTEMPTS):
        latest = latest_usable(os.path.join(workdir, "checkpoints"), repair=False)
        if latest is None:
            raise WorkdirError(f"{workdir} has no checkpoint")
        try:
            restore(objects, latest, "the generator").expect_partial()
            return generator, int(latest.rsplit("-", 1)[1])
        except (tf.errors.NotFoundError, tf.errors.DataLossError) as e:
            reason = " ".join(str(getattr(e, "message", e)).split())[:120]
    raise WorkdirError(f"{workdir}: its checkpoints kept disappearing while being read "
                       f"({RESTORE_ATTEMPTS} tries; last: {reason})")


RESTORE_ATTEMPTS = 5


def checkpoint_steps(directory):
    """Steps N of the `ckpt-N.*` files in `directory`, newest first (whatever the state
    file says; `ckpt-N_temp` directories of interrupted saves are not checkpoints)."""
    if not os.path.isdir(directory):
        return []
    steps = {name[len("ckpt-"):].split(".")[0] for name in os.listdir(directory)
             if name.startswith("ckpt-")}
    return sorted((int(s) for s in steps if s.isdigit()), reverse=True)


def _unreadable(path):
    """Why the checkpoint at `path` (prefix) cannot be restored, or None if it can."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - truncated, missing or corrupt files
        return " ".join(str(e).split())[:120] or type(e).__name__
    return None


def latest_usable(directory, repair=True):
    """The newest restorable checkpoint in `directory` (a path prefix), or None when
    it holds no checkpoint files at all.

    The state file (`checkpoint`) is not trusted alone: when it is missing, empty,
    garbage or names a checkpoint whose files are truncated or missing, the
    checkpoint files themselves are searched, newest first, and the first readable
    one is used, with a warning naming what was skipped; with `repair` the state
    file is rewritten to list the readable ones. Unreadable files are never
    deleted. Files but no readable checkpoint raise WorkdirError (one line): starting
    again from step 0 would overwrite them.
    """

    steps = checkpoint_steps(directory)
    if not steps:
        return None
    try:
        named = tf.train.latest_checkpoint(directory)
    except Exception:  # noqa: BLE001 - an unparsable state file
        named = None
    skipped, bad_steps = [], set()
    for step in steps:
        path = os.path.join(directory, f"ckpt-{step}")
        why = _unreadable(path)
        if why is None:
            break
        skipped.append(f"ckpt-{step} ({why})")
        bad_steps.add(step)
    else:
        raise WorkdirError(f"{directory} holds checkpoint files but none is readable "
                           f"({'; '.join(skipped[:3])}); move them away or use another --workdir")
    if skipped or named != path:
        logging.warning("checkpoint state in %s names %s; resuming from %s, the newest readable "
                        "checkpoint%s", directory, os.path.basename(named) if named else "nothing",
                        os.path.basename(path),
                        f" (skipped, kept on disk: {'; '.join(skipped)})" if skipped else "")
        if repair:
            readable = [os.path.join(directory, f"ckpt-{s}") for s in sorted(steps)
                        if s <= step and s not in bad_steps]
            tf.compat.v1.train.update_checkpoint_state(directory, path, readable)
    return path


class WorkdirLock:
    """An exclusive lock on a workdir (`<workdir>/.lock`, `fcntl.flock`), held while a
    run trains there, so two trainers never overwrite each other's checkpoints.
    The kernel releases it when the process ends, however it ends: a lock is
    never stale. The file names the holder (pid and host) for the error message."""

    def __init__(self, workdir):
        import fcntl
        import socket

        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, ".lock")
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise WorkdirError(f"workdir {workdir} is in use by {holder}; wait for it to finish "
                               "or use another --workdir") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self._file.flush()

    def release(self):
        import fcntl

        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


def remove_partial_checkpoint(directory, step):
    """Removes what an interrupted save of ckpt-`step` left: TF's `ckpt-N_temp*`
    directory and that step's files when the state file does not list them."""
    import shutil

    if not os.path.isdir(directory):
        return
    try:
        state = tf.train.get_checkpoint_state(directory)
        listed = set(state.all_model_checkpoint_paths) if state else set()
    except Exception:  # noqa: BLE001 - an unreadable state lists nothing
        listed = set()
    prefix = f"ckpt-{step}"
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith(prefix + "_temp"):
            shutil.rmtree(path, ignore_errors=True)
        elif (name.startswith(prefix + ".") and os.path.join(directory, prefix) not in listed
              and path.rsplit(".", 1)[0] not in listed):
            os.remove(path)


def remove_stale_temporaries(directory):
    """Removes `ckpt-*_temp*` directories a killed save left (the workdir lock rules
    out a save running now)."""
    import shutil

    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith("ckpt-") and "_temp" in name:
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
