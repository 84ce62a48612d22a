"""sagan-benchmark (python -m sagan_tf.benchmark): throughput figures, one JSON line per case.

Modes:
  train     full training iterations (D step + G step) on synthetic batches;
  generate  generator inference (Keras model, inference mode);
  data      input-pipeline images/s (celeb_a-shaped JPEG folder at 64 px, mnist5k);
  serve     exported SavedModel (`serving_default`) against the Keras generator, batch 1/16/64;
  profile   TF profiler trace of --steps training steps: milliseconds per step by op group
            (convolution, matmul, attention_matmul, softmax, batch_norm, spectral_norm,
            optimizer, cast, layout, elementwise) and the slowest ops;
  attention one SelfAttention2D (paper variant) forward + backward on an --imsize map at
            --batch_size (--precision; --jit_compile compiles the block), e.g. 128 px (N = 16,384
            positions) on the tiled path: img/s, peak RSS.

With no --mode/--preset it runs the standard set: training at 64 px batch 64 (`dcgan_64`, the
popular PyTorch SAGAN's architecture) and 128 px (`resnet_128`), with and without XLA, plus
generator inference.
"""

import dataclasses
from typing import Optional

from sagan_tf import cli, config
from sagan_tf.config import Section, option

MODES = ("train", "generate", "data", "serve", "attention", "profile")


@dataclasses.dataclass
class BenchmarkOptions(Section):
    """sagan-benchmark's own options: what to time and how long."""

    mode: Optional[str] = option(None, "One mode (default: the standard set).", MODES)
    imsize: Optional[int] = option(None, "Image size; picks the preset's family at that size.",
                                   minimum=1)
    steps: int = option(10, "Timed iterations (after 3 warm-up ones); --mode=train prints the "
                        "median.", minimum=1)
    attention_share: bool = option(False, "--mode=train: also time the preset without its "
                                   "attention layers (steps alternating between the two "
                                   "models) and print the attention's share of a step.")
    flops: bool = option(True, "--mode=train: count the step's FLOPs per image (TF profiler on "
                         "the step's graph) and print the fraction of this machine's float32 "
                         "matmul peak (a 2048x2048 tf.matmul, timed in the same run).")
    profile_dir: Optional[str] = option(None, "--mode=profile: keep the trace here "
                                        "(TensorBoard's Profile tab); default: a temporary "
                                        "directory.")
    channels: int = option(64, "--mode=attention: channels of the feature map.", minimum=1)
    query_tile_size: int = option(1024, "--mode=attention: queries per block of the tiled "
                                  "path.", minimum=1)


# Options shared with sagan-train: its sections define (and validate) them. The
# preset of one mode is dcgan_64 unless given (the popular PyTorch SAGAN's
# architecture); with no --mode, --preset or --imsize the standard set runs.
SHARED = {config.ModelConfig: ("preset", "attention_variant"),
          config.TrainingConfig: ("batch_size", "ema_decay", "precision"),
          config.RunConfig: ("jit_compile", "steps_per_execution")}
SHARED_OPTIONS = tuple(name for names in SHARED.values() for name in names)
DEFAULTS = dict(preset="dcgan_64")


def define_flags(flag_values):
    config.define_command_flags(flag_values, BenchmarkOptions, SHARED, DEFAULTS)
    cli.deprecate(flag_values, "batch", "batch_size")
    cli.deprecate(flag_values, "xla", "jit_compile")


def main(argv):
    from absl import flags

    from sagan_tf.benchmarking import (bench_attention, bench_data, bench_generate,
                                       bench_profile, bench_serve, bench_train, preset_for)

    cli.check_no_arguments(argv)
    own = config.read_section(BenchmarkOptions, flags.FLAGS)
    model, training, run = (config.read_section(section, flags.FLAGS, only=names)
                            for section, names in SHARED.items())
    batch, steps, precision = training.batch_size, own.steps, training.precision
    try:
        if own.mode is None and not flags.FLAGS["preset"].present and own.imsize is None:
            for preset in ("dcgan_64", "resnet_128"):
                for xla in (False, True):
                    bench_train(preset, batch, steps, xla, precision,
                                count_flops=own.flops and not xla)
            bench_generate("dcgan_64", batch, steps, False, precision)
            return
        if own.mode == "attention":
            bench_attention(own.imsize or 128, batch, steps, own.channels, own.query_tile_size,
                            precision, run.jit_compile)
            return
        preset = preset_for(model.preset, own.imsize)
        mode = own.mode or "train"
        if mode == "train":
            bench_train(preset, batch, steps, run.jit_compile, precision, own.attention_share,
                        own.flops, model.attention_variant, run.steps_per_execution,
                        training.ema_decay)
        elif mode == "profile":
            bench_profile(preset, batch, steps, run.jit_compile, precision,
                          model.attention_variant, own.profile_dir)
        elif mode == "generate":
            bench_generate(preset, batch, steps, run.jit_compile, precision)
        elif mode == "data":
            bench_data(batch, steps)
        else:
            bench_serve(preset, steps)
    except ValueError as e:
        cli.fail(e)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
