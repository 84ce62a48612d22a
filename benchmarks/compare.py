"""Variants of one training recipe over seeds, on any dataset: SAGAN against its
attention-free twin and a DCGAN baseline, or the small-data remedies.

    # SAGAN, its twin without attention and a DCGAN baseline on mnist5k:
    python -m benchmarks.compare --variants=baseline,no_attention,sagan --seeds=0,1,2
    # The seeds' experiment: DCGAN against SAGAN on CIFAR-10 for 5 epochs, paper FID:
    python -m benchmarks.compare --flagfile=cifar10_32 --variants=baseline,sagan --epochs=5 \\
        --backbone=inception_graph --eval_samples=10000
    # A folder of your own images:
    python -m benchmarks.compare --flagfile=cifar10_32 --dataset=folder:/data/faces \\
        --variants=no_attention,sagan --minutes=30 --backbone=inception_graph
    # Few images: no augmentation, DiffAugment, ADA, LeCam, ADA + LeCam on 500 digits:
    python -m benchmarks.compare --variants=sagan,diffaugment,ada,lecam,ada_lecam \\
        --extra="--train_subset=500" --steps=5000

Every run trains the flag file (`--flagfile`, a preset name or a path) with the
variant's flags, `--dataset` if given and `--extra`, for equal steps (`--steps`),
equal epochs (`--epochs`) or equal wall time (`--minutes`), in a fresh process,
then scores its final generator (the EMA one when the recipe has it) once, with
`--backbone`: the offline classifier trained on the dataset itself, on mnist5k or
a labelled folder (classifier FID/KID and class accuracy, comparable with each
other only), `inception_graph` for FIDs
comparable with papers (downloaded once). It exports the generator to measure
its size. One JSON line per run goes to `--out`; at the end a Markdown table
gives mean +- std per variant, with the generator's SavedModel size and G + D's
weights in float32.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (what it is, its flags after the flag file, given the base config)
VARIANTS = {
    "baseline": ("a plain DCGAN: no attention, no spectral norm, batch norm in D",
                 lambda c: [f"--preset=baseline_{c.image_size}", "--g_attention=",
                            "--d_attention="]),
    "no_attention": ("SAGAN's twin without attention: spectral norm, hinge, the same G and D",
                     lambda c: ["--g_attention=", "--d_attention="]),
    "sagan": ("the flag file as it is", lambda c: []),
    "paper_16": ("the paper's attention block at 16x16 in G and D",
                 lambda c: ["--g_attention=16", "--d_attention=16", "--attention_variant=paper"]),
    "paper_8_16": ("the paper's block at 8x8 and 16x16 in G and D",
                   lambda c: ["--g_attention=8,16", "--d_attention=16,8",
                              "--attention_variant=paper"]),
    "diffaugment": ("DiffAugment at fixed strength: color, translation, cutout",
                    lambda c: ["--augment=color,translation,cutout"]),
    "ada": ("adaptive augmentation, target r_t 0.6", lambda c: ["--augment=ada"]),
    "ada_no_flip_rotate": ("ADA without x-flips and quarter turns (they change what a digit "
                           "shows)", lambda c: ["--augment=ada", "--ada_transforms=translate,"
                                                "scale,brightness,contrast,saturation,cutout"]),
    "lecam": ("LeCam regularization, weight 0.3", lambda c: ["--lecam_weight=0.3"]),
    "ada_lecam": ("ADA and LeCam", lambda c: ["--augment=ada", "--lecam_weight=0.3"]),
}
METRICS = ("fid", "kid", "precision", "recall", "class_accuracy", "mirror_gap",
           "real_mirror_gap", "is", "img_per_s", "steps", "export_mb", "g_d_mb")


def base_config(flagfile, dataset, extra):
    """The TrainConfig of the flag file with `--dataset` and the extra flags (a bad
    flag stops here, before any run)."""
    from absl import flags

    from sagan_tf import config as config_lib
    from sagan_tf import flagfiles

    values = flags.FlagValues()
    config_lib.define_flags(values)
    argv = [f"--flagfile={flagfiles.resolve(flagfile)}", *extra]
    if dataset:
        argv.append(f"--dataset={dataset}")
    values(["compare", *argv])
    return config_lib.TrainConfig.from_flags(values), argv


def steps_for_epochs(config, epochs):
    """Steps of `epochs` passes over the training images at the config's batch."""
    from sagan_tf import data

    info = data.describe(config.data_spec())
    if not info.num_examples:
        raise SystemExit(f"error: {config.data.dataset} does not say how many images it holds; "
                         "use --steps or --minutes")
    images = epochs * info.num_examples
    return max(1, math.ceil(images / (config.training.batch_size * config.training.d_steps)))


def run_flags(variant, seed, steps, args, base, argv, workdir):
    flags = [*argv, *VARIANTS[variant][1](base), f"--seed={seed}", f"--steps={steps}",
             f"--workdir={workdir}", "--export", f"--export_dir={os.path.join(workdir, 'export')}",
             "--export_name=generator", f"--eval_samples={args.eval_samples}",
             f"--eval_every={args.eval_every or 10 * steps}",  # 10 * steps: only at the end
             f"--eval_backbone={args.backbone}",
             "--sample_every=1000000", f"--checkpoint_every={steps}",
             f"--log_every={args.log_every}"]
    if args.inception_graph:
        flags.append(f"--inception_graph={args.inception_graph}")
    flags.append(f"--max_minutes={args.minutes}")  # 0: equal steps, whatever the flag file says
    return flags


def train_in_subprocess(flags, label):
    """`sagan-train` in a fresh process, printing its progress lines."""
    proc = subprocess.Popen([sys.executable, "-m", "sagan_tf.train", *flags], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line.rstrip()])[-20:]
        if "] step " in line or line.startswith("error:"):
            print(f"  {label}: {line.split('] ', 1)[-1].rstrip()}", flush=True)
    if proc.wait():
        raise SystemExit(f"error: {label} failed: {' / '.join(tail[-3:])}")


def train_in_process(flags, label):
    """The same run in this process (tests, debugging; timings then share a process)."""
    from absl import flags as absl_flags

    from sagan_tf import config as config_lib
    from sagan_tf import training

    values = absl_flags.FlagValues()
    config_lib.define_flags(values)
    values(["train", *flags])
    print(f"  {label}: training in this process", flush=True)
    training.run(config_lib.TrainConfig.from_flags(values))


def _megabytes(path):
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return round(total / 2**20, 2)


def run_one(variant, seed, steps, args, base, argv, workroot):
    """Trains one variant and returns its JSON row."""
    workdir = os.path.join(workroot, f"{variant}_s{seed}")
    label = f"{variant} seed {seed}"
    print(f"{label}: training in {workdir}", flush=True)
    flags = run_flags(variant, seed, steps, args, base, argv, workdir)
    (train_in_process if args.in_process else train_in_subprocess)(flags, label)
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    evaluation = summary["evaluation"]
    row = {"variant": variant, "seed": seed, "steps": summary["step"],
            "dataset": base.data.dataset, "backbone": args.backbone,
            "minutes": args.minutes, "flags": argv,
            "workdir": workdir if args.keep_workdirs else None,
            # Steady state: from the end of the first (compiling) step to the last step.
            "img_per_s": round(summary.get("steady_images_per_second")
                               or summary["mean_images_per_second"], 1),
            "train_seconds": round(summary["train_seconds"], 1),
            "export_mb": _megabytes(os.path.join(workdir, "export")),
            "g_d_mb": round(sum(summary["float32_bytes"].values()) / 2**20, 2),
            **{k: evaluation.get(k) for k in ("fid", "kid", "is", "precision", "recall",
                                              "class_accuracy", "mirror_gap", "real_mirror_gap",
                                              "mirror_gap_by_class")}}
    if args.mirror_class is not None:
        by_class = evaluation.get("mirror_gap_by_class") or {}
        row["mirror_gap"], row["real_mirror_gap"] = by_class.get(
            str(args.mirror_class), [None, None])
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


class _DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default unless its help already says it or it has none."""

    def _get_help_string(self, action):
        if action.default in (None, False, "") or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv=None):
    from sagan_tf.backbones import BACKBONES

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        epilog="variants: " + "; ".join(f"{name}: {text}" for name, (text, _) in VARIANTS.items()),
        formatter_class=_DefaultsOnce)
    parser.add_argument("--flagfile", default="mnist5k_32",
                        help="the recipe: a preset name (sagan-train --help lists them) or a path")
    parser.add_argument("--dataset", default=None,
                        help="TFDS name, folder:PATH or mnist5k (default: the flag file's)")
    parser.add_argument("--variants", default="baseline,no_attention,sagan",
                        help="comma-separated, from the list below")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None,
                        help="training steps per run (default: the flag file's)")
    budget.add_argument("--epochs", type=float, default=None,
                        help="equal epochs: passes over the training images per run")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="equal wall time: stop every run after this many minutes "
                             "(--steps or --epochs is then an upper bound; 0: off)")
    parser.add_argument("--backbone", default="classifier", choices=BACKBONES,
                        help="feature network of the final evaluation (classifier: trained on the "
                             "dataset itself, mnist5k or a folder with class sub-folders)")
    parser.add_argument("--inception_graph", default=None,
                        help="classify_image_graph_def.pb (default: downloaded once)")
    parser.add_argument("--eval_every", type=int, default=0,
                        help="steps between evaluations, logged to each run's TensorBoard "
                             "(0: only the final one, which the table reports)")
    parser.add_argument("--eval_samples", type=int, default=2000,
                        help="generated samples of each final evaluation")
    parser.add_argument("--log_every", type=int, default=500, help="steps between progress lines")
    parser.add_argument("--mirror_class", default=None,
                        help="class name (folder sub-folder) whose samples' and real images' "
                             "mirror gap the table shows, e.g. smileys_emotion (default: all)")
    parser.add_argument("--extra", default="", help="more sagan-train flags, space-separated")
    parser.add_argument("--out", default=None, help="JSON lines file (appended)")
    parser.add_argument("--keep_workdirs", default=None, metavar="DIR",
                        help="keep every run's workdir (samples, logs, checkpoint, export) "
                             "under DIR; default: a temporary directory, removed at the end")
    parser.add_argument("--in_process", action="store_true",
                        help="train in this process instead of a fresh one per run (tests)")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.exit(2, f"error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}\n")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.exit(2, f"error: --seeds must be comma-separated integers; got {args.seeds!r}\n")
    return parser, args, variants, seeds


def main(argv=None):
    parser, args, variants, seeds = parse_args(argv)
    from sagan_tf import backbones, data
    from sagan_tf.errors import UserError

    try:
        base, train_argv = base_config(args.flagfile, args.dataset, args.extra.split())
        backbones.check_fits(args.backbone, base.data.dataset)
        steps = (steps_for_epochs(base, args.epochs) if args.epochs
                 else args.steps or base.training.steps)
        if args.mirror_class is not None:
            names = data.describe(base.data_spec()).class_names
            if args.mirror_class not in names:
                raise data.DataError(f"--mirror_class={args.mirror_class} is not a class of "
                                     f"{base.data.dataset} ({', '.join(names) or 'no classes'})")
            args.mirror_class = names.index(args.mirror_class)
    except UserError as e:
        parser.exit(2, f"error: {e}\n")
    except Exception as e:  # noqa: BLE001 - absl's flag errors name the flag
        parser.exit(2, f"error: {' '.join(str(e).split())}\n")
    print(f"{len(variants)} variant(s) x {len(seeds)} seed(s) of {args.flagfile} on "
          f"{base.data.dataset}, {steps} steps each", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sagan_compare_") as scratch:
        workroot = args.keep_workdirs or scratch
        for seed in seeds:  # seeds outermost: a partial run still compares every variant
            for variant in variants:
                row = run_one(variant, seed, steps, args, base, train_argv, workroot)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows, variants))


if __name__ == "__main__":
    from sagan_tf import runtime

    runtime.setup()  # before TensorFlow's import: its start-up lines stay out of --help
    main()
