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
VARIANTS = {
    # A plain DCGAN: no attention, no spectral norm, batch norm in D (the seeds' comparison).
    "baseline": ["--preset=baseline_32", "--g_attention=", "--d_attention="],
    # SAGAN's twin without attention: spectral norm, hinge, the same G and D otherwise.
    "no_attention": ["--g_attention=", "--d_attention="],
    "sagan": [],  # the flag file: the official attention block at 16x16 in G and D
    "paper_16": ["--attention_variant=paper"],  # the paper's block, same place
    "paper_8_16": ["--g_attention=8,16", "--d_attention=16,8", "--attention_variant=paper"],
    # dcgan_32's default placement, the paper's block
    "previous": ["--g_attention=8,16", "--d_attention=8,4", "--attention_variant=paper"],
}
METRICS = ("fid", "kid", "precision", "recall", "class_accuracy", "img_per_s", "steps")


def run_one(variant, seed, steps, minutes, extra, unconditional, workroot):
    workdir = os.path.join(workroot, f"{variant}_s{seed}")
    args = [sys.executable, "-m", "sagan_tf.train", f"--flagfile={FLAGFILE}",
            *VARIANTS[variant], *extra, f"--seed={seed}", f"--steps={steps}",
            f"--workdir={workdir}", "--export=false", "--eval_samples=2000",
            f"--eval_every={10 * steps}",  # only the final evaluation
            "--sample_every=1000000", "--checkpoint_every=1000000", "--log_every=500"]
    if minutes:
        args.append(f"--max_minutes={minutes}")
    if unconditional:
        args.append("--noconditional")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"error: {variant} seed {seed} failed: {proc.stderr.strip()[-500:]}")
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    evaluation = summary["evaluation"]
    return {"variant": variant, "seed": seed, "steps": summary["step"],
            "minutes": minutes, "conditional": not unconditional, "extra": extra,
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="baseline,no_attention,sagan")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="equal wall time: stop every run after this many minutes "
                             "(--steps is then an upper bound)")
    parser.add_argument("--unconditional", action="store_true")
    parser.add_argument("--extra", default="", help="more train flags, space-separated")
    parser.add_argument("--out", default=None, help="JSON lines file (appended)")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sagan_compare_") as workroot:
        for seed in seeds:  # seeds outermost: a partial run still compares every variant
            for variant in variants:
                row = run_one(variant, seed, args.steps, args.minutes, args.extra.split(),
                              args.unconditional, workroot)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    print(table(rows, variants))


if __name__ == "__main__":
    main()
