"""GAN losses as small pure functions of discriminator logits.

Each returns a per-example loss vector of shape (B,), so a caller can average
over the global batch (`tf.nn.compute_average_loss`) and get the same result
on one device or many replicas. `mean(...)` of it is the usual scalar. `AdversarialLoss` and its subclasses
pair a D loss, a G loss and an optional penalty for `sagan_tf.gan.SAGAN`.
"""

import tensorflow as tf

from sagan_tf.errors import ArgumentError
from sagan_tf.names import LOSSES


def hinge_d(real_logits, fake_logits):
    """relu(1 - D(x)) + relu(1 + D(G(z))), per example (Lim & Ye 2017; SAGAN)."""
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)


def hinge_g(fake_logits):
    """-D(G(z)), per example."""
    return -fake_logits


def ns_d(real_logits, fake_logits):
    """softplus(-D(x)) + softplus(D(G(z))): -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))."""
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


def ns_g(fake_logits):
    """Non-saturating generator loss softplus(-D(G(z))) = -log sigmoid(D(G(z)))."""
    return tf.nn.softplus(-fake_logits)


def wgan_d(real_logits, fake_logits):
    """D(G(z)) - D(x), per example (add `gradient_penalty` for WGAN-GP)."""
    return fake_logits - real_logits


def wgan_g(fake_logits):
    """-D(G(z)), per example."""
    return -fake_logits


def gradient_penalty(discriminator_fn, real, fake, epsilon):
    """(||grad_x D(x_hat)||_2 - 1)^2 per example, x_hat = eps * real + (1 - eps) * fake.

    Args:
        discriminator_fn: images -> logits (B,).
        real, fake: (B, H, W, C) images.
        epsilon: (B,) interpolation weights in [0, 1].
    Reference: Gulrajani et al., "Improved Training of Wasserstein GANs", 2017.
    """
    eps = tf.reshape(tf.cast(epsilon, real.dtype), [-1, 1, 1, 1])
    interpolated = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        logits = discriminator_fn(interpolated)
    grads = tape.gradient(logits, interpolated)
    norms = tf.sqrt(tf.reduce_sum(tf.square(tf.cast(grads, tf.float32)), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)


def lecam(real_logits, fake_logits, ema_real, ema_fake):
    """LeCam regularizer of D per example: relu(D(x) - ema_fake)^2 +
    relu(ema_real - D(G(z)))^2, where `ema_real`, `ema_fake` are moving averages
    of D's mean output on real and on generated images. It pulls D's outputs on
    real images towards its usual output on fakes and the reverse, which bounds
    how far D can separate a small training set (the official code's one-sided
    form of the paper's squared distances).

    Reference: Tseng, Jiang, Liu, Yang, Yang, "Regularizing Generative Adversarial
    Networks under Limited Data", CVPR 2021, arXiv:2104.03310.
    """
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return tf.square(tf.nn.relu(real - ema_fake)) + tf.square(tf.nn.relu(ema_real - fake))


class AdversarialLoss:
    """An adversarial loss: per-example D and G losses of D's logits (`d`, `g`),
    and for a penalized loss (`penalized`) a per-example penalty of D weighted by
    `penalty_weight`. A new loss is one subclass."""

    name = None
    penalized = False
    penalty_weight = 0.0

    @staticmethod
    def d(real_logits, fake_logits):
        raise NotImplementedError

    @staticmethod
    def g(fake_logits):
        raise NotImplementedError

    def penalty(self, discriminator_fn, real, fake, epsilon):
        """The per-example penalty of D (penalized losses)."""
        raise NotImplementedError


class Hinge(AdversarialLoss):
    """The hinge loss (SAGAN, BigGAN)."""

    name = "hinge"
    d = staticmethod(hinge_d)
    g = staticmethod(hinge_g)


class NonSaturating(AdversarialLoss):
    """The non-saturating logistic loss of the original GAN."""

    name = "ns"
    d = staticmethod(ns_d)
    g = staticmethod(ns_g)


class WassersteinGP(AdversarialLoss):
    """The Wasserstein loss with the gradient penalty (`gradient_penalty`).

    Args:
        penalty_weight: the penalty's weight in D's loss, >= 0 (the paper: 10).
    """

    name = "wgan_gp"
    penalized = True
    d = staticmethod(wgan_d)
    g = staticmethod(wgan_g)

    def __init__(self, penalty_weight=10.0):
        if not float(penalty_weight) >= 0:
            raise ArgumentError("WassersteinGP", "penalty_weight",
                                f"must be >= 0; got {penalty_weight}")
        self.penalty_weight = float(penalty_weight)

    def penalty(self, discriminator_fn, real, fake, epsilon):
        return gradient_penalty(discriminator_fn, real, fake, epsilon)


LOSS_CLASSES = {cls.name: cls for cls in (Hinge, NonSaturating, WassersteinGP)}
assert tuple(LOSS_CLASSES) == tuple(LOSSES)


def get(name, **kwargs):
    """The `AdversarialLoss` named `name` ('hinge', 'ns' or 'wgan_gp'), built with
    `kwargs`."""
    if name not in LOSS_CLASSES:
        raise ArgumentError("losses", "loss", f"must be one of {', '.join(LOSSES)}; "
                            f"got {name!r}")
    return LOSS_CLASSES[name](**kwargs)
