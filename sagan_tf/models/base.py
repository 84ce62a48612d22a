"""What the generator and the discriminator share: their attention stages."""

from sagan_tf.layers import SelfAttention2D


class AttentionStagesMixin:
    """`self.stages` is a list of (layer, norm or None, attention or None)."""

    def _attention(self, resolution, init):
        if resolution not in self.attention_resolutions:
            return None
        return SelfAttention2D(self.attention_variant,
                               use_spectral_norm=self.attention_spectral_norm,
                               kernel_initializer=init, name=f"attention{resolution}")

    @property
    def attention_layers(self):
        return [a for _, _, a in self.stages if a is not None]
