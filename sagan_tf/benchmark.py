"""python -m sagan_tf.benchmark: throughput figures, one JSON line per case.

Modes:
  train     full training iterations (D step + G step) on synthetic batches;
  generate  generator inference (Keras model, inference mode);
  data      input-pipeline images/s (celeb_a-shaped JPEG folder at 64 px, mnist5k);
  serve     exported SavedModel (`serving_default`) against the Keras generator, batch 1/16/64;
  attention one SelfAttention2D (paper variant) forward + backward on an --imsize map at
            --batch, e.g. 128 px (N = 16,384 positions) on the tiled path: img/s, peak RSS.

With no --mode/--preset it runs the standard set: training at 64 px batch 64 (`dcgan_64`, the
popular PyTorch SAGAN's architecture) and 128 px (`resnet_128`), with and without XLA, plus
generator inference.
"""

import json
import os
import resource
import sys
import tempfile
import time

from sagan_tf import runtime  # noqa: E402  (before TensorFlow is imported)

runtime.setup()

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", None, ["train", "generate", "data", "serve", "attention"],
                  "One mode (default: standard set).")
flags.DEFINE_integer("channels", 64, "--mode=attention: channels of the feature map.")
flags.DEFINE_integer("query_tile_size", 1024, "--mode=attention: queries per block of the "
                     "tiled path.")
flags.DEFINE_string("preset", None, "Model preset (default: dcgan_64).")
flags.DEFINE_integer("imsize", None, "Image size; picks the preset's family at that size.")
flags.DEFINE_integer("batch", 64, "Batch size.")
flags.DEFINE_integer("steps", 10, "Timed iterations (after 3 warm-up ones); --mode=train "
                     "prints the median.")
flags.DEFINE_boolean("xla", False, "jit_compile the train step.")
flags.DEFINE_integer("steps_per_execution", 1, "--mode=train: steps per tf.function call.")
flags.DEFINE_float("ema_decay", 0.0, "--mode=train: keep an EMA generator (as --ema_decay of "
                   "train), to time its update.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Precision.")
flags.DEFINE_enum("attention_variant", None, ["paper", "official"], "--mode=train: the "
                  "attention variant (default: the preset's).")
flags.DEFINE_boolean("attention_share", False, "--mode=train: also time the preset without its "
                     "attention layers (steps alternating between the two models) and print "
                     "the attention's share of a step.")
flags.DEFINE_boolean("flops", True, "--mode=train: count the step's FLOPs per image (TF "
                     "profiler on the step's graph) and print the fraction of this machine's "
                     "float32 matmul peak (a 2048x2048 tf.matmul, timed in the same run).")


def matmul_peak_gflops(n=2048, reps=20):
    """This machine's float32 matmul rate: the best of `reps` n x n x n products, GFLOP/s."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    fn = tf.function(lambda a, b: tf.matmul(a, b))
    for _ in range(3):
        fn(a, b).numpy()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def step_gflop_per_image(gan, batch):
    """FLOPs of one training step per image, from TF's profiler on the step's graph
    (convolutions, their gradients, matmuls; elementwise ops add a little)."""
    size = gan.generator.image_size
    channels = gan.discriminator.input_channels
    fn = tf.function(gan.train_step)
    graph = fn.get_concrete_function(
        (tf.TensorSpec([batch, size, size, channels]), tf.TensorSpec([batch], tf.int32))).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    return total / batch / 1e9


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(**fields):
    fields["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(fields), flush=True)


def _preset(preset, imsize):
    from sagan_tf.models import PRESETS

    preset = preset or "dcgan_64"
    if imsize:
        preset = f"{preset.rsplit('_', 1)[0]}_{imsize}"
    if preset not in PRESETS:
        raise ValueError(f"--preset/--imsize give {preset!r}; use one of {sorted(PRESETS)}")
    return preset


def _build_gan(preset, precision, xla, no_attention=False, variant=None, ema_decay=0.0):
    from sagan_tf.gan import SAGAN
    from sagan_tf.models import Discriminator, Generator

    keras.mixed_precision.set_global_policy(precision)
    overrides = dict(attention_resolutions=()) if no_attention else {}
    if variant:
        overrides["attention_variant"] = variant
    g, d = Generator.from_preset(preset, **overrides), Discriminator.from_preset(preset, **overrides)
    gan = SAGAN(g, d, ema_decay=ema_decay)
    gan.compile(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9),
                keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9), jit_compile=xla)
    gan.build_optimizers()
    return gan


def _images_per_second(gans, batch, steps, steps_per_execution=1):
    """Training img/s of each GAN: the median over `steps` timed calls of the step
    function `python -m sagan_tf.train` runs (`loop.make_step_function`), after 3
    warm-up calls. With several GANs the calls alternate (one of each in turn), so a
    change in the machine's speed during the run (other tenants) hits all of them alike
    and their ratio stays meaningful."""
    from sagan_tf import loop

    k = steps_per_execution
    runs = []
    for gan in gans:
        size = gan.generator.image_size
        images = tf.random.uniform([batch, size, size, gan.discriminator.input_channels], -1, 1)
        ds = tf.data.Dataset.from_tensors((images, tf.zeros([batch], tf.int32))).repeat()
        step = loop.make_step_function(gan, tf.distribute.get_strategy(), k)
        args = (iter(ds),) if k == 1 else (iter(ds), tf.constant(k))
        runs.append((step, args, []))

    def call(step, args):  # one call and the metric reads the loop makes
        tf.nest.map_structure(lambda t: t.numpy(), step(*args))

    for _ in range(3):
        for step, args, _ in runs:
            call(step, args)
    for _ in range(steps):
        for step, args, times in runs:
            start = time.perf_counter()
            call(step, args)
            times.append(time.perf_counter() - start)
    return [k * batch / float(np.median(times)) for _, _, times in runs]


def bench_train(preset, batch, steps, xla, precision, attention_share=False, count_flops=True,
                variant=None, steps_per_execution=1, ema_decay=0.0):
    gans = [_build_gan(preset, precision, xla, variant=variant, ema_decay=ema_decay)]
    if attention_share:
        gans.append(_build_gan(preset, precision, xla, no_attention=True, variant=variant,
                               ema_decay=ema_decay))
    rates = _images_per_second(gans, batch, steps, steps_per_execution)
    gflops = [step_gflop_per_image(gan, batch) for gan in gans] if count_flops else None
    ips = rates[0]
    fields = dict(mode="train", preset=preset, imsize=int(preset.rsplit("_", 1)[1]), batch=batch,
                  xla=xla, precision=precision, img_per_s=round(ips, 2))
    if variant:
        fields["attention_variant"] = variant
    if steps_per_execution > 1:
        fields["steps_per_execution"] = steps_per_execution
    if ema_decay:
        fields["ema_decay"] = ema_decay
    if gflops:
        peak = matmul_peak_gflops()
        fields.update(gflop_per_img=round(gflops[0], 3), achieved_gflops=round(ips * gflops[0], 1),
                      matmul_peak_gflops=round(peak, 1),
                      peak_fraction=round(ips * gflops[0] / peak, 3))
    if attention_share:
        # Share of a step's time: (t_with - t_without) / t_with; of its FLOPs likewise.
        fields.update(img_per_s_no_attention=round(rates[1], 2),
                      attention_share=round(1.0 - ips / rates[1], 3))
        if gflops:
            fields["attention_flop_share"] = round(1.0 - gflops[1] / gflops[0], 3)
    _emit(**fields)


def bench_generate(preset, batch, steps, xla, precision):
    from sagan_tf.models import Generator

    keras.mixed_precision.set_global_policy(precision)
    g = Generator.from_preset(preset)
    g.build()
    fn = tf.function(lambda z: g(z, training=False), jit_compile=xla)
    z = tf.random.normal([batch, g.z_dim])
    for _ in range(3):
        fn(z).numpy()
    start = time.perf_counter()
    for _ in range(steps):
        fn(z).numpy()
    _emit(mode="generate", preset=preset, imsize=g.image_size, batch=batch, xla=xla,
          precision=precision, img_per_s=round(steps * batch / (time.perf_counter() - start), 2))


def bench_attention(imsize, batch, steps, channels, query_tile_size):
    from sagan_tf.layers import SelfAttention2D

    layer = SelfAttention2D("paper", use_spectral_norm=False, query_tile_size=query_tile_size)
    x = tf.random.normal([batch, imsize, imsize, channels])
    layer.build(x.shape)
    layer.gamma.assign(0.5)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, training=True)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    step(x)
    start = time.perf_counter()
    for _ in range(steps):
        [g.numpy() for g in step(x)]
    n = imsize * imsize
    _emit(mode="attention", imsize=imsize, positions=n, channels=channels, batch=batch,
          query_tile_size=query_tile_size, tiled=n > query_tile_size,
          dense_map_gb=round(batch * n * n * 4 / 2**30, 2),
          img_per_s=round(steps * batch / (time.perf_counter() - start), 2))


def _time_pipeline(ds, batches, batch):
    it = iter(ds)
    for _ in range(3):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return round(batches * batch / (time.perf_counter() - start), 1)


def bench_data(batch, steps):
    from PIL import Image

    from sagan_tf import data

    with tempfile.TemporaryDirectory() as root:
        rng = np.random.default_rng(0)
        for i in range(512):  # celeb_a-shaped: 218x178 JPEG
            Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(
                os.path.join(root, f"{i:04d}.jpg"), quality=90)
        spec = data.DataSpec(f"folder:{root}", 64, 3, crop=140)  # folders are never cached
        _emit(mode="data", dataset="celeb_a-shaped folder (218x178 jpeg, crop 140, no cache)",
              imsize=64, batch=batch, img_per_s=_time_pipeline(data.input_fn(spec, batch), steps, batch))
    for size in (32, 64):
        spec = data.DataSpec("mnist5k", size, 3)
        _emit(mode="data", dataset="mnist5k (in memory, indexed)", imsize=size, batch=batch,
              img_per_s=_time_pipeline(data.input_fn(spec, batch), steps, batch))


def bench_serve(preset, steps):
    from sagan_tf import export
    from sagan_tf.models import Generator

    g = Generator.from_preset(preset)
    g.build()
    with tempfile.TemporaryDirectory() as root:
        loaded = tf.saved_model.load(export.export_generator(g, root, "bench"))
        serve = loaded.signatures["serving_default"]
        keras_fn = tf.function(lambda z: g(z, training=False))
        for batch in (1, 16, 64):
            z = tf.random.normal([batch, g.z_dim])
            for name, fn in (("savedmodel", lambda: serve(z=z)["images"]),
                             ("keras", lambda: keras_fn(z))):
                for _ in range(3):
                    fn().numpy()
                start = time.perf_counter()
                for _ in range(steps):
                    fn().numpy()
                _emit(mode="serve", runtime=name, preset=preset, imsize=g.image_size, batch=batch,
                      img_per_s=round(steps * batch / (time.perf_counter() - start), 2))


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    try:
        if FLAGS.mode is None and FLAGS.preset is None and FLAGS.imsize is None:
            for preset in ("dcgan_64", "resnet_128"):
                for xla in (False, True):
                    bench_train(preset, FLAGS.batch, FLAGS.steps, xla, FLAGS.precision,
                                count_flops=FLAGS.flops and not xla)
            bench_generate("dcgan_64", FLAGS.batch, FLAGS.steps, False, FLAGS.precision)
            return
        if FLAGS.mode == "attention":
            bench_attention(FLAGS.imsize or 128, FLAGS.batch, FLAGS.steps, FLAGS.channels,
                            FLAGS.query_tile_size)
            return
        preset = _preset(FLAGS.preset, FLAGS.imsize)
        mode = FLAGS.mode or "train"
        if mode == "train":
            bench_train(preset, FLAGS.batch, FLAGS.steps, FLAGS.xla, FLAGS.precision,
                        FLAGS.attention_share, FLAGS.flops, FLAGS.attention_variant,
                        FLAGS.steps_per_execution, FLAGS.ema_decay)
        elif mode == "generate":
            bench_generate(preset, FLAGS.batch, FLAGS.steps, FLAGS.xla, FLAGS.precision)
        elif mode == "data":
            bench_data(FLAGS.batch, FLAGS.steps)
        else:
            bench_serve(preset, FLAGS.steps)
    except ValueError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main)
