"""The SAGAN training model: G, D and an EMA copy of G, with a custom train_step."""

import keras
import tensorflow as tf

from sagan_tf import ada
from sagan_tf import augment as aug
from sagan_tf import losses
from sagan_tf.names import FAKE_LABELS


class SAGAN(keras.Model):
    """Adversarial training of a generator and a discriminator.

    One `train_step` (run under `strategy.run` in a `tf.function` by
    `sagan_tf.loop.train`, or by `fit` on one machine) makes
    `d_steps` discriminator updates, each on its own slice of the real batch,
    then one generator update; each update differentiates only with respect
    to the variables it changes. Losses are averaged over the global batch
    (`tf.nn.compute_average_loss`), so the update does not depend on the
    number of replicas. Latents come from stateless random ops seeded by
    `(seed, step)`: the global batch's z is drawn on every replica and each
    takes its own rows, so a 2-replica step sees exactly the z of a 1-replica
    step and a resumed run continues the same random stream.

    Args:
        generator: a `sagan_tf.models.Generator` (any family).
        discriminator: a `sagan_tf.models.Discriminator` (any family).
        loss: `"hinge"`, `"ns"` or `"wgan_gp"`.
        d_steps: discriminator updates per generator update.
        gp_weight: gradient-penalty weight for `wgan_gp`.
        ema_decay: decay of the exponential moving average of G's weights;
            0 disables the EMA generator.
        ema_start: step before which the EMA simply copies G.
        seed: seed of the latent and interpolation random streams.
        augment: DiffAugment policies (a subset of `sagan_tf.augment.POLICIES`,
            e.g. `("translation", "cutout")`) applied to every image D sees,
            real and fake, in the D and the G updates; `"ada"` for adaptive
            augmentation (`sagan_tf.ada`); empty for none.
        ada_target: ADA's target for r_t = E[sign(D(x_real))], in (0, 1).
        ada_kimg: ADA: thousands of real images over which p can move from 0 to
            1 at most (StyleGAN2-ADA: 500).
        ada_interval: ADA: steps between adjustments of p.
        ada_transforms: ADA: the transformations drawn (a subset of
            `sagan_tf.ada.TRANSFORMS`; a comma-separated string or a sequence).
        lecam_weight: weight of the LeCam regularizer of D (0: off).
        lecam_decay: decay of LeCam's moving averages of D's outputs.
        fake_labels: conditional models: `"real"` generates each update's fake
            batch with the labels of the real batch; `"uniform"` draws them
            uniformly over the classes (the official SAGAN code's `model.py`).
        **kwargs: base model arguments.

    Call arguments:
        z: (B, z_dim); labels: int (B,) for conditional models. Returns images
        from the EMA generator when it exists, else from G (inference mode).
    """

    def __init__(self, generator, discriminator, loss="hinge", d_steps=1, gp_weight=10.0,
                 ema_decay=0.0, ema_start=0, seed=0, augment=(), fake_labels="real",
                 ada_target=ada.TARGET, ada_kimg=100.0, ada_interval=ada.INTERVAL,
                 ada_transforms=ada.TRANSFORMS, lecam_weight=0.0, lecam_decay=0.99, **kwargs):
        super().__init__(**kwargs)
        if int(d_steps) < 1:
            raise ValueError(f"SAGAN: argument `d_steps` must be >= 1; received {d_steps}.")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"SAGAN: argument `ema_decay` must be in [0, 1); received {ema_decay}.")
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.d_loss_fn, self.g_loss_fn = losses.get(loss)
        if fake_labels not in FAKE_LABELS:
            raise ValueError(f"SAGAN: argument `fake_labels` must be one of {FAKE_LABELS}; "
                             f"received {fake_labels!r}.")
        self.fake_labels = fake_labels
        self.d_steps = int(d_steps)
        self.gp_weight = float(gp_weight)
        self.ema_decay = float(ema_decay)
        self.ema_start = int(ema_start)
        self.seed = int(seed)
        self.augment = aug.parse(augment if isinstance(augment, str) else ",".join(augment))
        self.adaptive = self.augment == (aug.ADAPTIVE,)
        if not 0.0 < float(ada_target) < 1.0:
            raise ValueError(f"SAGAN: argument `ada_target` must be in (0, 1); received {ada_target}.")
        if not float(ada_kimg) > 0 or int(ada_interval) < 1:
            raise ValueError("SAGAN: arguments `ada_kimg` and `ada_interval` must be > 0; "
                             f"received {ada_kimg}, {ada_interval}.")
        if float(lecam_weight) < 0 or not 0.0 <= float(lecam_decay) < 1.0:
            raise ValueError("SAGAN: `lecam_weight` must be >= 0 and `lecam_decay` in [0, 1); "
                             f"received {lecam_weight}, {lecam_decay}.")
        self.ada_target = float(ada_target)
        self.ada_kimg = float(ada_kimg)
        self.ada_interval = int(ada_interval)
        self.ada_transforms = ada.parse_transforms(
            ada_transforms if isinstance(ada_transforms, str) else ",".join(ada_transforms))
        self.lecam_weight = float(lecam_weight)
        self.lecam_decay = float(lecam_decay)
        # Training state beside the weights, checkpointed (`regularizer_state`). Replicas
        # assign the same all-reduced values; the first replica's is kept.
        state = dict(trainable=False, dtype="float32", aggregation="only_first_replica")
        if self.adaptive:
            self.ada_p = keras.Variable(0.0, name="ada_p", **state)
            self.ada_rt = keras.Variable(0.0, name="ada_rt", **state)  # of the last interval
            self.ada_signs = keras.Variable(0.0, name="ada_signs", **state)  # sum of sign(D(real))
            self.ada_count = keras.Variable(0.0, name="ada_count", **state)  # over this many
        if self.lecam_weight > 0:
            self.lecam_real = keras.Variable(0.0, name="lecam_ema_real", **state)
            self.lecam_fake = keras.Variable(0.0, name="lecam_ema_fake", **state)
        self.z_dim = generator.z_dim
        self.conditional = generator.num_classes > 0
        self.ema_generator = None
        if self.ema_decay > 0:
            self.ema_generator = type(generator).from_config(generator.get_config())
            self.ema_generator.build()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.gp_tracker = keras.metrics.Mean(name="gp") if loss == "wgan_gp" else None
        self.rt_tracker = keras.metrics.Mean(name="r_t")
        self.lecam_tracker = keras.metrics.Mean(name="lecam") if self.lecam_weight else None
        for net in (generator, discriminator):
            if not net.built:
                net.build()
        # G and D are built: nothing for Keras to build symbolically from a data batch.
        self.built = True

    @property
    def sampler(self):
        """The generator used for samples and export: EMA when it exists."""
        return self.ema_generator or self.generator

    def call(self, z, labels=None, training=False):
        return self.sampler(z, labels, training=training)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def build_optimizers(self):
        """Creates optimizer slots now, so a checkpoint can restore them."""
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        if self.ema_generator is not None:
            for ema, var in zip(self.ema_generator.weights, self.generator.weights):
                ema.assign(var)

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker,
                    self.d_fake_tracker, self.gp_tracker, self.rt_tracker, self.lecam_tracker]
        return [t for t in trackers if t is not None]

    @property
    def regularizer_state(self):
        """{name: variable} of ADA's and LeCam's state (empty when both are off): what a
        checkpoint holds beside the weights and what TensorBoard shows of them."""
        state = {}
        if self.adaptive:
            state.update({"augment/p": self.ada_p, "augment/r_t": self.ada_rt,
                          "augment/signs": self.ada_signs, "augment/count": self.ada_count})
        if self.lecam_weight:
            state.update({"lecam/ema_real": self.lecam_real, "lecam/ema_fake": self.lecam_fake})
        return state

    @property
    def step(self):
        """Completed training steps (generator updates)."""
        return self.g_optimizer.iterations

    # ------------------------------------------------------------------ randomness
    def _replica_rows(self, global_values):
        ctx = tf.distribute.get_replica_context()
        n = ctx.num_replicas_in_sync
        per_replica = tf.shape(global_values)[0] // n
        start = ctx.replica_id_in_sync_group * per_replica
        return global_values[start:start + per_replica]

    def _seed(self, stream):
        step = tf.cast(self.g_optimizer.iterations, tf.int32)
        # Streams of one step: D updates 0..d-1, G update d, gradient penalties d+1..2d.
        return tf.stack([tf.constant(self.seed, tf.int32),
                         step * (2 * self.d_steps + 1) + stream])

    def sample_z(self, global_batch, stream):
        z = tf.random.stateless_normal([global_batch, self.z_dim], seed=self._seed(stream))
        return self._replica_rows(z)

    def sample_fake_labels(self, labels, global_batch, stream):
        """Labels of a fake batch: `labels` (the real batch's) or uniform draws."""
        if labels is None or self.fake_labels == "real":
            return labels
        seed = tf.random.experimental.stateless_fold_in(self._seed(stream), 2000)
        drawn = tf.random.stateless_uniform([global_batch], seed=seed, minval=0,
                                            maxval=self.generator.num_classes, dtype=tf.int32)
        return tf.cast(self._replica_rows(drawn), labels.dtype)

    def _augment(self, images, global_batch, stream, which):
        """DiffAugment or ADA of this replica's rows of a global batch; `which` 0 for
        real images, 1 for fake ones, so the two never share draws."""
        if not self.augment:
            return images
        seed = tf.random.experimental.stateless_fold_in(self._seed(stream), 1000 + which)
        def rows(params):
            return {k: self._replica_rows(v) for k, v in params.items()}

        if self.adaptive:
            return ada.apply(images, rows(ada.draw(global_batch, images.shape[1],
                                                   self.ada_p.value, seed, self.ada_transforms)))
        params = rows(aug.draw(self.augment, global_batch, images.shape[1], seed))
        return aug.apply(images, self.augment, params)

    def _global_sum(self, values):
        """Sums of per-replica values over all replicas (every replica gets them)."""
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)

    def _lecam(self, real_logits, fake_logits):
        """LeCam's term per example: relu(D(x) - ema_fake)^2 + relu(ema_real - D(G(z)))^2
        (Tseng et al. 2021, in the official code's one-sided form)."""
        return losses.lecam(real_logits, fake_logits, self.lecam_real.value,
                            self.lecam_fake.value)

    def _update_lecam(self, real_logits, fake_logits, global_batch):
        sums = self._global_sum(tf.stack([tf.reduce_sum(tf.cast(real_logits, tf.float32)),
                                          tf.reduce_sum(tf.cast(fake_logits, tf.float32))]))
        means = sums / tf.cast(global_batch, tf.float32)
        for ema, mean in ((self.lecam_real, means[0]), (self.lecam_fake, means[1])):
            ema.assign(self.lecam_decay * ema.value + (1.0 - self.lecam_decay) * mean)

    def _update_ada(self, real_logits):
        """Accumulates sign(D(x_real)) over all replicas; every `ada_interval` steps
        sets r_t and adjusts p by `ada.adjust`."""
        signs = tf.concat([tf.reshape(tf.sign(tf.cast(r, tf.float32)), [-1])
                           for r in real_logits], 0)
        total = self._global_sum(tf.stack([tf.reduce_sum(signs),
                                           tf.cast(tf.size(signs), tf.float32)]))
        sign_sum, count = self.ada_signs.value + total[0], self.ada_count.value + total[1]
        now = tf.equal(self.g_optimizer.iterations % self.ada_interval, 0)  # after this step's G update
        r_t = sign_sum / tf.maximum(count, 1.0)
        p = ada.adjust(self.ada_p.value, r_t, self.ada_target, count, self.ada_kimg * 1000.0)
        self.ada_p.assign(tf.where(now, p, self.ada_p.value))
        self.ada_rt.assign(tf.where(now, r_t, self.ada_rt.value))
        self.ada_signs.assign(tf.where(now, 0.0, sign_sum))
        self.ada_count.assign(tf.where(now, 0.0, count))

    # ------------------------------------------------------------------ steps
    def _discriminate(self, real, fake, labels, fake_labels):
        """D on real and fake: one call on both halves (one power iteration, larger
        matmuls) unless D has batch norm, whose statistics must not mix them."""
        if self.discriminator.uses_batch_norm:
            return (self.discriminator(real, labels, training=True),
                    self.discriminator(fake, fake_labels, training=True))
        both_labels = None if labels is None else tf.concat([labels, fake_labels], 0)
        logits = self.discriminator(tf.concat([real, tf.cast(fake, real.dtype)], 0),
                                    both_labels, training=True)
        n = tf.shape(real)[0]
        return logits[:n], logits[n:]

    def _d_update(self, real, labels, global_batch, stream):
        z = self.sample_z(global_batch, stream)
        fake_labels = self.sample_fake_labels(labels, global_batch, stream)
        fake = self.generator(z, fake_labels, training=True)
        real_seen = self._augment(real, global_batch, stream, 0)
        fake_seen = self._augment(fake, global_batch, stream, 1)
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self._discriminate(real_seen, fake_seen, labels,
                                                          fake_labels)
            per_example = self.d_loss_fn(real_logits, fake_logits)
            lecam = None
            if self.lecam_weight:
                lecam = self._lecam(real_logits, fake_logits)
                per_example = per_example + tf.cast(self.lecam_weight * lecam, per_example.dtype)
            gp = None
            if self.loss_name == "wgan_gp":
                eps = self._replica_rows(tf.random.stateless_uniform(
                    [global_batch], seed=self._seed(self.d_steps + 1 + stream)))
                # Interpolates between real and fake images keep the real labels.
                gp = losses.gradient_penalty(
                    lambda x: self.discriminator(x, labels, training=True), real, fake, eps)
                per_example = per_example + self.gp_weight * gp
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = self.d_optimizer.scale_loss(loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)
        if self.lecam_weight:
            self._update_lecam(real_logits, fake_logits, global_batch)
        return per_example, real_logits, fake_logits, gp, lecam

    def _g_update(self, labels, global_batch):
        z = self.sample_z(global_batch, self.d_steps)
        labels = self.sample_fake_labels(labels, global_batch, self.d_steps)
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            fake = self._augment(fake, global_batch, self.d_steps, 1)
            fake_logits = self.discriminator(fake, labels, training=True)
            per_example = self.g_loss_fn(fake_logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        return per_example

    def _update_ema(self):
        decay = tf.where(self.g_optimizer.iterations > self.ema_start, self.ema_decay, 0.0)
        pairs = list(zip(self.ema_generator.weights, self.generator.weights))

        def update(strategy):
            for ema, var in pairs:
                # The power-iteration vector must stay a unit vector: copy it.
                d = 0.0 if ema.name == "u" else decay

                def average(e, v, d=d):
                    return e.assign(d * e + (1.0 - d) * tf.cast(v, e.dtype))

                strategy.extended.update(ema.value, average, args=(var.value,))

        tf.distribute.get_replica_context().merge_call(update)

    def train_step(self, data):
        images, labels = data
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        per_replica = tf.shape(images)[0] // self.d_steps
        global_batch = per_replica * num_replicas
        labels = labels if self.conditional else None
        d_terms = []
        for i in range(self.d_steps):
            real = images[i * per_replica:(i + 1) * per_replica]
            lab = None if labels is None else labels[i * per_replica:(i + 1) * per_replica]
            d_terms.append(self._d_update(real, lab, global_batch, i))
        g_per_example = self._g_update(lab, global_batch)
        if self.ema_generator is not None:
            self._update_ema()
        if self.adaptive:
            self._update_ada([terms[1] for terms in d_terms])
        # Metrics take per-replica means; Mean over equal replicas is the global mean.
        d_per_example, real_logits, fake_logits, gp, lecam = d_terms[-1]
        self.d_loss_tracker.update_state(tf.reduce_mean(d_per_example))
        self.g_loss_tracker.update_state(tf.reduce_mean(g_per_example))
        self.d_real_tracker.update_state(tf.reduce_mean(real_logits))
        self.d_fake_tracker.update_state(tf.reduce_mean(fake_logits))
        self.rt_tracker.update_state(tf.reduce_mean(tf.sign(tf.cast(real_logits, tf.float32))))
        if gp is not None:
            self.gp_tracker.update_state(tf.reduce_mean(gp))
        if lecam is not None:
            self.lecam_tracker.update_state(tf.reduce_mean(lecam))
        return {m.name: m.result() for m in self.metrics}
