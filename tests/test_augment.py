import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import augment
from sagan_tf.models import DCGANDiscriminator, DCGANGenerator


def _images(b=4, s=16, c=3, seed=0):
    return tf.random.stateless_uniform([b, s, s, c], seed=[seed, 1], minval=-1, maxval=1)


def test_parse_orders_policies_and_names_an_unknown_one():
    assert augment.parse("cutout, translation") == ("translation", "cutout")
    assert augment.parse("") == ()
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        augment.parse("translation,flip")


def test_translation_matches_a_numpy_shift_with_zero_padding():
    x = _images()
    params = augment.draw(("translation",), 4, 16, tf.constant([5, 6]))
    shifts = params["translation"].numpy()
    assert np.abs(shifts).max() <= 2 and len(np.unique(shifts)) > 1  # 16 * 1/8 = 2
    out = augment.apply(x, ("translation",), params).numpy()
    for i, (dy, dx) in enumerate(shifts):
        padded = np.pad(x[i].numpy(), ((1, 1), (1, 1), (0, 0)))
        rows = np.clip(np.arange(16) + dy + 1, 0, 17)
        cols = np.clip(np.arange(16) + dx + 1, 0, 17)
        np.testing.assert_array_equal(out[i], padded[rows][:, cols])
        if dy == dx == 0:
            np.testing.assert_array_equal(out[i], x[i].numpy())


def test_cutout_zeroes_one_half_size_square_per_image():
    x = tf.ones([16, 16, 16, 1])
    params = augment.draw(("cutout",), 16, 16, tf.constant([1, 2]))
    out = augment.apply(x, ("cutout",), params).numpy()[..., 0]
    for i, (cy, cx) in enumerate(params["cutout"].numpy()):
        expected = np.ones((16, 16))
        expected[max(cy - 4, 0):max(cy + 4, 0), max(cx - 4, 0):max(cx + 4, 0)] = 0
        np.testing.assert_array_equal(out[i], expected)
    assert 0 < (out == 0).mean() <= 0.25


def test_color_follows_its_formula():
    x = _images(c=3)
    params = augment.draw(("color",), 4, 16, tf.constant([3, 4]))
    out = augment.apply(x, ("color",), params).numpy()
    b, s, c = (params[k].numpy() for k in ("brightness", "saturation", "contrast"))
    y = x.numpy() + b
    m = y.mean(axis=3, keepdims=True)
    y = (y - m) * s + m
    m = y.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (y - m) * c + m, rtol=1e-5, atol=1e-5)
    assert (-0.5 <= b).all() and (b <= 0.5).all() and (0 <= s).all() and (s <= 2).all()


def test_draws_depend_only_on_the_seed_and_rows_slice_consistently():
    policies = augment.POLICIES
    a = augment.draw(policies, 8, 16, tf.constant([7, 8]))
    b = augment.draw(policies, 8, 16, tf.constant([7, 8]))
    c = augment.draw(policies, 8, 16, tf.constant([7, 9]))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # Augmenting rows 4..8 with their rows of the parameters == rows 4..8 of the whole batch.
    x = _images(8)
    whole = augment.apply(x, policies, a)
    half = augment.apply(x[4:], policies, {k: v[4:] for k, v in a.items()})
    np.testing.assert_allclose(half, whole[4:], atol=1e-6)


def test_gradients_flow_to_the_generator_through_every_policy():
    g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(8,))
    d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=(4,))
    g.build()
    d.build()
    z = tf.random.stateless_normal([4, 8], seed=[0, 0])
    params = augment.draw(augment.POLICIES, 4, 16, tf.constant([0, 1]))
    with tf.GradientTape() as tape:
        fake = augment.apply(g(z, training=True), augment.POLICIES, params)
        loss = -tf.reduce_mean(d(fake, training=True))
    grads = tape.gradient(loss, g.trainable_variables)
    # (the attention convs get none while gamma is 0)
    kernels = [gr for gr, v in zip(grads, g.trainable_variables)
               if "kernel" in v.path and "attention" not in v.path]
    assert kernels and all(gr is not None and np.isfinite(gr).all() for gr in kernels)
    assert all(np.abs(gr).sum() > 0 for gr in kernels)
