"""Adaptive augmentation (sagan_tf.ada) and LeCam: each transformation against
NumPy, identity at p = 0, gradients, p's update rule, the regularizer's formula."""

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import ada, augment, losses

SIZE = 16


def _images(b=6, c=3, seed=0):
    return tf.random.stateless_uniform([b, SIZE, SIZE, c], seed=[seed, 7], minval=-1, maxval=1)


def _params(name, seed=1, b=6):
    """`name` drawn for every image (p = 1), nothing else."""
    return ada.draw(b, SIZE, 1.0, [seed, 3], transforms=(name,))


def _reflect(i, n):
    """NumPy mirror indexing: -1 -> 1, n -> n - 2."""
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i > n - 1, period - i, i)


def _bilinear_rows(img, coords):
    """img resampled along axis 0 at float `coords`, linear interpolation."""
    lo = np.floor(coords).astype(int)
    hi = np.minimum(lo + 1, img.shape[0] - 1)
    frac = (coords - lo)[:, None, None]
    return (1 - frac) * img[lo] + frac * img[hi]


def _numpy(name, x, p):
    """The NumPy version of one transformation with parameters `p` (rows of x)."""
    out = x.copy()
    n = x.shape[1]
    for b in range(len(x)):
        if name == "xflip" and p["xflip"][b]:
            out[b] = x[b, :, ::-1]
        elif name == "rotate90":
            out[b] = np.rot90(x[b], p["rotate90"][b], axes=(0, 1))
        elif name == "translate":
            ty, tx = p["translate"][b]
            pad = np.pad(x[b], ((3, 3), (3, 3), (0, 0)), mode="reflect")
            out[b] = pad[3 - ty:3 - ty + n, 3 - tx:3 - tx + n]
        elif name == "scale":
            c = (n - 1) / 2
            src = _reflect(c + (np.arange(n) - c) / p["scale"][b], n)
            rows = _bilinear_rows(x[b], src)
            out[b] = _bilinear_rows(rows.transpose(1, 0, 2), src).transpose(1, 0, 2)
        elif name == "brightness":
            out[b] = x[b] + p["brightness"][b]
        elif name == "contrast":
            out[b] = x[b] * p["contrast"][b]
        elif name == "saturation":
            mean = x[b].mean(axis=2, keepdims=True)
            out[b] = (x[b] - mean) * p["saturation"][b] + mean
        elif name == "cutout":
            cut = n // 2
            r, col = p["cutout"][b] - cut // 2
            out[b, max(r, 0):max(r + cut, 0), max(col, 0):max(col + cut, 0)] = 0
    return out


@pytest.mark.parametrize("name", ada.TRANSFORMS)
def test_each_transformation_at_p_1_matches_numpy(name):
    x = _images()
    params = _params(name)
    assert np.all(params[f"{name}_on"])
    expected = _numpy(name, x.numpy().astype(np.float64),
                      {k: np.asarray(v) for k, v in params.items()})
    got = ada.apply(x, params).numpy()
    np.testing.assert_allclose(got, expected, atol=2e-6)
    if name not in ("xflip", "rotate90"):  # these may draw the identity for an image
        assert np.all(np.any(np.abs(got - x.numpy()) > 1e-4, axis=(1, 2, 3)))


def test_the_draws_vary_and_stay_in_their_ranges():
    p = {k: np.asarray(v) for k, v in ada.draw(4096, 32, 1.0, [5, 6]).items()}
    assert 0.45 < p["xflip"].mean() < 0.55
    assert set(np.unique(p["rotate90"])) == {0, 1, 2, 3}
    assert p["translate"].min() == -4 and p["translate"].max() == 4  # 1/8 of 32
    np.testing.assert_allclose(np.log(p["scale"]).std(), ada.SCALE_STD, rtol=0.05)
    np.testing.assert_allclose(p["brightness"].std(), ada.BRIGHTNESS_STD, rtol=0.05)
    np.testing.assert_allclose(np.log(p["contrast"]).std(), ada.CONTRAST_STD, rtol=0.05)
    np.testing.assert_allclose(np.log(p["saturation"]).std(), ada.SATURATION_STD, rtol=0.05)


def test_p_0_is_the_identity_and_p_sets_how_often_each_transformation_is_drawn():
    x = _images(b=64, c=1)
    none = ada.draw(64, SIZE, 0.0, [2, 2])
    assert not any(np.any(v) for k, v in none.items() if k.endswith("_on"))
    np.testing.assert_array_equal(ada.apply(x, none).numpy(), x.numpy())
    some = ada.draw(20000, SIZE, 0.3, [2, 3])
    for name in ada.TRANSFORMS:
        assert 0.28 < np.mean(some[f"{name}_on"]) < 0.32, name


def test_rows_of_a_global_draw_slice_consistently():
    x = _images(b=8)
    params = ada.draw(8, SIZE, 0.7, [4, 4])
    whole = ada.apply(x, params).numpy()
    half = ada.apply(x[4:], {k: v[4:] for k, v in params.items()}).numpy()
    np.testing.assert_array_equal(half, whole[4:])


@pytest.mark.parametrize("name", ada.TRANSFORMS)
def test_gradients_reach_the_images_through_each_transformation(name):
    """Each transformation is affine in the images: the gradient of <w, T(x)> is
    T's transpose applied to w; checked along a random direction."""
    x = tf.cast(_images(b=4), tf.float64)
    params = _params(name, b=4)
    w = tf.cast(_images(b=4, seed=1), tf.float64)
    v = tf.cast(_images(b=4, seed=2), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        objective = tf.reduce_sum(w * ada.apply(x, params))
    grad = tape.gradient(objective, x)
    assert grad is not None and np.all(np.isfinite(grad.numpy()))
    directional = tf.reduce_sum(w * (ada.apply(x + v, params) - ada.apply(x, params)))
    np.testing.assert_allclose(tf.reduce_sum(grad * v).numpy(), directional.numpy(), rtol=1e-9)
    assert np.abs(grad.numpy()).sum() > 0


def test_p_moves_towards_the_target_by_images_over_speed_and_stays_in_0_1():
    p = 0.0
    for r_t, expected in ((0.9, 0.25), (0.7, 0.5), (0.2, 0.25), (-1.0, 0.0), (-1.0, 0.0),
                          (1.0, 0.25), (1.0, 0.5), (1.0, 0.75), (1.0, 1.0), (1.0, 1.0)):
        p = float(ada.adjust(p, r_t, 0.6, 256, 1024))
        assert p == pytest.approx(expected)


def test_ada_does_not_combine_with_fixed_policies():
    assert augment.parse("ada") == ("ada",)
    with pytest.raises(ValueError, match="does not combine"):
        augment.parse("ada,translation")


def test_lecam_follows_its_formula():
    real = np.array([1.5, -0.2, 0.3, 2.0], np.float32)
    fake = np.array([-1.0, 0.4, -0.3, 0.0], np.float32)
    ema_real, ema_fake = 0.5, -0.25
    expected = (np.maximum(real - ema_fake, 0) ** 2 + np.maximum(ema_real - fake, 0) ** 2)
    np.testing.assert_allclose(losses.lecam(real, fake, ema_real, ema_fake).numpy(), expected,
                               rtol=1e-6)


def _tiny_gan(**kwargs):
    import keras

    from sagan_tf.gan import SAGAN
    from sagan_tf.models.dcgan import DCGANDiscriminator, DCGANGenerator

    from sagan_tf.config import TrainingConfig

    gan = SAGAN(DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=()),
                DCGANDiscriminator(16, base_channels=8, attention_resolutions=()),
                **TrainingConfig(**kwargs).objectives())
    gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
    gan.build_optimizers()
    return gan


def test_p_follows_a_scripted_sequence_of_discriminator_outputs():
    """r_t over each interval of 2 steps (two D updates a step, 4 images each); p
    moves by 16 images / 80 towards the side r_t says, and holds between adjustments."""
    gan = _tiny_gan(augment="ada", ada_target=0.6, ada_interval=2, ada_kimg=0.08)
    script = [  # D(real) of the two D updates of each step
        ([1, 2, 3, 4], [1, 1, 1, -1]),  # r_t over steps 1-2: (4 + 2 + 4 + 4) / 16 = 0.875
        ([1, 2, 3, 4], [1, 1, 1, 1]),
        ([-1, 2, 3, 4], [1, -1, 1, -1]),  # steps 3-4: (2 + 0 - 4 + 0) / 16 = -0.125
        ([-1, -2, -3, -4], [1, 1, -1, -1]),
        ([1, 2, 3, 0.5], [1, 1, 1, 1]),  # steps 5-6: 16 / 16 = 1
        ([1, 2, 3, 4], [1, 1, 1, 1]),
    ]
    expected = {2: (0.2, 0.875), 4: (0.0, -0.125), 6: (0.2, 1.0)}
    for step, logits in enumerate(script, start=1):
        ada_ = gan.augmentation  # after the step's G update:
        ada_.after_step([tf.constant(v, tf.float32) for v in logits], tf.constant(step, tf.int64))
        if step in expected:
            p, r_t = expected[step]
            assert float(ada_.p.numpy()) == pytest.approx(p)
            assert float(ada_.r_t.numpy()) == pytest.approx(r_t)
            assert float(ada_.count.numpy()) == 0.0
        else:
            assert float(ada_.count.numpy()) == 8.0


def test_lecam_averages_move_towards_the_global_mean_outputs():
    gan = _tiny_gan(lecam_weight=0.3, lecam_decay=0.9)
    (lecam,) = gan.regularizers
    for _ in range(2):
        lecam.after_d_update(tf.constant([1.0, 3.0]), tf.constant([-2.0, 0.0]), global_batch=2)
    assert float(lecam.ema_real.numpy()) == pytest.approx(2.0 * (1 - 0.9**2))
    assert float(lecam.ema_fake.numpy()) == pytest.approx(-1.0 * (1 - 0.9**2))
    assert gan.regularizer_state == {"lecam/ema_real": lecam.ema_real,
                                     "lecam/ema_fake": lecam.ema_fake}


@pytest.mark.parametrize("options,message", [
    (dict(augment="ada", ada_target=1.5), r"--ada_target: must be in \(0, 1\); got 1.5"),
    (dict(augment="ada", ada_target=0.0), r"--ada_target: must be in \(0, 1\); got 0.0"),
    (dict(lecam_weight=-0.1), "--lecam_weight: must be >= 0; got -0.1"),
    (dict(augment="ada,translation"), "--augment: ada .* does not combine with the fixed "
                                      r"policies \(translation\)"),
    (dict(ada_kimg=0.0), "--ada_kimg: must be > 0"),
    (dict(train_subset=-1), "--train_subset must be >= 0"),
    (dict(ada_transforms="xflip,shear"), "--ada_transforms: unknown transformation 'shear'; "
                                         "use a comma-separated subset of xflip,rotate90"),
    (dict(ada_transforms=""), "--ada_transforms: none given"),
])
def test_bad_regularization_options_are_one_line(options, message):
    from sagan_tf.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_flat(**options)


def test_a_subset_of_transformations_draws_only_those():
    assert ada.parse_transforms("cutout, xflip") == ("xflip", "cutout")
    params = ada.draw(512, SIZE, 1.0, [1, 1], transforms=ada.parse_transforms("translate,scale"))
    drawn = {name for name in ada.TRANSFORMS if np.any(params[f"{name}_on"])}
    assert drawn == {"translate", "scale"}
    gan = _tiny_gan(augment="ada", ada_transforms="translate,scale")
    assert gan.augmentation.transforms == ("translate", "scale")
