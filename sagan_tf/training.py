"""A training run: strategy, data, models, checkpoints, callbacks and export.

`train.py` turns flags into a `TrainConfig` and calls `run`; tests call `run`
directly.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf import callbacks as cb
from sagan_tf import augment, checkpoints, data, loop, losses
from sagan_tf.gan import FAKE_LABELS, SAGAN
from sagan_tf.models import Discriminator, Generator
from sagan_tf.models import presets as P

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """Invalid or contradictory settings, reported before any work starts."""


@dataclasses.dataclass
class TrainConfig:
    dataset: str = "mnist5k"
    workdir: Optional[str] = None
    preset: str = "dcgan_32"
    base_channels: Optional[int] = None
    z_dim: int = 128
    g_attention: Optional[Tuple[int, ...]] = None
    d_attention: Optional[Tuple[int, ...]] = None
    attention_variant: Optional[str] = None
    conditional: bool = False
    label_embedding_dim: int = 0
    channels: int = 3
    kernel_initializer: Optional[str] = None
    attention_spectral_norm: Optional[bool] = None
    bn_momentum: Optional[float] = None
    final_bn_momentum: Optional[float] = None
    steps: int = 2000
    batch_size: int = 64
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    adam_epsilon: float = 1e-8
    fake_labels: str = "real"
    d_steps: int = 1
    loss: str = "hinge"
    gp_weight: float = 10.0
    ema_decay: float = 0.0
    ema_start: int = 0
    augment: str = ""
    seed: int = 0
    precision: str = "float32"
    jit_compile: bool = False
    steps_per_execution: int = 1
    strategy: str = "auto"
    num_cpu_devices: int = 0
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    crop: Optional[int] = None
    folder_labels: bool = False
    deterministic: bool = False
    eval_every: int = 0
    eval_samples: int = 1000
    eval_backbone: str = "classifier"
    inception_graph: Optional[str] = None
    max_minutes: float = 0.0
    export: bool = True
    export_dir: str = "savedmodels"
    export_name: Optional[str] = None

    def __post_init__(self):
        if self.workdir is None:
            self.workdir = os.path.join("runs", self.dataset.replace("/", "_").replace(":", "_"))
        self.validate()

    def validate(self):
        def bad(message):
            raise ConfigError(message)

        if self.preset not in P.PRESETS:
            bad(f"--preset={self.preset!r} is unknown; use one of {sorted(P.PRESETS)}")
        for name in ("steps", "batch_size", "d_steps", "sample_every", "checkpoint_every",
                     "keep_checkpoints", "log_every", "z_dim"):
            if getattr(self, name) < 1:
                bad(f"--{name} must be >= 1; got {getattr(self, name)}")
        if self.steps_per_execution < 1:
            bad(f"--steps_per_execution must be >= 1; got {self.steps_per_execution}")
        for name in ("log_every", "sample_every", "checkpoint_every", "eval_every"):
            value = getattr(self, name)
            if value and value % self.steps_per_execution:
                bad(f"--{name}={value} must be a multiple of --steps_per_execution="
                    f"{self.steps_per_execution} (logs, samples, checkpoints and evaluations "
                    "happen between calls)")
        if self.base_channels is not None and (self.base_channels < 8 or self.base_channels % 8):
            bad(f"--base_channels must be a positive multiple of 8; got {self.base_channels}")
        if self.loss not in losses.LOSSES:
            bad(f"--loss={self.loss!r} is unknown; use one of {list(losses.LOSSES)}")
        if self.precision not in PRECISIONS:
            bad(f"--precision={self.precision!r} is unknown; use one of {list(PRECISIONS)}")
        if self.strategy not in STRATEGIES:
            bad(f"--strategy={self.strategy!r} is unknown; use one of {list(STRATEGIES)}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                bad(f"--{name} must be > 0; got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                bad(f"--{name} must be in [0, 1); got {getattr(self, name)}")
        if not 0 < self.adam_epsilon < 1:
            bad(f"--adam_epsilon must be in (0, 1); got {self.adam_epsilon}")
        for name in ("bn_momentum", "final_bn_momentum"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                bad(f"--{name} must be in [0, 1); got {value}")
        if self.fake_labels not in FAKE_LABELS:
            bad(f"--fake_labels={self.fake_labels!r} is unknown; use one of {list(FAKE_LABELS)}")
        if not 0 <= self.ema_decay < 1:
            bad(f"--ema_decay must be in [0, 1); got {self.ema_decay}")
        if self.ema_start < 0:
            bad(f"--ema_start must be >= 0; got {self.ema_start}")
        try:
            augment.parse(self.augment)
        except ValueError as e:
            bad(f"--augment: {e}")
        if self.jit_compile and self.strategy in ("mirrored", "multi_worker"):
            bad("--jit_compile works on one device only; use --strategy=one_device or auto "
                "on a single device")
        if self.eval_every < 0 or self.eval_samples < 10:
            bad(f"--eval_every must be >= 0 and --eval_samples >= 10; got {self.eval_every}, "
                f"{self.eval_samples}")
        if self.eval_every and self.eval_backbone == "classifier" and self.dataset != "mnist5k":
            bad("--eval_backbone=classifier (the mnist5k classifier) fits --dataset=mnist5k only; "
                "use --eval_backbone=inception_graph --inception_graph=PATH")
        if self.max_minutes < 0:
            bad(f"--max_minutes must be >= 0; got {self.max_minutes}")
        if self.channels not in (1, 3):
            bad(f"--channels must be 1 or 3; got {self.channels}")
        if self.crop is not None and self.crop < 1:
            bad(f"--crop must be >= 1; got {self.crop}")
        if self.export:
            from sagan_tf import export

            try:
                export.check_name(self.export_name or os.path.basename(
                    os.path.normpath(self.workdir)))
            except export.ExportError as e:
                bad(f"--export_name: {e}")
            existing = self.export_dir
            while existing and not os.path.exists(existing):
                existing = os.path.dirname(existing)
            if (existing and not os.path.isdir(existing)) or not os.access(existing or ".",
                                                                           os.W_OK):
                bad(f"--export_dir={self.export_dir} cannot be written (checked before training)")
        # Architecture arguments are checked by building the models' constructors.
        try:
            g_kwargs, d_kwargs = self.model_kwargs(num_classes=0)
            Generator(**g_kwargs)
            Discriminator(**d_kwargs)
        except ValueError as e:
            bad(str(e).replace("argument `attention_resolutions`", "--g_attention/--d_attention"))
        try:
            data.DataSpec(self.dataset, self.image_size, self.channels, crop=self.crop)
        except data.DataError as e:
            bad(str(e))

    @property
    def image_size(self):
        return P.PRESETS[self.preset]["image_size"]

    def model_kwargs(self, num_classes):
        g_kwargs, d_kwargs = P.preset_kwargs(self.preset)
        common = dict(num_classes=num_classes)
        for name in ("kernel_initializer", "attention_spectral_norm"):
            if getattr(self, name) is not None:  # else the preset's (or the model's) default
                common[name] = getattr(self, name)
        if self.base_channels is not None:
            common["base_channels"] = self.base_channels
        if self.attention_variant is not None:
            common["attention_variant"] = self.attention_variant
        g_kwargs.update(common, z_dim=self.z_dim, output_channels=self.channels,
                        label_embedding_dim=self.label_embedding_dim)
        if self.bn_momentum is not None:
            g_kwargs["batch_norm_momentum"] = self.bn_momentum
        if self.final_bn_momentum is not None:
            g_kwargs["final_batch_norm_momentum"] = self.final_bn_momentum
        d_kwargs.update(common, input_channels=self.channels)
        if self.g_attention is not None:
            g_kwargs["attention_resolutions"] = tuple(self.g_attention)
        if self.d_attention is not None:
            d_kwargs["attention_resolutions"] = tuple(self.d_attention)
        return g_kwargs, d_kwargs

    def data_spec(self, split="train"):
        return data.DataSpec(self.dataset, self.image_size, self.channels, split=split,
                             data_dir=self.data_dir, manual_dir=self.manual_dir, crop=self.crop,
                             folder_labels=self.folder_labels, seed=self.seed,
                             deterministic=self.deterministic)


# ---------------------------------------------------------------------- pieces
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


def _optimizer(lr, config):
    opt = keras.optimizers.Adam(lr, beta_1=config.beta1, beta_2=config.beta2,
                                epsilon=config.adam_epsilon)
    if config.precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def build_gan(config, num_classes):
    """The compiled SAGAN of `config`; `config.seed` seeds the initial weights."""
    keras.utils.set_random_seed(config.seed)
    g_kwargs, d_kwargs = config.model_kwargs(num_classes)
    generator = Generator(name="generator", **g_kwargs)
    discriminator = Discriminator(name="discriminator", **d_kwargs)
    generator.build()
    discriminator.build()
    gan = SAGAN(generator, discriminator, loss=config.loss, d_steps=config.d_steps,
                gp_weight=config.gp_weight, ema_decay=config.ema_decay,
                ema_start=config.ema_start, seed=config.seed, augment=config.augment,
                fake_labels=config.fake_labels)
    gan.compile(g_optimizer=_optimizer(config.lr_g, config),
                d_optimizer=_optimizer(config.lr_d, config), jit_compile=config.jit_compile)
    gan.build_optimizers()
    return gan


def _set_precision(precision):
    keras.mixed_precision.set_global_policy(precision)


# ---------------------------------------------------------------------- run
def run(config, strategy=None):
    """Trains (resuming from `config.workdir` when it holds a checkpoint), writes
    samples, TensorBoard logs and checkpoints there, and exports the generator.
    Returns a dict with the final `step`, the last `logs`, the `workdir`, the
    `export` path (when exported) and the trained `gan` (a `SAGAN`).
    `strategy` overrides `config.strategy` (one strategy per process is the rule
    under tf.distribute). Under `multi_worker`, every worker runs this with the
    same config and workdir (a shared filesystem): all restore from the workdir,
    the chief (worker 0) writes checkpoints, logs, samples and the export there,
    the others save to scratch directories removed at the end."""
    config.validate()
    strategy = strategy or make_strategy(config.strategy, config.num_cpu_devices)
    data.check_batch_size(config.batch_size, strategy.num_replicas_in_sync)
    _set_precision(config.precision)
    info = data.describe(config.data_spec())
    num_classes = info.num_classes if config.conditional else 0
    if config.conditional and not num_classes:
        raise ConfigError(f"--conditional needs a labelled dataset; {config.dataset} has no labels")
    with strategy.scope():
        gan = build_gan(config, num_classes)
    architecture = checkpoints.architecture(gan)
    chief = strategy.extended.should_checkpoint
    lock = None
    if chief:  # other workers of a multi-worker run leave the workdir to the chief
        checkpoints.check_workdir(config.workdir, architecture, ConfigError)
        lock = checkpoints.WorkdirLock(config.workdir, ConfigError)
    try:
        return _run_locked(config, strategy, gan, info, num_classes, architecture, chief)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(config, strategy, gan, info, num_classes, architecture, chief):
    if chief:
        os.makedirs(os.path.join(config.workdir, "samples"), exist_ok=True)
        checkpoints.remove_stale_temporaries(os.path.join(config.workdir, "checkpoints"))

    checkpoint = checkpoints.make_checkpoint(gan)
    latest = checkpoints.latest_usable(os.path.join(config.workdir, "checkpoints"), repair=chief,
                                       error=ConfigError)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(config.workdir, "checkpoints"),
                                         max_to_keep=config.keep_checkpoints)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", latest, int(gan.step.numpy()))
        # The checkpoint brings the optimizers' learning rates back; the flags win, so
        # config.json and HParams never record one value while training uses another.
        for name, optimizer, lr in (("lr_g", gan.g_optimizer, config.lr_g),
                                    ("lr_d", gan.d_optimizer, config.lr_d)):
            restored = float(np.asarray(optimizer.learning_rate))
            if not np.isclose(restored, lr, rtol=1e-6):
                logging.warning("--%s changed on resume: %g (checkpoint) -> %g", name, restored, lr)
                optimizer.learning_rate.assign(lr)
    if chief:
        write_json(os.path.join(config.workdir, "config.json"),
                    {"architecture": architecture, "flags": dataclasses.asdict(config),
                     "dataset": dataclasses.asdict(info)})
    else:
        # Saving may take part in collectives, so every worker saves; the others
        # write to a scratch directory that is removed afterwards.
        scratch = tempfile.mkdtemp(prefix=f"sagan_tf_worker{strategy.cluster_resolver.task_id}_")
        manager = tf.train.CheckpointManager(checkpoint, scratch, max_to_keep=1)

    start = int(gan.step.numpy())
    remaining = config.steps - start
    if config.ema_decay and config.ema_start >= config.steps:
        logging.warning("--ema_start=%d >= --steps=%d: the EMA generator never averages, so "
                        "samples and the export are a plain copy of G; lower --ema_start",
                        config.ema_start, config.steps)
    logs = {}
    try:
        if remaining > 0:
            logs = _train(config, strategy, gan, manager, info, num_classes, start, remaining,
                          chief)
        else:
            logging.info("already trained to step %d (--steps=%d)", start, config.steps)
    finally:
        if not chief:
            shutil.rmtree(manager.directory, ignore_errors=True)
    result = {"step": int(gan.step.numpy()), "logs": logs, "workdir": config.workdir, "gan": gan}
    if config.export and chief:
        result["export"] = _export(config, gan, trained=remaining > 0)
    return result


def _export(config, gan, trained):
    """Exports the sampling generator, unless this run trained nothing and its newest
    export already holds the generator of this workdir at this step."""
    from sagan_tf import export

    name = config.export_name or os.path.basename(os.path.normpath(config.workdir))
    source = {"workdir": os.path.abspath(config.workdir), "step": int(gan.step.numpy())}
    previous = export.latest_export(config.export_dir, name)
    if not trained and previous and previous[1].get("source") == source:
        logging.info("the generator of step %d is already exported as %s; not exporting it "
                     "again", source["step"], previous[0])
        return previous[0]
    sampler = Generator.from_config(gan.sampler.get_config())
    sampler.build()
    sampler.set_weights([np.asarray(w) for w in gan.sampler.weights])
    path = export.export_generator(sampler, config.export_dir, name, source=source)
    logging.info("exported the generator to %s", path)
    return path


def _train(config, strategy, gan, manager, info, num_classes, start, remaining, chief):
    # A resumed run reads from the step it resumes at (mnist5k and folders exactly; TFDS
    # datasets are reshuffled).
    dataset = data.distributed_dataset(strategy, config.data_spec(),
                                       config.batch_size * config.d_steps, start_batch=start)
    if chief:
        writer = tf.summary.create_file_writer(os.path.join(config.workdir, "logs"))
        _write_hparams(writer, config, gan)
    else:
        writer = tf.summary.create_noop_writer()
    fixed_z, fixed_labels = _fixed_latents(config, num_classes)
    # A few real images for D's attention maps (a folder may hold fewer than 4).
    preview = min(4, info.num_examples) if info.num_examples else 4
    real_images, real_labels = next(iter(data.input_fn(config.data_spec(), preview,
                                                       repeat=False)))
    monitor = cb.TrainingMonitor(
        writer, config.steps, config.batch_size, config.log_every, config.sample_every,
        os.path.join(config.workdir, "samples") if chief else None, fixed_z, fixed_labels,
        real_images, real_labels if num_classes else None)
    callbacks = [cb.NonFiniteGuard(), cb.CheckpointSaver(manager, config.checkpoint_every), monitor]
    evaluation = None
    if config.eval_every and chief:
        evaluation = _evaluation_callback(config, gan, writer)
        callbacks.append(evaluation)
    if config.max_minutes:
        callbacks.append(cb.TimeLimit(config.max_minutes))
    logging.info("training %s on %s (%s) for %d steps from step %d, global batch %d, %d replica(s)",
                 config.preset, config.dataset, info.description, remaining, start,
                 config.batch_size, strategy.num_replicas_in_sync)
    logs = loop.train(gan, strategy, dataset, remaining, callbacks, config.steps_per_execution)
    logs["images_per_second"] = monitor.images_per_second
    logs["train_seconds"] = monitor.train_seconds
    logs["mean_images_per_second"] = (monitor.steps_run * config.batch_size
                                      / max(monitor.train_seconds, 1e-9))
    if evaluation is not None and evaluation.history:
        step, result = evaluation.history[-1]
        logs["evaluation"] = dict(result, step=step)
    if chief:
        write_json(os.path.join(config.workdir, "summary.json"),
                    dict(logs, step=int(gan.step.numpy()), steps_run=monitor.steps_run))
    return logs


def write_json(path, value):
    """Writes `value` as JSON through a temporary file, so readers never see half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1, default=str)
    os.replace(path + ".tmp", path)


def _evaluation_callback(config, gan, writer):
    from sagan_tf import backbones, evaluate

    backbone = backbones.get(config.eval_backbone, config.inception_graph)
    split = "test" if config.dataset == "mnist5k" else "train"
    spec = data.DataSpec(config.dataset, config.image_size, 3, split=split,
                         data_dir=config.data_dir, crop=config.crop, deterministic=True)
    real = evaluate.real_stats(backbone, spec, config.eval_samples)
    best = tf.train.CheckpointManager(checkpoints.make_checkpoint(gan),
                                      os.path.join(config.workdir, "best"), max_to_keep=1)
    return cb.PeriodicEvaluation(writer, config.eval_every, backbone, real, config.eval_samples,
                                 best, seed=config.seed)


def _fixed_latents(config, num_classes):
    if num_classes:
        rows = min(num_classes, 10)
        labels = np.repeat(np.arange(rows, dtype=np.int32), 8)
    else:
        labels = None
    n = 64 if labels is None else len(labels)
    z = tf.random.stateless_normal([n, config.z_dim], seed=[config.seed, 2**30])
    return z, labels


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
    values["augment"] = ",".join(gan.augment) or "none"
    values["ema"] = gan.ema_generator is not None
    return values


def _write_hparams(writer, config, gan):
    from tensorboard.plugins.hparams import api as hp

    values = {}
    for k, v in dataclasses.asdict(config).items():
        if isinstance(v, (bool, int, float, str)):
            values[k] = v
        elif v is not None:
            values[k] = str(v)
    values.update(effective_architecture(gan))
    with writer.as_default():
        hp.hparams(values)
    writer.flush()
