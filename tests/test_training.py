import glob
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags as absl_flags

from sagan_tf import callbacks, checkpoints, data, loop, regularizers, training
from sagan_tf import config as config_lib
from sagan_tf.config import TrainingConfig
from sagan_tf.gan import SAGAN
from sagan_tf.models import DCGANDiscriminator, DCGANGenerator, Discriminator, Generator
from tests.commands import ENV, ROOT, run_command, run_main

TINY = dict(preset="dcgan_32", base_channels=8, z_dim=16, batch_size=8, log_every=2,
            sample_every=4, checkpoint_every=4, export=True)


def _config(tmp_path, **kwargs):
    merged = dict(TINY, workdir=str(tmp_path / "run"), export_dir=str(tmp_path / "savedmodels"))
    merged.update(kwargs)
    return training.TrainConfig.from_flat(**merged)


def _event_tags(logdir):
    tags = set()
    for path in glob.glob(os.path.join(logdir, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.add(value.tag)
    return tags


@pytest.mark.parametrize("replicas", [1, 2])
def test_tiny_pipeline_on_mnist5k(tmp_path, replicas, mirrored):
    config = _config(tmp_path, steps=8, conditional=True, ema_decay=0.9, ema_start=2)
    result = training.run(config, strategy=mirrored if replicas == 2 else None)
    assert result["step"] == 8
    assert all(np.isfinite(v) for k, v in result["logs"].items() if k != "images_per_second")
    run = tmp_path / "run"
    assert sorted(os.listdir(run / "samples")) == ["step_0000004.png", "step_0000008.png"]
    png = tf.io.decode_png(tf.io.read_file(str(run / "samples" / "step_0000008.png")))
    assert png.shape[-1] == 3 and png.shape[0] > 10 * 32  # one row per class (10 classes)
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-8")
    tags = _event_tags(str(run / "logs"))
    for tag in ("losses/d_loss", "losses/g_loss", "discriminator/d_real", "discriminator/d_fake",
                "discriminator/r_t",
                "gamma/G_attention8", "gamma/G_attention16", "gamma/D_attention8",
                "learning_rate/G", "speed/images_per_second", "samples",
                "attention/G_attention16", "attention/D_attention4", "_hparams_/session_start_info"):
        assert tag in tags, tag
    assert os.path.exists(os.path.join(result["export"], "saved_model.pb"))
    # HParams hold the effective architecture, not only the flags that were set.
    raw = b"".join(open(p, "rb").read() for p in glob.glob(str(run / "logs" / "events.*")))
    for key in (b"G/attention_resolutions", b"D/attention_variant", b"G/parameters",
                b"D/attention_spectral_norm"):
        assert key in raw, key


def test_tiny_pipeline_on_mocked_celeb_a(tmp_path, tfds_manual_files):
    with tfds.testing.mock_data(num_examples=32):
        config = _config(tmp_path, dataset="celeb_a", steps=4, g_attention=(16,),
                         d_attention=(8,), export=False)
        result = training.run(config)
    assert result["step"] == 4 and "export" not in result
    with open(tmp_path / "run" / "config.json") as f:
        saved = json.load(f)
    assert saved["flags"]["dataset"] == "celeb_a"
    assert saved["architecture"]["generator"]["attention_resolutions"] == [16]


def _twin_gans(strategy, weights=None, augment="", **kwargs):
    with strategy.scope():
        g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(8,))
        d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=(4,))
        g.build()
        d.build()
        gan = SAGAN(g, d, seed=3, **TrainingConfig(augment=augment, **kwargs).objectives())
        if isinstance(gan.augmentation, regularizers.ADA):
            gan.augmentation.p.assign(0.5)  # so the step augments
        gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        gan.build_optimizers()
        if weights is not None:
            for var, value in zip(g.weights + d.weights, weights):
                var.assign(value)
        for layer in g.attention_layers + d.attention_layers:
            layer.gamma.assign(0.5)  # so attention weights get gradients too
    return gan


def _one_step(gan, strategy, dataset, driver):
    if driver == "fit":
        return {k: v[-1] for k, v in gan.fit(dataset, epochs=1, steps_per_epoch=1,
                                              verbose=0).history.items()}
    return loop.train(gan, strategy, dataset, 1)


ADA_LECAM = dict(augment="ada", ada_interval=1, ada_kimg=0.05, lecam_weight=0.3)


@pytest.mark.parametrize("driver,settings", [("loop", {}), ("fit", {}),
                                             ("loop", dict(augment="color,translation,cutout")),
                                             ("loop", ADA_LECAM)])
def test_two_replica_step_equals_one_replica_step(mirrored, driver, settings):
    images = tf.random.stateless_uniform([8, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)
    batch = tf.data.Dataset.from_tensors((images, tf.zeros([8], tf.int32)))
    default = tf.distribute.get_strategy()
    one = _twin_gans(default, **settings)
    start = [np.asarray(w) for w in one.generator.weights + one.discriminator.weights]
    two = _twin_gans(mirrored, start, **settings)
    log_one = _one_step(one, default, batch, driver)
    log_two = _one_step(two, mirrored, mirrored.experimental_distribute_dataset(batch), driver)
    assert log_one.keys() == log_two.keys()
    for key in log_one:
        np.testing.assert_allclose(log_two[key], log_one[key], rtol=1e-4, atol=1e-5)
    state_one, state_two = one.regularizer_state, two.regularizer_state
    assert len(state_one) == (6 if settings.get("lecam_weight") else 0)
    for name in state_one:
        np.testing.assert_allclose(float(state_two[name].numpy()), float(state_one[name].numpy()),
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    if state_one:  # one step with interval 1: p moved by 8 images / 50 from 0.5
        assert float(state_one["augment/p"].numpy()) in (pytest.approx(0.34), pytest.approx(0.66))
    names = [w.path for w in one.generator.weights + one.discriminator.weights]
    ws_one = one.generator.weights + one.discriminator.weights
    ws_two = two.generator.weights + two.discriminator.weights
    moved = 0
    for name, a, b, s in zip(names, ws_one, ws_two, start):
        # Weights, batch-norm statistics and spectral-norm u all agree.
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=2e-5, err_msg=name)
        moved += not np.allclose(np.asarray(a), s)
    assert moved > len(names) // 2


def _checkpoint_values(ckpt_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(ckpt_dir))
    names = [n for n in reader.get_variable_to_shape_map()
             if not n.startswith(("save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH"))]
    return {n: reader.get_tensor(n) for n in names}


def test_nan_guard_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = tf.Variable(0)

    def poisoned_g(fake_logits):
        calls.assign_add(1)
        return -fake_logits + tf.where(calls > 6, np.nan, 0.0)

    from sagan_tf import losses
    monkeypatch.setattr(losses.Hinge, "g", staticmethod(poisoned_g))
    config = _config(tmp_path, steps=20, export=True)
    with pytest.raises(callbacks.NonFiniteLossError, match=r"g_loss.*step 7"):
        training.run(config)
    ckpt_dir = str(tmp_path / "run" / "checkpoints")
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-4")
    for name, value in _checkpoint_values(ckpt_dir).items():
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), name
    assert not os.path.exists(tmp_path / "savedmodels")


def test_workdir_of_another_architecture_is_refused(tmp_path):
    training.run(_config(tmp_path, steps=4, export=False))
    before = sorted(os.listdir(tmp_path / "run" / "checkpoints"))
    with pytest.raises(training.ConfigError, match="different architecture.*base_channels: 8 != 16"):
        training.run(_config(tmp_path, steps=8, base_channels=16, export=False))
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == before


def test_checkpoint_holds_every_weight(tmp_path):
    """G, D and EMA weights (spectral-norm u and batch-norm statistics included) and
    both optimizers' slots round-trip through `make_checkpoint`."""
    config = _config(tmp_path, ema_decay=0.5, conditional=True)
    strategy = tf.distribute.get_strategy()
    gan = training.build_gan(config, num_classes=10)
    loop.train(gan, strategy, data.distributed_dataset(strategy, config.data_spec(), 8), 2)
    path = checkpoints.make_checkpoint(gan).save(str(tmp_path / "ckpt"))
    assert checkpoints.layout_of(path) == "path"
    fresh = training.build_gan(config.replace(seed=1), num_classes=10)
    checkpoints.make_checkpoint(fresh).restore(path).assert_consumed()

    def state(g):
        return (g.generator.weights + g.discriminator.weights + g.ema_generator.weights
                + g.g_optimizer.variables + g.d_optimizer.variables)

    assert len(state(gan)) == len(state(fresh)) > 100
    for a, b in zip(state(gan), state(fresh)):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=a.path)


def _objects(gan):
    return lambda layout: checkpoints.checkpoint_objects(gan, layout)


def test_a_family_that_creates_its_layers_in_another_order_restores_by_path(tmp_path):
    """Checkpoints key each variable by its path: a generator and discriminator
    whose weights come in reverse order (as a family reordering its layers' creation
    would give) get every variable back in its own place."""
    config = _config(tmp_path, ema_decay=0.5, conditional=True, augment="ada", lecam_weight=0.1)
    strategy = tf.distribute.get_strategy()
    gan = training.build_gan(config, num_classes=10)
    loop.train(gan, strategy, data.distributed_dataset(strategy, config.data_spec(), 8), 2)
    path = checkpoints.make_checkpoint(gan).save(str(tmp_path / "ckpt"))
    fresh = training.build_gan(config.replace(seed=1), num_classes=10)
    for model in (fresh.generator, fresh.discriminator, fresh.ema_generator):
        family = type(model)
        model.__class__ = type("Reordered" + family.__name__, (family,), {
            "weights": property(lambda self, f=family: f.weights.fget(self)[::-1])})
    assert fresh.generator.weights[0].path == gan.generator.weights[-1].path
    checkpoints.restore(_objects(fresh), path, "the models")
    for name in ("generator", "discriminator", "ema_generator"):
        ours = checkpoints.weights_by_path(getattr(fresh, name))
        for key, variable in checkpoints.weights_by_path(getattr(gan, name)).items():
            np.testing.assert_array_equal(np.asarray(ours[key]), np.asarray(variable),
                                          err_msg=f"{name}/{key}")
    for key, variable in gan.regularizer_state.items():
        assert float(fresh.regularizer_state[key]) == float(variable), key


def test_a_variable_missing_from_a_checkpoint_or_unknown_to_the_model_is_named(tmp_path):
    config = _config(tmp_path)
    gan = training.build_gan(config, num_classes=0)
    objects = checkpoints.checkpoint_objects(gan)
    gone = sorted(objects["generator"])[3]
    del objects["generator"][gone]
    path = tf.train.Checkpoint(**objects).save(str(tmp_path / "missing"))
    with pytest.raises(checkpoints.WorkdirError, match=f"has no generator variable '{gone}'"):
        checkpoints.restore(_objects(gan), path, "this run's models")
    objects = checkpoints.checkpoint_objects(gan)
    objects["discriminator"]["block9/kernel"] = tf.Variable(1.0)
    path = tf.train.Checkpoint(**objects).save(str(tmp_path / "unknown"))
    with pytest.raises(checkpoints.WorkdirError, match="holds a discriminator variable "
                       "'block9/kernel' unknown to this run's models"):
        checkpoints.restore(_objects(gan), path, "this run's models")


@pytest.mark.parametrize("settings", [dict(augment="translation,cutout,color"),
                                      dict(augment="ada", ada_interval=1, ada_kimg=0.1,
                                           lecam_weight=0.3)])
def test_resume_is_exact(tmp_path, settings):
    """4 steps, stop, resume to 8 == 8 steps straight: weights, optimizer slots, EMA,
    BN statistics, spectral-norm u, ADA's p and LeCam's averages (same data, same z,
    same state)."""
    kwargs = dict(steps=8, export=False, conditional=True, ema_decay=0.9, d_steps=2,
                  **settings)
    training.run(_config(tmp_path / "a", **dict(kwargs, steps=4)))
    resumed = training.run(_config(tmp_path / "a", **kwargs))
    straight = training.run(_config(tmp_path / "b", **kwargs))
    assert resumed["step"] == straight["step"] == 8
    a = _checkpoint_values(str(tmp_path / "a" / "run" / "checkpoints"))
    b = _checkpoint_values(str(tmp_path / "b" / "run" / "checkpoints"))
    assert a.keys() == b.keys() and len(a) > 50
    if settings["augment"] == "ada":
        p = [v for name, v in a.items() if name.startswith("augment/p/")]
        assert len(p) == 1 and 0 < p[0] < 1  # p moved, and the checkpoint holds it
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("flagfile", sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags"))))
def test_every_flag_preset_parses_and_builds(flagfile):
    flag_values = absl_flags.FlagValues()
    config_lib.define_flags(flag_values)
    flag_values(["train", f"--flagfile={flagfile}", "--batch_size=8"])
    config = config_lib.TrainConfig.from_flags(flag_values)
    num_classes = 10 if config.model.conditional else 0
    g_kwargs, d_kwargs = config.model.model_kwargs(num_classes)
    g = Generator.from_config(dict(g_kwargs, base_channels=8))
    d = Discriminator.from_config(dict(d_kwargs, base_channels=8))
    images = g(tf.zeros([2, config.model.z_dim]), tf.zeros([2], tf.int32) if num_classes else None)
    assert images.shape == (2, config.image_size, config.image_size, config.model.channels)
    assert d(images, tf.zeros([2], tf.int32) if num_classes else None).shape == (2,)


@pytest.mark.parametrize("flagfile", ["colour_32", "few_images_64", "heykeetae_celeb_a_64"])
def test_to_argv_gives_back_the_config(flagfile):
    """`config.to_argv` (how benchmarks.compare starts sagan-train) is the inverse of
    parsing flags: booleans, lists, floats and strings included."""
    from sagan_tf import flagfiles

    def parse(argv):
        flag_values = absl_flags.FlagValues()
        config_lib.define_flags(flag_values)
        flag_values(["train", *argv])
        return config_lib.TrainConfig.from_flags(flag_values)

    config = parse([f"--flagfile={flagfiles.resolve(flagfile)}", "--g_attention=",
                    "--lr_g=3.0000000000000004e-05", "--noexport", "--conditional"])
    argv = config_lib.to_argv(config)
    assert "--g_attention=" in argv and "--noexport" in argv and "--conditional" in argv
    assert parse(argv) == config


# The last field: the command in a fresh process (twice: a config error, and device set-up,
# which only a fresh process does), or its main in this one.
@pytest.mark.parametrize("args,message,run", [
    (["--steps=-3"], "--steps must be >= 1", run_command),
    (["--loss=lsgan"], "--loss='lsgan' is unknown", run_main),
    (["--dataset=celeba"], "unknown dataset 'celeba'", run_main),
    (["--g_attention=7"], r"--g_attention: DCGANGenerator: argument `attention_resolutions` "
                          r"must be one of \[4, 8, 16\]; received 7", run_main),
    (["--d_attention=7"], r"--d_attention: DCGANDiscriminator: argument `attention_resolutions` "
                          r"must be one of \[16, 8, 4\]; received 7", run_main),
    (["--preset=dcgan_48"], "--preset='dcgan_48' is unknown", run_main),
    (["--dataset=cifar10", "--eval_every=10"],
     "classifier backbone is trained on the dataset it scores", run_main),
    (["--strategy=mirrored", "--num_cpu_devices=2", "--batch_size=7"],
     "batch size 7 must be a positive multiple of the number of replicas", run_command),
    (["--augment=translation,flip"], "--augment: unknown augmentation 'flip'", run_main),
    (["--crop=-5"], "--crop must be >= 1", run_main),
    (["--train_subset=5000"], "a subset of 5000 images is larger than mnist5k's train split "
                              r"\(4500 images\)", run_main),
    (["--export_name=../../x"], "--export_name: model name '../../x' must be a plain", run_main),
    (["--export_dir={tmp}/a_file/models"], "--export_dir=.* cannot be written", run_main),
])
def test_bad_flags_exit_with_one_line(tmp_path, args, message, run):
    (tmp_path / "a_file").write_text("not a directory")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run("sagan_tf.train", f"--workdir={tmp_path / 'run'}", "--steps=2", *args)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert re.search(message, last), last
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_resume_after_sigkill(tmp_path):
    workdir = tmp_path / "run"
    args = [f"--workdir={workdir}", "--base_channels=8", "--z_dim=16", "--batch_size=8",
            "--steps=400", "--checkpoint_every=5", "--log_every=5", "--sample_every=1000",
            "--noexport"]
    proc = subprocess.Popen([sys.executable, "-m", "sagan_tf.train", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = str(workdir / "checkpoints")
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
        if latest and int(latest.rsplit("-", 1)[1]) >= 10:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # kill mid-run, between checkpoints or while writing one
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = int(tf.train.latest_checkpoint(ckpt_dir).rsplit("-", 1)[1])
    assert 10 <= killed_at < 400
    done = run_command("sagan_tf.train", *[a if not a.startswith("--steps") else f"--steps={killed_at + 10}" for a in args])
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"at step {killed_at}" in done.stderr
    assert tf.train.latest_checkpoint(ckpt_dir).endswith(f"ckpt-{killed_at + 10}")


def test_periodic_evaluation_keeps_the_best_checkpoint(tmp_path):
    config = _config(tmp_path, steps=8, eval_every=4, eval_samples=40, export=False,
                     conditional=True)
    training.run(config)
    best_dir = tmp_path / "run" / "best"
    with open(best_dir / "best.json") as f:
        best = json.load(f)
    assert best["step"] in (4, 8) and best["backbone"] == "classifier"
    assert tf.train.latest_checkpoint(str(best_dir)).endswith(f"ckpt-{best['step']}")
    tags = _event_tags(str(tmp_path / "run" / "logs"))
    assert {"eval/fid_classifier", "eval/kid_classifier", "eval/is_classifier"} <= tags


def test_time_limit_stops_cleanly_with_a_checkpoint(tmp_path):
    result = training.run(_config(tmp_path, steps=100000, max_minutes=0.05, export=False))
    assert 0 < result["step"] < 100000
    latest = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert latest.endswith(f"ckpt-{result['step']}")


def test_random_streams_never_collide_within_or_across_steps():
    """D updates, the G update and gradient penalties each get their own seed, also for d_steps >= 8."""
    gan = _twin_gans(tf.distribute.get_strategy())
    gan.d_steps = 8
    seeds = []
    for step in (0, 1):
        gan.g_optimizer.iterations.assign(step)
        streams = list(range(8)) + [8] + [gan.d_steps + 1 + i for i in range(8)]
        seeds += [tuple(gan._seed(s).numpy()) for s in streams]
    assert len(seeds) == len(set(seeds)) == 34


def test_finished_run_is_not_exported_again_and_a_late_ema_start_warns(tmp_path, caplog):
    import logging

    config = _config(tmp_path, steps=2, ema_decay=0.9, ema_start=5, sample_every=2)
    with caplog.at_level(logging.INFO, logger="absl"):
        first = training.run(config)
    assert "--ema_start=5 >= --steps=2" in caplog.text
    assert "the first step compiled and ran in" in caplog.text
    assert "step 2/2 (100%) | d_loss" in caplog.text and "D(real)" in caplog.text
    models = tmp_path / "savedmodels" / "run"
    assert os.listdir(models) == ["1"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="absl"):
        again = training.run(config)  # nothing to train: same weights, no new version
    assert again["export"] == first["export"] and os.listdir(models) == ["1"]
    assert "already exported" in caplog.text
    more = training.run(config.replace(steps=4))
    assert sorted(os.listdir(models)) == ["1", "2"] and more["export"].endswith("2")
    with open(os.path.join(more["export"], "assets.extra.json")) as f:
        assert json.load(f)["source"] == {"workdir": str(tmp_path / "run"), "step": 4}


def test_an_unreadable_checkpoint_state_never_restarts_from_step_zero(tmp_path, caplog):
    import logging

    config = _config(tmp_path, steps=8, export=False, keep_checkpoints=5)
    training.run(config)
    ckpt = tmp_path / "run" / "checkpoints"
    state = ckpt / "checkpoint"
    data_files = {p.name: p.read_bytes() for p in ckpt.iterdir() if p.name != "checkpoint"}
    for broken in (b"garbage \x00\xff not a proto", b"", None):
        if broken is None:
            state.unlink()
        else:
            state.write_bytes(broken)
        result = training.run(config.replace(steps=8))
        assert result["step"] == 8 and result["logs"] == {}  # resumed at 8: nothing to train
        assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-8")  # state repaired
    # A truncated newest checkpoint: resume from the intact older one, keep the bad files.
    data8 = [p for p in ckpt.iterdir() if p.name.startswith("ckpt-8.data")][0]
    data8.write_bytes(data8.read_bytes()[:10])
    with caplog.at_level(logging.WARNING, logger="absl"):
        result = training.run(config.replace(steps=4))
    assert result["step"] == 4 and "ckpt-8 (" in caplog.text and data8.exists()
    # Nothing readable: one line, every file still there byte for byte (but the one we cut).
    (ckpt / "ckpt-4.index").write_bytes(b"not an index")
    with pytest.raises(training.ConfigError, match="none is readable"):
        training.run(config)
    for name, content in data_files.items():
        if name not in (data8.name, "ckpt-4.index"):
            assert (ckpt / name).read_bytes() == content, name


def test_learning_rates_changed_on_resume_are_applied_and_logged(tmp_path, caplog):
    import logging

    config = _config(tmp_path, steps=2, export=False)
    training.run(config)
    with caplog.at_level(logging.WARNING, logger="absl"):
        result = training.run(config.replace(steps=4, lr_g=5e-5))
    gan = result["gan"]
    assert float(np.asarray(gan.g_optimizer.learning_rate)) == pytest.approx(5e-5)
    assert float(np.asarray(gan.d_optimizer.learning_rate)) == pytest.approx(config.training.lr_d)
    assert "--lr_g changed on resume: 0.0001 (checkpoint) -> 5e-05" in caplog.text
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["flags"]["lr_g"] == 5e-5


def test_a_workdir_in_use_is_refused_with_its_holder(tmp_path):
    config = _config(tmp_path, steps=2, export=False)
    holder = checkpoints.WorkdirLock(config.run.workdir)
    try:
        with pytest.raises(training.ConfigError, match=r"is in use by pid \d+ on "):
            training.run(config)
        assert not os.path.exists(os.path.join(config.run.workdir, "checkpoints"))
    finally:
        holder.release()
    assert training.run(config)["step"] == 2  # released: the run proceeds
    # The run released its own lock too.
    checkpoints.WorkdirLock(config.run.workdir).release()


def test_disk_full_during_a_checkpoint_is_one_line_and_leaves_nothing_partial(tmp_path,
                                                                              monkeypatch):
    config = _config(tmp_path, steps=4, export=False, checkpoint_every=4)
    training.run(config)
    ckpt = tmp_path / "run" / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    (ckpt / "ckpt-3_temp").mkdir()  # what a SIGKILL during a save leaves: removed at start
    original = tf.train.CheckpointManager.save

    def full_disk(self, checkpoint_number=None, **kwargs):
        (ckpt / f"ckpt-{checkpoint_number}.data-00000-of-00001").write_bytes(b"half")
        (ckpt / f"ckpt-{checkpoint_number}_temp").mkdir()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    with pytest.raises(callbacks.CheckpointWriteError,
                       match=r"cannot write checkpoint ckpt-8 in .*No space left on device "
                             r"\(\d+ MiB free on its disk; the checkpoint needs about \d+ MiB\)"):
        training.run(config.replace(steps=8))
    monkeypatch.setattr(tf.train.CheckpointManager, "save", original)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before


def test_workdir_tf_config_and_config_json_errors_are_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(training.ConfigError, match="is a file, not a directory"):
        training.run(_config(tmp_path, workdir=str(tmp_path / "a_file"), steps=1))
    config = _config(tmp_path, steps=2, export=False)
    training.run(config)
    config_json = tmp_path / "run" / "config.json"
    config_json.write_text("{ not json")
    with pytest.raises(training.ConfigError, match=r"config.json: not a readable sagan_tf "
                                                   r"config.json \(JSONDecodeError"):
        training.run(config)
    for text, message in [
        (None, "needs the TF_CONFIG environment variable"),
        ("{bad json", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}}', "TF_CONFIG has no task"),
        ('{"task": {"type": "worker", "index": 0}}', "no cluster.worker list"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}',
         r"task index 3 is not in \[0, 1\)"),
    ]:
        with pytest.raises(training.ConfigError, match=message):
            training.check_tf_config(text)


def test_a_progress_line_comes_at_least_every_heartbeat_whatever_the_cadence(tmp_path, caplog,
                                                                             monkeypatch):
    monkeypatch.setattr(callbacks, "HEARTBEAT_SECONDS", 0.0)  # every step is "long"
    with caplog.at_level(logging.INFO, logger="absl"):
        training.run(_config(tmp_path, steps=4, log_every=1000, export=False))
    beats = [m for m in caplog.messages if m.endswith("losses every 1000 steps")]
    assert [b.split(" |")[0] for b in beats] == ["step 2/4 (50%)", "step 3/4 (75%)"], beats
    assert all(re.search(r" \| [\d.]+ img/s \| eta \d+m\d\ds \| ", b) for b in beats), beats
    assert any(m.startswith("step 4/4 (100%) | d_loss") for m in caplog.messages)  # the last
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["steady_images_per_second"] > 0  # the compiling first step left out


def test_a_tensorboard_write_failure_is_one_line_and_keeps_the_checkpoints(tmp_path,
                                                                             monkeypatch):
    create = tf.summary.create_file_writer

    class FullDisk:
        """A summary writer whose second flush meets a full disk (the first is HParams')."""

        def __init__(self, logdir):
            self._writer, self.flushes = create(logdir), 0

        def __getattr__(self, name):
            return getattr(self._writer, name)

        def flush(self):
            self.flushes += 1
            if self.flushes > 1:
                raise tf.errors.ResourceExhaustedError(
                    None, None, "logs/events.out.tfevents.1; No space left on device")
            self._writer.flush()

    monkeypatch.setattr(tf.summary, "create_file_writer", FullDisk)
    with pytest.raises(callbacks.LogWriteError) as error:
        training.run(_config(tmp_path, steps=4, log_every=2, checkpoint_every=2, export=False))
    message = str(error.value)
    assert "\n" not in message and message.startswith(
        f"cannot write TensorBoard logs in {tmp_path / 'run' / 'logs'}: ")
    assert "No space left on device" in message and "MiB free on its disk" in message
    assert checkpoints.checkpoint_steps(str(tmp_path / "run" / "checkpoints")) == [2]


def test_a_hand_edited_config_json_never_switches_the_resume_guard_off(tmp_path, caplog):
    config = _config(tmp_path, steps=2, export=False)
    training.run(config)
    path = tmp_path / "run" / "config.json"
    good = json.loads(path.read_text())

    def edited(edit):
        record = json.loads(json.dumps(good))
        edit(record)
        path.write_text(json.dumps(record))

    bigger = config.replace(batch_size=16, steps=3)
    # Wrong types and nulls where an object belongs: one line naming the key.
    for edit, message in [
        (lambda r: r.update(flags=None), "'flags' must be an object, not null"),
        (lambda r: r.update(history=None), "'history' must be a list, not null"),
        (lambda r: r["architecture"].update(generator=None),
         "'architecture.generator' must be an object, not null"),
        (lambda r: r["architecture"].pop("ema"), "the key 'architecture.ema' is missing"),
        (lambda r: r["flags"].update(batch_size="sixteen"),
         'flags.batch_size is "sixteen", not a value of --batch_size'),
        (lambda r: r.pop("flags"), 'has no "flags" record'),
    ]:
        edited(edit)
        with pytest.raises(training.ConfigError) as error:
            training.run(bigger)
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    # A deleted option is taken at its default: changing it is refused like any change.
    edited(lambda r: r["flags"].pop("batch_size"))
    with pytest.raises(training.ConfigError, match=r"--batch_size: \(not recorded\) -> 16"):
        training.run(bigger)
    # --allow_config_change resumes and records what changed in the history.
    edited(lambda r: r.pop("flags"))
    result = training.run(bigger.replace(allow_config_change=True))
    assert result["step"] == 3
    history = json.loads(path.read_text())["history"]
    assert history[-1]["step"] == 2 and history[-1]["changed"]["batch_size"] == [
        "(not recorded)", 16]
    # Unknown keys are reported once and ignored.
    edited(lambda r: (r.update(notes="mine"), r["flags"].update(old_option=1)))
    with caplog.at_level("WARNING"):
        assert training.run(config.replace(steps=4))["step"] == 4
    assert sum("unknown key(s) notes" in m for m in caplog.messages) == 1
    assert any("unknown option(s) in flags, ignored: old_option" in m for m in caplog.messages)


def test_a_folder_smaller_than_a_batch_is_one_line(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    data._FOLDER_CACHE.clear()
    with pytest.raises(data.DataError, match="has 3 examples, fewer than one batch"):
        training.run(_config(tmp_path, dataset=f"folder:{tmp_path}", steps=2, export=False))
    # Fewer images than the 4 real images the attention maps show: trains (was StopIteration).
    result = training.run(_config(tmp_path, dataset=f"folder:{tmp_path}", steps=2, export=False,
                                  batch_size=2, workdir=str(tmp_path / "run2")))
    assert result["step"] == 2


def test_uniform_fake_labels_are_drawn_per_step_and_split_over_replicas(mirrored):
    """--fake_labels=uniform (the official code): the fake batch's labels are uniform draws,
    not the real batch's, seeded by the step; 2 replicas take the rows of the 1-replica draw."""
    def gan_on(strategy, fake_labels):
        with strategy.scope():
            g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(),
                          num_classes=5)
            d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=(),
                              num_classes=5)
            gan = SAGAN(g, d, seed=3, fake_labels=fake_labels)
            gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
            gan.build_optimizers()
        return gan

    real = tf.zeros([64], tf.int32)
    gan = gan_on(tf.distribute.get_strategy(), "uniform")
    drawn = gan.sample_fake_labels(real, 64, 0).numpy()
    assert drawn.min() >= 0 and drawn.max() < 5 and len(set(drawn)) == 5
    assert np.array_equal(drawn, gan.sample_fake_labels(real, 64, 0).numpy())
    assert not np.array_equal(drawn, gan.sample_fake_labels(real, 64, 1).numpy())
    gan.g_optimizer.iterations.assign(1)
    assert not np.array_equal(drawn, gan.sample_fake_labels(real, 64, 0).numpy())
    assert gan_on(tf.distribute.get_strategy(), "real").sample_fake_labels(real, 64, 0) is real
    two = gan_on(mirrored, "uniform")
    halves = mirrored.run(lambda: two.sample_fake_labels(tf.zeros([32], tf.int32), 64, 0))
    joined = np.concatenate([t.numpy() for t in mirrored.experimental_local_results(halves)])
    np.testing.assert_array_equal(joined, drawn)
    with pytest.raises(ValueError, match="fake_labels"):
        gan_on(tf.distribute.get_strategy(), "random")


def test_a_workdir_from_before_new_model_arguments_still_resumes(tmp_path):
    """config.json files written before a model argument existed lack its key: the default
    (what that run was built with) is assumed, so the run resumes."""
    run = str(tmp_path / "run")
    config = training.TrainConfig.from_flat(workdir=run, preset="dcgan_32", base_channels=8, steps=1,
                                  batch_size=4, export=False, g_attention=(), d_attention=())
    training.run(config)
    path = os.path.join(run, "config.json")
    saved = json.load(open(path))
    for key in ("sn_transpose_flatten", "batch_norm_momentum", "final_batch_norm_momentum"):
        saved["architecture"]["generator"].pop(key, None)
    json.dump(saved, open(path, "w"))
    assert training.run(config.replace(steps=2))["step"] == 2
    other = config.replace(steps=3, bn_momentum=0.9)
    with pytest.raises(training.ConfigError, match="batch_norm_momentum: 0.99 != 0.9"):
        training.run(other)


@pytest.mark.parametrize("replicas", [1, 2])
def test_steps_per_execution_equals_single_steps(mirrored, replicas):
    """5 steps in calls of 3 (a 3-step call, then a 2-step one) end with the weights, optimizer
    state and metrics of 5 single steps; the batch hooks run after steps 3 and 5."""
    strategy = mirrored if replicas == 2 else tf.distribute.get_strategy()
    images = tf.random.stateless_uniform([8, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)
    batch = tf.data.Dataset.from_tensors((images, tf.zeros([8], tf.int32))).repeat()
    if replicas == 2:
        batch = mirrored.experimental_distribute_dataset(batch)
    single = _twin_gans(strategy)
    start = [np.asarray(w) for w in single.generator.weights + single.discriminator.weights]
    grouped = _twin_gans(strategy, start)
    seen = []

    class Steps(keras.callbacks.Callback):
        def on_train_batch_end(self, b, logs=None):
            seen.append((b, int(self.model.step.numpy())))

    logs_single = loop.train(single, strategy, batch, 5)
    logs_grouped = loop.train(grouped, strategy, batch, 5, [Steps()], steps_per_execution=3)
    assert seen == [(2, 3), (4, 5)]
    for key in logs_single:
        np.testing.assert_allclose(logs_grouped[key], logs_single[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(single.generator.weights + single.discriminator.weights,
                    grouped.generator.weights + grouped.discriminator.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5, err_msg=a.path)


def test_steps_per_execution_in_a_run_keeps_every_cadence(tmp_path):
    config = training.TrainConfig.from_flat(workdir=str(tmp_path / "run"), preset="dcgan_32", base_channels=8,
                                  steps=6, batch_size=4, export=False, g_attention=(),
                                  d_attention=(), steps_per_execution=2, log_every=2,
                                  sample_every=4, checkpoint_every=4)
    result = training.run(config)
    assert result["step"] == 6
    assert checkpoints.checkpoint_steps(str(tmp_path / "run" / "checkpoints")) == [6, 4]
    assert sorted(os.listdir(tmp_path / "run" / "samples")) == ["step_0000004.png",
                                                                "step_0000006.png"]
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["steps_run"] == 6
    with pytest.raises(training.ConfigError, match="--log_every=50 must be a multiple of "
                       "--steps_per_execution=8"):
        config.replace(steps_per_execution=8, log_every=50)


def test_folder_labels_are_named_in_the_log_the_run_and_the_savedmodel(tmp_path, caplog):
    import logging

    from PIL import Image

    from sagan_tf import sampling

    rng = np.random.default_rng(0)
    for name in ("dogs", "cats"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "pets" / name / f"{i}.png")
    with pytest.raises(training.ConfigError, match="--folder_labels .* add --conditional"):
        _config(tmp_path, dataset=f"folder:{tmp_path / 'pets'}", folder_labels=True)
    config = _config(tmp_path, dataset=f"folder:{tmp_path / 'pets'}", folder_labels=True,
                     conditional=True, steps=2, workdir=None, export_dir=str(tmp_path / "sm"))
    assert config.run.workdir == os.path.join("runs", "pets")
    config = config.replace(workdir=str(tmp_path / "run"))
    with caplog.at_level(logging.INFO, logger="absl"):
        result = training.run(config)
    assert "labels: 0=cats, 1=dogs" in caplog.text
    assert f"created the run directory {tmp_path / 'run'}" in caplog.text
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["dataset"]["class_names"] == ["cats", "dogs"]
    loaded = sampling.load_model(result["export"])
    assert sampling.class_names(loaded) == ["cats", "dogs"]
    assert sampling.parse_labels(["dogs", "0"], sampling.class_names(loaded)) == [1, 0]
    assert sampling.grid(loaded, 4, 1.0, ["dogs", "cats"], seed=0).shape[-1] == 3
    with open(os.path.join(result["export"], "assets.extra.json")) as f:
        assert json.load(f)["class_names"] == ["cats", "dogs"]


def _train_until(tmp_path, args, text, timeout=300):
    """`sagan_tf.train args` in a fresh process, its stderr in tmp_path/stderr.txt,
    returned once `text` shows there (the C++ log level at 2: the stop line among
    the usual stderr)."""
    env = dict(ENV, TF_CPP_MIN_LOG_LEVEL="2")
    log = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "sagan_tf.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + timeout
    while time.time() < deadline and text not in open(tmp_path / "stderr.txt").read():
        time.sleep(0.1)
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_saves_the_last_step_and_exits_128_plus_its_number(tmp_path, signum):
    workdir = tmp_path / "run"
    args = [f"--workdir={workdir}", "--base_channels=8", "--z_dim=16", "--batch_size=8",
            "--steps=100000", "--checkpoint_every=100000", "--log_every=2",
            "--sample_every=100000", "--noexport"]
    proc = _train_until(tmp_path, args, "step 6/")
    proc.send_signal(signum)
    proc.send_signal(signum)  # a second one while stopping changes nothing
    assert proc.wait(timeout=300) == 128 + signum
    stderr = open(tmp_path / "stderr.txt").read()
    name = signal.Signals(signum).name
    last = stderr.strip().splitlines()[-1]
    match = re.fullmatch(rf"stopped by {name} at step (\d+); checkpoint written; run the same "
                         "command to resume", last)
    assert match, stderr[-2000:]
    step = int(match.group(1))
    assert step >= 6 and "Traceback" not in stderr
    assert checkpoints.checkpoint_steps(str(workdir / "checkpoints")) == [step]
    assert not os.path.exists(tmp_path / "savedmodels")
    # The lock is released: the same command resumes from that step.
    done = run_command("sagan_tf.train", *[a if not a.startswith("--steps") else f"--steps={step + 2}" for a in args])
    assert done.returncode == 0 and f"at step {step}" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("phase", ["evaluation", "export"])
def test_a_stop_signal_during_the_final_evaluation_or_the_export_abandons_it(tmp_path,
                                                                             monkeypatch, phase):
    """The signal comes from inside the phase (the process signals itself), so the
    test does not depend on timing: the phase is abandoned, the last step's
    checkpoint stays, and no version or temporary directory is left."""
    from sagan_tf import serving

    if phase == "evaluation":
        evaluate = callbacks.PeriodicEvaluation.evaluate

        def signalled(self, step):
            os.kill(os.getpid(), signal.SIGTERM)
            return evaluate(self, step)

        monkeypatch.setattr(callbacks.PeriodicEvaluation, "evaluate", signalled)
    else:
        save = tf.saved_model.save

        def signalled(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return save(*args, **kwargs)

        monkeypatch.setattr(tf.saved_model, "save", signalled)
    config = _config(tmp_path, steps=4, eval_every=1000 if phase == "evaluation" else 0,
                     eval_samples=200, checkpoint_every=1000)
    result = training.run(config)
    assert result["stop_signal"] == signal.SIGTERM and result["step"] == 4
    assert result["abandoned"] == (["the final evaluation", "the export"]
                                   if phase == "evaluation" else ["the export"])
    assert "export" not in result and result["logs"].get("evaluation") is None
    assert checkpoints.checkpoint_steps(str(tmp_path / "run" / "checkpoints")) == [4]
    # Nothing under the export directory: no version, no temporary directory, and not
    # the model directory the export would have created.
    exports = tmp_path / "savedmodels"
    assert not exports.exists() or os.listdir(exports) == []
    # Until the process exits a repeated signal only logs; then the handlers are restored.
    assert signal.getsignal(signal.SIGTERM) == result["signals"]._handle
    result["signals"].uninstall()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    # The same command afterwards exports that step.
    monkeypatch.undo()
    again = training.run(config)
    assert again["stop_signal"] is None and again["export"].endswith(os.path.join("run", "1"))
    assert serving.latest_export(str(tmp_path / "savedmodels"), "run")[1]["source"]["step"] == 4


def test_a_stop_signal_during_the_final_evaluation_exits_143_with_one_line(tmp_path):
    workdir = tmp_path / "run"
    args = [f"--workdir={workdir}", "--base_channels=8", "--z_dim=16", "--batch_size=8",
            "--steps=4", "--eval_every=1000", "--eval_samples=4000", "--log_every=2",
            f"--export_dir={tmp_path / 'savedmodels'}"]
    proc = _train_until(tmp_path, args, "step 4: evaluating")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # a second one while stopping changes nothing
    assert proc.wait(timeout=300) == 143
    stderr = open(tmp_path / "stderr.txt").read()
    assert stderr.strip().splitlines()[-1] == (
        "stopped by SIGTERM at step 4; checkpoint written; the final evaluation and the export "
        "abandoned; run the same command to resume"), stderr[-2000:]
    assert "Traceback" not in stderr and "step 4 eval" not in stderr
    assert checkpoints.checkpoint_steps(str(workdir / "checkpoints")) == [4]
    assert not os.path.exists(tmp_path / "savedmodels" / "run")


def test_a_resume_that_changes_the_training_step_is_refused(tmp_path):
    from PIL import Image

    (tmp_path / "pets").mkdir()
    for i in range(8):
        Image.new("RGB", (32, 32), (i * 30, 0, 0)).save(tmp_path / "pets" / f"{i}.png")
    config = _config(tmp_path, steps=2, export=False)
    training.run(config)

    def files():  # all but the lock, which names its latest holder
        return {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "run" / "**"),
                                                           recursive=True)
                if os.path.isfile(p) and not p.endswith(".lock")}

    before = files()
    change = dict(batch_size=4, dataset=f"folder:{tmp_path / 'pets'}", d_steps=2, loss="ns",
                  augment="translation", ema_start=5)
    with pytest.raises(training.ConfigError, match="was trained with other settings") as error:
        training.run(config.replace(steps=4, **change))
    message = str(error.value)
    assert "\n" not in message
    for shown in ("--batch_size: 8 -> 4", "--dataset: 'mnist5k' -> 'folder:", "--d_steps: 1 -> 2",
                  "--loss: 'hinge' -> 'ns'", "--augment: '' -> 'translation'",
                  "--ema_start: 0 -> 5"):
        assert shown in message, shown
    assert "--steps" not in message  # a resumable option
    assert files() == before  # the workdir is untouched (and unlocked: the next run proceeds)
    result = training.run(config.replace(steps=4, allow_config_change=True, **change))
    assert result["step"] == 4
    with open(tmp_path / "run" / "config.json") as f:
        history = json.load(f)["history"]
    assert history[-1]["step"] == 2 and history[-1]["changed"]["steps"] == [2, 4]
    assert history[-1]["changed"]["batch_size"] == [8, 4]
    assert history[-1]["changed"]["augment"] == ["", "translation"]


def test_a_precision_change_on_resume_is_one_line_even_with_the_override(tmp_path):
    config = _config(tmp_path, steps=2, export=False)
    training.run(config)
    for allow in (False, True):
        with pytest.raises(training.ConfigError, match=r"trained with --precision=float32; it "
                           r"cannot resume with --precision=mixed_float16"):
            training.run(config.replace(steps=4, precision="mixed_float16",
                                        allow_config_change=allow))


def test_export_retries_when_a_live_run_deletes_its_checkpoint(tmp_path, monkeypatch):
    training.run(_config(tmp_path, steps=4, export=False, checkpoint_every=2))
    real_restore = tf.train.Checkpoint.restore
    calls = []

    def restore_after_a_deletion(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:  # the trainer deletes the checkpoint found, as keep=1 does
            for name in glob.glob(path + ".*"):
                os.remove(name)
        return real_restore(self, path, *args, **kwargs)

    monkeypatch.setattr(tf.train.Checkpoint, "restore", restore_after_a_deletion)
    generator, step = checkpoints.restore_generator_for_export(str(tmp_path / "run"))
    assert calls[0].endswith("ckpt-4") and step == 2 and calls[-1].endswith("ckpt-2")


def test_an_image_garbled_after_the_scan_stops_with_one_line_naming_it(tmp_path):
    from PIL import Image

    (tmp_path / "pics").mkdir()
    for i in range(8):
        Image.new("RGB", (32, 32), (i * 30, 0, 0)).save(tmp_path / "pics" / f"{i}.png")
    data._FOLDER_CACHE.clear()
    config = _config(tmp_path, dataset=f"folder:{tmp_path / 'pics'}", steps=6, export=False,
                     checkpoint_every=2)
    trainer = training.Trainer(config)
    try:
        (tmp_path / "pics" / "3.png").write_bytes(b"this is no longer an image" * 10)
        with pytest.raises(data.DataError) as error:
            trainer.train()
    finally:
        trainer.close()
    message = str(error.value)
    assert "\n" not in message and "3.png" in message and "no longer an image" in message


def test_mixed_bfloat16_keeps_state_in_float32_and_steps_close_to_float32():
    """Under mixed_bfloat16 the variables, Adam's moments and the spectral-norm u stay
    float32, and one step's losses stay within bfloat16's rounding of float32's."""
    strategy = tf.distribute.get_strategy()
    images = tf.random.stateless_uniform([8, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)
    dataset = tf.data.Dataset.from_tensors((images, tf.zeros([8], tf.int32))).repeat()
    losses = {}
    for precision in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_global_policy(precision)
        try:
            keras.utils.set_random_seed(0)
            g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(8,))
            d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=(4,))
            g.build()
            d.build()
            gan = SAGAN(g, d, seed=3)
            gan.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
            gan.build_optimizers()
            losses[precision] = loop.train(gan, strategy, dataset, 1)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        if precision == "mixed_bfloat16":
            state = (g.weights + d.weights + list(gan.g_optimizer.variables)
                     + list(gan.d_optimizer.variables))
            floats = [v for v in state if "float" in str(v.dtype)]
            assert floats and all(str(v.dtype) == "float32" for v in floats), \
                [(v.path, v.dtype) for v in floats if str(v.dtype) != "float32"][:3]
            assert any(v.path.endswith("/u") for v in g.weights)
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(losses["mixed_bfloat16"][key], losses["float32"][key],
                                   rtol=0.05, atol=0.02, err_msg=key)


def test_the_colour_flag_file_trains_a_labelled_folder_scored_by_its_own_classifier(tmp_path):
    """`--flagfile=colour_32 --dataset=folder:PATH --folder_labels --conditional` at tiny
    size: the folder classifier trains, scores the run (class accuracy beside its own),
    and the time-limited run ends exported."""
    from tests.stand_ins import shapes_folder

    root = shapes_folder(tmp_path / "shapes", per_class=12)
    flag_values = absl_flags.FlagValues()
    config_lib.define_flags(flag_values)
    flag_values(["train", f"--flagfile={ROOT}/flags/colour_32.flags",
                 f"--dataset=folder:{root}", "--folder_labels", "--conditional"])
    config = config_lib.TrainConfig.from_flags(flag_values)
    assert config.run.max_minutes == 90 and config.model.channels == 3
    config = config.replace(base_channels=8, z_dim=16, batch_size=8, steps=4, log_every=2,
                            sample_every=4, checkpoint_every=4, eval_every=4, eval_samples=24,
                            ema_start=0, workdir=str(tmp_path / "run"),
                            export_dir=str(tmp_path / "savedmodels"))
    result = training.run(config)
    evaluation = result["logs"]["evaluation"]
    assert evaluation["backbone"] == "classifier" and "folder shapes" in evaluation["label"]
    assert 0 <= evaluation["class_accuracy"] <= 1
    assert 0.5 < evaluation["real_class_accuracy"] <= 1
    assert "(real " in callbacks.format_result(evaluation)
    assert os.path.isdir(os.path.join(result["export"], "variables"))
