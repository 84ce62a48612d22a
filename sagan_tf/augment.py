"""Differentiable augmentation (DiffAugment) for data-efficient GAN training.

D sees every image, real or generated, through the same random, differentiable
transformations, in the D update and in the G update; G's gradient flows back
through them. So D cannot memorise a small training set, and G is not pushed
to reproduce the augmentations (they are applied to its samples too).

Policies (Zhao, Liu, Lin, Zhu, Han 2020):
  - `color`: per-image brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)
    around the pixel's channel mean) and contrast (x U(0.5, 1.5) around the
    image mean);
  - `translation`: per-image integer shift of up to 1/8 of the size in each
    direction, zero padded;
  - `cutout`: per-image zeroed square of half the size at a random position.

Randomness is stateless: `draw(policies, batch, size, seed)` returns every
random parameter of a global batch from one seed, so the caller can give each
replica its own rows (replicas and resumed runs then see exactly the draws of
one uninterrupted device). `apply(images, policies, params)` is pure.

Reference:
    Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for Data-Efficient
    GAN Training", NeurIPS 2020, arXiv:2006.10738.
"""

import tensorflow as tf

from sagan_tf.names import AUGMENT_POLICIES as POLICIES

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


ADAPTIVE = "ada"  # `sagan_tf.ada`'s pipeline at an adaptive strength, instead of the policies


def parse(text):
    """`"translation,cutout"` -> `("translation", "cutout")`, in application order
    color, translation, cutout; `"ada"` -> `("ada",)`; raises ValueError naming an
    unknown policy, or `ada` combined with policies."""
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if ADAPTIVE in names:
        if len(set(names)) > 1:
            raise ValueError(f"ada adapts its own pipeline's strength; it does not combine "
                             f"with the fixed policies ({', '.join(n for n in names if n != ADAPTIVE)})")
        return (ADAPTIVE,)
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; use a comma-separated subset "
                         f"of {', '.join(POLICIES)}, or {ADAPTIVE} alone")
    return tuple(p for p in POLICIES if p in names)


def fold(seed, i):
    """The `i`-th stateless seed derived from `seed`."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int32), i)


def draw(policies, batch, size, seed):
    """Random parameters of `policies` for `batch` images of `size` x `size`.

    Returns a dict of (batch, ...) tensors; slicing every entry by the same rows
    gives the parameters of those images.
    """
    params = {}
    if "color" in policies:
        params["brightness"] = tf.random.stateless_uniform([batch, 1, 1, 1], fold(seed, 0)) - 0.5
        params["saturation"] = tf.random.stateless_uniform([batch, 1, 1, 1], fold(seed, 1)) * 2.0
        params["contrast"] = tf.random.stateless_uniform([batch, 1, 1, 1], fold(seed, 2)) + 0.5
    if "translation" in policies:
        shift = int(size * TRANSLATION_RATIO + 0.5)
        params["translation"] = tf.random.stateless_uniform(
            [batch, 2], fold(seed, 3), minval=-shift, maxval=shift + 1, dtype=tf.int32)
    if "cutout" in policies:
        cut = int(size * CUTOUT_RATIO + 0.5)
        params["cutout"] = tf.random.stateless_uniform(
            [batch, 2], fold(seed, 4), minval=0, maxval=size + (1 - cut % 2), dtype=tf.int32)
    return params


def apply(images, policies, params):
    """`images` (B, H, W, C) float, H == W, transformed by `policies` with `params`
    (rows matching the images); differentiable with respect to `images`."""
    x = images
    dtype = x.dtype
    size = x.shape[1]
    if "color" in policies:
        x = x + tf.cast(params["brightness"], dtype)
        mean = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - mean) * tf.cast(params["saturation"], dtype) + mean
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * tf.cast(params["contrast"], dtype) + mean
    if "translation" in policies:
        shift = params["translation"]  # (B, 2): rows, columns
        positions = tf.range(size)[None, :]  # (1, S)
        # Index into the image padded by one zero pixel on every side; indices
        # outside the image land on the padding.
        rows = tf.clip_by_value(positions + shift[:, :1] + 1, 0, size + 1)  # (B, S)
        cols = tf.clip_by_value(positions + shift[:, 1:] + 1, 0, size + 1)  # (B, S)
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])  # (B, S+2, S+2, C)
        x = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, S, S+2, C)
        x = tf.gather(x, cols, axis=2, batch_dims=1)  # (B, S, S, C)
    if "cutout" in policies:
        x = x * tf.cast(~cutout_square(params["cutout"], size, CUTOUT_RATIO), dtype)
    return x


def cutout_square(centers, size, ratio):
    """(B, S, S, 1) bool: inside each image's square of side `ratio * size` centred at
    `centers` (B, 2) (rows, columns; cut off at the borders)."""
    cut = int(size * ratio + 0.5)
    start = centers - cut // 2  # (B, 2): first row and column of the square
    positions = tf.range(size)[None, :]  # (1, S)
    in_rows = (positions >= start[:, :1]) & (positions < start[:, :1] + cut)  # (B, S)
    in_cols = (positions >= start[:, 1:]) & (positions < start[:, 1:] + cut)  # (B, S)
    return in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (B, S, S, 1)
