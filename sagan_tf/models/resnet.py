"""The `resnet` family: the official SAGAN code's residual model (BigGAN/SNGAN
blocks), the official attention variant, spectral norm on every layer."""

import keras
from keras import ops

from sagan_tf.layers import ConditionalBatchNormalization, DBlock, GBlock
from sagan_tf.layers.residual_blocks import sn_conv
from sagan_tf.models.base import Discriminator, Generator

# G: (channel multiplier of the 4x4 input, multipliers of the up-sampling blocks).
G_BLOCKS = {
    16: (4, (4, 4)),
    32: (4, (4, 4, 4)),
    64: (16, (8, 4, 2, 1)),
    128: (16, (16, 8, 4, 2, 1)),
}
# D: (channel multiplier, down-sample) per block; the first is the optimized block.
D_BLOCKS = {
    16: ((4, True), (4, True), (4, False)),
    32: ((4, True), (4, True), (4, False), (4, False)),
    64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
    128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
}


@keras.saving.register_keras_serializable(package="sagan_tf")
class ResNetGenerator(Generator):
    """`resnet` generator: z -> linear to 4x4 -> up-sampling residual blocks
    (`GBlock`, conditional batch norm) -> BN, ReLU, conv3x3 -> tanh.

    Args:
        final_batch_norm_momentum: momentum of the batch norm before the output
            conv (the official code's `g_bn`: 0.9999); None: the same as
            `batch_norm_momentum`.
        **kwargs: the `Generator` arguments.

    Example:
        >>> g = ResNetGenerator(image_size=32, z_dim=16, base_channels=8,
        ...                     attention_resolutions=(16,))
        >>> g(keras.random.normal((2, 16))).shape
        TensorShape([2, 32, 32, 3])
    """

    architecture = "resnet"
    default_attention_variant = "official"
    default_attention_spectral_norm = True
    own_arguments = ("final_batch_norm_momentum",)

    def __init__(self, image_size=64, final_batch_norm_momentum=None, **kwargs):
        super().__init__(image_size, **kwargs)
        self.final_batch_norm_momentum = (None if final_batch_norm_momentum is None
                                          else float(final_batch_norm_momentum))
        self._check_momentum("final_batch_norm_momentum", self.final_batch_norm_momentum)
        in_mult, mults = G_BLOCKS[self.image_size]
        resolutions = [8 * 2**i for i in range(len(mults))]
        self._check_attention(resolutions)
        self.stem_channels = in_mult * self.base_channels
        self.stem = self._sn(keras.layers.Dense(4 * 4 * self.stem_channels,
                                                kernel_initializer=self.init, name="stem"))
        self.stages = []  # [(GBlock, None, attention or None)]
        for i, (mult, res) in enumerate(zip(mults, resolutions)):
            block = GBlock(mult * self.base_channels, num_classes=self.num_classes,
                           use_spectral_norm=True, kernel_initializer=self.init,
                           batch_norm_momentum=self.batch_norm_momentum, name=f"block{i}")
            self.stages.append((block, None, self._attention(res)))
        self.final_bn = ConditionalBatchNormalization(
            0, momentum=(self.batch_norm_momentum if self.final_batch_norm_momentum is None
                         else self.final_batch_norm_momentum), name="final_bn")
        self.to_rgb = sn_conv(self.output_channels, 3, "to_rgb", True,
                              kernel_initializer=self.init)

    def synthesize(self, z, labels, training, attend):
        x = self.stem(z, training=training)
        x = ops.reshape(x, (-1, 4, 4, self.stem_channels))  # (B, 4, 4, C)
        for block, _, attention in self.stages:
            x = attend(attention, block(x, labels, training=training))  # (B, 2H, 2W, C')
        x = ops.relu(self.final_bn(x, training=training))
        return self.to_rgb(x, training=training)  # (B, S, S, output_channels)

    def get_config(self):
        return dict(super().get_config(),
                    final_batch_norm_momentum=self.final_batch_norm_momentum)


@keras.saving.register_keras_serializable(package="sagan_tf")
class ResNetDiscriminator(Discriminator):
    """`resnet` discriminator: optimized block, down-sampling residual blocks
    (`DBlock`), ReLU, global sum pooling, spectral-normalized linear.

    Args:
        **kwargs: the `Discriminator` arguments.

    Example:
        >>> d = ResNetDiscriminator(image_size=32, base_channels=8,
        ...                         attention_resolutions=(16,))
        >>> d(keras.random.normal((2, 32, 32, 3))).shape
        TensorShape([2])
    """

    architecture = "resnet"
    default_attention_variant = "official"
    default_attention_spectral_norm = True

    def __init__(self, image_size=64, **kwargs):
        super().__init__(image_size, **kwargs)
        spec = D_BLOCKS[self.image_size]
        resolutions, res = [], self.image_size
        for _, down in spec:
            res = res // 2 if down else res
            resolutions.append(res)
        self._check_attention(resolutions)
        self.stages = []  # [(DBlock, None, attention or None)]
        for i, ((mult, down), res) in enumerate(zip(spec, resolutions)):
            block = DBlock(mult * self.base_channels, downsample=down, optimized=i == 0,
                           use_spectral_norm=True, kernel_initializer=self.init, name=f"block{i}")
            self.stages.append((block, None, self._attention(res)))
        self.head = self._sn(keras.layers.Dense(1, kernel_initializer=self.init, name="head"))
        self._projection_head(spec[-1][0] * self.base_channels)

    def score(self, images, training, attend):
        x = images
        for block, _, attention in self.stages:
            x = attend(attention, block(x, training=training))  # (B, H/2, W/2, C')
        features = ops.sum(ops.relu(x), axis=(1, 2))  # (B, C)
        return self.head(features, training=training)[:, 0], features  # (B,), (B, C)
