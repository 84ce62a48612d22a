"""Runs and SavedModels written by sagan_tf 0.1.0 (before the model families were
split into modules and the options into config sections) keep working.

`tests/fixtures/v0_1_0` holds what that version wrote for a 4-step mnist5k run of
the Quick start's flag file at width 8 (`run/`: config.json and the step-4
checkpoint; `savedmodels/tiny/1`: its export) and the losses of resuming it to step
6 with that version (`expected.json`).
"""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from sagan_tf import checkpoints, config, sampling, serving, training
from sagan_tf.models import DCGANGenerator

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "v0_1_0")


def _copy(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "v0_1_0")
    return tmp_path / "v0_1_0"


def _flags(root):
    with open(root / "run" / "config.json") as f:
        flags = json.load(f)["flags"]
    return dict(flags, workdir=str(root / "run"), export_dir=str(root / "savedmodels"))


def test_an_old_workdir_resumes_with_the_same_losses(tmp_path):
    root = _copy(tmp_path)
    with open(root / "expected.json") as f:
        expected = json.load(f)
    result = training.run(config.TrainConfig.from_flat(**dict(_flags(root), steps=6)))
    assert result["step"] == expected["resumed_to_step"] == 6
    for name, value in expected["logs"].items():
        np.testing.assert_allclose(result["logs"][name], value, rtol=1e-4, err_msg=name)
    assert isinstance(result["gan"].generator, DCGANGenerator)
    # The new export is the next version beside the old one.
    assert result["export"].endswith(os.path.join("tiny", "2"))


def test_an_old_savedmodel_serves_what_the_old_checkpoint_holds(tmp_path):
    root = _copy(tmp_path)
    loaded = sampling.load_model(str(root / "savedmodels" / "tiny" / "1"))
    z = tf.random.stateless_normal([10, 16], seed=[1, 2])
    labels = tf.range(10, dtype=tf.int32)
    served = loaded.signatures["serving_default"](z=z, labels=labels)["images"]
    generator, step = checkpoints.restore_generator_for_export(str(root / "run"))
    assert step == 4 and isinstance(generator, DCGANGenerator)
    ours = serving.to_uint8(generator(z, labels, training=False))
    np.testing.assert_array_equal(np.asarray(serving.to_rgb(ours)), np.asarray(served))
    # Exporting that checkpoint again with this version serves the same images.
    path = serving.export_workdir(str(root / "run"), str(root / "savedmodels"), "tiny")
    again = sampling.load_model(path).signatures["serving_default"](z=z, labels=labels)
    np.testing.assert_array_equal(np.asarray(again["images"]), np.asarray(served))
