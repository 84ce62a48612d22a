"""Image grids and attention-map overlays (as in the SAGAN paper's figure)."""

import numpy as np
import tensorflow as tf


def to_uint8(images):
    """[-1, 1] float (N, H, W, C) -> uint8 (N, H, W, 3)."""
    images = np.asarray(images, np.float32)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, columns=None, pad=1):
    """uint8 or [-1, 1] images (N, H, W, C) -> one uint8 grid image (rows*H, cols*W, 3)."""
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h,
             pad + col * (w + pad):pad + col * (w + pad) + w] = image
    return grid


def write_png(path, image):
    tf.io.write_file(path, tf.io.encode_png(tf.convert_to_tensor(image, tf.uint8)))


def default_queries(size):
    """A few query pixels (row, col) of a size x size feature map."""
    return [(int(size * fy), int(size * fx)) for fy, fx in ((0.3, 0.3), (0.5, 0.65), (0.75, 0.4))]


def attention_panels(images, attention, queries=None, min_size=128):
    """Where each query pixel looks, overlaid on the images.

    Args:
        images: (B, H, W, C) in [-1, 1].
        attention: (B, N, N_key) rows summing to 1, N and N_key square numbers.
        queries: (row, col) positions in the N-grid; default `default_queries`.
    Returns:
        uint8 (B * (1 + Q), H, W, 3): per image, the image with the query
        pixels marked, then one heat-map overlay per query.
    """
    images = to_uint8(images)
    scale = max(1, min_size // images.shape[1])  # small images: nearest upscaling
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    attention = np.asarray(attention, np.float32)
    b, h, w, _ = images.shape
    q_side = int(round(np.sqrt(attention.shape[1])))
    k_side = int(round(np.sqrt(attention.shape[2])))
    queries = queries or default_queries(q_side)
    colors = np.array([[0, 255, 0], [0, 128, 255], [255, 0, 255]], np.uint8)
    panels = []
    for i in range(b):
        marked = images[i].copy()
        overlays = []
        for j, (qy, qx) in enumerate(queries):
            y0, x0 = qy * h // q_side, qx * w // q_side
            y1, x1 = max(y0 + 1, (qy + 1) * h // q_side), max(x0 + 1, (qx + 1) * w // q_side)
            marked[y0:y1, x0:x1] = colors[j % len(colors)]
            heat = attention[i, qy * q_side + qx].reshape(k_side, k_side)
            heat = np.kron(heat, np.ones((h // k_side, w // k_side)))  # nearest upsampling
            heat = (heat - heat.min()) / max(heat.max() - heat.min(), 1e-12)
            gray = images[i].mean(axis=-1, keepdims=True) * 0.5
            overlay = gray + heat[..., None] * np.array([255, 60, 0]) * 0.5
            overlay = np.clip(overlay, 0, 255).astype(np.uint8)
            overlay[y0:y1, x0:x1] = colors[j % len(colors)]
            overlays.append(overlay)
        panels.extend([marked] + overlays)
    return np.stack(panels)
