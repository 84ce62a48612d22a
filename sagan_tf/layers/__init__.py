from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNormalization
from sagan_tf.layers.residual_blocks import DBlock, GBlock
from sagan_tf.layers.self_attention import SelfAttention2D
from sagan_tf.layers.spectral_norm import SpectralNormalization

__all__ = [
    "ConditionalBatchNormalization",
    "DBlock",
    "GBlock",
    "SelfAttention2D",
    "SpectralNormalization",
]
