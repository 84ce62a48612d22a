"""Throughput measurements behind `sagan-benchmark`: training, generation, input
pipeline, serving and attention, each printed as one JSON line."""

import json
import os
import resource
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf


def cpu_bf16_support(cpuinfo="/proc/cpuinfo"):
    """This CPU's native bfloat16 arithmetic: "amx" (AMX-BF16 tiles), "avx512_bf16"
    (the AVX-512 dot products), or "none" (TensorFlow then emulates bfloat16, which
    is slower than float32)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def matmul_peak_gflops(n=2048, reps=20, dtype=tf.float32):
    """This machine's matmul rate in `dtype`: the best of `reps` n x n x n products,
    GFLOP/s."""
    a = tf.cast(tf.random.normal([n, n]), dtype)
    b = tf.cast(tf.random.normal([n, n]), dtype)
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


def preset_for(preset, imsize):
    """`preset`, or with `imsize` its family's preset at that size."""
    from sagan_tf.models import PRESETS

    if imsize:
        preset = f"{preset.rsplit('_', 1)[0]}_{imsize}"
    if preset not in PRESETS:
        raise ValueError(f"--preset/--imsize give {preset!r}; use one of {sorted(PRESETS)}")
    return preset


def _build_gan(preset, precision, xla, no_attention=False, variant=None, ema_decay=0.0):
    from sagan_tf.config import TrainingConfig
    from sagan_tf.gan import SAGAN
    from sagan_tf.models import Discriminator, Generator
    from sagan_tf.training import optimizer

    keras.mixed_precision.set_global_policy(precision)
    overrides = dict(attention_resolutions=()) if no_attention else {}
    if variant:
        overrides["attention_variant"] = variant
    g, d = Generator.from_preset(preset, **overrides), Discriminator.from_preset(preset, **overrides)
    # The training defaults' optimizers (Adam with --adam_epsilon, the loss scale of
    # mixed_float16) and EMA.
    training = TrainingConfig(precision=precision, ema_decay=ema_decay)
    gan = SAGAN(g, d, ema=training.ema(g))
    gan.compile(optimizer(training.lr_g, training), optimizer(training.lr_d, training),
                jit_compile=xla)
    gan.build_optimizers()
    return gan


def _images_per_second(gans, batch, steps, steps_per_execution=1):
    """Training img/s of each GAN: the median over `steps` timed calls of the step
    function `python -m sagan_tf.train` runs (`loop.make_step_function`), after 3
    warm-up calls. With several GANs the calls alternate (one of each in turn), so a
    change in the machine's speed during the run (other tenants) hits all of them alike
    and their ratio stays meaningful."""
    k = steps_per_execution
    runs = [(_step_call(gan, batch, k), []) for gan in gans]
    for _ in range(3):
        for call, _ in runs:
            call()
    for _ in range(steps):
        for call, times in runs:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return [k * batch / float(np.median(times)) for _, times in runs]


def _step_call(gan, batch, steps_per_execution=1):
    """A function making one call of the step function `python -m sagan_tf.train` runs
    (`loop.make_step_function`) on a synthetic batch, and the metric reads the loop makes."""
    from sagan_tf import loop

    k = steps_per_execution
    size = gan.generator.image_size
    images = tf.random.uniform([batch, size, size, gan.discriminator.input_channels], -1, 1)
    ds = tf.data.Dataset.from_tensors((images, tf.zeros([batch], tf.int32))).repeat()
    step = loop.make_step_function(gan, tf.distribute.get_strategy(), k)
    args = (iter(ds),) if k == 1 else (iter(ds), tf.constant(k))
    return lambda: tf.nest.map_structure(lambda t: t.numpy(), step(*args))


# Op types that run other ops (their time is their body's, counted there).
_CONTAINERS = {"While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall",
               "StatefulPartitionedCall", "_XlaRun", "XlaLaunch"}
_LAYOUT = {"Transpose", "ConcatV2", "Pad", "Slice", "StridedSlice", "StridedSliceGrad", "Reshape",
           "Tile", "Pack", "Unpack", "Identity", "MklToTf", "ToTf", "Reorder",
           "TensorListStack", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem"}
OP_GROUPS = ("convolution", "matmul", "attention_matmul", "softmax", "batch_norm",
             "spectral_norm", "optimizer", "cast", "layout", "elementwise")


def op_group(event):
    """The group of a profiler event named `"scope/op_name:OpType"`, or None for events
    that are not one op's kernel (executor, function and control-flow events).

    Groups: convolution (forward and both gradients), matmul (dense and 1x1 layers),
    attention_matmul (batched products: only the attention blocks make them), softmax,
    batch_norm (ops under a `bn`/`batch_norm` scope), spectral_norm (the power iteration
    and `W / sigma`, under `SpectralNormalization`'s `spectral_norm` scope, and their
    gradients; not the layer's own product), optimizer (under
    an `adam`/`optimizer` scope), cast, layout (transposes, concatenation, oneDNN
    reorders), elementwise (the rest: activations, additions, reductions).
    """
    if ":" not in event or "::" in event or " " in event:
        return None
    name, op_type = event.rsplit(":", 1)
    for prefix in ("_MklNative", "_MklFused", "_Mkl", "_Fused"):
        if op_type.startswith(prefix):
            op_type = op_type[len(prefix):]
            break
    if not op_type or op_type in _CONTAINERS:
        return None
    scopes = [part.lower() for part in name.split("/")[:-1]]
    if op_type.startswith(("Conv", "DepthwiseConv")):
        return "convolution"
    if op_type == "Softmax":
        return "softmax"
    if op_type.startswith(("BatchMatMul", "Einsum")):
        return "attention_matmul"
    if any(s.startswith(("adam", "optimizer", "sgd")) for s in scopes):
        return "optimizer"
    if op_type.startswith("FusedBatchNorm") or any(
            s.startswith(("bn", "batch_norm", "batch_normalization", "cbn")) for s in scopes):
        return "batch_norm"
    if "spectral_norm" in scopes:
        return "spectral_norm"
    if op_type.startswith("MatMul"):
        return "matmul"
    if op_type == "Cast":
        return "cast"
    if op_type in _LAYOUT or op_type.endswith("Reorder"):
        return "layout"
    return "elementwise"


def op_times(logdir):
    """{event name: total seconds} of the op events in the newest profiler trace under
    `logdir` (the host CPU plane of its `.xplane.pb`)."""
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise ValueError(f"no profiler trace (*.xplane.pb) under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    times = {}
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                times[name] = times.get(name, 0.0) + event.duration_ps * 1e-12
    return times


def profile_groups(times, steps, top=8):
    """Milliseconds per step by op group, their shares, and the `top` slowest ops."""
    groups = dict.fromkeys(OP_GROUPS, 0.0)
    ops = {}
    for event, seconds in times.items():
        group = op_group(event)
        if group is not None:
            groups[group] += seconds
            ops[event] = seconds
    total = sum(groups.values())
    slowest = sorted(ops.items(), key=lambda item: -item[1])[:top]
    return dict(
        op_ms_per_step=round(1e3 * total / steps, 1),
        group_ms_per_step={g: round(1e3 * t / steps, 1) for g, t in groups.items()},
        group_share={g: round(t / total, 3) if total else 0.0 for g, t in groups.items()},
        top_ops=[[event, round(1e3 * t / steps, 1)] for event, t in slowest],
    )


def bench_profile(preset, batch, steps, xla, precision, variant=None, logdir=None):
    """Traces `steps` training steps with TF's profiler (after warm-up) and prints where
    the time goes, by op group. The trace stays in `logdir` when given (TensorBoard's
    Profile tab reads it)."""
    call = _step_call(_build_gan(preset, precision, xla, variant=variant), batch)
    for _ in range(3):
        call()
    with tempfile.TemporaryDirectory() as tmp:
        trace_dir = logdir or tmp
        tf.profiler.experimental.start(trace_dir)
        start = time.perf_counter()
        try:
            for _ in range(steps):
                call()
        finally:
            seconds = time.perf_counter() - start
            tf.profiler.experimental.stop()
        fields = profile_groups(op_times(trace_dir), steps)
    _emit(mode="profile", preset=preset, batch=batch, xla=xla, precision=precision,
          cpu_bf16=cpu_bf16_support(), wall_ms_per_step=round(1e3 * seconds / steps, 1),
          **fields)


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
        # The fraction is of the rate of the precision the step computes in: float32, or
        # bfloat16 (float16) under mixed precision.
        peak = matmul_peak_gflops()
        fields.update(gflop_per_img=round(gflops[0], 3), achieved_gflops=round(ips * gflops[0], 1),
                      matmul_peak_gflops=round(peak, 1), cpu_bf16=cpu_bf16_support())
        if precision == "float32":
            fields["peak_fraction"] = round(ips * gflops[0] / peak, 3)
        else:
            low = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float16
            low_peak = matmul_peak_gflops(dtype=low)
            fields.update({f"matmul_peak_gflops_{low.name}": round(low_peak, 1),
                           "peak_fraction": round(ips * gflops[0] / low_peak, 3)})
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


def bench_attention(imsize, batch, steps, channels, query_tile_size, precision="float32",
                    xla=False):
    from sagan_tf.layers import SelfAttention2D

    layer = SelfAttention2D("paper", use_spectral_norm=False, query_tile_size=query_tile_size,
                            dtype=precision)
    x = tf.random.normal([batch, imsize, imsize, channels])
    layer.build(x.shape)
    layer.gamma.assign(0.5)

    @tf.function(jit_compile=xla)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(tf.cast(layer(x, training=True), tf.float32)))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    step(x)
    start = time.perf_counter()
    for _ in range(steps):
        [g.numpy() for g in step(x)]
    n = imsize * imsize
    _emit(mode="attention", imsize=imsize, positions=n, channels=channels, batch=batch,
          precision=precision, xla=xla, query_tile_size=query_tile_size,
          tiled=n > query_tile_size, dense_map_gb=round(batch * n * n * 4 / 2**30, 2),
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
    from sagan_tf import serving
    from sagan_tf.models import Generator

    g = Generator.from_preset(preset)
    g.build()
    with tempfile.TemporaryDirectory() as root:
        loaded = tf.saved_model.load(serving.export_generator(g, root, "bench"))
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
