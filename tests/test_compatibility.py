"""Runs and SavedModels written by earlier versions keep working.

Each fixture holds what one version wrote for a 4-step mnist5k run at width 8
(`run/`: config.json and the step-4 checkpoint; `savedmodels/tiny/1`: its export)
and the losses of resuming it to step 6 with that version (`expected.json`):

- `v0_1_0`: sagan_tf 0.1.0 (before the model families were split into modules and
  the options into config sections), the Quick start's dcgan_32 recipe;
- `v0_2_0`: sagan_tf 0.2.0 (checkpoints holding each model's weights as a list by
  position), resnet_32 with conditional batch norm, ADA, LeCam and the EMA generator.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import checkpoints, config, sampling, serving, training
from sagan_tf.models import DCGANGenerator, ResNetGenerator

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
VERSIONS = {"v0_1_0": DCGANGenerator, "v0_2_0": ResNetGenerator}
versions = pytest.mark.parametrize("version", sorted(VERSIONS))


def _copy(tmp_path, version):
    shutil.copytree(os.path.join(FIXTURES, version), tmp_path / version)
    return tmp_path / version


def _flags(root):
    with open(root / "run" / "config.json") as f:
        flags = json.load(f)["flags"]
    return dict(flags, workdir=str(root / "run"), export_dir=str(root / "savedmodels"))


@versions
def test_an_old_workdir_resumes_with_the_same_losses(tmp_path, version):
    root = _copy(tmp_path, version)
    assert checkpoints.layout_of(str(root / "run" / "checkpoints" / "ckpt-4")) == "list"
    with open(root / "expected.json") as f:
        expected = json.load(f)
    result = training.run(config.TrainConfig.from_flat(**dict(_flags(root), steps=6)))
    assert result["step"] == expected["resumed_to_step"] == 6
    for name, value in expected["logs"].items():
        np.testing.assert_allclose(result["logs"][name], value, rtol=1e-4, err_msg=name)
    assert isinstance(result["gan"].generator, VERSIONS[version])
    # The old checkpoint was read in its list layout; the new one is saved by path.
    assert checkpoints.layout_of(str(root / "run" / "checkpoints" / "ckpt-6")) == "path"
    # The new export is the next version beside the old one.
    assert result["export"].endswith(os.path.join("tiny", "2"))


@versions
def test_an_old_savedmodel_serves_what_the_old_checkpoint_holds(tmp_path, version):
    root = _copy(tmp_path, version)
    loaded = sampling.load_model(str(root / "savedmodels" / "tiny" / "1"))
    z = tf.random.stateless_normal([10, 16], seed=[1, 2])
    labels = tf.range(10, dtype=tf.int32)
    served = loaded.signatures["serving_default"](z=z, labels=labels)["images"]
    generator, step = checkpoints.restore_generator_for_export(str(root / "run"))
    assert step == 4 and isinstance(generator, VERSIONS[version])
    ours = serving.to_uint8(generator(z, labels, training=False))
    np.testing.assert_array_equal(np.asarray(serving.to_rgb(ours)), np.asarray(served))
    # Exporting that checkpoint again with this version serves the same images.
    path = serving.export_workdir(str(root / "run"), str(root / "savedmodels"), "tiny")
    again = sampling.load_model(path).signatures["serving_default"](z=z, labels=labels)
    np.testing.assert_array_equal(np.asarray(again["images"]), np.asarray(served))


def test_an_export_reads_the_runs_config_once(tmp_path, monkeypatch):
    root = _copy(tmp_path, "v0_2_0")
    reads = []
    original = checkpoints.read_config
    monkeypatch.setattr(checkpoints, "read_config", lambda path: reads.append(path) or
                        original(path))
    path = serving.export_workdir(str(root / "run"), str(tmp_path / "out"), "once")
    assert path.endswith(os.path.join("once", "1")) and len(reads) == 1

