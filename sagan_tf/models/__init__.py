from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.generator import Generator
from sagan_tf.models.presets import PRESETS

__all__ = ["Discriminator", "Generator", "PRESETS"]
