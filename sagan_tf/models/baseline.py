"""The `baseline` family: a plain DCGAN for the seeds' DCGAN-vs-SAGAN comparison.

The `dcgan` family's G/D stack with no attention and no spectral norm, batch norm
in D after its first conv and LeakyReLU(0.2) (Radford et al. 2015).
"""

import keras

from sagan_tf.models.dcgan import DCGANDiscriminator, DCGANGenerator


@keras.saving.register_keras_serializable(package="sagan_tf")
class BaselineGenerator(DCGANGenerator):
    """`baseline` generator: `DCGANGenerator` without spectral norm.

    Args:
        **kwargs: the `DCGANGenerator` arguments.
    """

    architecture = "baseline"
    use_spectral_norm = False


@keras.saving.register_keras_serializable(package="sagan_tf")
class BaselineDiscriminator(DCGANDiscriminator):
    """`baseline` discriminator: `DCGANDiscriminator` without spectral norm, with
    batch norm after every conv but the first and LeakyReLU(0.2).

    Args:
        **kwargs: the `Discriminator` arguments.
    """

    architecture = "baseline"
    use_spectral_norm = False
    uses_batch_norm = True
    leak = 0.2
