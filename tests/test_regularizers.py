"""SAGAN's pluggable parts: a new regularizer is one class, the EMA asks the layers
what to copy, and each object checks its own arguments."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import checkpoints, ema, losses, regularizers
from sagan_tf.errors import ArgumentError
from sagan_tf.gan import SAGAN
from sagan_tf.layers import SpectralNormalization
from sagan_tf.models.dcgan import DCGANDiscriminator, DCGANGenerator


def _models():
    keras.utils.set_random_seed(0)
    return (DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(8,)),
            DCGANDiscriminator(16, base_channels=8, attention_resolutions=()))


class ConstantPenalty(regularizers.Regularizer):
    """A regularizer written outside the package: a term of 3 per example, weighted,
    and a count of the steps it saw as its state."""

    group = "constant"

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def build(self):
        self.steps = regularizers.state_variable("steps")
        self.state = {"steps": self.steps}
        self.tracker = keras.metrics.Mean(name="constant")

    def d_term(self, real_logits, fake_logits):
        return 3.0 * tf.ones_like(tf.cast(real_logits, tf.float32))

    def after_step(self, real_logits, step):
        self.steps.assign_add(1.0)


def test_a_new_regularizer_is_one_class(tmp_path):
    images = tf.random.stateless_uniform([4, 16, 16, 3], seed=[1, 2], minval=-1, maxval=1)
    penalty = ConstantPenalty(weight=2.0)
    logs = {}
    for name, extra in (("plain", []), ("penalized", [penalty])):
        gan = SAGAN(*_models(), seed=1, regularizers=extra)
        gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        gan.build_optimizers()
        logs[name] = gan.train_step((images, tf.zeros([4], tf.int32)))
    # The same models and draws: D's loss grows by weight * 3, the rest is equal.
    np.testing.assert_allclose(logs["penalized"]["d_loss"], logs["plain"]["d_loss"] + 6.0,
                               rtol=1e-6)
    np.testing.assert_allclose(logs["penalized"]["d_real"], logs["plain"]["d_real"], rtol=1e-6)
    assert float(logs["penalized"]["constant"]) == 3.0 and "constant" not in logs["plain"]
    assert float(penalty.steps.numpy()) == 1.0
    assert gan.regularizer_state == {"constant/steps": penalty.steps}
    # Checkpointed under its group, and restored by name.
    path = checkpoints.make_checkpoint(gan).save(str(tmp_path / "ckpt"))
    assert checkpoints.saved_names(path)["constant"] == ["steps"]
    penalty.steps.assign(7.0)
    checkpoints.restore(lambda layout: checkpoints.checkpoint_objects(gan, layout), path, "it")
    assert float(penalty.steps.numpy()) == 1.0


class Doubled(keras.layers.Layer):
    """A layer with a state that an average must not touch."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        self.counter = self.add_weight(name="counter", shape=(), initializer="zeros",
                                       trainable=False)

    @property
    def ema_copied_weights(self):
        return [self.counter]

    def call(self, x):
        return x * self.scale


def test_the_ema_averages_what_the_layers_do_not_ask_to_copy():
    g, _ = _models()
    g.build()
    average = ema.EMA(g, decay=0.5)
    average.build()
    copied = ema.ema_copied_weights(average.model)
    spectral = [layer for layer in average.model._flatten_layers()
                if isinstance(layer, SpectralNormalization)]
    assert {id(v) for v in copied} == {id(s.u) for s in spectral}
    assert len(copied) == sum(v.path.endswith("/u") for v in average.model.weights) >= 2
    average.reset()
    before = {path: np.asarray(v) for path, v in checkpoints.weights_by_path(g).items()}
    for variable in g.weights:
        variable.assign(variable + 1.0)
    average.update(tf.constant(1, tf.int64))  # after step 1 > start 0: decay 0.5
    copied_ids = {id(v) for v in copied}
    for path, variable in checkpoints.weights_by_path(average.model).items():
        expected = before[path] + (1.0 if id(variable) in copied_ids else 0.5)
        np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-6, atol=1e-6,
                                   err_msg=path)
    # Any layer can ask.
    model = keras.Sequential([keras.Input((2,)), Doubled(name="doubled")])
    assert [v.path for v in ema.ema_copied_weights(model)] == ["sequential/doubled/counter"]


@pytest.mark.parametrize("make,argument", [
    (lambda: regularizers.ADA(target=1.0), "target"),
    (lambda: regularizers.ADA(kimg=0), "kimg"),
    (lambda: regularizers.ADA(interval=0), "interval"),
    (lambda: regularizers.ADA(transforms="shear"), "transforms"),
    (lambda: regularizers.LeCam(weight=-1), "weight"),
    (lambda: regularizers.LeCam(decay=1.0), "decay"),
    (lambda: regularizers.DiffAugment("ada"), "policies"),
    (lambda: regularizers.DiffAugment("blur"), "policies"),
    (lambda: ema.EMA(None, decay=1.0), "decay"),
    (lambda: ema.EMA(None, decay=0.9, start=-1), "start"),
    (lambda: losses.WassersteinGP(-2.0), "penalty_weight"),
    (lambda: SAGAN(*_models(), d_steps=0), "d_steps"),
    (lambda: SAGAN(*_models(), fake_labels="random"), "fake_labels"),
])
def test_each_object_checks_its_own_arguments(make, argument):
    with pytest.raises(ArgumentError, match=f"argument `{argument}` ") as info:
        make()
    assert info.value.argument == argument
