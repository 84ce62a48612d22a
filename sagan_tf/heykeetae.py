"""heykeetae/Self-Attention-GAN (the popular PyTorch SAGAN) checkpoints in sagan_tf.

`read_state_dict` reads the `{step}_G.pth` / `{step}_D.pth` files that its
trainer writes (`torch.save(model.state_dict())`, with or without the `module.`
prefix of `--parallel`); `load` builds the `heykeetae_64` preset and copies
every tensor across (NCHW kernels to Keras layouts), running each spectral
norm's power iteration from the stored `u` to its fixed point; `write_workdir`
writes a training workdir that `sagan-train --preset=heykeetae_64` resumes.
`sagan-import-torch` (`sagan_tf.import_torch`) is the command over this module.

torch is needed here only (`pip install "sagan-tf[torch]"`).
"""

import os
import re

import numpy as np

from sagan_tf.cli import one_line
from sagan_tf.errors import UserError

PRESET = "heykeetae_64"
IMAGE_SIZE = 64


class TorchImportError(UserError, ValueError):
    """A checkpoint that is not what the import expects (one line)."""


# ---------------------------------------------------------------------- reading
def read_state_dict(path):
    """The tensors of a `torch.save(state_dict)` file as NumPy arrays, with the
    `module.` prefix of `nn.DataParallel` removed."""
    try:
        import torch
    except ModuleNotFoundError:
        raise TorchImportError("reading .pth files needs PyTorch, which is not installed: "
                           'pip install "sagan-tf[torch]"') from None
    if not os.path.isfile(path):
        raise TorchImportError(f"{path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise TorchImportError(f"{path} is not a readable PyTorch file ({type(e).__name__}: "
                           f"{one_line(e)[:100]})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise TorchImportError(f"{path} does not hold a state_dict (a dict of tensors); save "
                           "with torch.save(model.state_dict(), path)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


# ---------------------------------------------------------------------- layouts
def _torch_kernel(kernel):
    """Keras conv kernel (kh, kw, a, b) -> the PyTorch weight (b, a, kh, kw):
    Conv2d (out, in, kh, kw) from (kh, kw, in, out); ConvTranspose2d
    (in, out, kh, kw) from (kh, kw, out, in)."""
    return tuple(kernel.shape[i] for i in (3, 2, 0, 1))


def _to_keras(weight):
    return np.transpose(weight, (2, 3, 1, 0))  # (b, a, kh, kw) -> (kh, kw, a, b)


def _sn_entries(prefix, sn):
    """Keys of one of heykeetae's `SpectralNorm`-wrapped layers: raw weight, u, v, bias."""
    layer = sn.layer
    kernel_shape = _torch_kernel(layer.kernel)
    rows = kernel_shape[0]
    cols = int(np.prod(kernel_shape[1:]))
    return [
        (f"{prefix}.module.weight_bar", kernel_shape, ("kernel", sn)),
        (f"{prefix}.module.weight_u", (rows,), ("u", sn)),
        (f"{prefix}.module.weight_v", (cols,), None),  # recomputed from u
        (f"{prefix}.module.bias", tuple(layer.bias.shape), ("bias", layer)),
    ]


def _attention_entries(prefix, attention):
    entries = []
    for name, conv in (("query_conv", attention.query_conv), ("key_conv", attention.key_conv),
                       ("value_conv", attention.value_conv)):
        entries.append((f"{prefix}.{name}.weight", _torch_kernel(conv.kernel), ("kernel", conv)))
        entries.append((f"{prefix}.{name}.bias", tuple(conv.bias.shape), ("bias", conv)))
    entries.append((f"{prefix}.gamma", (1,), ("gamma", attention)))
    return entries


def _plain_entries(prefix, layer):
    return [(f"{prefix}.weight", _torch_kernel(layer.kernel), ("kernel", layer)),
            (f"{prefix}.bias", tuple(layer.bias.shape), ("bias", layer))]


def _batch_norm_entries(prefix, norm):
    channels = (int(norm.gamma.shape[0]),)
    return [(f"{prefix}.weight", channels, ("gamma", norm)),
            (f"{prefix}.bias", channels, ("beta", norm)),
            (f"{prefix}.running_mean", channels, ("moving_mean", norm)),
            (f"{prefix}.running_var", channels, ("moving_variance", norm)),
            (f"{prefix}.num_batches_tracked", (), None)]


def _model_entries(net, last):
    """heykeetae's layout: `l{i}` = SN conv (+ BatchNorm in G) per stage, `last`, then
    `attn1`, `attn2` in forward order."""
    entries, attentions = [], []
    for i, (conv, bn, attention) in enumerate(net.stages):
        entries += _sn_entries(f"l{i + 1}.0", conv)
        if bn is not None:
            entries += _batch_norm_entries(f"l{i + 1}.1", bn.batch_norm)
        if attention is not None:
            attentions.append(attention)
    entries += _plain_entries("last.0", last)
    for j, attention in enumerate(attentions):
        entries += _attention_entries(f"attn{j + 1}", attention)
    return entries


def generator_entries(generator):
    """[(key, PyTorch shape, target or None)] of heykeetae's 64 px Generator (52 keys)
    for a built `heykeetae_64` generator."""
    return _model_entries(generator, generator.to_rgb)


def discriminator_entries(discriminator):
    """Like `generator_entries`, for heykeetae's 64 px Discriminator (32 keys)."""
    return _model_entries(discriminator, discriminator.head)


OPTIONAL_KEYS = re.compile(r".*\.num_batches_tracked$")  # absent in PyTorch < 0.4.1 files


def check_keys(state, entries, what, path):
    """Raises TorchImportError naming the first missing, unexpected or misshapen key."""
    expected = {key: shape for key, shape, _ in entries}
    for key, shape, _ in entries:
        if key not in state:
            if OPTIONAL_KEYS.match(key):
                continue
            raise TorchImportError(f"{path} is not a heykeetae {what} state_dict: key {key!r} "
                               f"(shape {list(shape)}) is missing")
        if tuple(state[key].shape) != tuple(shape):
            raise TorchImportError(f"{path}: {key!r} has shape {list(state[key].shape)}, expected "
                               f"{list(shape)} for this {what}")
    for key in state:
        if key not in expected:
            raise TorchImportError(f"{path} is not a heykeetae {what} state_dict: unexpected key "
                               f"{key!r} (shape {list(state[key].shape)})")


# ---------------------------------------------------------------------- copying
def _l2_normalize(x, eps=1e-12):
    return x / (np.linalg.norm(x) + eps)


def converge_u(weight, u, iterations, tol=1e-9):
    """heykeetae's power iteration on its matrix `weight.view(rows, -1)`, from
    its stored `u` to the fixed point. Returns (u, sigma, sigma of heykeetae's
    next forward call)."""
    w = weight.reshape(weight.shape[0], -1).astype(np.float64)
    u = _l2_normalize(u.astype(np.float64))
    next_sigma = None
    sigma = 0.0
    for i in range(max(int(iterations), 1)):
        v = _l2_normalize(w.T @ u)
        u = _l2_normalize(w @ v)
        new_sigma = float(u @ w @ v)
        if i == 0:
            next_sigma = new_sigma
        if abs(new_sigma - sigma) <= tol * abs(new_sigma):
            sigma = new_sigma
            break
        sigma = new_sigma
    return u, sigma, next_sigma


def copy_weights(state, entries, power_iterations):
    """Assigns the state_dict's tensors to their Keras variables; returns the
    largest relative sigma change of the power-iteration convergence."""
    by_layer = {}
    for key, _, target in entries:
        if target is not None and key in state:
            by_layer.setdefault(id(target[1]), {})[target[0]] = state[key]
    worst = 0.0
    for key, _, target in entries:
        if target is None or key not in state:
            continue
        attribute, layer = target
        value = state[key]
        if attribute == "kernel":
            variable = layer.layer.kernel if hasattr(layer, "raw_kernel") else layer.kernel
            variable.assign(_to_keras(value).astype(np.float32))
        elif attribute == "u":
            weight = by_layer[id(layer)]["kernel"]
            u, sigma, next_sigma = converge_u(weight, value, power_iterations)
            worst = max(worst, abs(sigma - next_sigma) / max(abs(sigma), 1e-30))
            layer.u.assign(u.astype(np.float32))
        elif attribute == "gamma" and hasattr(layer, "query_conv"):
            layer.gamma.assign(np.float32(value.reshape(())))
        else:
            getattr(layer, attribute).assign(value.astype(np.float32))
    return worst


# ---------------------------------------------------------------------- models
def infer_sizes(g_state, path):
    """(z_dim, conv_dim) of a heykeetae generator state_dict."""
    for key in ("l1.0.module.weight_bar", "last.0.weight"):
        if key not in g_state:
            raise TorchImportError(f"{path} is not a heykeetae generator state_dict: key {key!r} "
                               "is missing")
    z_dim = g_state["l1.0.module.weight_bar"].shape[0]
    conv_dim = g_state["last.0.weight"].shape[0]
    return int(z_dim), int(conv_dim)


def build_generator(z_dim, conv_dim):
    from sagan_tf.models import Generator

    generator = Generator.from_preset(PRESET, z_dim=z_dim, base_channels=conv_dim,
                                      name="generator")
    generator.build()
    return generator


def build_discriminator(conv_dim):
    from sagan_tf.models import Discriminator

    discriminator = Discriminator.from_preset(PRESET, base_channels=conv_dim,
                                              name="discriminator")
    discriminator.build()
    return discriminator


def load(generator_path, discriminator_path=None, z_dim=None, imsize=IMAGE_SIZE,
         power_iterations=1000):
    """(generator, discriminator or None, info) with heykeetae's weights.
    `info` holds the sizes, the source files and the sigma convergence."""
    if imsize != IMAGE_SIZE:
        raise TorchImportError(f"--imsize={imsize}: heykeetae's models build at 64 px only (its "
                           "forward calls l4, which exists only at --imsize 64)")
    g_state = read_state_dict(generator_path)
    found_z, conv_dim = infer_sizes(g_state, generator_path)
    if z_dim is not None and z_dim != found_z:
        raise TorchImportError(f"--z_dim={z_dim} but {generator_path} has z_dim {found_z} "
                           "(l1.0.module.weight_bar)")
    generator = build_generator(found_z, conv_dim)
    g_entries = generator_entries(generator)
    check_keys(g_state, g_entries, "generator", generator_path)
    d_state = d_entries = discriminator = None
    if discriminator_path:
        d_state = read_state_dict(discriminator_path)
        d_conv = d_state.get("l1.0.module.weight_bar")
        d_conv_dim = conv_dim if d_conv is None else int(d_conv.shape[0])
        discriminator = build_discriminator(d_conv_dim)
        d_entries = discriminator_entries(discriminator)
        check_keys(d_state, d_entries, "discriminator", discriminator_path)
    info = {"z_dim": found_z, "conv_dim": conv_dim, "generator_file": os.path.abspath(
        generator_path), "sigma_change": copy_weights(g_state, g_entries, power_iterations)}
    if discriminator is not None:
        info["discriminator_file"] = os.path.abspath(discriminator_path)
        info["sigma_change"] = max(info["sigma_change"],
                                   copy_weights(d_state, d_entries, power_iterations))
    match = re.match(r"(\d+)_G\.pth$", os.path.basename(generator_path))
    info["heykeetae_step"] = int(match.group(1)) if match else None
    return generator, discriminator, info


def write_workdir(workdir, generator, discriminator, info, dataset="celeb_a"):
    """A workdir whose checkpoint (step 0, fresh Adam moments: heykeetae's files hold
    no optimizer state) `train --preset=heykeetae_64 --workdir=...` resumes from."""
    import tensorflow as tf

    from sagan_tf import checkpoints, files, training
    from sagan_tf.config import TrainConfig

    config = TrainConfig.from_flat(dataset=dataset, workdir=workdir, preset=PRESET,
                                   z_dim=info["z_dim"], base_channels=info["conv_dim"],
                                   export=False)
    gan = training.build_gan(config, num_classes=0)
    for target, source in ((gan.generator, generator), (gan.discriminator, discriminator)):
        for t, s in zip(target.weights, source.weights):
            t.assign(s)
    architecture = checkpoints.architecture(gan)
    checkpoints.check_workdir(workdir, architecture)
    if checkpoints.checkpoint_steps(os.path.join(workdir, "checkpoints")):
        raise TorchImportError(f"{workdir} already holds checkpoints; import into a new --workdir")
    manager = tf.train.CheckpointManager(checkpoints.make_checkpoint(gan),
                                         os.path.join(workdir, "checkpoints"), max_to_keep=1)
    path = manager.save(checkpoint_number=0)
    files.write_json(os.path.join(workdir, "config.json"),
                        {"architecture": architecture, "imported_from": info})
    return path
