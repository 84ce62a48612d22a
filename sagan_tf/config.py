"""Every command's options: each one written once, with its type, default, help
text and allowed values, in the section that owns it.

`TrainConfig` groups the training sections (`model`, `data`, `training`, `run`,
`eval`, `export`); `SamplingConfig` is shared by sagan-generate and
sagan-evaluate. Every other command takes the options it needs of these
sections, under the same names, and adds its own section (e.g.
`sagan_tf.generate.GenerateOptions`): `define_command_flags`. `define_flags`
makes one absl flag per option, named as the field (the names are unique across
the training sections, so flag files stay flat), `TrainConfig.from_flags` and
`read_section` read them back. Each section validates its own values
in `validate`; `TrainConfig.validate` adds the checks that span sections. Checks of
the environment (TF_CONFIG, the workdir, the export directory) belong to run
set-up (`sagan_tf.training.Trainer`), not here.

Example:
    >>> config = TrainConfig.from_flat(preset="dcgan_32", steps=100, lr_g=2e-4)
    >>> config.training.steps, config.model.preset
    (100, 'dcgan_32')
"""

import dataclasses
import json
import os
import typing
from typing import Optional, Tuple

# Only TensorFlow-free modules at import: flag definitions and --help read this one.

from sagan_tf.errors import UserError
from sagan_tf.models import presets
from sagan_tf.names import (ADA_INTERVAL, ADA_TARGET, ADA_TRANSFORMS, ATTENTION_VARIANTS,
                            AUGMENT_POLICIES, BACKBONES, FAKE_LABELS, LOSSES)

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
VARIANTS = ATTENTION_VARIANTS


class ConfigError(UserError, ValueError):
    """Invalid or contradictory settings, reported before any work starts."""


def option(default, help, choices=None, resumable=False, minimum=None,  # noqa: A002
           maximum=None):
    """A config field: its default, its help text, its allowed values (for a closed
    set its `choices`, for a number its `minimum` and `maximum`, both included), and
    whether a resumed run may change it (`resumable`: it does not change what a
    training step computes, e.g. cadences, paths, devices, the step count)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "resumable": resumable, "minimum": minimum,
        "maximum": maximum})


def _bad(message):
    raise ConfigError(message)


def _at_least(section, names, minimum):
    for name in names:
        value = getattr(section, name)
        if value is not None and value < minimum:
            _bad(f"--{name} must be >= {minimum}; got {value}")


def _in_unit_interval(section, names):
    for name in names:
        value = getattr(section, name)
        if value is not None and not 0 <= value < 1:
            _bad(f"--{name} must be in [0, 1); got {value}")


def _check_allowed(section):
    """Each option's `choices` (every item of a list option) and bounds."""
    for field in dataclasses.fields(section):
        meta, value = field.metadata, getattr(section, field.name)
        if value is None:
            continue
        for item in (value if isinstance(value, tuple) else (value,)):
            if meta["choices"] and item not in meta["choices"]:
                _bad(f"--{field.name}={item!r} is unknown; use one of {list(meta['choices'])}")
        if meta["minimum"] is not None and value < meta["minimum"]:
            _bad(f"--{field.name} must be >= {meta['minimum']}; got {value}")
        if meta["maximum"] is not None and value > meta["maximum"]:
            _bad(f"--{field.name} must be <= {meta['maximum']}; got {value}")


class Section:
    """A group of options (dataclass fields made with `option`). `name` heads the
    group in `--help` (`[name] help text`) for a section that several commands
    take; a command's own options are a section with no name, listed first.
    `validate` checks each option's allowed values; a subclass adds its own rules."""

    name = None

    def validate(self):
        _check_allowed(self)


@dataclasses.dataclass
class ModelConfig(Section):
    """The generator and discriminator (`sagan_tf.models`)."""

    name = "model"

    preset: str = option("dcgan_32", "Architecture preset (sagan_tf.models.PRESETS).",
                         tuple(presets.PRESETS))
    base_channels: Optional[int] = option(None, "Width multiplier, a multiple of 8 (default: "
                                          "the preset's 64).")
    z_dim: int = option(128, "Latent size.")
    g_attention: Optional[Tuple[int, ...]] = option(
        None, "Generator attention resolutions (default: the preset's; empty string for none).")
    d_attention: Optional[Tuple[int, ...]] = option(
        None, "Discriminator attention resolutions (default: the preset's).")
    attention_variant: Optional[str] = option(
        None, "Attention variant (default: the family's: paper for dcgan, official for resnet).",
        VARIANTS)
    conditional: bool = option(False, "Class-conditional G (conditional BN) and projection D.")
    label_embedding_dim: int = option(0, "Conditional G: also feed a learned class embedding of "
                                      "this size beside z (0: conditional batch norm alone).")
    channels: int = option(3, "Image channels the models use (1 or 3).", (1, 3))
    kernel_initializer: Optional[str] = option(
        None, "e.g. glorot_uniform, orthogonal or pytorch (PyTorch's layer defaults); default: "
        "the preset's (glorot_uniform, heykeetae_64: pytorch).")
    attention_spectral_norm: Optional[bool] = option(
        None, "Spectral-normalize the attention 1x1 convs (default: yes for resnet, as the "
        "official code; no for dcgan, as the PyTorch code).")
    bn_momentum: Optional[float] = option(
        None, "G's batch-norm moving-average momentum in Keras's terms (default: the preset's, "
        "0.99; heykeetae_64 0.9 = PyTorch's 0.1; the official code 0.999).")
    final_bn_momentum: Optional[float] = option(
        None, "resnet G: momentum of the batch norm before the output conv (default: "
        "--bn_momentum; the official code 0.9999).")

    def validate(self):
        super().validate()
        _at_least(self, ("z_dim",), 1)
        _at_least(self, ("label_embedding_dim",), 0)
        if self.base_channels is not None and (self.base_channels < 8 or self.base_channels % 8):
            _bad(f"--base_channels must be a positive multiple of 8; got {self.base_channels}")
        _in_unit_interval(self, ("bn_momentum", "final_bn_momentum"))

    @property
    def image_size(self):
        return presets.PRESETS[self.preset]["image_size"]

    def model_kwargs(self, num_classes):
        """(generator, discriminator) constructor arguments: the preset's, then these."""
        g_kwargs, d_kwargs = presets.preset_kwargs(self.preset)
        common = dict(num_classes=num_classes)
        for name in ("kernel_initializer", "attention_spectral_norm", "base_channels",
                     "attention_variant"):
            if getattr(self, name) is not None:  # else the preset's (or the model's) default
                common[name] = getattr(self, name)
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


@dataclasses.dataclass
class DataConfig(Section):
    """What to train on (`sagan_tf.data`)."""

    name = "data"

    dataset: str = option("mnist5k", "TFDS name (celeb_a, cifar10, lsun/church_outdoor, "
                          "lsun/bedroom, imagenet2012), mnist5k (offline), or folder:PATH.")
    data_dir: Optional[str] = option(None, "TFDS data directory.", resumable=True)
    manual_dir: Optional[str] = option(None, "TFDS manual-download directory.", resumable=True)
    crop: Optional[int] = option(None, "Center crop before resizing (celeb_a default 140).")
    folder_labels: bool = option(False, "Use class sub-folders of folder:PATH as labels.")
    background: str = option("white", "Colour that transparent pixels of folder images (PNG "
                             "and WebP with alpha) are composited onto: white, black, gray or "
                             "#RRGGBB.")
    deterministic: bool = option(False, "Deterministic input order for TFDS datasets (mnist5k "
                                 "and folders are always read in a fixed, step-indexed order).",
        resumable=True)
    train_subset: int = option(0, "Train on N images of the training split (0: all): the "
                               "first N in TFDS's order, N drawn with a fixed seed for mnist5k "
                               "and folders; the same images for every --seed. Evaluation "
                               "still compares with the whole split.")

    def validate(self):
        from sagan_tf import data

        super().validate()
        _at_least(self, ("crop",), 1)
        _at_least(self, ("train_subset",), 0)
        try:
            data.check_dataset_name(self.dataset)
            data.parse_background(self.background)
        except data.DataError as e:
            _bad(str(e))

    def spec(self, image_size, channels, split="train", seed=0, **overrides):
        """The `sagan_tf.data.DataSpec` of this dataset."""
        from sagan_tf import data

        kwargs = dict(data_dir=self.data_dir, manual_dir=self.manual_dir, crop=self.crop,
                      folder_labels=self.folder_labels, deterministic=self.deterministic,
                      subset=self.train_subset if split == "train" and self.train_subset else None,
                      background=data.parse_background(self.background))
        kwargs.update(overrides)
        return data.DataSpec(self.dataset, image_size, channels, split=split, seed=seed, **kwargs)

    def evaluation_spec(self, image_size, split=None):
        """The `DataSpec` that evaluations compare generated images with: `split`
        (default `data.evaluation_split`), in a fixed order, every image of it, in
        colour (the feature networks take RGB), at `image_size`."""
        from sagan_tf import data

        return self.spec(image_size, 3, split=split or data.evaluation_split(self.dataset),
                         manual_dir=None, deterministic=True, subset=None)


@dataclasses.dataclass
class TrainingConfig(Section):
    """The optimization: steps, batch, optimizers, loss, EMA, augmentation, precision
    (`sagan_tf.gan.SAGAN`)."""

    name = "training"

    steps: int = option(2000, "Total generator steps.", resumable=True)
    batch_size: int = option(64, "Global batch size (split over replicas).")
    lr_g: float = option(1e-4, "Generator learning rate (TTUR).", resumable=True)
    lr_d: float = option(4e-4, "Discriminator learning rate (TTUR).", resumable=True)
    beta1: float = option(0.0, "Adam beta1.")
    beta2: float = option(0.9, "Adam beta2: 0.9 as the PyTorch SAGAN, 0.999 as the official code.")
    adam_epsilon: float = option(1e-8, "Adam epsilon (1e-8 as PyTorch and TF1; Keras's default "
                                 "is 1e-7).")
    fake_labels: str = option("real", "Conditional models: labels of the generated batch: those "
                              "of the real batch, or drawn uniformly over the classes (the "
                              "official code).", FAKE_LABELS)
    d_steps: int = option(1, "Discriminator updates per generator update.")
    loss: str = option("hinge", "Adversarial loss: hinge, ns (non-saturating) or wgan_gp.",
                       LOSSES)
    gp_weight: float = option(10.0, "Gradient-penalty weight (wgan_gp).")
    ema_decay: float = option(0.0, "EMA decay of G's weights (e.g. 0.999); 0 disables.")
    ema_start: int = option(0, "Step from which the EMA averages (before: copies).")
    augment: str = option("", "Augmentation of D's inputs, real and fake: DiffAugment's fixed "
                          f"policies, a comma-separated subset of {','.join(AUGMENT_POLICIES)}; "
                          "or ada, adaptive augmentation whose strength p follows "
                          "--ada_target; empty: none.")
    ada_target: float = option(ADA_TARGET, "ADA: target of r_t = E[sign(D(real))], in (0, 1); p rises "
                               "while r_t is above it (D too sure of the real images).")
    ada_kimg: float = option(100.0, "ADA: thousands of real images over which p can move from 0 "
                             "to 1 at the fastest (StyleGAN2-ADA's long runs: 500).")
    ada_interval: int = option(ADA_INTERVAL, "ADA: steps between adjustments of p.")
    ada_transforms: str = option(",".join(ADA_TRANSFORMS), "ADA: the transformations drawn, "
                                 "comma-separated (leave out those that change what an image "
                                 "shows, e.g. xflip,rotate90 for digits).")
    lecam_weight: float = option(0.0, "LeCam regularization weight of D (0: off; StudioGAN: "
                                 "0.3).")
    lecam_decay: float = option(0.99, "Decay of LeCam's moving averages of D's outputs.")
    seed: int = option(0, "Random seed.")
    precision: str = option("float32", "Keras mixed-precision policy.", PRECISIONS)

    def validate(self):
        super().validate()
        _at_least(self, ("steps", "batch_size", "d_steps"), 1)
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                _bad(f"--{name} must be > 0; got {getattr(self, name)}")
        _in_unit_interval(self, ("beta1", "beta2"))
        if not 0 < self.adam_epsilon < 1:
            _bad(f"--adam_epsilon must be in (0, 1); got {self.adam_epsilon}")
        # The loss, augmentation, regularizer and EMA options are checked by the
        # constructors of the objects they build (every one, used or not).
        self.objectives()
        self.ema(generator=None)

    def _build(self, cls, *args, **options):
        """`cls(*args, argument=<option>, ...)` for `options` {argument: option name};
        an argument the class refuses is a ConfigError naming the option."""
        from sagan_tf.errors import ArgumentError

        try:
            return cls(*args, **{arg: getattr(self, name) for arg, name in options.items()})
        except ArgumentError as e:
            _bad(f"--{options[e.argument]}: {e.problem}")

    def objectives(self):
        """{loss, augmentation, regularizers}: the `sagan_tf.gan.SAGAN` arguments of
        these options (`sagan_tf.losses`, `sagan_tf.regularizers`); no variables are
        created until SAGAN builds them."""
        from sagan_tf import losses, regularizers

        loss_class = losses.LOSS_CLASSES[self.loss]
        loss = (self._build(loss_class, penalty_weight="gp_weight") if loss_class.penalized
                else loss_class())
        ada = self._build(regularizers.ADA, target="ada_target", kimg="ada_kimg",
                          interval="ada_interval", transforms="ada_transforms")
        lecam = self._build(regularizers.LeCam, weight="lecam_weight", decay="lecam_decay")
        policies = [p.strip() for p in self.augment.split(",") if p.strip()]
        augmentation = (ada if policies == ["ada"] else
                        self._build(regularizers.DiffAugment, policies="augment") if policies
                        else None)
        return dict(loss=loss, augmentation=augmentation,
                    regularizers=[lecam] if self.lecam_weight > 0 else [])

    def ema(self, generator):
        """The `sagan_tf.ema.EMA` of `generator` (None when --ema_decay is 0)."""
        from sagan_tf.ema import EMA

        if self.ema_decay == 0:
            _at_least(self, ("ema_start",), 0)
            return None
        return self._build(EMA, generator, decay="ema_decay", start="ema_start")


@dataclasses.dataclass
class RunConfig(Section):
    """Where and how the run goes: workdir, devices, cadences, checkpoints, time limit
    (`sagan_tf.training`)."""

    name = "run"

    workdir: Optional[str] = option(None, "Run directory (default runs/<dataset>); resumes "
                                    "from it. {dataset} in it becomes the dataset's name (the "
                                    "folder's name for folder:PATH), e.g. "
                                    "runs/{dataset}_colour_32.",
        resumable=True)
    strategy: str = option("auto", "auto (MirroredStrategy over all local GPUs, else one "
                           "device), one_device, mirrored, or multi_worker (TF_CONFIG).",
                           STRATEGIES,
        resumable=True)
    num_cpu_devices: int = option(0, "Split the CPU into N logical devices (testing "
                                  "MirroredStrategy without GPUs).",
        resumable=True)
    jit_compile: bool = option(False, "XLA-compile the train step (one device only).", resumable=True)
    steps_per_execution: int = option(1, "Training steps per tf.function call (one Python "
                                      "round trip for all of them; --log_every, --sample_every, "
                                      "--checkpoint_every and --eval_every must be multiples "
                                      "of it).",
        resumable=True)
    sample_every: int = option(500, "Steps between sample grids and attention maps.", resumable=True)
    checkpoint_every: int = option(500, "Steps between checkpoints.", resumable=True)
    keep_checkpoints: int = option(3, "Checkpoints kept.", resumable=True)
    log_every: int = option(50, "Steps between progress lines and scalar summaries.", resumable=True)
    max_minutes: float = option(0.0, "Stop after this many minutes of training (0: no limit).", resumable=True)
    allow_config_change: bool = option(
        False, "Resume even though options that change the training step (batch size, "
        "dataset, loss, ...) differ from the run's config.json; each change is logged there "
        "with its step. The precision can never change on resume.", resumable=True)

    def validate(self):
        super().validate()
        _at_least(self, ("steps_per_execution", "sample_every", "checkpoint_every",
                         "keep_checkpoints", "log_every"), 1)
        _at_least(self, ("max_minutes", "num_cpu_devices"), 0)


@dataclasses.dataclass
class EvalConfig(Section):
    """Periodic FID/KID/IS during training (`sagan_tf.evaluation`)."""

    name = "eval"

    eval_every: int = option(0, "Steps between FID/KID/IS evaluations (0: off); the best "
                             "checkpoint by FID is kept in <workdir>/best.",
        resumable=True)
    eval_samples: int = option(1000, "Samples per periodic evaluation (at least 10).", resumable=True)
    eval_backbone: str = option("classifier", "Feature network of the periodic evaluation "
                                "(classifier: a CNN trained offline on the dataset itself, "
                                "mnist5k or a folder with class sub-folders).", BACKBONES,
        resumable=True)
    eval_classifier_dataset: Optional[str] = option(
        None, "Train the classifier backbone on this labelled dataset (folder:PATH with class "
        "sub-folders, or mnist5k) instead of the run's, e.g. the whole folder a one-class "
        "subset came from; class accuracy is then not reported.", resumable=True)
    inception_graph: Optional[str] = option(None, "Path of the FID Inception graph "
                                            "(classify_image_graph_def.pb) for "
                                            "--eval_backbone=inception_graph (default: "
                                            "downloaded once into the cache).",
        resumable=True)

    def validate(self):
        super().validate()
        _at_least(self, ("eval_every",), 0)
        _at_least(self, ("eval_samples",), 10)


@dataclasses.dataclass
class ExportConfig(Section):
    """The SavedModel written at the end (`sagan_tf.serving`)."""

    name = "export"

    export: bool = option(True, "Export the generator as a SavedModel at the end.", resumable=True)
    export_dir: str = option("savedmodels", "Base directory of exported SavedModels.", resumable=True)
    export_name: Optional[str] = option(None, "Exported model name (default: the workdir's "
                                        "name).",
        resumable=True)

    def validate(self):
        from sagan_tf import serving

        super().validate()
        if self.export_name is not None:
            try:
                serving.check_name(self.export_name)
            except serving.ExportError as e:
                _bad(f"--export_name: {e}")


@dataclasses.dataclass
class SamplingConfig(Section):
    """Drawing images from an exported generator (`sagan_tf.sampling`,
    `sagan_tf.evaluation`): sagan-generate and sagan-evaluate."""

    name = "sampling"

    model: Optional[str] = option(None, "Exported model: savedmodels/NAME (its highest "
                                  "version) or a version directory.")
    version: Optional[int] = option(None, "Version of --model to load (default: the "
                                    "highest).", minimum=0)
    truncation: float = option(0.0, "Truncate z to [-t, t], t in (0, 2]: smaller gives safer, "
                               "less varied samples (2 barely truncates); 0: no truncation, "
                               "z ~ N(0, 1) as training samples and evaluates.")
    seed: Optional[int] = option(0, "Sampling seed: the same seed draws the same images.",
                                 minimum=0, maximum=2**31 - 1)

    def validate(self):
        from sagan_tf import sampling

        super().validate()
        try:
            sampling.check_truncation(self.truncation)
        except sampling.GenerateError as e:
            _bad(str(e))


SECTIONS = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig,
            "run": RunConfig, "eval": EvalConfig, "export": ExportConfig}
# Every section that several commands take, by name, in the order `--help` lists
# them (after a command's own options).
SHARED_SECTIONS = dict(SECTIONS, sampling=SamplingConfig)
HELP_ORDER = tuple(SHARED_SECTIONS)


NOT_RECORDED = "(not recorded)"


def _json_type_fits(field, value):
    """Whether a config.json value can be this option's (JSON has no tuples or ints
    apart from floats)."""
    base = _base_type(field)
    if value is None:
        return field.default is None or type(None) in typing.get_args(field.type)
    if _is_list(field):
        return isinstance(value, list) and all(isinstance(v, _item_type(field)) for v in value)
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, base)


def resume_changes(saved, config):
    """{option: (saved value, new value)} of the options `config` changes against a
    run's recorded flags (`saved`, config.json's "flags"), split into
    (resumable changes, changes of the training step), with the record's values
    of the wrong type and its unknown option names.

    An option the record lacks (a config.json written before the option existed,
    or edited by hand) counts as recorded at its default, the value every option
    added later keeps the old behaviour with: setting another value is a change
    from NOT_RECORDED. A recorded value of the wrong type is a change of that
    option too, and listed."""
    fields = {f.name: f for _, f in option_fields()}
    ours = json.loads(json.dumps(config.flat(), default=str))
    defaults = json.loads(json.dumps(TrainConfig.from_flat().flat(), default=str))
    safe, unsafe, wrong = {}, {}, []
    for name, value in ours.items():
        if name not in saved:
            old = NOT_RECORDED
            if value == defaults.get(name, value):
                continue
        else:
            old = saved[name]
            if not _json_type_fits(fields[name], old):
                wrong.append(f"flags.{name} is {json.dumps(old)[:40]}, not a value of --{name}")
            elif old == value:
                continue
        target = safe if fields[name].metadata["resumable"] else unsafe
        target[name] = (old, value)
    return safe, unsafe, wrong, sorted(set(saved) - set(fields))


def dataset_name(dataset):
    """A dataset as a directory name: its name ('/' made '_'); for folder:PATH, the
    folder's name."""
    if dataset.startswith("folder:"):
        return os.path.basename(os.path.normpath(dataset[len("folder:"):]))
    return dataset.replace("/", "_")


def default_workdir(dataset):
    """runs/<dataset name>."""
    return os.path.join("runs", dataset_name(dataset))


def expand_workdir(workdir, dataset):
    """`workdir` with `{dataset}` replaced by the dataset's name, so a flag file for
    any folder names its own run directory (`--workdir=runs/{dataset}_colour_32`)."""
    if workdir is None:
        return default_workdir(dataset)
    if set("{}") & set(workdir.replace("{dataset}", "")):
        raise ConfigError(f"--workdir={workdir}: the only placeholder it takes is {{dataset}}")
    return workdir.replace("{dataset}", dataset_name(dataset))


@dataclasses.dataclass
class TrainConfig:
    """Every training option, by section. Build one with `from_flat` (keyword
    arguments named as the flags) or `from_flags`."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def __post_init__(self):
        self.run.workdir = expand_workdir(self.run.workdir, self.data.dataset)
        self.validate()

    @classmethod
    def from_flat(cls, **values):
        """A config from option names (`preset=..., steps=...`); others keep defaults."""
        sections = {name: {} for name in SECTIONS}
        owner = {f.name: name for name, section in SECTIONS.items()
                 for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in owner:
                raise TypeError(f"TrainConfig has no option {key!r}")
            sections[owner[key]][key] = value
        return cls(**{name: SECTIONS[name](**kwargs) for name, kwargs in sections.items()})

    @classmethod
    def from_flags(cls, flag_values):
        """The config of parsed flags defined by `define_flags`."""
        values = {}
        for _, field in option_fields():
            value = flag_values[field.name].value
            values[field.name] = _from_flag(field, value)
        return cls.from_flat(**values)

    def flat(self):
        """{option name: value} over all sections (what config.json records as flags)."""
        return {k: v for name in SECTIONS for k, v in dataclasses.asdict(getattr(self, name)).items()}

    def replace(self, **values):
        """A copy with some options changed (by flat name)."""
        return TrainConfig.from_flat(**dict(self.flat(), **values))

    def validate(self):
        for name in SECTIONS:
            getattr(self, name).validate()
        spe = self.run.steps_per_execution
        for section, name in (("run", "log_every"), ("run", "sample_every"),
                              ("run", "checkpoint_every"), ("eval", "eval_every")):
            value = getattr(getattr(self, section), name)
            if value and value % spe:
                _bad(f"--{name}={value} must be a multiple of --steps_per_execution={spe} "
                     "(logs, samples, checkpoints and evaluations happen between calls)")
        if self.run.jit_compile and self.run.strategy in ("mirrored", "multi_worker"):
            _bad("--jit_compile works on one device only; use --strategy=one_device or auto "
                 "on a single device")
        if self.eval.eval_every:
            from sagan_tf import backbones

            try:
                backbones.check_fits(self.eval.eval_backbone, self.eval.eval_classifier_dataset
                                     or self.data.dataset)
            except backbones.BackboneError as e:
                _bad(f"--eval_backbone: {e}")
        if self.data.folder_labels and not self.model.conditional:
            _bad("--folder_labels gives labels that only a class-conditional model uses; add "
                 "--conditional (or drop --folder_labels)")

    @property
    def image_size(self):
        return self.model.image_size

    @property
    def export_name(self):
        from sagan_tf import serving

        return self.export.export_name or serving.default_name(self.run.workdir)

    def data_spec(self, split="train", **overrides):
        """The training data's `DataSpec` (or another split's)."""
        return self.data.spec(self.image_size, self.model.channels, split=split,
                              seed=self.training.seed, **overrides)


# ---------------------------------------------------------------------- flags
def option_fields(sections=None):
    """(section name, field) of every option of `sections` (section classes;
    default: the training sections), in definition order."""
    for section in (SECTIONS.values() if sections is None else sections):
        for field in dataclasses.fields(section):
            yield section.name, field


def _base_type(field):
    args = [a for a in typing.get_args(field.type) if a is not type(None)]
    return args[0] if typing.get_origin(field.type) is typing.Union else field.type


def _is_list(field):
    return typing.get_origin(_base_type(field)) is tuple


def _item_type(field):
    """A list option's item type (`Tuple[int, ...]` -> int)."""
    return typing.get_args(_base_type(field))[0]


def _from_flag(field, value):
    """A flag's value as the option's: a list flag's strings as a tuple of the
    option's item type (an empty item left out: `--g_attention=` is no
    resolutions)."""
    if value is None or not _is_list(field):
        return value
    item = _item_type(field)  # int or str: only ints can fail
    try:
        return tuple(item(v) for v in value if v != "")
    except ValueError:
        raise ConfigError(f"--{field.name} must be integers; got {','.join(value)}") from None


def define_flags(flag_values, sections=None, only=None, defaults=None):
    """Defines one absl flag per option of `sections` (section classes; default: the
    training sections) in `flag_values` (e.g. `absl.flags.FLAGS`), or per option
    named in `only`, for a command that takes a few of them. `defaults` {option:
    value} gives a command its own default of an option (its help, type and checks
    stay the option's). Each is a key flag of the program that runs (sys.argv[0]),
    so that its `--help` lists it."""
    import sys

    from absl import flags

    defaults = defaults or {}
    for section, field in option_fields(sections):
        if only is not None and field.name not in only:
            continue
        kind = _base_type(field)
        choices = field.metadata["choices"]
        help_text = field.metadata["help"]
        if choices and kind is str:
            help_text += f" One of: {', '.join(choices)}."
        default = defaults.get(field.name, field.default)
        if _is_list(field) and default is not None:
            default = [str(v) for v in default]
        args = dict(name=field.name, default=default, flag_values=flag_values,
                    help=f"[{section}] {help_text}" if section else help_text)
        if kind is bool:
            flags.DEFINE_boolean(**args)
        elif _is_list(field):
            flags.DEFINE_list(**args)
        elif kind is int:
            flags.DEFINE_integer(**args)
        elif kind is float:
            flags.DEFINE_float(**args)
        else:
            flags.DEFINE_string(**args)
        flag_values.register_key_flag_for_module(sys.argv[0], flag_values[field.name])


def define_command_flags(flag_values, own=None, shared=None, defaults=None):
    """A command's flags: the options of its own section `own` (listed first by
    `--help`), then those it takes of shared sections, `shared` {section class:
    option names, or None for all}, with its `defaults` {option: value}."""
    if own is not None:
        define_flags(flag_values, sections=(own,))
    for section, names in (shared or {}).items():
        define_flags(flag_values, sections=(section,), only=names, defaults=defaults)


def read_section(section, flag_values, fallback=None, only=None):
    """The validated `section` (a section class) of parsed flags: an option that is a
    flag of this command (and in `only`, for a section it takes a few options of)
    takes its value; one that is not, or whose value is None (a command's "not
    given"), takes `fallback`'s (e.g. a run's recorded options) when it has it, else
    its default."""
    fallback = fallback or {}
    values = {}
    for field in dataclasses.fields(section):
        taken = field.name in flag_values and (only is None or field.name in only)
        value = flag_values[field.name].value if taken else None
        value = _from_flag(field, value)
        if value is None and field.name in fallback:
            value = fallback[field.name]
            value = tuple(value) if _is_list(field) and value is not None else value
        if value is not None:
            values[field.name] = value
    result = section(**values)
    result.validate()
    return result


def to_argv(config):
    """The flags (`--name=value`) that give `config` from the defaults: the inverse of
    `TrainConfig.from_flags` (round-trips), e.g. to start `sagan-train` with it."""
    argv = []
    for section, field in option_fields():
        value = getattr(getattr(config, section), field.name)
        if value == field.default or value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, tuple):
            argv.append(f"--{field.name}={','.join(map(str, value))}")
        else:
            argv.append(f"--{field.name}={value!r}" if isinstance(value, float)
                        else f"--{field.name}={value}")
    return argv
