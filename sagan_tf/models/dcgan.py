"""The `dcgan` family: the popular PyTorch SAGAN (heykeetae/Self-Attention-GAN).

At 64 px with base 64 it is that code's model exactly: a ConvTranspose stack in
G, a strided-conv stack in D, attention at 16x16 and 32x32 in G and 8x8 and 4x4
in D, spectral norm everywhere but G's last ConvT and D's last conv.
"""

import math

import keras
from keras import ops

from sagan_tf.layers import ConditionalBatchNormalization
from sagan_tf.models.base import Discriminator, Generator, check_choice


@keras.saving.register_keras_serializable(package="sagan_tf")
class DCGANGenerator(Generator):
    """`dcgan` generator: z as 1x1 -> ConvT 4x4 valid -> ConvT 4/2 stack (BN or
    class-conditional BN, ReLU) -> ConvT to `output_channels` -> tanh.

    Args:
        sn_transpose_flatten: `"output"` or `"input"`: how the spectral norm of
            a ConvTranspose flattens its kernel (`"input"`: heykeetae's PyTorch
            `SpectralNorm`; see `SpectralNormalization`).
        **kwargs: the `Generator` arguments.

    Example:
        >>> g = DCGANGenerator(image_size=32, z_dim=16, base_channels=8,
        ...                    attention_resolutions=(16,))
        >>> g(keras.random.normal((2, 16))).shape
        TensorShape([2, 32, 32, 3])
    """

    architecture = "dcgan"
    own_arguments = ("sn_transpose_flatten",)

    def __init__(self, image_size=64, sn_transpose_flatten="output", **kwargs):
        super().__init__(image_size, **kwargs)
        check_choice(type(self).__name__, "sn_transpose_flatten", sn_transpose_flatten,
                     ("output", "input"))
        self.sn_transpose_flatten = sn_transpose_flatten
        n = int(math.log2(self.image_size)) - 3
        mults = [2 ** (n - i) for i in range(n + 1)]
        resolutions = [4 * 2**i for i in range(n + 1)]
        self._check_attention(resolutions)
        self.stages = []  # [(ConvT, batch norm, attention or None)]
        for i, (mult, res) in enumerate(zip(mults, resolutions)):
            conv = keras.layers.Conv2DTranspose(
                mult * self.base_channels, 4, strides=1 if i == 0 else 2,
                padding="valid" if i == 0 else "same", kernel_initializer=self.init,
                name=f"conv{i}")
            bn = ConditionalBatchNormalization(self.num_classes, momentum=self.batch_norm_momentum,
                                               name=f"bn{i}")
            self.stages.append((self._sn(conv, sn_transpose_flatten), bn, self._attention(res)))
        # The last ConvT is not spectral-normalized, as in the PyTorch code.
        self.to_rgb = keras.layers.Conv2DTranspose(
            self.output_channels, 4, strides=2, padding="same", kernel_initializer=self.init,
            name="to_rgb")

    def synthesize(self, z, labels, training, attend):
        x = ops.reshape(z, (-1, 1, 1, z.shape[-1]))  # (B, 1, 1, z_dim [+ embedding])
        for conv, bn, attention in self.stages:
            x = conv(x, training=training)  # (B, 2H, 2W, C')
            x = attend(attention, ops.relu(bn(x, labels, training=training)))
        return self.to_rgb(x)  # (B, S, S, output_channels)

    def get_config(self):
        return dict(super().get_config(), sn_transpose_flatten=self.sn_transpose_flatten)


@keras.saving.register_keras_serializable(package="sagan_tf")
class DCGANDiscriminator(Discriminator):
    """`dcgan` discriminator: Conv 4/2 stack with LeakyReLU(0.1), no batch norm,
    then a 4x4 valid conv to one logit (the PyTorch SAGAN's D at 64 px).

    Args:
        **kwargs: the `Discriminator` arguments.

    Example:
        >>> d = DCGANDiscriminator(image_size=32, base_channels=8,
        ...                        attention_resolutions=(8,))
        >>> d(keras.random.normal((2, 32, 32, 3))).shape
        TensorShape([2])
    """

    architecture = "dcgan"
    leak = 0.1  # LeakyReLU slope

    def __init__(self, image_size=64, **kwargs):
        super().__init__(image_size, **kwargs)
        n = int(math.log2(self.image_size)) - 2
        resolutions = [self.image_size // 2 ** (i + 1) for i in range(n)]
        self._check_attention(resolutions)
        self.stages = []  # [(conv, batch norm or None, attention or None)]
        for i, res in enumerate(resolutions):
            conv = keras.layers.Conv2D(self.base_channels * 2**i, 4, strides=2, padding="same",
                                       kernel_initializer=self.init, name=f"conv{i}")
            bn = None
            if self.uses_batch_norm and i > 0:
                bn = keras.layers.BatchNormalization(synchronized=True, name=f"bn{i}")
            self.stages.append((self._sn(conv), bn, self._attention(res)))
        # The last conv is not spectral-normalized, as in the PyTorch code.
        self.head = keras.layers.Conv2D(1, 4, padding="valid", kernel_initializer=self.init,
                                        name="head")
        self._projection_head(self.base_channels * 2 ** (n - 1))

    def score(self, images, training, attend):
        x = images
        for conv, bn, attention in self.stages:
            x = conv(x, training=training)  # (B, H/2, W/2, C')
            if bn is not None:
                x = bn(x, training=training)
            x = attend(attention, ops.leaky_relu(x, self.leak))
        features = ops.sum(x, axis=(1, 2))  # (B, C)
        return ops.reshape(self.head(x), (-1,)), features  # (B,), (B, C)
