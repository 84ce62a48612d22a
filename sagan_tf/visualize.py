"""Image grids and attention-map overlays (as in the SAGAN paper's figure)."""

import numpy as np
import tensorflow as tf


def to_rgb(images):
    """Grayscale images (..., 1) as RGB (..., 3), the channel repeated; RGB unchanged."""
    return tf.image.grayscale_to_rgb(images) if images.shape[-1] == 1 else images


def to_uint8(images):
    """[-1, 1] float images -> uint8 [0, 255] (a tensor; channels kept)."""
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)


def make_grid(images, columns=None, pad=1):
    """uint8 or [-1, 1] images (N, H, W, C) -> one uint8 grid image (rows*H, cols*W, 3)."""
    if images.dtype != np.uint8:
        images = to_uint8(images)
    images = np.asarray(to_rgb(images))
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


QUERY_COLORS = np.array([[0, 255, 0], [0, 160, 255], [255, 0, 255], [255, 255, 0]], np.uint8)
HEAT_COLOR = np.array([255, 60, 0], np.float32)


def _outline(image, y0, x0, y1, x1, color, width):
    """Draws a rectangle outline (inclusive of y0, x0; exclusive of y1, x1) in place."""
    h, w = image.shape[:2]
    y0, x0 = max(y0 - width, 0), max(x0 - width, 0)
    y1, x1 = min(y1 + width, h), min(x1 + width, w)
    image[y0:y0 + width, x0:x1] = color
    image[y1 - width:y1, x0:x1] = color
    image[y0:y1, x0:x0 + width] = color
    image[y0:y1, x1 - width:x1] = color


def _label(image, text, color):
    """Writes `text` at the top-left corner, on a dark band (images >= 64 px wide)."""
    if image.shape[1] < 64:
        return image
    from PIL import Image, ImageDraw

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    left, top, right, bottom = draw.textbbox((2, 1), text)
    draw.rectangle((0, 0, right + 2, bottom + 1), fill=(0, 0, 0))
    draw.text((2, 1), text, fill=tuple(int(c) for c in color))
    return np.asarray(pil)


def attention_panels(images, attention, queries=None, min_size=128):
    """Where each query pixel looks, overlaid on the images.

    Every heat map of one call shares one colour scale (the largest attention
    weight among them is full colour), so a near-uniform map stays faint next
    to a peaked one; each overlay is labelled with its query and its maximum
    weight, also as a multiple of the uniform weight 1/N_key. Query pixels are
    outlined, not filled, in their own colour; the first panel of each image
    outlines every query and names it (the legend).

    Args:
        images: (B, H, W, C) in [-1, 1].
        attention: (B, N, N_key) rows summing to 1, N and N_key square numbers.
        queries: (row, col) positions in the N-grid; default `default_queries`.
        min_size: small images are upscaled (nearest) to at least this size.
    Returns:
        uint8 (B * (1 + Q), H', W', 3): per image, the image with the query
        pixels outlined, then one heat-map overlay per query.
    """
    attention = np.asarray(attention, np.float32)
    q_side = int(round(np.sqrt(attention.shape[1])))
    queries = queries or default_queries(q_side)
    rows = np.stack([attention[:, qy * q_side + qx] for qy, qx in queries], axis=1)  # (B, Q, Nk)
    size = images.shape[1]
    boxes = [(qy * size // q_side, qx * size // q_side, max(qy * size // q_side + 1,
              (qy + 1) * size // q_side), max(qx * size // q_side + 1, (qx + 1) * size // q_side))
             for qy, qx in queries]
    return query_panels(images, rows, boxes, min_size)


def query_panels(images, rows, boxes, min_size=128):
    """`attention_panels` from the attention rows of given query pixels.

    Args:
        images: (B, H, W, C) in [-1, 1].
        rows: (B, Q, N_key) attention weights of Q queries, N_key a square number.
        boxes: Q (y0, x0, y1, x1) pixel boxes of the queries in the images.
        min_size: small images are upscaled (nearest) to at least this size.
    """
    images = np.asarray(to_rgb(to_uint8(images)))
    scale = max(1, min_size // images.shape[1])  # small images: nearest upscaling
    images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    rows = np.asarray(rows, np.float32)
    b, h, w, _ = images.shape
    k_side = int(round(np.sqrt(rows.shape[2])))
    n_key = rows.shape[2]
    shared_max = max(float(rows.max()), 1e-12)
    width = max(1, h // 64)
    panels = []
    for i in range(b):
        marked = images[i].copy()
        overlays = []
        legend = []
        for j, box in enumerate(boxes):
            color = QUERY_COLORS[j % len(QUERY_COLORS)]
            y0, x0, y1, x1 = (v * scale for v in box)
            heat = rows[i, j].reshape(k_side, k_side)
            peak = float(heat.max())
            heat = np.kron(heat, np.ones((h // k_side, w // k_side))) / shared_max  # (H, W)
            gray = images[i].mean(axis=-1, keepdims=True) * 0.5
            overlay = np.clip(gray + heat[..., None] * HEAT_COLOR * 0.5, 0, 255).astype(np.uint8)
            _outline(overlay, y0, x0, y1, x1, color, width)
            overlays.append(_label(overlay, f"q{j + 1} max {peak:.3f} ({peak * n_key:.1f}x unif.)",
                                   color))
            _outline(marked, y0, x0, y1, x1, color, width)
            legend.append(f"q{j + 1}")
        panels.extend([_label(marked, " ".join(legend) + " (queries)", QUERY_COLORS[0])]
                      + overlays)
    return np.stack(panels)
