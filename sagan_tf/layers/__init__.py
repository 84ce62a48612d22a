from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNormalization
from sagan_tf.layers.pointwise_conv import PointwiseConv2D
from sagan_tf.layers.residual_blocks import DBlock, GBlock
from sagan_tf.layers.self_attention import SelfAttention2D
from sagan_tf.layers.spectral_norm import SpectralNormalization

__all__ = [
    "ConditionalBatchNormalization",
    "DBlock",
    "GBlock",
    "PointwiseConv2D",
    "SelfAttention2D",
    "SpectralNormalization",
]
