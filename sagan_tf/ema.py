"""The exponential moving average of a generator's weights (the EMA generator)."""

import tensorflow as tf


def ema_copied_weights(model):
    """The weights of `model` that an average must copy instead of averaging: each
    layer names its own in `ema_copied_weights` (a spectral-norm layer's
    power-iteration vector, which must stay a unit vector)."""
    copied = []
    for layer in model._flatten_layers(include_self=False):
        copied.extend(getattr(layer, "ema_copied_weights", ()))
    return copied


class EMA:
    """A twin of `model` whose weights follow `decay * ema + (1 - decay) * w` after
    every generator update from step `start` on (before: copies of `model`'s).
    Weights are paired by path; the layers say which ones are copied
    (`ema_copied_weights`).

    Args:
        model: the generator (any family: its twin is `type(model).from_config`).
        decay: in (0, 1), e.g. 0.999.
        start: the step before which the average simply copies.

    Reference: Yazici, Foo, Winkler, Yap, Piliouras, Chandrasekhar, "The Unusual
    Effectiveness of Averaging in GAN Training", ICLR 2019, arXiv:1806.04498.
    """

    def __init__(self, model, decay, start=0):
        from sagan_tf.errors import ArgumentError

        if not 0.0 < float(decay) < 1.0:
            raise ArgumentError("EMA", "decay", f"must be in (0, 1); got {decay}")
        if not int(start) >= 0:
            raise ArgumentError("EMA", "start", f"must be >= 0; got {start}")
        self.source = model
        self.decay = float(decay)
        self.start = int(start)
        self.model = None

    def build(self):
        """Creates the twin (under the strategy's scope) and pairs its weights."""
        from sagan_tf.checkpoints import weights_by_path

        self.model = type(self.source).from_config(self.source.get_config())
        self.model.build()
        ours, theirs = weights_by_path(self.model), weights_by_path(self.source)
        copied = {id(v) for v in ema_copied_weights(self.model)}
        # (average, source, copied?) in the twin's weight order.
        self._pairs = [(v, theirs[path], id(v) in copied) for path, v in ours.items()]

    def reset(self):
        """Copies the source's weights (after a restore or at the start)."""
        for average, variable, _ in self._pairs:
            average.assign(variable)

    def update(self, step):
        """One averaging step after generator update `step` (in a replica context)."""
        decay = tf.where(step > self.start, self.decay, 0.0)

        def update(strategy):
            for average, variable, copied in self._pairs:
                d = 0.0 if copied else decay

                def assign(e, v, d=d):
                    return e.assign(d * e + (1.0 - d) * tf.cast(v, e.dtype))

                strategy.extended.update(average.value, assign, args=(variable.value,))

        tf.distribute.get_replica_context().merge_call(update)
