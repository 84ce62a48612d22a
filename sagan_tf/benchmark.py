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

from sagan_tf import cli


def define_flags(flag_values):
    from sagan_tf import config

    define = cli.flag_definer(flag_values)
    define("enum", "mode", None, ["train", "generate", "data", "serve", "attention", "profile"],
           "One mode (default: standard set).")
    define("string", "profile_dir", None, "--mode=profile: keep the trace here (TensorBoard's "
           "Profile tab); default: a temporary directory.")
    define("integer", "channels", 64, "--mode=attention: channels of the feature map.")
    define("integer", "query_tile_size", 1024, "--mode=attention: queries per block of the "
           "tiled path.")
    define("string", "preset", None, "Model preset (default: dcgan_64).")
    define("integer", "imsize", None, "Image size; picks the preset's family at that size.")
    # Options shared with sagan-train: defined (and validated) by its config sections.
    config.define_flags(flag_values, only=SHARED_OPTIONS)
    define.deprecated("batch", "batch_size")
    define("integer", "steps", 10, "Timed iterations (after 3 warm-up ones); --mode=train "
           "prints the median.")
    define.deprecated("xla", "jit_compile")
    define("boolean", "attention_share", False, "--mode=train: also time the preset without its "
           "attention layers (steps alternating between the two models) and print "
           "the attention's share of a step.")
    define("boolean", "flops", True, "--mode=train: count the step's FLOPs per image (TF "
           "profiler on the step's graph) and print the fraction of this machine's "
           "float32 matmul peak (a 2048x2048 tf.matmul, timed in the same run).")


SHARED_OPTIONS = ("batch_size", "jit_compile", "steps_per_execution", "ema_decay", "precision",
                  "attention_variant")


def main(argv):
    from absl import flags

    from sagan_tf import config
    from sagan_tf.benchmarking import (bench_attention, bench_data, bench_generate,
                                       bench_profile, bench_serve, bench_train, preset_for)

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    for section in (config.TrainingConfig, config.RunConfig, config.ModelConfig):
        names = {f.name for f in dataclasses.fields(section)} & set(SHARED_OPTIONS)
        section(**{name: FLAGS[name].value for name in names}).validate()
    try:
        if FLAGS.mode is None and FLAGS.preset is None and FLAGS.imsize is None:
            for preset in ("dcgan_64", "resnet_128"):
                for xla in (False, True):
                    bench_train(preset, FLAGS.batch_size, FLAGS.steps, xla, FLAGS.precision,
                                count_flops=FLAGS.flops and not xla)
            bench_generate("dcgan_64", FLAGS.batch_size, FLAGS.steps, False, FLAGS.precision)
            return
        if FLAGS.mode == "attention":
            bench_attention(FLAGS.imsize or 128, FLAGS.batch_size, FLAGS.steps, FLAGS.channels,
                            FLAGS.query_tile_size, FLAGS.precision, FLAGS.jit_compile)
            return
        preset = preset_for(FLAGS.preset, FLAGS.imsize)
        mode = FLAGS.mode or "train"
        if mode == "train":
            bench_train(preset, FLAGS.batch_size, FLAGS.steps, FLAGS.jit_compile, FLAGS.precision,
                        FLAGS.attention_share, FLAGS.flops, FLAGS.attention_variant,
                        FLAGS.steps_per_execution, FLAGS.ema_decay)
        elif mode == "profile":
            bench_profile(preset, FLAGS.batch_size, FLAGS.steps, FLAGS.jit_compile, FLAGS.precision,
                          FLAGS.attention_variant, FLAGS.profile_dir)
        elif mode == "generate":
            bench_generate(preset, FLAGS.batch_size, FLAGS.steps, FLAGS.jit_compile, FLAGS.precision)
        elif mode == "data":
            bench_data(FLAGS.batch_size, FLAGS.steps)
        else:
            bench_serve(preset, FLAGS.steps)
    except ValueError as e:
        cli.fail(e)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
