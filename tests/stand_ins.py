"""Stand-ins for files no test machine can download, and small made-up image folders."""

import numpy as np
import tensorflow as tf

P = np.random.default_rng(0).normal(size=(3, 2048)).astype(np.float32)
W = np.random.default_rng(1).normal(size=(2048, 1008)).astype(np.float32) * 0.01
B = np.random.default_rng(2).normal(size=(1008,)).astype(np.float32)


def stand_in_graph(path, names=("ExpandDims", "pool_3", "softmax/weights", "softmax/biases")):
    """A small GraphDef with the FID Inception graph's tensor names.

    pool_3 = mean over pixels of ((x - 128) / 128) @ P + height / 299, so the test
    can check the value range and the 299 resize the loader must apply.
    """
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 3], name=names[0])
        normalized = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1.0 / 128, name="Mul")
        mean = tf.reduce_mean(normalized, axis=[1, 2])  # (B, 3)
        height = tf.cast(tf.shape(x)[1], tf.float32) / 299.0
        pool = tf.reshape(tf.matmul(mean, P) + height, [-1, 1, 1, 2048], name=names[1])
        tf.constant(W, name=names[2])
        tf.constant(B, name=names[3])
        del pool
    with open(path, "wb") as f:
        f.write(graph.as_graph_def().SerializeToString())
    return path


def shapes_folder(root, per_class=25, seed=0):
    """A labelled folder of three drawn classes (red discs, blue squares, green bars) of
    random size and place on a transparent background, as RGBA PNGs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    for name, colour in (("discs", (220, 30, 30)), ("squares", (30, 60, 220)),
                         ("bars", (30, 180, 40))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cy, cx, r = rng.integers(14, 26), rng.integers(14, 26), rng.integers(6, 12)
            if name == "discs":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            elif name == "squares":
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            else:
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= 2)
            rgba = np.zeros((40, 40, 4), np.uint8)
            rgba[..., :3] = rng.integers(0, 256, 3)  # the colour stored under transparency
            rgba[mask] = (*colour, 255)
            Image.fromarray(rgba, "RGBA").save(root / name / f"{i}.png")
    return root
