"""Variants of one training recipe over seeds, on any dataset: SAGAN against its
attention-free twin and a DCGAN baseline, or the small-data remedies.

    # SAGAN, its twin without attention and a DCGAN baseline on mnist5k:
    python -m benchmarks.compare --variants=baseline,no_attention,sagan --seeds=0,1,2
    # The seeds' experiment: DCGAN against SAGAN on CIFAR-10 for 5 epochs, paper FID:
    python -m benchmarks.compare --flagfile=cifar10_32 --variants=baseline,sagan --epochs=5 \\
        --eval_backbone=inception_graph --eval_samples=10000
    # A folder of your own images:
    python -m benchmarks.compare --flagfile=cifar10_32 --dataset=folder:/data/faces \\
        --variants=no_attention,sagan --minutes=30 --eval_backbone=inception_graph
    # Few images: no augmentation, DiffAugment, ADA, LeCam, ADA + LeCam on 500 digits:
    python -m benchmarks.compare --variants=sagan,diffaugment,ada,lecam,ada_lecam \\
        --train_subset=500 --steps=5000

The recipe is `sagan-train`'s: the same options, flag files and defaults
(`--flagfile`, a preset name or a path, default the Quick start's `mnist5k_32`,
then any training flag, e.g.
`--dataset`, `--steps`, `--eval_samples`, `--eval_backbone`). Each variant
overrides a few options of it (`--variants`, listed below). Every run trains
for equal steps (`--steps`), equal epochs (`--epochs`) or equal wall time
(`--minutes`, which replaces the recipe's `--max_minutes`), in a fresh process,
then scores its final generator (the EMA one when the recipe has it) once with
`--eval_backbone`: the offline classifier trained on the dataset itself, on
mnist5k or a labelled folder (classifier FID/KID and class accuracy, comparable
with each other only), `inception_graph` for FIDs comparable with papers
(downloaded once). `--eval_every` adds evaluations during the runs (logged to
each run's TensorBoard). It exports the generator to measure its size. One JSON
line per run goes to `--out`; at the end a Markdown table gives mean +- std per
variant, with the generator's SavedModel size and G + D's weights in float32.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
from typing import Optional, Tuple

import numpy as np

from sagan_tf.config import Section, option

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (what it is, its options over the recipe's, given the recipe's config)
VARIANTS = {
    "baseline": ("a plain DCGAN: no attention, no spectral norm, batch norm in D",
                 lambda c: dict(preset=f"baseline_{c.image_size}", g_attention=(),
                                d_attention=())),
    "no_attention": ("SAGAN's twin without attention: spectral norm, hinge, the same G and D",
                     lambda c: dict(g_attention=(), d_attention=())),
    "sagan": ("the recipe as it is", lambda c: {}),
    "paper_16": ("the paper's attention block at 16x16 in G and D",
                 lambda c: dict(g_attention=(16,), d_attention=(16,), attention_variant="paper")),
    "paper_8_16": ("the paper's block at 8x8 and 16x16 in G and D",
                   lambda c: dict(g_attention=(8, 16), d_attention=(16, 8),
                                  attention_variant="paper")),
    "diffaugment": ("DiffAugment at fixed strength: color, translation, cutout",
                    lambda c: dict(augment="color,translation,cutout")),
    "ada": ("adaptive augmentation, target r_t 0.6", lambda c: dict(augment="ada")),
    "ada_no_flip_rotate": ("ADA without x-flips and quarter turns (they change what a digit "
                           "shows)", lambda c: dict(augment="ada", ada_transforms="translate,"
                                                    "scale,brightness,contrast,saturation,cutout")),
    "lecam": ("LeCam regularization, weight 0.3", lambda c: dict(lecam_weight=0.3)),
    "ada_lecam": ("ADA and LeCam", lambda c: dict(augment="ada", lecam_weight=0.3)),
}
METRICS = ("fid", "kid", "precision", "recall", "class_accuracy", "mirror_gap",
           "real_mirror_gap", "is", "img_per_s", "steps", "export_mb", "g_d_mb")


def steps_for_epochs(config, epochs):
    """Steps of `epochs` passes over the training images at the config's batch."""
    from sagan_tf import data

    info = data.describe(config.data_spec())
    if not info.num_examples:
        raise data.DataError(f"{config.data.dataset} does not say how many images it holds; "
                             "use --steps or --minutes")
    images = epochs * info.num_examples
    return max(1, math.ceil(images / (config.training.batch_size * config.training.d_steps)))


def run_config(variant, seed, steps, base, minutes, workdir):
    """The TrainConfig of one run: the recipe with the variant's options, the seed,
    the step budget, its own workdir and export, and an evaluation at its end."""
    eval_every = base.eval.eval_every or 10 * steps  # 10 * steps: only the final one
    return base.replace(**VARIANTS[variant][1](base), seed=seed, steps=steps, workdir=workdir,
                        export=True, export_dir=os.path.join(workdir, "export"),
                        export_name="generator", eval_every=eval_every,
                        sample_every=1000000, checkpoint_every=steps, max_minutes=minutes)


def train_in_subprocess(config, label):
    """`sagan-train` in a fresh process, printing its progress lines."""
    from sagan_tf import config as config_lib

    proc = subprocess.Popen([sys.executable, "-m", "sagan_tf.train",
                             *config_lib.to_argv(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line.rstrip()])[-20:]
        if "] step " in line or line.startswith("error:"):
            print(f"  {label}: {line.split('] ', 1)[-1].rstrip()}", flush=True)
    if proc.wait():
        raise SystemExit(f"error: {label} failed: {' / '.join(tail[-3:])}")


def train_in_process(config, label):
    """The same run in this process (tests, debugging; timings then share a process)."""
    from sagan_tf import training

    print(f"  {label}: training in this process", flush=True)
    training.run(config)


def _megabytes(path):
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return round(total / 2**20, 2)


def run_one(variant, seed, steps, options, base, workroot):
    """Trains one variant and returns its JSON row."""
    from sagan_tf import config as config_lib

    workdir = os.path.join(workroot, f"{variant}_s{seed}")
    label = f"{variant} seed {seed}"
    print(f"{label}: training in {workdir}", flush=True)
    config = run_config(variant, seed, steps, base, options.minutes, workdir)
    (train_in_process if options.in_process else train_in_subprocess)(config, label)
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    evaluation = summary["evaluation"]
    row = {"variant": variant, "seed": seed, "steps": summary["step"],
            "dataset": base.data.dataset, "backbone": base.eval.eval_backbone,
            "minutes": options.minutes, "flags": config_lib.to_argv(config),
            "workdir": workdir if options.keep_workdirs else None,
            # Steady state: from the end of the first (compiling) step to the last step.
            "img_per_s": round(summary.get("steady_images_per_second")
                               or summary["mean_images_per_second"], 1),
            "train_seconds": round(summary["train_seconds"], 1),
            "export_mb": _megabytes(os.path.join(workdir, "export")),
            "g_d_mb": round(sum(summary["float32_bytes"].values()) / 2**20, 2),
            **{k: evaluation.get(k) for k in ("fid", "kid", "is", "precision", "recall",
                                              "class_accuracy", "mirror_gap", "real_mirror_gap",
                                              "mirror_gap_by_class")}}
    if options.mirror_class is not None:
        by_class = evaluation.get("mirror_gap_by_class") or {}
        row["mirror_gap"], row["real_mirror_gap"] = by_class.get(
            str(options.mirror_class), [None, None])
    return row


def table(rows, variants):
    keys = [k for k in METRICS if any(r.get(k) is not None for r in rows)]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for key in keys:
            values = [r[key] for r in mine if r.get(key) is not None]
            if not values:
                cells.append("-")
                continue
            mean, std = float(np.mean(values)), float(np.std(values))
            digits = (4 if key in ("kid", "mirror_gap", "real_mirror_gap") else
                      3 if key in ("precision", "recall", "class_accuracy") else
                      2 if key.endswith("_mb") else 1)
            cells.append(f"{mean:.{digits}f}" + (f" +- {std:.{digits}f}" if len(values) > 1
                                                 else ""))
        lines.append(f"| {variant} (n={len(mine)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- command
_VARIANT_HELP = "; ".join(f"{name}: {text}" for name, (text, _) in VARIANTS.items())


@dataclasses.dataclass
class CompareOptions(Section):
    """The comparison's own options: which runs, how long, what to keep."""

    variants: Tuple[str, ...] = option(("baseline", "no_attention", "sagan"),
                                       f"Variants, from: {_VARIANT_HELP}.", tuple(VARIANTS))
    seeds: Tuple[int, ...] = option((0, 1, 2), "Seeds: one run of every variant each.")
    epochs: Optional[float] = option(None, "Equal epochs: passes over the training images per "
                                     "run (instead of --steps).", minimum=0)
    minutes: float = option(0.0, "Equal wall time: stop every run after this many minutes "
                            "(--steps or --epochs is then an upper bound; 0: off). It replaces "
                            "the recipe's --max_minutes.", minimum=0)
    mirror_class: Optional[str] = option(None, "Class name (folder sub-folder) whose samples' "
                                         "and real images' mirror gap the table shows, e.g. "
                                         "smileys_emotion (default: all).")
    out: Optional[str] = option(None, "JSON lines file (appended).")
    keep_workdirs: Optional[str] = option(None, "Keep every run's workdir (samples, logs, "
                                          "checkpoint, export) under this directory (default: "
                                          "a temporary one, removed at the end).")
    in_process: bool = option(False, "Train in this process instead of a fresh one per run "
                              "(tests).")


def define_flags(flag_values):
    """Every `sagan-train` option (the recipe) and the comparison's own flags."""
    from sagan_tf import cli
    from sagan_tf import config as config_lib

    config_lib.define_command_flags(flag_values, CompareOptions,
                                    {section: None for section in config_lib.SECTIONS.values()})
    cli.deprecate(flag_values, "backbone", "eval_backbone")


DEFAULT_RECIPE = "mnist5k_32"  # the Quick start's flag file


def prepare_argv(argv):
    """Flag files by preset name, as `sagan-train` (without one: DEFAULT_RECIPE);
    `--extra="FLAGS"` (deprecated) as the flags it holds."""
    from sagan_tf import cli, flagfiles

    out = list(argv[:1])
    if not any(arg.lstrip("-").startswith("flagfile=") for arg in argv[1:]):
        out.append(f"--flagfile={DEFAULT_RECIPE}")  # first: the command line overrides it
    for arg in argv[1:]:
        if arg.startswith("--extra="):
            print("warning: --extra is deprecated and will be removed in the next release; "
                  "pass its flags themselves", file=sys.stderr, flush=True)
            out += arg[len("--extra="):].split()
        else:
            out.append(arg)
    try:
        return flagfiles.rewrite_argv(out)
    except flagfiles.UnknownFlagFile as e:
        cli.fail(e)


def parse(argv):
    """The comparison's flags from `argv` (no program name), e.g. in tests."""
    from absl import flags

    values = flags.FlagValues()
    define_flags(values)
    values(prepare_argv(["compare", *argv]))
    return values


def compare(values):
    """Runs the comparison of parsed flags `values`; returns its rows."""
    from sagan_tf import backbones, data
    from sagan_tf import config as config_lib

    base = config_lib.TrainConfig.from_flags(values)
    own = config_lib.read_section(CompareOptions, values)
    try:
        backbones.check_fits(base.eval.eval_backbone, base.eval.eval_classifier_dataset
                             or base.data.dataset)
    except backbones.BackboneError as e:
        raise config_lib.ConfigError(f"--eval_backbone: {e}") from None
    steps = (steps_for_epochs(base, own.epochs) if own.epochs else base.training.steps)
    mirror_class = own.mirror_class
    if mirror_class is not None:
        names = data.describe(base.data_spec()).class_names
        if mirror_class not in names:
            raise data.DataError(f"--mirror_class={mirror_class} is not a class of "
                                 f"{base.data.dataset} ({', '.join(names) or 'no classes'})")
        mirror_class = names.index(mirror_class)
    options = Options(own.minutes, mirror_class, own.keep_workdirs, own.in_process)
    variants, seeds = own.variants, own.seeds
    print(f"{len(variants)} variant(s) x {len(seeds)} seed(s) on {base.data.dataset}, "
          f"{steps} steps each", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sagan_compare_") as scratch:
        workroot = own.keep_workdirs or scratch
        for seed in seeds:  # seeds outermost: a partial run still compares every variant
            for variant in variants:
                row = run_one(variant, seed, steps, options, base, workroot)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if own.out:
                    with open(own.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows, variants))
    return rows


@dataclasses.dataclass(frozen=True)
class Options:
    """The comparison's own settings that each run needs (`mirror_class`: an index)."""

    minutes: float
    mirror_class: Optional[int]
    keep_workdirs: Optional[str]
    in_process: bool


def main(argv):
    from absl import flags

    from sagan_tf import cli

    cli.check_no_arguments(argv)
    compare(flags.FLAGS)


def run():
    from sagan_tf import cli

    cli.entry_point(define_flags, main, prepare_argv, doc=__doc__)()


if __name__ == "__main__":
    run()
