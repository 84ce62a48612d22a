"""SAGAN discriminator, unconditional or with a projection head."""

import math

import keras
from keras import ops

from sagan_tf.layers import DBlock
from sagan_tf.layers.spectral_norm import SpectralNormalization
from sagan_tf.models import initializers
from sagan_tf.models import presets as P
from sagan_tf.models.base import AttentionStagesMixin


@keras.saving.register_keras_serializable(package="sagan_tf")
class Discriminator(AttentionStagesMixin, keras.Model):
    """SAGAN discriminator: images (and labels) to one logit per image.

    Architectures (see `sagan_tf.models.presets`):
      - `dcgan`: Conv 4/2 stack with LeakyReLU(0.1), no batch norm, then a 4x4
        valid conv to 1 (the popular PyTorch SAGAN's discriminator at 64 px).
      - `baseline`: the same stack with batch norm and LeakyReLU(0.2), no
        spectral norm, no attention (plain DCGAN).
      - `resnet`: optimized block, down-sampling residual blocks, ReLU, global
        sum pooling, spectral-normalized linear (the official code's model).

    Class-conditional models (`num_classes > 0`) add the projection term
    `sum(embed(y) * h)` on the pooled features h (Miyato & Koyama 2018).

    Args:
        architecture: `"dcgan"`, `"resnet"` or `"baseline"`.
        image_size: input height and width, one of 16, 32, 64, 128.
        base_channels: width multiplier (d_conv_dim / df_dim).
        attention_resolutions: feature-map sizes after which a
            `SelfAttention2D` is applied.
        attention_variant: `"paper"` or `"official"`; default per architecture.
        num_classes: 0 for unconditional, else the projection head.
        input_channels: 3 for RGB, 1 for grayscale.
        kernel_initializer: e.g. `"glorot_uniform"`, `"orthogonal"` or
            `"pytorch"` (PyTorch's layer defaults, kernels and biases).
        attention_spectral_norm: spectral-normalize the attention block's 1x1
            convs. Default: True for `resnet` (the official code), False for
            `dcgan` (the PyTorch code's `Self_Attn` uses plain convs).
        **kwargs: base model arguments.

    Call arguments:
        images: (B, S, S, input_channels) in [-1, 1].
        labels: int (B,), required when `num_classes > 0`.
        training: bool.
        return_attention: also return the list of attention maps.

    Reference:
        Zhang et al., arXiv:1805.08318; Miyato, Koyama, arXiv:1802.05637.
    """

    def __init__(
        self,
        architecture="dcgan",
        image_size=64,
        base_channels=64,
        attention_resolutions=(8, 4),
        attention_variant=None,
        num_classes=0,
        input_channels=3,
        kernel_initializer="glorot_uniform",
        attention_spectral_norm=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        P.check_choice("Discriminator", "architecture", architecture, P.ARCHITECTURES)
        P.check_choice("Discriminator", "image_size", image_size, P.IMAGE_SIZES)
        P.check_choice("Discriminator", "input_channels", input_channels, (1, 3))
        self.architecture = architecture
        self.image_size = int(image_size)
        self.base_channels = int(base_channels)
        self.attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.attention_variant = attention_variant or P.DEFAULT_VARIANT[architecture]
        self.num_classes = int(num_classes)
        self.input_channels = int(input_channels)
        self.kernel_initializer = kernel_initializer
        sn = architecture != "baseline"
        if attention_spectral_norm is None:
            attention_spectral_norm = architecture == "resnet"
        self.attention_spectral_norm = bool(attention_spectral_norm)
        init = initializers.get(kernel_initializer)

        def wrap(layer):
            return SpectralNormalization(layer, name=f"sn_{layer.name}") if sn else layer

        self.stages = []  # [(layer, batch_norm or None, attention or None)]
        if architecture == "resnet":
            spec = P.RESNET_D[self.image_size]
            res = self.image_size
            resolutions = []
            for i, (mult, down) in enumerate(spec):
                res = res // 2 if down else res
                resolutions.append(res)
            for r in self.attention_resolutions:
                P.check_choice("Discriminator", "attention_resolutions", r, resolutions)
            for i, ((mult, down), res) in enumerate(zip(spec, resolutions)):
                block = DBlock(mult * self.base_channels, downsample=down, optimized=i == 0,
                               use_spectral_norm=sn, kernel_initializer=init, name=f"block{i}")
                self.stages.append((block, None, self._attention(res, init)))
            self.feature_channels = spec[-1][0] * self.base_channels
            self.head = wrap(keras.layers.Dense(1, kernel_initializer=init, name="head"))
        else:
            n = int(math.log2(self.image_size)) - 2
            resolutions = [self.image_size // 2 ** (i + 1) for i in range(n)]
            for r in self.attention_resolutions:
                P.check_choice("Discriminator", "attention_resolutions", r, resolutions)
            for i, res in enumerate(resolutions):
                conv = keras.layers.Conv2D(self.base_channels * 2**i, 4, strides=2,
                                           padding="same", kernel_initializer=init,
                                           name=f"conv{i}")
                bn = None
                if architecture == "baseline" and i > 0:
                    bn = keras.layers.BatchNormalization(synchronized=True, name=f"bn{i}")
                self.stages.append((wrap(conv), bn, self._attention(res, init)))
            self.feature_channels = self.base_channels * 2 ** (n - 1)
            self.leak = 0.2 if architecture == "baseline" else 0.1
            # The last conv is not spectral-normalized, as in the PyTorch code.
            self.head = keras.layers.Conv2D(1, 4, padding="valid", kernel_initializer=init,
                                            name="head")
        if self.num_classes:
            self.embedding = wrap(keras.layers.Embedding(
                self.num_classes, self.feature_channels, embeddings_initializer=init,
                name="class_embedding"))

    def build(self, input_shape=None):
        labels = ops.zeros((1,), "int32") if self.num_classes else None
        images = ops.zeros((1, self.image_size, self.image_size, self.input_channels))
        self.call(images, labels, training=False)
        if self.kernel_initializer == initializers.PYTORCH:
            initializers.reset_pytorch_biases(self)

    def call(self, images, labels=None, training=None, return_attention=False):
        expected = (self.image_size, self.image_size, self.input_channels)
        if len(images.shape) != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"Discriminator: argument `images` must have shape "
                             f"(batch, {', '.join(map(str, expected))}); "
                             f"received {tuple(images.shape)}.")
        if self.num_classes and labels is None:
            raise ValueError(f"Discriminator: argument `labels` is required (num_classes="
                             f"{self.num_classes}).")
        maps = []
        x = images
        for layer, bn, attention in self.stages:
            if self.architecture == "resnet":
                x = layer(x, training=training)  # (B, H/2, W/2, C')
            else:
                x = layer(x, training=training)  # (B, H/2, W/2, C')
                if bn is not None:
                    x = bn(x, training=training)
                x = ops.leaky_relu(x, self.leak)
            if attention is not None:
                if return_attention:
                    x, attention_map = attention(x, training=training, return_attention=True)
                    maps.append(attention_map)
                else:
                    x = attention(x, training=training)
        if self.architecture == "resnet":
            x = ops.relu(x)
            features = ops.sum(x, axis=(1, 2))  # (B, C)
            logits = self.head(features, training=training)[:, 0]  # (B,)
        else:
            features = ops.sum(x, axis=(1, 2))  # (B, C)
            logits = ops.reshape(self.head(x), (-1,))  # (B,)
        if self.num_classes:
            embedded = self.embedding(labels, training=training)  # (B, C)
            logits = logits + ops.sum(ops.cast(embedded, features.dtype) * features, axis=-1)
        logits = ops.cast(logits, "float32")
        return (logits, maps) if return_attention else logits

    def get_config(self):
        return {
            "name": self.name,
            "architecture": self.architecture,
            "image_size": self.image_size,
            "base_channels": self.base_channels,
            "attention_resolutions": list(self.attention_resolutions),
            "attention_variant": self.attention_variant,
            "num_classes": self.num_classes,
            "input_channels": self.input_channels,
            "kernel_initializer": self.kernel_initializer,
            "attention_spectral_norm": self.attention_spectral_norm,
        }

    @classmethod
    def from_preset(cls, preset, **overrides):
        _, d_kwargs = P.preset_kwargs(preset)
        d_kwargs.update(overrides)
        return cls(**d_kwargs)
