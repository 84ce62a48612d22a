"""SAGAN generators and discriminators, one module per family.

`Generator.from_preset(name)`, `Generator.from_config(config)` (and the same on
`Discriminator`) build the family that a preset or config names.
"""

from sagan_tf.models.base import Discriminator, Generator
from sagan_tf.models.baseline import BaselineDiscriminator, BaselineGenerator
from sagan_tf.models.dcgan import DCGANDiscriminator, DCGANGenerator
from sagan_tf.models.presets import IMAGE_SIZES, PRESETS
from sagan_tf.models.resnet import ResNetDiscriminator, ResNetGenerator

__all__ = [
    "BaselineDiscriminator",
    "BaselineGenerator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Discriminator",
    "Generator",
    "IMAGE_SIZES",
    "PRESETS",
    "ResNetDiscriminator",
    "ResNetGenerator",
]
