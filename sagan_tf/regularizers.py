"""What `sagan_tf.gan.SAGAN` adds to plain adversarial training of D: the
augmentation of everything D sees (DiffAugment, ADA) and regularization terms
(LeCam).

Each one is a `Regularizer`: it validates its arguments in its constructor,
creates the variables of its state in `build` (under the distribution strategy's
scope, called by SAGAN), and owns its loss term, its updates and its metric.
SAGAN calls, in each training step:

- `augment(images, global_batch, seed, rows)`: D's input, real or fake;
- `d_term(real_logits, fake_logits)`: a per-example term of D's loss (None: none),
  weighted by `weight`, and logged as the metric `name` by `tracker`;
- `after_d_update(real_logits, fake_logits, global_batch)`: after each D update;
- `after_step(real_logits, step)`: after the G update, with every D update's real
  logits of the step.

A regularizer's `state` ({name: variable}) is checkpointed and logged under
`group`. A new regularizer is one subclass.
"""

import keras
import tensorflow as tf

from sagan_tf import ada
from sagan_tf import augment as aug
from sagan_tf import losses
from sagan_tf.errors import ArgumentError
from sagan_tf.names import ADA_INTERVAL, ADA_TARGET, ADA_TRANSFORMS


def global_sum(values):
    """Sums of per-replica values over all replicas (every replica gets them)."""
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)


def state_variable(name):
    """A float32 scalar of training state. Replicas assign the same all-reduced
    values; the first replica's is kept."""
    return keras.Variable(0.0, name=name, trainable=False, dtype="float32",
                          aggregation="only_first_replica")


class Regularizer:
    """The base: no augmentation, no term, no updates, no state."""

    name = None  # what HParams show of an augmentation
    group = None  # checkpoint and TensorBoard group of `state`
    weight = 0.0
    tracker = None  # a `keras.metrics.Mean` of `d_term`, when there is one

    def __init__(self):
        self.state = {}

    def build(self):
        """Creates the state's variables (under the strategy's scope)."""

    def augment(self, images, global_batch, seed, rows):
        """D's view of `images`, this replica's rows of a global batch; `seed` is
        this call's stateless seed and `rows(tensor)` takes this replica's rows
        of a global-batch tensor."""
        return images

    def d_term(self, real_logits, fake_logits):
        return None

    def after_d_update(self, real_logits, fake_logits, global_batch):
        pass

    def after_step(self, real_logits, step):
        pass


class DiffAugment(Regularizer):
    """DiffAugment at a fixed strength: `policies` (a subset of
    `sagan_tf.augment.POLICIES`, comma-separated or a sequence) applied to every
    image D sees, real and fake (`sagan_tf.augment`).

    Reference: Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for
    Data-Efficient GAN Training", NeurIPS 2020, arXiv:2006.10738.
    """

    def __init__(self, policies):
        super().__init__()
        text = policies if isinstance(policies, str) else ",".join(policies)
        try:
            self.policies = aug.parse(text)
        except ValueError as e:
            raise ArgumentError("DiffAugment", "policies", str(e)) from None
        if not self.policies or self.policies == (aug.ADAPTIVE,):
            raise ArgumentError("DiffAugment", "policies",
                                f"must name at least one of {', '.join(aug.POLICIES)}")
        self.name = ",".join(self.policies)

    def augment(self, images, global_batch, seed, rows):
        params = {k: rows(v) for k, v in aug.draw(self.policies, global_batch, images.shape[1],
                                                   seed).items()}
        return aug.apply(images, self.policies, params)


class ADA(Regularizer):
    """Adaptive discriminator augmentation (`sagan_tf.ada`): the pipeline of
    `transforms`, each drawn per image with probability p, where p follows
    r_t = E[sign(D(x_real))] towards `target`.

    Args:
        target: r_t's target, in (0, 1) (StyleGAN2-ADA: 0.6).
        kimg: thousands of real images over which p can move from 0 to 1 at most
            (StyleGAN2-ADA: 500).
        interval: steps between adjustments of p.
        transforms: the transformations drawn (a subset of `sagan_tf.ada.TRANSFORMS`;
            comma-separated or a sequence).

    State (`augment/`): `p`, `r_t` (of the last interval), and the sum of
    sign(D(x_real)) (`signs`) over `count` images since the last adjustment.
    """

    group = "augment"
    name = aug.ADAPTIVE

    def __init__(self, target=ADA_TARGET, kimg=100.0, interval=ADA_INTERVAL,
                 transforms=ADA_TRANSFORMS):
        super().__init__()
        if not 0.0 < float(target) < 1.0:
            raise ArgumentError("ADA", "target", f"must be in (0, 1); got {target}")
        if not float(kimg) > 0:
            raise ArgumentError("ADA", "kimg", f"must be > 0; got {kimg}")
        if not int(interval) >= 1:
            raise ArgumentError("ADA", "interval", f"must be >= 1; got {interval}")
        try:
            self.transforms = ada.parse_transforms(
                transforms if isinstance(transforms, str) else ",".join(transforms))
        except ValueError as e:
            raise ArgumentError("ADA", "transforms", str(e)) from None
        self.target = float(target)
        self.kimg = float(kimg)
        self.interval = int(interval)

    def build(self):
        self.p = state_variable("ada_p")
        self.r_t = state_variable("ada_rt")
        self.signs = state_variable("ada_signs")  # sum of sign(D(real))
        self.count = state_variable("ada_count")  # over this many images
        self.state = {"p": self.p, "r_t": self.r_t, "signs": self.signs, "count": self.count}

    def augment(self, images, global_batch, seed, rows):
        params = ada.draw(global_batch, images.shape[1], self.p.value, seed, self.transforms)
        return ada.apply(images, {k: rows(v) for k, v in params.items()})

    def after_step(self, real_logits, step):
        """Accumulates sign(D(x_real)) over all replicas; every `interval` steps sets
        r_t and adjusts p by `ada.adjust`."""
        signs = tf.concat([tf.reshape(tf.sign(tf.cast(r, tf.float32)), [-1])
                           for r in real_logits], 0)
        total = global_sum(tf.stack([tf.reduce_sum(signs), tf.cast(tf.size(signs), tf.float32)]))
        sign_sum, count = self.signs.value + total[0], self.count.value + total[1]
        now = tf.equal(step % self.interval, 0)  # after this step's G update
        r_t = sign_sum / tf.maximum(count, 1.0)
        p = ada.adjust(self.p.value, r_t, self.target, count, self.kimg * 1000.0)
        self.p.assign(tf.where(now, p, self.p.value))
        self.r_t.assign(tf.where(now, r_t, self.r_t.value))
        self.signs.assign(tf.where(now, 0.0, sign_sum))
        self.count.assign(tf.where(now, 0.0, count))


class LeCam(Regularizer):
    """The LeCam regularizer of D (`sagan_tf.losses.lecam`), weighted by `weight`,
    against moving averages of D's mean outputs on real and on generated images
    with decay `decay`.

    State (`lecam/`): `ema_real`, `ema_fake`.

    Reference: Tseng, Jiang, Liu, Yang, Yang, "Regularizing Generative Adversarial
    Networks under Limited Data", CVPR 2021, arXiv:2104.03310.
    """

    group = "lecam"

    def __init__(self, weight=0.3, decay=0.99):
        super().__init__()
        if not float(weight) >= 0:
            raise ArgumentError("LeCam", "weight", f"must be >= 0; got {weight}")
        if not 0.0 <= float(decay) < 1.0:
            raise ArgumentError("LeCam", "decay", f"must be in [0, 1); got {decay}")
        self.weight = float(weight)
        self.decay = float(decay)

    def build(self):
        self.ema_real = state_variable("lecam_ema_real")
        self.ema_fake = state_variable("lecam_ema_fake")
        self.state = {"ema_real": self.ema_real, "ema_fake": self.ema_fake}
        self.tracker = keras.metrics.Mean(name="lecam")

    def d_term(self, real_logits, fake_logits):
        return losses.lecam(real_logits, fake_logits, self.ema_real.value, self.ema_fake.value)

    def after_d_update(self, real_logits, fake_logits, global_batch):
        sums = global_sum(tf.stack([tf.reduce_sum(tf.cast(real_logits, tf.float32)),
                                    tf.reduce_sum(tf.cast(fake_logits, tf.float32))]))
        means = sums / tf.cast(global_batch, tf.float32)
        for ema, mean in ((self.ema_real, means[0]), (self.ema_fake, means[1])):
            ema.assign(self.decay * ema.value + (1.0 - self.decay) * mean)
