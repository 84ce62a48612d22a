"""Adaptive discriminator augmentation (ADA) for training on few images.

Every image D sees, real or generated, in the D and the G updates, passes
through a pipeline of differentiable transformations; each transformation is
drawn for each image with probability `p`. `p` starts at 0 and follows the
overfitting heuristic r_t = E[sign(D(x_real))]: every few steps it moves by
`sign(r_t - target) * images / speed_images`, so D's confidence on real
images is held near `target` (0.6 in StyleGAN2-ADA). The transformations are
chosen so that at p < 1 they do not leak into G's samples: a flip, a quarter
turn or a shift of a real image looks like another plausible image, and a
drawn x-flip or rotation may be the identity itself.

Pipeline, in order (images in [-1, 1], (B, S, S, C)):
  - `xflip`: mirror left-right with probability 1/2 (when drawn);
  - `rotate90`: rotate by k quarter turns, k uniform in {0, 1, 2, 3};
  - `translate`: integer shift of up to 1/8 of the size along each axis,
    reflect-padded;
  - `scale`: isotropic zoom about the center by a log-normal factor
    (std 0.2 ln 2), bilinear, reflect-padded;
  - `brightness`: + N(0, 0.2);
  - `contrast`: x log-normal (std 0.5 ln 2), about 0 (mid-grey);
  - `saturation`: the deviation from the pixel's channel mean x log-normal
    (std ln 2) (no effect on 1-channel images);
  - `cutout`: a zeroed square of half the size at a uniform position.

Randomness is stateless, as in `sagan_tf.augment`: `draw(batch, size, p, seed)`
gives every parameter of a global batch from one seed (parameters of images
whose transformation was not drawn are the identity's), and `apply(images,
params)` is pure and differentiable with respect to `images`; it returns the
images unchanged, bit for bit, where nothing was drawn.

Reference:
    Karras, Aittala, Hellsten, Laine, Lehtinen, Aila, "Training Generative
    Adversarial Networks with Limited Data", NeurIPS 2020, arXiv:2006.06676.
"""

import math

import tensorflow as tf

from sagan_tf import augment
from sagan_tf.names import ADA_TRANSFORMS as TRANSFORMS
from sagan_tf.names import ADA_INTERVAL as INTERVAL  # steps between adjustments of p
from sagan_tf.names import ADA_TARGET as TARGET  # StyleGAN2-ADA's r_t target

TRANSLATE_RATIO = 0.125
SCALE_STD = 0.2 * math.log(2.0)
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5 * math.log(2.0)
SATURATION_STD = math.log(2.0)
CUTOUT_RATIO = 0.5


def parse_transforms(text):
    """`"xflip,translate"` -> `("xflip", "translate")` in pipeline order; raises
    ValueError naming an unknown one, or for none."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown or not names:
        problem = f"unknown transformation {unknown[0]!r}" if unknown else "none given"
        raise ValueError(f"{problem}; use a comma-separated subset of {','.join(TRANSFORMS)}")
    return tuple(t for t in TRANSFORMS if t in names)


def draw(batch, size, p, seed, transforms=TRANSFORMS):
    """Parameters of the pipeline for `batch` images of `size` x `size`, each
    transformation of `transforms` drawn with probability `p` (a float scalar;
    the others never).

    Returns a dict of (batch, ...) tensors, one entry per transformation plus
    `<name>_on` (bool, (batch,)): whether it was drawn. Slicing every entry by the
    same rows gives the parameters of those images.
    """
    p = tf.cast(p, tf.float32)
    params = {}
    for i, name in enumerate(TRANSFORMS):
        drawn = tf.random.stateless_uniform([batch], augment.fold(seed, i)) < p
        params[f"{name}_on"] = drawn & (name in transforms)

    def uniform(i, shape, **kwargs):
        return tf.random.stateless_uniform(shape, augment.fold(seed, 100 + i), **kwargs)

    def normal(i, shape):
        return tf.random.stateless_normal(shape, augment.fold(seed, 100 + i))

    def where(name, value, identity):
        on = tf.reshape(params[f"{name}_on"], [batch] + [1] * (value.shape.rank - 1))
        return tf.where(on, value, tf.cast(identity, value.dtype))

    params["xflip"] = where("xflip", uniform(0, [batch]) < 0.5, False)
    params["rotate90"] = where("rotate90", uniform(1, [batch], maxval=4, dtype=tf.int32), 0)
    shift = int(size * TRANSLATE_RATIO + 0.5)
    params["translate"] = where("translate", uniform(2, [batch, 2], minval=-shift,
                                                     maxval=shift + 1, dtype=tf.int32), 0)
    params["scale"] = where("scale", tf.exp(normal(3, [batch]) * SCALE_STD), 1.0)
    params["brightness"] = where("brightness", normal(4, [batch]) * BRIGHTNESS_STD, 0.0)
    params["contrast"] = where("contrast", tf.exp(normal(5, [batch]) * CONTRAST_STD), 1.0)
    params["saturation"] = where("saturation", tf.exp(normal(6, [batch]) * SATURATION_STD), 1.0)
    params["cutout"] = uniform(7, [batch, 2], maxval=size, dtype=tf.int32)  # the square's center
    return params


def reflect(coords, size):
    """Coordinates folded into [0, size - 1] by mirroring at the borders (the
    border pixel not repeated): -1 -> 1, size -> size - 2."""
    period = 2.0 * (size - 1)
    u = tf.math.floormod(coords, period)
    return tf.where(u > size - 1, period - u, u)


def _resample(x, rows, cols):
    """Bilinear resampling of `x` (B, S, S, C) at source coordinates `rows` and
    `cols` (B, S) (already inside [0, S - 1]): out[b, i, j] = x[b, rows[b, i],
    cols[b, j]], interpolated. Integer coordinates copy pixels exactly."""
    size = x.shape[1]
    grid = tf.range(size, dtype=rows.dtype)[None, None, :]  # (1, 1, S)

    def weights(coords):  # (B, S, S): output index, source index
        return tf.cast(tf.nn.relu(1.0 - tf.abs(coords[:, :, None] - grid)), x.dtype)

    x = tf.einsum("bik,bkjc->bijc", weights(rows), x)  # rows resampled
    return tf.einsum("bjk,bikc->bijc", weights(cols), x)  # then columns


def apply(images, params):
    """`images` (B, S, S, C) float transformed with `params` (rows matching the
    images); differentiable with respect to `images`."""
    x = images
    dtype = x.dtype
    size = x.shape[1]

    def where(name, transformed, current):
        return tf.where(params[f"{name}_on"][:, None, None, None], transformed, current)

    def per_image(name):
        return tf.cast(params[name], dtype)[:, None, None, None]  # (B, 1, 1, 1)

    # x-flip, rotation, shift and scale of images where they were not drawn are the
    # identity (no flip, k = 0, shift 0, scale 1: integer coordinates, exact copies).
    x = tf.where(params["xflip"][:, None, None, None], tf.reverse(x, [2]), x)
    turned = tf.transpose(x, [0, 2, 1, 3])
    turns = tf.stack([x, tf.reverse(turned, [1]), tf.reverse(x, [1, 2]),
                      tf.reverse(turned, [2])], axis=1)  # (B, 4, S, S, C): k = 0, 1, 2, 3
    x = tf.gather(turns, params["rotate90"], axis=1, batch_dims=1)
    positions = tf.range(size, dtype=tf.float32)[None, :]  # (1, S)
    shift = tf.cast(params["translate"], tf.float32)  # (B, 2): rows, columns
    x = _resample(x, reflect(positions - shift[:, :1], size),
                  reflect(positions - shift[:, 1:], size))
    center = (size - 1) / 2.0
    source = reflect(center + (positions - center) / params["scale"][:, None], size)  # (B, S)
    x = _resample(x, source, source)
    x = where("brightness", x + per_image("brightness"), x)
    x = where("contrast", x * per_image("contrast"), x)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)  # (B, S, S, 1)
    x = where("saturation", (x - mean) * per_image("saturation") + mean, x)
    inside = augment.cutout_square(params["cutout"], size, CUTOUT_RATIO)  # (B, S, S, 1)
    x = where("cutout", x * tf.cast(~inside, dtype), x)
    return x


def adjust(p, r_t, target, images, speed_images):
    """The next p: `p + sign(r_t - target) * images / speed_images`, clipped to
    [0, 1]; `images` real images were seen since the last adjustment and
    `speed_images` is how many it takes p to go from 0 to 1 at most."""
    step = tf.sign(tf.cast(r_t, tf.float32) - target) * (images / speed_images)
    return tf.clip_by_value(tf.cast(p, tf.float32) + step, 0.0, 1.0)
