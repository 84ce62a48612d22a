"""SAGAN against its attention-free twin and a DCGAN baseline on mnist5k, over seeds.

    python -m benchmarks.compare_mnist5k --variants=baseline,no_attention,sagan \
        --seeds=0,1,2 --steps=2000 --out=runs/compare.jsonl
    python -m benchmarks.compare_mnist5k --minutes=3 ...      # equal wall time instead
    python -m benchmarks.compare_mnist5k --unconditional ...  # class-free G and D

Every run trains `flags/mnist5k_32.flags` (plus the variant's flags and
`--extra` flags) in a fresh process, then evaluates the final EMA generator on
2,000 samples against the 500 held-out digits with the offline classifier
backbone (classifier FID/KID, precision, recall, class accuracy: comparable
with each other only). One JSON line per run goes to `--out`; at the end a
table of mean +- std per variant is printed (Markdown).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = os.path.join(ROOT, "flags", "mnist5k_32.flags")

# Attention placements of dcgan_32: G's feature maps are 4, 8 and 16 px, D's 16, 8 and 4 px.
VARIANTS = {  # name: (what it is, its flags after the flag file)
    "baseline": ("a plain DCGAN: no attention, no spectral norm, batch norm in D",
                 ["--preset=baseline_32", "--g_attention=", "--d_attention="]),
    "no_attention": ("SAGAN's twin without attention: spectral norm, hinge, the same G and D",
                     ["--g_attention=", "--d_attention="]),
    "sagan": ("the flag file: the official attention block at 16x16 in G and D", []),
    "paper_16": ("the paper's attention block at 16x16 in G and D",
                 ["--attention_variant=paper"]),
    "paper_8_16": ("the paper's block at 8x8 and 16x16 in G and D",
                   ["--g_attention=8,16", "--d_attention=16,8", "--attention_variant=paper"]),
    "previous": ("dcgan_32's default placement (G 8, 16; D 8, 4), the paper's block",
                 ["--g_attention=8,16", "--d_attention=8,4", "--attention_variant=paper"]),
}
METRICS = ("fid", "kid", "precision", "recall", "class_accuracy", "img_per_s", "steps")


def run_one(variant, seed, args, workroot):
    """Trains one variant from the flag file in a fresh process, printing its progress
    lines, and returns its JSON row."""
    workdir = os.path.join(workroot, f"{variant}_s{seed}")
    cmd = [sys.executable, "-m", "sagan_tf.train", f"--flagfile={FLAGFILE}",
           *VARIANTS[variant][1], *args.extra.split(), f"--seed={seed}", f"--steps={args.steps}",
           f"--workdir={workdir}", "--export=false", f"--eval_samples={args.eval_samples}",
           f"--eval_every={10 * args.steps}",  # only the final evaluation
           "--sample_every=1000000", f"--checkpoint_every={args.steps}",
           f"--log_every={args.log_every}"]
    if args.minutes:
        cmd.append(f"--max_minutes={args.minutes}")
    if args.unconditional:
        cmd.append("--noconditional")
    print(f"{variant} seed {seed}: training in {workdir}", flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line.rstrip()])[-20:]
        if "] step " in line or line.startswith("error:"):
            print(f"  {variant} seed {seed}: {line.split('] ', 1)[-1].rstrip()}", flush=True)
    if proc.wait():
        raise SystemExit(f"error: {variant} seed {seed} failed: {' / '.join(tail[-3:])}")
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    evaluation = summary["evaluation"]
    return {"variant": variant, "seed": seed, "steps": summary["step"],
            "minutes": args.minutes, "conditional": not args.unconditional,
            "extra": args.extra.split(), "workdir": workdir if args.keep_workdirs else None,
            "img_per_s": round(summary["mean_images_per_second"], 1),
            "train_seconds": round(summary["train_seconds"], 1),
            **{k: evaluation[k] for k in ("fid", "kid", "is", "precision", "recall",
                                          "class_accuracy")}}


def table(rows, variants):
    lines = ["| variant | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for key in METRICS:
            values = [r[key] for r in mine if r.get(key) is not None]
            if not values:
                cells.append("-")
                continue
            mean, std = float(np.mean(values)), float(np.std(values))
            digits = 4 if key == "kid" else (3 if key in ("precision", "recall",
                                                          "class_accuracy") else 1)
            cells.append(f"{mean:.{digits}f} +- {std:.{digits}f}")
        lines.append(f"| {variant} (n={len(mine)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="variants: " + "; ".join(f"{name}: {text}" for name, (text, _) in VARIANTS.items()),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--variants", default="baseline,no_attention,sagan",
                        help="comma-separated, from the list below")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--steps", type=int, default=2500, help="training steps per run")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="equal wall time: stop every run after this many minutes "
                             "(--steps is then an upper bound; 0: off)")
    parser.add_argument("--unconditional", action="store_true",
                        help="class-free G and D")
    parser.add_argument("--eval_samples", type=int, default=2000,
                        help="generated samples of each final evaluation")
    parser.add_argument("--log_every", type=int, default=500, help="steps between progress lines")
    parser.add_argument("--extra", default="", help="more train flags, space-separated")
    parser.add_argument("--out", default=None, help="JSON lines file (appended)")
    parser.add_argument("--keep_workdirs", default=None, metavar="DIR",
                        help="keep every run's workdir (samples, logs, checkpoint) under DIR; "
                             "default: a temporary directory, removed at the end")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.exit(2, f"error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}\n")
    return args, variants, [int(s) for s in args.seeds.split(",")]


def main(argv=None):
    args, variants, seeds = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sagan_compare_") as scratch:
        workroot = args.keep_workdirs or scratch
        for seed in seeds:  # seeds outermost: a partial run still compares every variant
            for variant in variants:
                row = run_one(variant, seed, args, workroot)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows, variants))


if __name__ == "__main__":
    main()
