import numpy as np
import keras
import pytest
import tensorflow as tf

from sagan_tf.layers import SelfAttention2D
from tests import numpy_ref
from tests.layer_test_util import check_layer

VARIANTS = ["paper", "official"]


def _x(shape=(2, 8, 8, 16), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _set_gamma(value):
    return lambda layer: layer.gamma.assign(value)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gamma_zero_is_identity(variant):
    x = _x()
    layer = SelfAttention2D(variant)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), x)
    assert layer.gamma.shape == ()


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_map_rows_sum_to_one(variant):
    layer = SelfAttention2D(variant)
    _, attention = layer(_x(), return_attention=True)
    n_keys = 64 if variant == "paper" else 16
    assert attention.shape == (2, 64, n_keys)
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(attention) >= 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shared_checks_and_numpy_reference(variant, tmp_path):
    x = _x()

    def reference(layer, x):
        return numpy_ref.self_attention(layer, x)[0]

    layer = check_layer(
        SelfAttention2D,
        {"variant": variant},
        [x],
        [(2, 8, 8, 16)],
        tmp_path,
        reference_fn=reference,
        atol=1e-4,
        prepare=_set_gamma(0.8),
        # A bias on the key adds q.b to every key of a query: softmax ignores it.
        zero_grad_ok=("sn_key/conv2d/bias", "key/bias"),
    )
    _, attention = layer(x, return_attention=True)
    np.testing.assert_allclose(
        np.asarray(attention), numpy_ref.self_attention(layer, x)[1], atol=1e-5
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_gamma_and_every_conv(variant):
    layer = SelfAttention2D(variant)
    x = tf.constant(_x())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
    grads = dict(zip([v.path for v in layer.trainable_weights],
                     tape.gradient(loss, layer.trainable_weights)))
    # At gamma = 0 only gamma moves: the block starts as the identity.
    assert abs(float(grads[layer.gamma.path])) > 0
    layer.gamma.assign(0.5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
    grads = tape.gradient(loss, layer.trainable_weights)
    kernels = [(v.path, g) for v, g in zip(layer.trainable_weights, grads) if v.name == "kernel"]
    assert len(kernels) == (4 if variant == "official" else 3)
    for path, grad in kernels:
        assert np.abs(np.asarray(grad)).max() > 0, path


# (policy, tolerance on values, on gradients): bfloat16 keeps 8 bits of mantissa, so the two
# paths' different summation orders differ by about 2^-8 of the values' scale.
PRECISIONS = [("float32", 1e-5, 1e-4), ("mixed_bfloat16", 3e-2, 6e-2)]


def _close(a, b, tol, **kwargs):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=tol, **kwargs)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("tile", [7, 16])
@pytest.mark.parametrize("precision", PRECISIONS, ids=[p[0] for p in PRECISIONS])
def test_tiled_equals_dense(variant, tile, precision):
    policy, tol_y, tol_g = precision
    keras.utils.set_random_seed(0)
    dense = SelfAttention2D(variant, query_tile_size=4096, dtype=policy)
    tiled = SelfAttention2D(variant, query_tile_size=tile, dtype=policy)
    x = tf.constant(_x())
    dense(x)
    tiled(x)
    tiled.set_weights(dense.get_weights())
    for layer in (dense, tiled):
        layer.gamma.assign(0.7)

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=False)
            loss = tf.reduce_sum(y * tf.cos(y))
        return y, tape.gradient(loss, [x] + layer.trainable_weights)

    y_dense, g_dense = run(dense)
    y_tiled, g_tiled = tf.function(lambda: run(tiled))()
    assert y_tiled.dtype == y_dense.dtype == dense.compute_dtype
    _close(y_tiled, y_dense, tol_y)
    for a, b in zip(g_tiled, g_dense):
        _close(a, b, tol_g)


def test_tiled_path_never_builds_the_dense_map():
    """With 64 queries in tiles of 16, no tensor in the traced graph holds 64x64."""
    layer = SelfAttention2D("paper", query_tile_size=16)
    x = tf.constant(_x())
    layer(x)
    layer.gamma.assign(0.5)

    @tf.function
    def grad_fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, x)

    graph = grad_fn.get_concrete_function(x).graph
    shapes = []
    graphs = [graph] + [f.graph for f in getattr(graph, "_functions", {}).values()
                        if hasattr(f, "graph")]
    for g in graphs:
        for op in g.get_operations():
            shapes += [o.shape for o in op.outputs if o.shape.rank is not None]
    assert shapes
    assert not any(s.rank >= 2 and s[-1] == 64 and s[-2] == 64 for s in shapes)

    dense_graph = tf.function(lambda x: layer(x, return_attention=True)).get_concrete_function(x).graph
    dense_shapes = [o.shape for op in dense_graph.get_operations() for o in op.outputs]
    assert any(s.rank == 3 and s[-1] == 64 and s[-2] == 64 for s in dense_shapes)


def test_paper_variant_is_permutation_equivariant():
    layer = SelfAttention2D("paper")
    x = _x()
    layer(x)
    layer.gamma.assign(1.3)
    perm = np.random.default_rng(1).permutation(64)
    x_perm = x.reshape(2, 64, 16)[:, perm].reshape(2, 8, 8, 16)
    y = np.asarray(layer(x)).reshape(2, 64, 16)
    y_perm = np.asarray(layer(x_perm)).reshape(2, 64, 16)
    np.testing.assert_allclose(y_perm, y[:, perm], atol=1e-5)


def test_mixed_bfloat16_map_for_drawing_is_float32():
    layer = SelfAttention2D("official", dtype="mixed_bfloat16")
    y, attention = layer(_x(), return_attention=True)
    assert y.dtype == "bfloat16" and attention.dtype == "float32"
    np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, atol=1e-5)


def test_mixed_bfloat16_map_is_never_float32_in_training():
    """Under mixed_bfloat16 the training graph (forward and hand-written backward) holds
    the (B, N, N) map in bfloat16 only: energies, softmax, probabilities and every pass
    of the backward over the map."""
    layer = SelfAttention2D("paper", use_spectral_norm=False, dtype="mixed_bfloat16")
    x = tf.constant(_x())  # N = 64 positions
    layer(x)

    @tf.function
    def grad_fn(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), tf.float32))
        return tape.gradient(loss, [x] + layer.trainable_weights)

    graph = grad_fn.get_concrete_function(x).graph
    maps = [(op.type, o.dtype) for g in [graph] + [f.graph for f in graph._functions.values()
                                                   if hasattr(f, "graph")]
            for op in g.get_operations() for o in op.outputs
            if o.shape.rank == 3 and tuple(o.shape[1:]) == (64, 64)]
    assert [t for t, dtype in maps if dtype != tf.bfloat16] == []
    # energies, softmax, dA - row, dE
    assert {"BatchMatMulV2", "Softmax", "Mul"} <= {t for t, _ in maps} and len(maps) >= 4


def test_bfloat16_softmax_as_accurate_as_float32_softmax():
    """The softmax on bfloat16 energies: the output's error against float64 (from the same
    bfloat16 q, k, v) is no larger than with the softmax in float32, since the energies
    are rounded to bfloat16 by their product either way."""
    from sagan_tf.layers import attention_ops

    rng = np.random.default_rng(0)
    for scale in (1.0, 2.0):  # energies' standard deviation ~2.8 and ~11
        q, k = (tf.constant(rng.normal(size=(4, 256, 8)) * scale, tf.bfloat16) for _ in "qk")
        v = tf.constant(rng.normal(size=(4, 256, 16)), tf.bfloat16)
        q64, k64, v64 = (np.asarray(t, np.float64) for t in (q, k, v))
        e = q64 @ k64.transpose(0, 2, 1)
        a = np.exp(e - e.max(-1, keepdims=True))
        o64 = (a / a.sum(-1, keepdims=True)) @ v64

        def rms_error(o):
            return np.sqrt(np.mean((np.asarray(o, np.float64) - o64) ** 2))

        in_bf16 = rms_error(attention_ops.dense_output(q, k, v))
        in_float32 = rms_error(attention_ops.dense_attention(q, k, v)[0])
        assert in_bf16 <= 1.1 * in_float32, (scale, in_bf16, in_float32)
        assert in_float32 < 0.05 * np.sqrt(np.mean(o64**2))  # both at bfloat16's scale


def test_mixed_bfloat16_softmax_sums_in_float32():
    """4,096 equal energies: every probability is 1/4096 and o is the mean of v. Summed in
    bfloat16 (8-bit mantissa) the total would stall at 256."""
    from sagan_tf.layers import attention_ops

    rng = np.random.default_rng(0)
    q = tf.zeros([1, 4, 8], tf.bfloat16)
    k = tf.constant(rng.normal(size=(1, 4096, 8)), tf.bfloat16)
    v = tf.constant(rng.uniform(1, 2, size=(1, 4096, 2)), tf.bfloat16)
    a = attention_ops.probabilities(q, k)
    assert a.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(a, np.float32), 1 / 4096)
    np.testing.assert_allclose(np.asarray(attention_ops.dense_output(q, k, v), np.float32),
                               np.broadcast_to(np.asarray(v, np.float32).mean(1), (1, 4, 2)),
                               rtol=2**-7)


@pytest.mark.parametrize(
    "kwargs,shape,match",
    [
        ({}, (2, 8, 16), "rank 4"),
        ({}, (2, 8, 8, 12), "divisible"),
        ({"variant": "official"}, (2, 5, 5, 16), "even"),
    ],
)
def test_bad_input(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        SelfAttention2D(**kwargs)(np.zeros(shape, "float32"))


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant.*paper"):
        SelfAttention2D("transformer")


class _Reference(keras.layers.Layer):
    """Calls `_autodiff_reference` from inside a layer, as a model calls its layers: Keras
    autocasts variable reads of a top-level call under a mixed policy even for
    `autocast=False` layers, which would round spectral norm's float32 kernel to
    bfloat16; nested, they are read in float32, as in the block and in training."""

    def __init__(self, block, **kwargs):
        super().__init__(dtype=block.dtype_policy, **kwargs)
        self.block = block

    def call(self, x, training=None):
        return _autodiff_reference(self.block, x, training)


def _autodiff_reference(layer, x, training):
    """The block written out with `dense_attention`, whose gradient is TF's autodiff."""
    from sagan_tf.layers import attention_ops

    q, k, v = (conv(x, training=training) for conv in
               (layer.query_conv, layer.key_conv, layer.value_conv))
    if layer.variant == "official":
        k, v = keras.ops.max_pool(k, 2, 2), keras.ops.max_pool(v, 2, 2)
    b, h, w, _ = x.shape
    flat = [keras.ops.reshape(t, (b, -1, t.shape[-1])) for t in (q, k, v)]
    o, _ = attention_ops.dense_attention(*flat)
    o = keras.ops.reshape(o, (b, h, w, -1))
    if layer.variant == "official":
        o = layer.output_conv(o, training=training)
    return layer.gamma * o + x


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("spectral_norm", [True, False])
@pytest.mark.parametrize("precision", PRECISIONS, ids=[p[0] for p in PRECISIONS])
def test_hand_written_attention_gradient_equals_autodiff(variant, spectral_norm, precision):
    """The layer's default path (`dense_output`, hand-written gradient) gives the values
    and gradients of the autodiff path (inference and training mode, with and without
    spectral norm), in float32 and under mixed_bfloat16."""
    policy, tol_y, tol_g = precision
    # Seeded: in bfloat16 the two paths round differently, by up to a few 2^-8 of the
    # gradients' scale depending on the weights drawn (both are that far from float32).
    keras.utils.set_random_seed(0)
    x = tf.constant(_x(seed=3))
    layer = SelfAttention2D(variant, use_spectral_norm=spectral_norm, use_bias=True,
                            dtype=policy)
    layer.build(x.shape)
    layer.gamma.assign(0.7)
    for training in (False, True):
        u_before = [np.asarray(w) for w in layer.non_trainable_weights]
        with tf.GradientTape(persistent=True) as tape:
            fused = layer(x, training=training)
            u_fused = [np.asarray(w) for w in layer.non_trainable_weights]
            for w, value in zip(layer.non_trainable_weights, u_before):
                w.assign(value)  # the reference starts from the same u
            reference = _Reference(layer)(x, training=training)
            loss_fused = tf.reduce_sum(tf.sin(fused))
            loss_ref = tf.reduce_sum(tf.sin(reference))
        assert fused.dtype == layer.compute_dtype
        _close(fused, reference, tol_y)
        for a, b in zip(u_fused, layer.non_trainable_weights):
            assert b.dtype == "float32"  # u stays float32, updated from a bfloat16 product
            np.testing.assert_allclose(a, np.asarray(b), atol=1e-6 if policy == "float32" else 1e-3)
        grads_fused = tape.gradient(loss_fused, layer.trainable_weights)
        grads_ref = tape.gradient(loss_ref, layer.trainable_weights)
        for var, g_fused, g_ref in zip(layer.trainable_weights, grads_fused, grads_ref):
            if policy != "float32" and var.path.endswith("key/bias"):
                # Exactly 0 (a key bias shifts a whole softmax row): both paths give rounding
                # noise, at bfloat16's scale.
                continue
            _close(g_fused, g_ref, tol_g, err_msg=var.path)
