"""The SAGAN training model: G, D and an EMA copy of G, with a custom train_step."""

import keras
import tensorflow as tf

from sagan_tf import losses
from sagan_tf.errors import ArgumentError
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
        loss: a `sagan_tf.losses.AdversarialLoss` (default: `Hinge()`), or its
            name.
        d_steps: discriminator updates per generator update.
        ema: a `sagan_tf.ema.EMA` of `generator`, or None for no EMA generator.
        seed: seed of the latent and augmentation random streams.
        augmentation: a `sagan_tf.regularizers.Regularizer` that augments every
            image D sees, real and fake, in the D and the G updates
            (`DiffAugment`, `ADA`), or None.
        regularizers: more `Regularizer`s of D (`LeCam`).
        fake_labels: conditional models: `"real"` generates each update's fake
            batch with the labels of the real batch; `"uniform"` draws them
            uniformly over the classes (the official SAGAN code's `model.py`).
        **kwargs: base model arguments.

    Call arguments:
        z: (B, z_dim); labels: int (B,) for conditional models. Returns images
        from the EMA generator when it exists, else from G (inference mode).

    Example:

    ```python
    gan = SAGAN(generator, discriminator, loss=losses.Hinge(),
                ema=ema.EMA(generator, decay=0.999, start=2000),
                augmentation=regularizers.ADA(target=0.6),
                regularizers=[regularizers.LeCam(weight=0.3)])
    gan.compile(g_optimizer=keras.optimizers.Adam(1e-4, 0.0, 0.9),
                d_optimizer=keras.optimizers.Adam(4e-4, 0.0, 0.9))
    gan.build_optimizers()
    ```
    """

    def __init__(self, generator, discriminator, loss="hinge", d_steps=1, ema=None, seed=0,
                 augmentation=None, regularizers=(), fake_labels="real", **kwargs):
        super().__init__(**kwargs)
        if int(d_steps) < 1:
            raise ArgumentError("SAGAN", "d_steps", f"must be >= 1; got {d_steps}")
        if fake_labels not in FAKE_LABELS:
            raise ArgumentError("SAGAN", "fake_labels", f"must be one of {', '.join(FAKE_LABELS)}; "
                                f"got {fake_labels!r}")
        if ema is not None and ema.source is not generator:
            raise ArgumentError("SAGAN", "ema", "must average `generator`")
        self.generator = generator
        self.discriminator = discriminator
        self.loss = losses.get(loss) if isinstance(loss, str) else loss
        self.fake_labels = fake_labels
        self.d_steps = int(d_steps)
        self.seed = int(seed)
        self.augmentation = augmentation
        self.regularizers = tuple(regularizers)
        # Their variables (`regularizer_state`), then the EMA twin's, in this order.
        for regularizer in self._regularizers:
            regularizer.build()
        self.z_dim = generator.z_dim
        self.conditional = generator.num_classes > 0
        self.ema = ema
        self.ema_generator = None
        if ema is not None:
            ema.build()
            self.ema_generator = ema.model
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.gp_tracker = keras.metrics.Mean(name="gp") if self.loss.penalized else None
        self.rt_tracker = keras.metrics.Mean(name="r_t")
        for net in (generator, discriminator):
            if not net.built:
                net.build()
        # G and D are built: nothing for Keras to build symbolically from a data batch.
        self.built = True

    @property
    def _regularizers(self):
        """The augmentation, then the other regularizers."""
        return ((self.augmentation,) if self.augmentation is not None else ()) + self.regularizers

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
        if self.ema is not None:
            self.ema.reset()

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker,
                    self.d_fake_tracker, self.gp_tracker, self.rt_tracker,
                    *(r.tracker for r in self._regularizers)]
        return [t for t in trackers if t is not None]

    @property
    def regularizer_state(self):
        """{group/name: variable} of the regularizers' state (empty when there is
        none): what a checkpoint holds beside the weights and what TensorBoard shows
        of them (`augment/p`, `lecam/ema_real`, ...)."""
        return {f"{r.group}/{name}": variable for r in self._regularizers
                for name, variable in r.state.items()}

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
        """The augmentation of this replica's rows of a global batch; `which` 0 for
        real images, 1 for fake ones, so the two never share draws."""
        if self.augmentation is None:
            return images
        seed = tf.random.experimental.stateless_fold_in(self._seed(stream), 1000 + which)
        return self.augmentation.augment(images, global_batch, seed, self._replica_rows)

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
            per_example = self.loss.d(real_logits, fake_logits)
            terms = []  # (regularizer, its per-example term) for the metrics
            for regularizer in self._regularizers:
                term = regularizer.d_term(real_logits, fake_logits)
                if term is not None:
                    terms.append((regularizer, term))
                    per_example = per_example + tf.cast(regularizer.weight * term,
                                                        per_example.dtype)
            gp = None
            if self.loss.penalized:
                eps = self._replica_rows(tf.random.stateless_uniform(
                    [global_batch], seed=self._seed(self.d_steps + 1 + stream)))
                # Interpolates between real and fake images keep the real labels.
                gp = self.loss.penalty(
                    lambda x: self.discriminator(x, labels, training=True), real, fake, eps)
                per_example = per_example + self.loss.penalty_weight * gp
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = self.d_optimizer.scale_loss(loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)
        for regularizer in self._regularizers:
            regularizer.after_d_update(real_logits, fake_logits, global_batch)
        return per_example, real_logits, fake_logits, gp, terms

    def _g_update(self, labels, global_batch):
        z = self.sample_z(global_batch, self.d_steps)
        labels = self.sample_fake_labels(labels, global_batch, self.d_steps)
        with tf.GradientTape() as tape:
            fake = self.generator(z, labels, training=True)
            fake = self._augment(fake, global_batch, self.d_steps, 1)
            fake_logits = self.discriminator(fake, labels, training=True)
            per_example = self.loss.g(fake_logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        return per_example

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
        if self.ema is not None:
            self.ema.update(self.g_optimizer.iterations)
        for regularizer in self._regularizers:
            regularizer.after_step([terms[1] for terms in d_terms], self.g_optimizer.iterations)
        # Metrics take per-replica means; Mean over equal replicas is the global mean.
        d_per_example, real_logits, fake_logits, gp, terms = d_terms[-1]
        self.d_loss_tracker.update_state(tf.reduce_mean(d_per_example))
        self.g_loss_tracker.update_state(tf.reduce_mean(g_per_example))
        self.d_real_tracker.update_state(tf.reduce_mean(real_logits))
        self.d_fake_tracker.update_state(tf.reduce_mean(fake_logits))
        self.rt_tracker.update_state(tf.reduce_mean(tf.sign(tf.cast(real_logits, tf.float32))))
        if gp is not None:
            self.gp_tracker.update_state(tf.reduce_mean(gp))
        for regularizer, term in terms:
            regularizer.tracker.update_state(tf.reduce_mean(term))
        return {m.name: m.result() for m in self.metrics}
