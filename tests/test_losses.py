import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import losses

REAL = tf.constant([2.0, 0.5, -1.0])
FAKE = tf.constant([-2.0, 0.0, 1.5])


def test_hinge():
    # relu(1 - [2, .5, -1]) = [0, .5, 2]; relu(1 + [-2, 0, 1.5]) = [0, 1, 2.5]
    np.testing.assert_allclose(losses.hinge_d(REAL, FAKE), [0.0, 1.5, 4.5])
    np.testing.assert_allclose(losses.hinge_g(FAKE), [2.0, 0.0, -1.5])


def test_non_saturating():
    log1pexp = lambda v: np.log1p(np.exp(v))  # noqa: E731
    expected_d = [log1pexp(-2.0) + log1pexp(-2.0), log1pexp(-0.5) + np.log(2), log1pexp(1.0) + log1pexp(1.5)]
    np.testing.assert_allclose(losses.ns_d(REAL, FAKE), expected_d, rtol=1e-6)
    # -log(sigmoid(0)) = log 2
    np.testing.assert_allclose(losses.ns_g(tf.constant([0.0])), [np.log(2.0)], rtol=1e-6)


def test_wgan():
    np.testing.assert_allclose(losses.wgan_d(REAL, FAKE), [-4.0, -0.5, 2.5])
    np.testing.assert_allclose(losses.wgan_g(FAKE), [2.0, 0.0, -1.5])


def test_gradient_penalty_of_linear_critic():
    # D(x) = sum(w * x): grad is w everywhere, penalty = (|w| - 1)^2.
    w = tf.constant(np.full((1, 2, 2, 1), 1.5, "float32"))  # |w| = 3
    critic = lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3])  # noqa: E731
    real = tf.random.normal([2, 2, 2, 1])
    fake = tf.random.normal([2, 2, 2, 1])
    gp = losses.gradient_penalty(critic, real, fake, tf.constant([0.3, 0.9]))
    np.testing.assert_allclose(gp, [4.0, 4.0], rtol=1e-5)


def test_gradient_penalty_of_quadratic_critic():
    # D(x) = 0.5 |x|^2: grad = x_hat, penalty = (|x_hat| - 1)^2.
    real = tf.constant(np.ones((1, 1, 1, 4), "float32"))  # |real| = 2
    fake = tf.zeros((1, 1, 1, 4))
    critic = lambda x: 0.5 * tf.reduce_sum(x * x, axis=[1, 2, 3])  # noqa: E731
    gp = losses.gradient_penalty(critic, real, fake, tf.constant([0.25]))  # |x_hat| = 0.5
    np.testing.assert_allclose(gp, [0.25], rtol=1e-5)


def test_get_builds_the_named_loss_object():
    hinge = losses.get("hinge")
    assert isinstance(hinge, losses.Hinge) and not hinge.penalized
    assert (hinge.d, hinge.g) == (losses.hinge_d, losses.hinge_g)
    ns = losses.get("ns")
    assert (ns.d, ns.g) == (losses.ns_d, losses.ns_g)
    wgan = losses.get("wgan_gp", penalty_weight=5.0)
    assert wgan.penalized and wgan.penalty_weight == 5.0 and wgan.d is losses.wgan_d
    assert losses.WassersteinGP().penalty_weight == 10.0
    with pytest.raises(ValueError, match="hinge, ns, wgan_gp; got 'lsgan'"):
        losses.get("lsgan")
    with pytest.raises(ValueError, match="`penalty_weight` must be >= 0; got -1"):
        losses.WassersteinGP(-1)
