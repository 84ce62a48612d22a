"""A training run: strategy, data, models, checkpoints, callbacks and export.

`Trainer(config)` sets the run up (strategy, precision, data, the compiled
`SAGAN`, the workdir guard and lock, the checkpoint manager) and `train()` runs
it; `run(config)` does both. `sagan_tf.train` turns flags into a
`sagan_tf.config.TrainConfig` and calls `run`; tests call it directly.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf import callbacks as cb
from sagan_tf import checkpoints, data, files, loop, serving
from sagan_tf import config as config_lib
from sagan_tf.config import ConfigError, TrainConfig  # noqa: F401  (re-exported)
from sagan_tf.gan import SAGAN
from sagan_tf.models import Discriminator, Generator


# ---------------------------------------------------------------------- set-up
def check_tf_config(text):
    """Raises ConfigError (one line) unless `text` is a usable TF_CONFIG for workers."""
    if not text:
        raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    workers = value.get("cluster", {}).get("worker") if isinstance(value.get("cluster"), dict) \
        else None
    task = value.get("task")
    if not isinstance(workers, list) or not workers:
        raise ConfigError("TF_CONFIG has no cluster.worker list of host:port addresses")
    if not isinstance(task, dict) or task.get("type") not in ("worker", "chief"):
        raise ConfigError("TF_CONFIG has no task {\"type\": \"worker\", \"index\": N}")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(workers):
        raise ConfigError(f"TF_CONFIG task index {index!r} is not in [0, {len(workers)})")


def make_strategy(name, num_cpu_devices=0):
    """`auto`: MirroredStrategy over all local GPUs (or the CPU's logical devices
    when `num_cpu_devices` > 1), else the default single-device strategy."""
    if name == "multi_worker":  # must come before anything initializes the TF runtime
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if num_cpu_devices > 1:
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
        except RuntimeError:
            pass  # already initialised (tests configure their own logical devices)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else cpus[0])
    if name == "mirrored" or (name == "auto" and (gpus or num_cpu_devices > 1)):
        devices = [d.name for d in gpus] or cpus[:max(num_cpu_devices, 1)]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def optimizer(lr, training):
    """The Adam of `training` (a TrainingConfig) at learning rate `lr`, with the loss
    scale of mixed_float16."""
    opt = keras.optimizers.Adam(lr, beta_1=training.beta1, beta_2=training.beta2,
                                epsilon=training.adam_epsilon)
    if training.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def build_models(config, num_classes, names=("generator", "discriminator"), build=True):
    """The (generator, discriminator) of `config` (any family), built unless told not
    to; an argument the models refuse raises ConfigError."""
    g_kwargs, d_kwargs = config.model.model_kwargs(num_classes)
    built = []
    for cls, kwargs, name, flag in ((Generator, g_kwargs, names[0], "--g_attention"),
                                    (Discriminator, d_kwargs, names[1], "--d_attention")):
        try:
            built.append(cls.from_config(dict(kwargs, name=name)))
        except ValueError as e:  # the model's own message, with the flag that set it
            raise ConfigError(f"{flag}: {e}" if "attention_resolutions" in str(e)
                              else str(e)) from None
    generator, discriminator = built
    if build:
        generator.build()
        discriminator.build()
    return generator, discriminator


def build_gan(config, num_classes):
    """The compiled SAGAN of `config`; `config.training.seed` seeds the initial weights."""
    t = config.training
    keras.utils.set_random_seed(t.seed)
    generator, discriminator = build_models(config, num_classes)
    gan = SAGAN(generator, discriminator, d_steps=t.d_steps, ema=t.ema(generator), seed=t.seed,
                fake_labels=t.fake_labels, **t.objectives())
    gan.compile(g_optimizer=optimizer(t.lr_g, t), d_optimizer=optimizer(t.lr_d, t),
                jit_compile=config.run.jit_compile)
    gan.build_optimizers()
    return gan


def check_export_dir(export_dir):
    """Raises ConfigError unless `export_dir` exists as a writable directory or can
    be made (checked before training, so a long run never ends unable to export)."""
    existing = export_dir
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if (existing and not os.path.isdir(existing)) or not os.access(existing or ".", os.W_OK):
        raise ConfigError(f"--export_dir={export_dir} cannot be written (checked before "
                          "training)")


# ---------------------------------------------------------------------- run
class Trainer:
    """One training run of `config`, set up on construction.

    Attributes:
        config: the `TrainConfig`.
        strategy: the `tf.distribute` strategy.
        info: the training data's `DataInfo`.
        num_classes: classes the models condition on (0: unconditional).
        gan: the compiled `SAGAN`.
        chief: whether this worker writes the workdir (always, but on the other
            workers of a multi-worker run).
        checkpoint, manager: the `tf.train.Checkpoint` and its manager (a scratch
            directory on non-chief workers).

    Under `multi_worker`, every worker runs with the same config and workdir (a
    shared filesystem): all restore from the workdir, the chief (worker 0) writes
    checkpoints, logs, samples and the export there, the others save to scratch
    directories removed at the end. `strategy` overrides `config.run.strategy`
    (one strategy per process is the rule under tf.distribute).
    """

    def __init__(self, config, strategy=None):
        config.validate()
        self.config = config
        if config.export.export:
            check_export_dir(config.export.export_dir)
        self.strategy = strategy or make_strategy(config.run.strategy, config.run.num_cpu_devices)
        data.check_batch_size(config.training.batch_size, self.strategy.num_replicas_in_sync)
        build_models(config, 0, build=False)  # the models' argument checks, before the data
        keras.mixed_precision.set_global_policy(config.training.precision)
        self.info = data.describe(config.data_spec())
        self.num_classes = self.info.num_classes if config.model.conditional else 0
        if config.model.conditional and not self.num_classes:
            raise ConfigError(f"--conditional needs a labelled dataset; {config.data.dataset} "
                              "has no labels")
        if self.num_classes and self.info.class_names:
            logging.info("labels: %s", data.label_table(self.info.class_names))
        with self.strategy.scope():
            self.gan = build_gan(config, self.num_classes)
        self.architecture = checkpoints.architecture(self.gan)
        self.chief = self.strategy.extended.should_checkpoint
        self.workdir = config.run.workdir
        self.checkpoint_dir = os.path.join(self.workdir, "checkpoints")
        self._lock = None
        self.history = []  # config.json's record of what earlier resumes changed
        self._pending_history = None  # what this resume changes, for that record
        if self.chief:  # other workers of a multi-worker run leave the workdir to the chief
            checkpoints.check_workdir(self.workdir, self.architecture)
            self._lock = checkpoints.WorkdirLock(self.workdir)
            try:
                self._check_resume()
            except ConfigError:
                self.close()
                raise

    def _check_resume(self):
        """Compares the options with those config.json recorded, when the workdir
        holds checkpoints: options that change the training step are refused (one
        line naming each, old -> new) unless --allow_config_change; the precision
        never changes. What changes is logged and kept for config.json's history."""
        path = os.path.join(self.workdir, "config.json")
        if not (os.path.exists(path) and checkpoints.checkpoint_steps(self.checkpoint_dir)):
            return
        saved = checkpoints.read_config(path)
        self.history = list(saved.get("history", []))
        allow = self.config.run.allow_config_change
        if "flags" not in saved and "imported_from" in saved:
            logging.info("%s was imported (sagan-import-torch): this run's settings are the "
                         "first it records", path)
            return
        if "flags" not in saved:
            if not allow:
                raise ConfigError(f"{path} has no \"flags\" record, so the settings this run "
                                  "was trained with are unknown; restore it, use another "
                                  "--workdir, or --allow_config_change to resume with these")
            logging.warning("%s has no \"flags\" record; resuming with these settings "
                            "(--allow_config_change)", path)
        safe, unsafe, wrong, unknown = config_lib.resume_changes(saved.get("flags", {}),
                                                                 self.config)
        if unknown:
            logging.warning("%s: unknown option(s) in flags, ignored: %s", path,
                            ", ".join(unknown))
        if wrong and not allow:
            raise ConfigError(f"{path}: {'; '.join(wrong)}; restore it, use another --workdir, "
                              "or --allow_config_change to resume with these settings")

        def describe(changes):
            return "; ".join(f"--{k}: {old!r} -> {new!r}" if old != config_lib.NOT_RECORDED
                             else f"--{k}: {old} -> {new!r}" for k, (old, new) in changes.items())

        if "precision" in unsafe:
            old, new = unsafe["precision"]
            raise ConfigError(f"workdir {self.workdir} was trained with --precision={old}; it "
                              f"cannot resume with --precision={new} (the optimizer state keeps "
                              "its precision); use another --workdir")
        if unsafe and not allow:
            raise ConfigError(f"workdir {self.workdir} was trained with other settings "
                              f"({describe(unsafe)}): resuming would change how its steps "
                              "are trained; use the recorded values, another --workdir, or "
                              "--allow_config_change")
        if unsafe:
            logging.warning("resuming with changed training settings (--allow_config_change): "
                            "%s", describe(unsafe))
        changes = dict(safe, **unsafe)
        changes.pop("allow_config_change", None)
        if changes:
            logging.info("resuming with: %s", describe(changes))
            self._pending_history = {k: [old, new] for k, (old, new) in changes.items()}

    @property
    def step(self):
        return int(self.gan.step.numpy())

    def close(self):
        """Releases the workdir lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def restore(self):
        """Makes the checkpoint manager and restores the latest usable checkpoint."""
        config = self.config
        if self.chief:
            os.makedirs(os.path.join(self.workdir, "samples"), exist_ok=True)
            checkpoints.remove_stale_temporaries(self.checkpoint_dir)
        self.checkpoint = checkpoints.make_checkpoint(self.gan)
        latest = checkpoints.latest_usable(self.checkpoint_dir, repair=self.chief)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir,
                                                  max_to_keep=config.run.keep_checkpoints)
        if latest:
            checkpoints.restore(lambda layout: checkpoints.checkpoint_objects(self.gan, layout),
                                latest, "this run's models")
            logging.info("resumed from %s at step %d", latest, self.step)
            # The checkpoint brings the optimizers' learning rates back; the flags win, so
            # config.json and HParams never record one value while training uses another.
            for name, opt, lr in (("lr_g", self.gan.g_optimizer, config.training.lr_g),
                                  ("lr_d", self.gan.d_optimizer, config.training.lr_d)):
                restored = float(np.asarray(opt.learning_rate))
                if not np.isclose(restored, lr, rtol=1e-6):
                    logging.warning("--%s changed on resume: %g (checkpoint) -> %g", name,
                                    restored, lr)
                    opt.learning_rate.assign(lr)
        if self.chief:
            if self._pending_history:
                self.history.append({"step": self.step, "changed": self._pending_history})
            record = {"architecture": self.architecture, "flags": config.flat(),
                      "dataset": dataclasses.asdict(self.info)}
            if self.history:
                record["history"] = self.history
            files.write_json(os.path.join(self.workdir, "config.json"), record)
        else:
            # Saving may take part in collectives, so every worker saves; the others
            # write to a scratch directory that is removed afterwards.
            scratch = tempfile.mkdtemp(
                prefix=f"sagan_tf_worker{self.strategy.cluster_resolver.task_id}_")
            self.manager = tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1)

    def train(self):
        """Restores, trains to `config.training.steps`, exports (chief, when asked).
        Returns a dict with the final `step`, the last `logs`, the `workdir`, the
        `export` path (when exported), the trained `gan` (a `SAGAN`) and
        `stop_signal`: the signal number when SIGTERM or SIGINT stopped the run, else
        None. A signal at any phase is honoured: during training the step running
        finishes and is checkpointed; during the final evaluation or the export
        those are abandoned (the export leaves no version and no temporary
        directory), and `abandoned` names what was."""
        self.restore()
        steps, t = self.config.training.steps, self.config.training
        start = self.step
        remaining = steps - start
        if t.ema_decay and t.ema_start >= steps:
            logging.warning("--ema_start=%d >= --steps=%d: the EMA generator never averages, so "
                            "samples and the export are a plain copy of G; lower --ema_start",
                            t.ema_start, steps)
        logs = {}
        stopper = cb.SignalStop()
        result = {"workdir": self.workdir, "gan": self.gan, "abandoned": []}
        try:
            if remaining > 0:
                logs = self._train_steps(start, remaining, stopper)
            else:
                logging.info("already trained to step %d (--steps=%d)", start, steps)
            stopper.install()  # from the loop's start (or now) to the end of the export
            # What the signal cut short (the checkpoint of the step is written either way).
            if stopper.requested() and self.chief:
                if self.config.eval.eval_every and remaining > 0 and \
                        logs.get("evaluation", {}).get("step") != self.step:
                    result["abandoned"].append("the final evaluation")
                if self.config.export.export:
                    result["abandoned"].append("the export")
            if self.config.export.export and self.chief and not stopper.requested():
                try:
                    result["export"] = self.export(trained=remaining > 0,
                                                   should_stop=stopper.requested)
                except serving.ExportAbandoned:
                    result["abandoned"].append("the export")
        finally:
            if stopper.received is None:
                stopper.uninstall()
            # After a stop signal the handlers stay (a repeated signal only logs) while the
            # process exits; a caller that goes on calls result["signals"].uninstall().
            if not self.chief:
                shutil.rmtree(self.manager.directory, ignore_errors=True)
        result.update(step=self.step, logs=logs, stop_signal=stopper.received, signals=stopper)
        return result

    def export(self, trained=True, should_stop=None):
        """Exports the sampling generator, unless this run trained nothing and its
        newest export already holds the generator of this workdir at this step."""
        export_dir, name = self.config.export.export_dir, self.config.export_name
        source = {"workdir": os.path.abspath(self.workdir), "step": self.step}
        previous = serving.latest_export(export_dir, name)
        if not trained and previous and previous[1].get("source") == source:
            logging.info("the generator of step %d is already exported as %s; not exporting "
                         "it again", source["step"], previous[0])
            return previous[0]
        sampler = self.gan.sampler
        copy = type(sampler).from_config(sampler.get_config())
        copy.build()
        copy.set_weights([np.asarray(w) for w in sampler.weights])
        logging.info("exporting the generator of step %d to %s", self.step,
                     os.path.join(export_dir, name))
        path = serving.export_generator(copy, export_dir, name, source=source,
                                        class_names=self.info.class_names,
                                        should_stop=should_stop)
        logging.info("exported the generator to %s", path)
        return path

    def _train_steps(self, start, remaining, stopper):
        config, gan, chief = self.config, self.gan, self.chief
        batch_size = config.training.batch_size
        # A resumed run reads from the step it resumes at (mnist5k and folders exactly; TFDS
        # datasets are reshuffled).
        dataset = data.distributed_dataset(self.strategy, config.data_spec(),
                                           batch_size * config.training.d_steps,
                                           start_batch=start)
        if chief:
            logdir = os.path.join(self.workdir, "logs")
            writer = tf.summary.create_file_writer(logdir)
            writer.logdir = logdir  # for write-error messages
            _write_hparams(writer, config, gan)
        else:
            writer = tf.summary.create_noop_writer()
        fixed_z, fixed_labels = self._fixed_latents()
        # A few real images for D's attention maps (a folder may hold fewer than 4).
        preview = min(4, self.info.num_examples) if self.info.num_examples else 4
        real_images, real_labels = next(iter(data.input_fn(config.data_spec(), preview,
                                                           repeat=False)))
        run = config.run
        monitor = cb.TrainingMonitor(
            writer, config.training.steps, batch_size, run.log_every, run.sample_every,
            os.path.join(self.workdir, "samples") if chief else None, fixed_z, fixed_labels,
            real_images, real_labels if self.num_classes else None)
        callbacks = [cb.NonFiniteGuard(), stopper,
                     cb.CheckpointSaver(self.manager, run.checkpoint_every), monitor]
        evaluation = None
        if config.eval.eval_every and chief:
            evaluation = self._evaluation_callback(writer, stopper.requested)
            callbacks.append(evaluation)
        if run.max_minutes:
            callbacks.append(cb.TimeLimit(run.max_minutes))
        logging.info("training %s on %s (%s) for %d steps from step %d, global batch %d, "
                     "%d replica(s)", config.model.preset, config.data.dataset,
                     self.info.description, remaining, start, batch_size,
                     self.strategy.num_replicas_in_sync)
        gan.stop_signal = None
        stopper.install()
        try:
            logs = loop.train(gan, self.strategy, dataset, remaining, callbacks,
                              run.steps_per_execution)
        except tf.errors.OpError as e:
            line = data.input_error(e, config.data.dataset)
            if line is None:
                raise
            raise data.DataError(line) from None
        logs["images_per_second"] = monitor.images_per_second
        logs["steady_images_per_second"] = monitor.steady_images_per_second
        logs["train_seconds"] = monitor.train_seconds
        logs["mean_images_per_second"] = (monitor.steps_run * batch_size
                                          / max(monitor.train_seconds, 1e-9))
        if evaluation is not None and evaluation.history:
            step, result = evaluation.history[-1]
            logs["evaluation"] = dict(result, step=step)
        if chief:
            sizes = {net.name: 4 * sum(int(np.prod(w.shape)) for w in net.weights)
                     for net in (gan.generator, gan.discriminator)}  # bytes in float32
            files.write_json(os.path.join(self.workdir, "summary.json"),
                       dict(logs, step=self.step, steps_run=monitor.steps_run,
                            float32_bytes=sizes))
        return logs

    def _evaluation_callback(self, writer, should_stop):
        from sagan_tf import backbones, evaluation

        config, e = self.config, self.config.eval
        spec = config.data.evaluation_spec(config.image_size)
        backbone = backbones.get(e.eval_backbone, e.inception_graph, data_spec=spec,
                                 classifier_dataset=e.eval_classifier_dataset)
        real = evaluation.real_stats(backbone, spec, e.eval_samples)
        best = tf.train.CheckpointManager(checkpoints.make_checkpoint(self.gan),
                                          os.path.join(self.workdir, "best"), max_to_keep=1)
        return cb.PeriodicEvaluation(writer, e.eval_every, backbone, real, e.eval_samples,
                                     best, seed=config.training.seed, should_stop=should_stop)

    def _fixed_latents(self):
        if self.num_classes:
            rows = min(self.num_classes, 10)
            labels = np.repeat(np.arange(rows, dtype=np.int32), 8)
        else:
            labels = None
        n = 64 if labels is None else len(labels)
        z = tf.random.stateless_normal([n, self.config.model.z_dim],
                                       seed=[self.config.training.seed, 2**30])
        return z, labels


def run(config, strategy=None):
    """Trains (resuming from the workdir when it holds a checkpoint), writes samples,
    TensorBoard logs and checkpoints there, and exports the generator; returns
    `Trainer.train`'s dict."""
    trainer = Trainer(config, strategy)
    try:
        return trainer.train()
    finally:
        trainer.close()


def effective_architecture(gan):
    """The architecture a run trains, whatever flags chose it (for HParams)."""
    values = {}
    for prefix, net in (("G", gan.generator), ("D", gan.discriminator)):
        values[f"{prefix}/architecture"] = net.architecture
        values[f"{prefix}/image_size"] = net.image_size
        values[f"{prefix}/base_channels"] = net.base_channels
        values[f"{prefix}/attention_resolutions"] = (
            ",".join(map(str, net.attention_resolutions)) or "none")
        values[f"{prefix}/attention_variant"] = net.attention_variant
        values[f"{prefix}/attention_spectral_norm"] = net.attention_spectral_norm
        values[f"{prefix}/num_classes"] = net.num_classes
        values[f"{prefix}/parameters"] = int(sum(np.prod(w.shape)
                                                 for w in net.trainable_weights))
    values["augment"] = getattr(gan.augmentation, "name", None) or "none"
    values["ema"] = gan.ema_generator is not None
    return values


def _write_hparams(writer, config, gan):
    from tensorboard.plugins.hparams import api as hp

    values = {}
    for k, v in config.flat().items():
        if isinstance(v, (bool, int, float, str)):
            values[k] = v
        elif v is not None:
            values[k] = str(v)
    values.update(effective_architecture(gan))
    with writer.as_default():
        hp.hparams(values)
    cb.flush(writer)
