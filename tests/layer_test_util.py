"""One helper that checks every layer and model the same way.

`check_layer` builds the layer from its init kwargs and verifies:
  1. output shape(s);
  2. get_config -> from_config -> get_config round trip;
  3. `.keras` save and load (inside a functional wrapper): same outputs;
  4. values against a reference computed from the layer's own weights
     (`reference_fn(layer, *inputs) -> np.ndarray`);
  5. gradients: every trainable weight gets a finite gradient, non-zero
     unless its name is listed in `zero_grad_ok`.
"""

import copy

import numpy as np
import keras
import tensorflow as tf


def _strip_build(config):
    """Config without the build state that only a built layer records."""
    if isinstance(config, dict):
        return {k: _strip_build(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, (list, tuple)):
        return [_strip_build(v) for v in config]
    return config


def _outputs_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def check_layer(
    cls,
    init_kwargs,
    inputs,
    expected_shapes,
    tmp_path,
    call_kwargs=None,
    reference_fn=None,
    atol=1e-5,
    zero_grad_ok=(),
    prepare=None,
):
    call_kwargs = dict(call_kwargs or {})
    inputs = [tf.convert_to_tensor(x) for x in inputs]
    layer = cls(**init_kwargs)
    out = layer(*inputs, training=False, **call_kwargs)
    if prepare is not None:
        prepare(layer)  # e.g. give gamma a non-zero value
        out = layer(*inputs, training=False, **call_kwargs)
    outs = _outputs_list(out)

    # 1. Shapes.
    assert [tuple(o.shape) for o in outs] == [tuple(s) for s in expected_shapes]

    # 2. Config round trip.
    config = layer.get_config()
    clone = cls.from_config(copy.deepcopy(config))
    assert _strip_build(clone.get_config()) == _strip_build(config)

    # 3. .keras save and load.
    symbolic = [keras.Input(shape=x.shape[1:], batch_size=None, dtype=x.dtype) for x in inputs]
    wrapped = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
    path = str(tmp_path / f"{cls.__name__}.keras")
    wrapped.save(path)
    loaded = keras.saving.load_model(path)
    reloaded = _outputs_list(loaded(inputs, training=False))
    for a, b in zip(outs, reloaded):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)

    # 4. Values against a reference.
    if reference_fn is not None:
        expected = reference_fn(layer, *[np.asarray(x) for x in inputs])
        np.testing.assert_allclose(np.asarray(outs[0]), expected, atol=atol, rtol=1e-4)

    # 5. Gradients.
    rng = np.random.default_rng(0)
    with tf.GradientTape() as tape:
        first = _outputs_list(layer(*inputs, training=True, **call_kwargs))[0]
        weights = tf.constant(rng.normal(size=first.shape).astype("float32"))
        loss = tf.reduce_sum(tf.cast(first, tf.float32) * weights)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert layer.trainable_weights, "layer has no trainable weights"
    for var, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, f"no gradient reaches {var.path}"
        grad = np.asarray(tf.convert_to_tensor(grad))  # IndexedSlices for embeddings
        assert np.all(np.isfinite(grad)), f"non-finite gradient for {var.path}"
        if not any(name in var.path for name in zero_grad_ok):
            assert np.abs(grad).max() > 0, f"zero gradient for {var.path}"
    return layer
