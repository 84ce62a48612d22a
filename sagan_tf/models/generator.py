"""SAGAN generator."""

import math

import keras
from keras import ops

from sagan_tf.layers import ConditionalBatchNormalization, GBlock
from sagan_tf.layers.residual_blocks import sn_conv
from sagan_tf.layers.spectral_norm import SpectralNormalization
from sagan_tf.models import initializers
from sagan_tf.models import presets as P
from sagan_tf.models.base import AttentionStagesMixin


@keras.saving.register_keras_serializable(package="sagan_tf")
class Generator(AttentionStagesMixin, keras.Model):
    """SAGAN generator: z (and a class label) to images in [-1, 1], NHWC float32.

    Architectures (see `sagan_tf.models.presets`):
      - `dcgan` / `baseline`: z as 1x1 -> ConvT 4x4 valid -> ConvT 4/2 stack
        (BN or class-conditional BN, ReLU) -> ConvT to `output_channels` -> tanh.
        At 64 px with base 64 it is the popular PyTorch SAGAN's generator.
      - `resnet`: z -> linear to 4x4 -> up-sampling residual blocks -> BN, ReLU,
        conv3x3 -> tanh (the official code's model).

    Args:
        architecture: `"dcgan"`, `"resnet"` or `"baseline"`.
        image_size: output height and width, one of 16, 32, 64, 128.
        z_dim: latent size.
        base_channels: width multiplier (g_conv_dim / gf_dim).
        attention_resolutions: feature-map sizes after which a
            `SelfAttention2D` is applied.
        attention_variant: `"paper"` or `"official"`; default per architecture.
        num_classes: 0 for unconditional, else conditional batch norm.
        output_channels: 3 for RGB, 1 for grayscale.
        kernel_initializer: e.g. `"glorot_uniform"`, `"orthogonal"`, or
            `"pytorch"` (PyTorch's layer defaults for kernels and biases, see
            `sagan_tf.models.initializers`).
        attention_spectral_norm: spectral-normalize the attention block's 1x1
            convs. Default: True for `resnet` (the official code), False for
            `dcgan` (the PyTorch code's `Self_Attn` uses plain convs).
        label_embedding_dim: for conditional models, also feed a learned class
            embedding of this size beside z into the first layer (BigGAN's
            shared embedding, concatenated); 0 conditions through the batch
            norms alone (the official SAGAN code).
        sn_transpose_flatten: `"output"` or `"input"`: how the spectral norm of
            a `dcgan` ConvTranspose flattens its kernel (`"input"`: heykeetae's
            PyTorch `SpectralNorm`; see `SpectralNormalization`).
        batch_norm_momentum: moving-average momentum of the batch norms, in
            Keras's terms (PyTorch's momentum m is 1 - m here: heykeetae 0.9;
            the official code's conditional batch norms 0.999).
        final_batch_norm_momentum: `resnet`: momentum of the batch norm before
            the output conv (the official code's `g_bn`: 0.9999); None: the same
            as `batch_norm_momentum`.
        **kwargs: base model arguments.

    Call arguments:
        z: (B, z_dim) float.
        labels: int (B,), required when `num_classes > 0`.
        training: bool.
        return_attention: also return a list of attention maps (B, N, N_key),
            one per attention layer, in order.

    Reference:
        Zhang, Goodfellow, Metaxas, Odena, arXiv:1805.08318.
    """

    def __init__(
        self,
        architecture="dcgan",
        image_size=64,
        z_dim=128,
        base_channels=64,
        attention_resolutions=(16, 32),
        attention_variant=None,
        num_classes=0,
        output_channels=3,
        kernel_initializer="glorot_uniform",
        attention_spectral_norm=None,
        label_embedding_dim=0,
        sn_transpose_flatten="output",
        batch_norm_momentum=0.99,
        final_batch_norm_momentum=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        P.check_choice("Generator", "architecture", architecture, P.ARCHITECTURES)
        P.check_choice("Generator", "image_size", image_size, P.IMAGE_SIZES)
        P.check_choice("Generator", "output_channels", output_channels, (1, 3))
        self.architecture = architecture
        self.image_size = int(image_size)
        self.z_dim = int(z_dim)
        self.base_channels = int(base_channels)
        self.attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.attention_variant = attention_variant or P.DEFAULT_VARIANT[architecture]
        self.num_classes = int(num_classes)
        self.output_channels = int(output_channels)
        self.kernel_initializer = kernel_initializer
        self.sn_transpose_flatten = sn_transpose_flatten
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.final_batch_norm_momentum = (None if final_batch_norm_momentum is None
                                          else float(final_batch_norm_momentum))
        for name in ("batch_norm_momentum", "final_batch_norm_momentum"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"Generator: argument `{name}` must be in [0, 1); "
                                 f"received {value}.")
        sn = architecture != "baseline"
        if attention_spectral_norm is None:
            attention_spectral_norm = architecture == "resnet"
        self.attention_spectral_norm = bool(attention_spectral_norm)
        self.label_embedding_dim = int(label_embedding_dim) if self.num_classes else 0
        if self.label_embedding_dim < 0:
            raise ValueError("Generator: argument `label_embedding_dim` must be >= 0; "
                             f"received {label_embedding_dim}.")
        if self.label_embedding_dim:
            self.label_embedding = keras.layers.Embedding(
                self.num_classes, self.label_embedding_dim, name="label_embedding")
        init = initializers.get(kernel_initializer)

        if architecture == "resnet":
            in_mult, mults = P.RESNET_G[self.image_size]
            resolutions = [8 * 2**i for i in range(len(mults))]
        else:
            n = int(math.log2(self.image_size)) - 3
            mults = [2 ** (n - i) for i in range(n + 1)]
            resolutions = [4 * 2**i for i in range(n + 1)]
        for r in self.attention_resolutions:
            P.check_choice("Generator", "attention_resolutions", r, resolutions)

        def wrap(layer):
            if not sn:
                return layer
            flatten = (sn_transpose_flatten if isinstance(layer, keras.layers.Conv2DTranspose)
                       else "output")
            return SpectralNormalization(layer, transpose_flatten=flatten, name=f"sn_{layer.name}")

        self.stages = []  # [(block, batch_norm or None, attention or None)]
        if architecture == "resnet":
            self.stem_channels = in_mult * self.base_channels
            self.stem = wrap(keras.layers.Dense(4 * 4 * self.stem_channels,
                                                kernel_initializer=init, name="stem"))
            for i, (mult, res) in enumerate(zip(mults, resolutions)):
                block = GBlock(mult * self.base_channels, num_classes=self.num_classes,
                               use_spectral_norm=sn, kernel_initializer=init,
                               batch_norm_momentum=self.batch_norm_momentum, name=f"block{i}")
                self.stages.append((block, None, self._attention(res, init)))
            self.final_bn = ConditionalBatchNormalization(
                0, momentum=(self.batch_norm_momentum if self.final_batch_norm_momentum is None
                             else self.final_batch_norm_momentum), name="final_bn")
            self.to_rgb = sn_conv(self.output_channels, 3, "to_rgb", sn,
                                  kernel_initializer=init)
        else:
            for i, (mult, res) in enumerate(zip(mults, resolutions)):
                conv = keras.layers.Conv2DTranspose(
                    mult * self.base_channels, 4, strides=1 if i == 0 else 2,
                    padding="valid" if i == 0 else "same", kernel_initializer=init,
                    name=f"conv{i}")
                bn = ConditionalBatchNormalization(self.num_classes,
                                                   momentum=self.batch_norm_momentum,
                                                   name=f"bn{i}")
                self.stages.append((wrap(conv), bn, self._attention(res, init)))
            # The last ConvT is not spectral-normalized, as in the PyTorch code.
            self.to_rgb = keras.layers.Conv2DTranspose(
                self.output_channels, 4, strides=2, padding="same",
                kernel_initializer=init, name="to_rgb")

    def build(self, input_shape=None):
        labels = ops.zeros((1,), "int32") if self.num_classes else None
        self.call(ops.zeros((1, self.z_dim)), labels, training=False)
        if self.kernel_initializer == initializers.PYTORCH:
            initializers.reset_pytorch_biases(self)

    def call(self, z, labels=None, training=None, return_attention=False):
        if len(z.shape) != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"Generator: argument `z` must have shape (batch, {self.z_dim}); "
                             f"received {tuple(z.shape)}.")
        if self.num_classes and labels is None:
            raise ValueError(f"Generator: argument `labels` is required (num_classes="
                             f"{self.num_classes}).")
        maps = []
        if self.label_embedding_dim:
            z = ops.concatenate(  # (B, z_dim + label_embedding_dim)
                [z, ops.cast(self.label_embedding(labels), z.dtype)], axis=-1)
        if self.architecture == "resnet":
            x = self.stem(z, training=training)
            x = ops.reshape(x, (-1, 4, 4, self.stem_channels))  # (B, 4, 4, C)
            for block, _, attention in self.stages:
                x = block(x, labels, training=training)  # (B, 2H, 2W, C')
                x = self._attend(attention, x, training, return_attention, maps)
            x = ops.relu(self.final_bn(x, training=training))
            x = self.to_rgb(x, training=training)
        else:
            x = ops.reshape(z, (-1, 1, 1, z.shape[-1]))  # (B, 1, 1, z_dim [+ embedding])
            for conv, bn, attention in self.stages:
                x = conv(x, training=training)  # (B, 2H, 2W, C')
                x = ops.relu(bn(x, labels, training=training))
                x = self._attend(attention, x, training, return_attention, maps)
            x = self.to_rgb(x)  # (B, S, S, output_channels)
        images = ops.cast(ops.tanh(ops.cast(x, "float32")), "float32")
        return (images, maps) if return_attention else images

    @staticmethod
    def _attend(attention, x, training, return_attention, maps):
        if attention is None:
            return x
        if return_attention:
            x, attention_map = attention(x, training=training, return_attention=True)
            maps.append(attention_map)
            return x
        return attention(x, training=training)

    def get_config(self):
        return {
            "name": self.name,
            "architecture": self.architecture,
            "image_size": self.image_size,
            "z_dim": self.z_dim,
            "base_channels": self.base_channels,
            "attention_resolutions": list(self.attention_resolutions),
            "attention_variant": self.attention_variant,
            "num_classes": self.num_classes,
            "output_channels": self.output_channels,
            "kernel_initializer": self.kernel_initializer,
            "attention_spectral_norm": self.attention_spectral_norm,
            "label_embedding_dim": self.label_embedding_dim,
            "sn_transpose_flatten": self.sn_transpose_flatten,
            "batch_norm_momentum": self.batch_norm_momentum,
            "final_batch_norm_momentum": self.final_batch_norm_momentum,
        }

    @classmethod
    def from_preset(cls, preset, **overrides):
        g_kwargs, _ = P.preset_kwargs(preset)
        g_kwargs.update(overrides)
        return cls(**g_kwargs)
