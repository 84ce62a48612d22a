"""Named presets: a model family (`sagan_tf.models.<family>`), an image size and
where attention goes, for the generator and the discriminator.

Families:
  - `dcgan`: the popular PyTorch SAGAN (heykeetae/Self-Attention-GAN); at 64 px it
    is that code's model exactly (ConvTranspose stack; attention at 16x16 and
    32x32 in G, 8x8 and 4x4 in D; spectral norm everywhere but G's last
    ConvT and D's last conv).
  - `resnet`: the official SAGAN code's residual model (BigGAN/SNGAN blocks),
    the official attention variant, spectral norm on every layer.
  - `heykeetae`: the `dcgan` model in the PyTorch code's every detail (64 px
    only, as that code: its 32 and 128 px settings do not build): spectral norm
    of a ConvTranspose by input channels as its `SpectralNorm`, PyTorch's
    default initializers, batch-norm momentum 0.1 in PyTorch's terms (0.9 in
    Keras's), plain attention convs with biases. `python -m sagan_tf.import_torch`
    reads its checkpoints into this preset.
  - `baseline`: a plain DCGAN with the same G/D stack as `dcgan`, no attention
    and no spectral norm (batch norm in D), for the seeds' comparison.
"""

IMAGE_SIZES = (16, 32, 64, 128)

# Model arguments of the heykeetae preset (besides its architecture and attention).
HEYKEETAE = dict(attention_spectral_norm=False, kernel_initializer="pytorch")
HEYKEETAE_G = dict(HEYKEETAE, sn_transpose_flatten="input", batch_norm_momentum=0.9)

PRESETS = {
    "dcgan_32": dict(architecture="dcgan", image_size=32,
                     g_attention=(8, 16), d_attention=(8, 4)),
    "dcgan_64": dict(architecture="dcgan", image_size=64,
                     g_attention=(16, 32), d_attention=(8, 4)),
    "dcgan_128": dict(architecture="dcgan", image_size=128,
                      g_attention=(32,), d_attention=(16,)),
    "heykeetae_64": dict(architecture="dcgan", image_size=64,
                         g_attention=(16, 32), d_attention=(8, 4),
                         g_options=HEYKEETAE_G, d_options=HEYKEETAE),
    "resnet_32": dict(architecture="resnet", image_size=32,
                      g_attention=(16,), d_attention=(16,)),
    "resnet_64": dict(architecture="resnet", image_size=64,
                      g_attention=(32,), d_attention=(32,)),
    "resnet_128": dict(architecture="resnet", image_size=128,
                       g_attention=(32,), d_attention=(32,)),
    "baseline_32": dict(architecture="baseline", image_size=32, g_attention=(), d_attention=()),
    "baseline_64": dict(architecture="baseline", image_size=64, g_attention=(), d_attention=()),
    "baseline_128": dict(architecture="baseline", image_size=128, g_attention=(), d_attention=()),
}


def preset_kwargs(preset):
    """Generator and discriminator keyword arguments of a named preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    common = dict(architecture=spec["architecture"], image_size=spec["image_size"])
    return (
        dict(common, attention_resolutions=spec["g_attention"], **spec.get("g_options", {})),
        dict(common, attention_resolutions=spec["d_attention"], **spec.get("d_options", {})),
    )
