"""SAGAN generators and discriminators, one module per family.

`Generator.from_preset(name)`, `Generator.from_config(config)` (and the same on
`Discriminator`) build the family that a preset or config names.
"""

import importlib

# Names imported on first use (PEP 562), so that `sagan_tf.models.presets`, plain data
# that flag definitions read, comes without TensorFlow.
_HOMES = {"Discriminator": "base", "Generator": "base",
          "BaselineDiscriminator": "baseline", "BaselineGenerator": "baseline",
          "DCGANDiscriminator": "dcgan", "DCGANGenerator": "dcgan",
          "IMAGE_SIZES": "presets", "PRESETS": "presets",
          "ResNetDiscriminator": "resnet", "ResNetGenerator": "resnet"}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _HOMES[name] != "presets":
        for family in ("baseline", "dcgan", "resnet"):  # each registers its family on import
            importlib.import_module(f"{__name__}.{family}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_HOMES))

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
