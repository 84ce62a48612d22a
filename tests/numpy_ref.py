"""NumPy references computed from a layer's own weights."""

import keras
import numpy as np


def sn_kernel(sn_layer):
    """W / sigma with sigma = ||W u|| from the stored u (inference formula)."""
    kernel = np.asarray(sn_layer.raw_kernel, dtype=np.float64)
    mat = kernel
    if sn_layer._transpose:
        mat = np.transpose(kernel, (0, 1, 3, 2))
    mat = mat.reshape(-1, mat.shape[-1])
    u = np.asarray(sn_layer.u, dtype=np.float64)
    return kernel / np.linalg.norm(mat @ u)


def sn_kernel_training(sn_layer, u_old):
    """W / sigma after one training-mode power iteration from `u_old`."""
    kernel = np.asarray(sn_layer.raw_kernel, dtype=np.float64)
    mat = kernel.reshape(-1, kernel.shape[-1])
    v = mat @ u_old
    v /= np.linalg.norm(v)
    u = mat.T @ v
    u /= np.linalg.norm(u)
    return kernel / (v @ mat @ u)


def kernel_of(layer):
    """Effective kernel of a plain or spectral-normalized layer."""
    if hasattr(layer, "raw_kernel"):
        return sn_kernel(layer), layer.layer
    weights = layer.embeddings if isinstance(layer, keras.layers.Embedding) else layer.kernel
    return np.asarray(weights, dtype=np.float64), layer


def conv2d_same(x, kernel, bias=None):
    """Stride-1 'same' convolution, NHWC, kernel (kh, kw, in, out)."""
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + h, j:j + w, :] @ kernel[i, j]
    return out if bias is None else out + bias


def apply_conv(layer, x):
    kernel, inner = kernel_of(layer)
    bias = np.asarray(inner.bias) if inner.use_bias else None
    return conv2d_same(x, kernel, bias)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def max_pool2(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def avg_pool2(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def self_attention(layer, x):
    """(output, attention map) of a SelfAttention2D from its weights."""
    x = x.astype(np.float64)
    b, h, w, c = x.shape
    q = apply_conv(layer.query_conv, x)
    k = apply_conv(layer.key_conv, x)
    v = apply_conv(layer.value_conv, x)
    if layer.variant == "official":
        k, v = max_pool2(k), max_pool2(v)
    q = q.reshape(b, h * w, -1)
    k = k.reshape(b, -1, k.shape[-1])
    v = v.reshape(b, -1, v.shape[-1])
    attention = softmax(q @ k.transpose(0, 2, 1))
    o = (attention @ v).reshape(b, h, w, -1)
    if layer.variant == "official":
        o = apply_conv(layer.output_conv, o)
    return float(np.asarray(layer.gamma)) * o + x, attention
