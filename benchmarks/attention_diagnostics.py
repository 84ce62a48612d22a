"""How much a trained run uses its attention layers.

    python -m benchmarks.attention_diagnostics --workdir=runs/mnist5k_32

Prints, as JSON lines:
  - `gamma`: every attention layer's gamma at each logged step (TensorBoard
    scalars `gamma/*`), so a layer whose output scale stays near 0 shows up;
  - `attention`: for the run's latest checkpoint, per layer, the mean entropy of
    the attention rows as a share of the uniform entropy log(N_key) (1: looks
    everywhere alike, 0: one key), the mean largest weight as a multiple of
    uniform, and the size of the attention branch against the input,
    |gamma * o| / |x| (G's layers on generated images, D's on real ones);
  - `gradients`: the norm of the D-loss gradient of each D layer's kernels and
    of the G-loss gradient of each G layer's kernels, on one batch.
"""

import argparse
import glob
import json
import os

import numpy as np
import tensorflow as tf

from sagan_tf import checkpoints, data, training
from sagan_tf import config as config_lib


def gamma_history(workdir):
    history = {}
    for path in sorted(glob.glob(os.path.join(workdir, "logs", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("gamma/"):
                    number = (value.simple_value if value.HasField("simple_value")
                              else float(tf.make_ndarray(value.tensor)))
                    history.setdefault(value.tag[len("gamma/"):], []).append(
                        (event.step, round(number, 4)))
    return history


def _map_statistics(layer, x, attention):
    """Entropy share, peak over uniform and branch size of one layer's maps."""
    a = np.asarray(attention, np.float64)  # (B, N, N_key)
    n_key = a.shape[-1]
    entropy = -(a * np.log(np.clip(a, 1e-30, None))).sum(-1).mean() / np.log(n_key)
    y = np.asarray(layer(x, training=False))
    branch = np.linalg.norm(y - np.asarray(x)) / max(np.linalg.norm(np.asarray(x)), 1e-12)
    return {"layer": layer.name, "n_key": int(n_key), "entropy_share": round(float(entropy), 3),
            "peak_over_uniform": round(float(a.max(-1).mean() * n_key), 2),
            "gamma": round(float(np.asarray(layer.gamma)), 4),
            "branch_over_input": round(float(branch), 4)}


def _inputs_of(model, x, labels, layers):
    """The input of each attention layer of `model` (a Generator or Discriminator)."""
    captured = {}
    for layer in layers:
        original = layer.call

        def spy(inputs, *args, _layer=layer, _original=original, **kwargs):
            captured[_layer.name] = inputs
            return _original(inputs, *args, **kwargs)

        layer.call = spy
    try:
        model(x, labels, training=False, return_attention=True)
    finally:
        for layer in layers:
            del layer.call
    return captured


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--num", type=int, default=128)
    args = parser.parse_args()

    print(json.dumps({"gamma": gamma_history(args.workdir)}))
    saved = checkpoints.read_config(os.path.join(args.workdir, "config.json"))
    options = {field.name for _, field in config_lib.option_fields()}
    flags = {k: v for k, v in saved["flags"].items() if k in options}
    for key in ("g_attention", "d_attention"):
        if flags.get(key) is not None:
            flags[key] = tuple(flags[key])
    config = config_lib.TrainConfig.from_flat(**dict(flags, export=False))
    num_classes = saved["architecture"]["generator"]["num_classes"]
    gan = training.build_gan(config, num_classes)
    latest = checkpoints.latest_usable(os.path.join(args.workdir, "checkpoints"), repair=False)
    checkpoints.restore(lambda layout: checkpoints.checkpoint_objects(gan, layout), latest,
                        "this model")

    images, labels = next(iter(data.input_fn(config.data_spec("train"), args.num)))
    labels = labels if num_classes else None
    z = tf.random.stateless_normal([args.num, config.model.z_dim], seed=[0, 1])
    fake = gan.sampler(z, labels, training=False)
    rows = []
    for name, model, x in (("G", gan.sampler, z), ("D", gan.discriminator, images)):
        layers = model.attention_layers
        inputs = _inputs_of(model, x, labels, layers)
        _, maps = model(x, labels, training=False, return_attention=True)
        for layer, amap in zip(layers, maps):
            rows.append(dict(net=name, **_map_statistics(layer, inputs[layer.name], amap)))
    print(json.dumps({"attention": rows, "checkpoint": latest}))

    with tf.GradientTape(persistent=True) as tape:
        fake = gan.generator(z, labels, training=True)
        real_logits = gan.discriminator(images, labels, training=True)
        fake_logits = gan.discriminator(fake, labels, training=True)
        d_loss = tf.reduce_mean(gan.loss.d(real_logits, fake_logits))
        g_loss = tf.reduce_mean(gan.loss.g(fake_logits))
    norms = {}
    for net, loss in (("D", d_loss), ("G", g_loss)):
        model = gan.discriminator if net == "D" else gan.generator
        variables = [v for v in model.trainable_variables if "kernel" in v.path
                     or v.path.endswith("gamma")]
        for var, grad in zip(variables, tape.gradient(loss, variables)):
            if grad is not None:
                norms[f"{net}:{var.path}"] = round(float(tf.norm(grad)), 5)
    print(json.dumps({"gradients": norms}))


if __name__ == "__main__":
    main()
