"""PointwiseConv2D: a 1x1 Conv2D computed as a matmul, interchangeable with Conv2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import PointwiseConv2D, SpectralNormalization
from tests.layer_test_util import check_layer


def _x(shape=(3, 5, 6, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _numpy_reference(layer, x):
    kernel = np.asarray(layer.kernel)[0, 0]  # (C, F)
    return np.einsum("bhwc,cf->bhwf", x, kernel) + np.asarray(layer.bias)


def test_shared_checks_and_numpy_reference(tmp_path):
    check_layer(PointwiseConv2D, dict(filters=4, activation="relu"), [_x()], [(3, 5, 6, 4)],
                tmp_path, reference_fn=lambda layer, x: np.maximum(_numpy_reference(layer, x), 0),
                prepare=lambda layer: layer.bias.assign(np.linspace(-1, 1, 4)))


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_values_and_gradients_equal_conv2d(spectral_norm):
    """Same weights, same outputs and gradients as `keras.layers.Conv2D(filters, 1)`, also
    inside `SpectralNormalization` (which calls the layer's `convolution_op`)."""
    x = tf.constant(_x(seed=1))
    layers = []
    for cls in (PointwiseConv2D, keras.layers.Conv2D):
        conv = cls(5, 1, kernel_initializer="he_normal", bias_initializer="random_normal")
        layer = SpectralNormalization(conv) if spectral_norm else conv
        layer.build(x.shape)
        layers.append(layer)
    for a, b in zip(layers[0].weights, layers[1].weights):
        assert a.path.split("/")[-1] == b.path.split("/")[-1] and a.shape == b.shape
        a.assign(b)
    outs, grads = [], []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        outs.append(np.asarray(y))
        grads.append([np.asarray(g) for g in tape.gradient(loss, [x] + layer.trainable_weights)])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    for g_pointwise, g_conv in zip(*grads):
        np.testing.assert_allclose(g_pointwise, g_conv, atol=1e-4)


def test_unknown_batch_and_channels_first():
    layer = PointwiseConv2D(3)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, 4, 4, 2])])
    assert fn(tf.ones([7, 4, 4, 2])).shape == (7, 4, 4, 3)
    first = PointwiseConv2D(3, data_format="channels_first")
    assert first(tf.ones([2, 2, 4, 5])).shape == (2, 3, 4, 5)


def test_loads_a_conv2d_config():
    config = keras.layers.Conv2D(6, 1, padding="same", name="c").get_config()
    layer = PointwiseConv2D.from_config(config)
    assert layer.kernel_size == (1, 1) and layer.filters == 6


@pytest.mark.parametrize("kwargs,name", [
    (dict(kernel_size=3), "kernel_size"),
    (dict(strides=2), "strides"),
    (dict(dilation_rate=(1, 2)), "dilation_rate"),
    (dict(groups=2), "groups"),
])
def test_rejects_what_is_not_pointwise(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}` must be 1"):
        PointwiseConv2D(4, **kwargs)
