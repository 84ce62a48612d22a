"""The layout of a run's checkpoints: what they hold, the architecture guard of
a workdir, and restoring the generator for export.

`<workdir>/config.json` records the architecture (G and D configs, EMA or not);
`<workdir>/checkpoints/ckpt-STEP` holds G, D and EMA weights as position-indexed
weight lists and both optimizers. The guard keeps the positions stable: a
workdir is never resumed by another architecture.
"""

import json
import os

import tensorflow as tf

from sagan_tf.models import Generator


def checkpoint_weights(model):
    """`model.weights` as a list, the form in which checkpoints hold a model.

    Keras 3 keeps sublayers in Keras-tracked lists that TF's object graph does
    not follow: `tf.train.Checkpoint(generator=model)` saves only directly
    assigned sublayers and silently drops the rest (spectral-norm `u`, batch-norm
    statistics, the EMA generator). A list is saved entry by entry, by position,
    which the architecture guard of the workdir (`config.json`) keeps stable.
    """
    return list(model.weights)


def make_checkpoint(gan):
    """A `tf.train.Checkpoint` of G, D, the EMA generator and both optimizers."""
    objects = dict(generator=checkpoint_weights(gan.generator),
                   discriminator=checkpoint_weights(gan.discriminator),
                   g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer)
    if gan.ema_generator is not None:
        objects["ema_generator"] = checkpoint_weights(gan.ema_generator)
    return tf.train.Checkpoint(**objects)


def architecture(gan):
    """What config.json records to guard a workdir: both models' configs, EMA or not."""
    return {"generator": gan.generator.get_config(),
            "discriminator": gan.discriminator.get_config(),
            "ema": gan.ema_generator is not None}


def check_workdir(workdir, architecture, error=ValueError):
    """Raises `error` when `workdir` holds a checkpoint of another architecture
    (or a checkpoint without the config.json that says which)."""
    path = os.path.join(workdir, "config.json")
    has_checkpoint = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)["architecture"]
        ours = json.loads(json.dumps(architecture))
        if saved != ours:
            diffs = [f"{net}.{k}: {saved[net].get(k)} != {ours[net].get(k)}"
                     for net in ("generator", "discriminator")
                     for k in ours[net] if saved[net].get(k) != ours[net].get(k)]
            if saved["ema"] != ours["ema"]:
                diffs.append(f"ema: {saved['ema']} != {ours['ema']}")
            raise error(f"workdir {workdir} holds a checkpoint of a different architecture "
                        f"({'; '.join(diffs[:3])}); use another --workdir")
    elif has_checkpoint:
        raise error(f"workdir {workdir} holds a checkpoint without config.json; "
                    "use another --workdir")


def restore_generator_for_export(workdir):
    """(generator, step): the run's generator (EMA when the run has one) restored
    from its latest checkpoint, and that checkpoint's step."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} is not a training run (no config.json)")
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest is None:
        raise FileNotFoundError(f"{workdir} has no checkpoint")
    with open(path) as f:
        architecture = json.load(f)["architecture"]
    config = architecture["generator"]
    generator = Generator.from_config(config)
    generator.build()
    key = "ema_generator" if architecture["ema"] else "generator"
    status = tf.train.Checkpoint(**{key: checkpoint_weights(generator)}).restore(latest)
    status.assert_existing_objects_matched().expect_partial()
    return generator, int(latest.rsplit("-", 1)[1])
