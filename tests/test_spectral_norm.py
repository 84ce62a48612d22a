import numpy as np
import keras
import pytest
import tensorflow as tf

from sagan_tf.layers import SpectralNormalization
from tests import numpy_ref
from tests.layer_test_util import check_layer


def _matrix(kernel, transpose=False):
    kernel = np.asarray(kernel, dtype=np.float64)
    if transpose:
        kernel = np.transpose(kernel, (0, 1, 3, 2))
    return kernel.reshape(-1, kernel.shape[-1])


def _top_singular_value(mat):
    return np.linalg.svd(mat, compute_uv=False)[0]


CASES = [
    ("dense", lambda: keras.layers.Dense(7), (3, 5)),
    ("conv2d", lambda: keras.layers.Conv2D(6, 3, padding="same"), (2, 5, 5, 4)),
    ("conv2d_transpose", lambda: keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same"),
     (2, 4, 4, 3)),
    ("embedding", lambda: keras.layers.Embedding(10, 6), None),
]


@pytest.mark.parametrize("name,make,shape", CASES, ids=[c[0] for c in CASES])
def test_sigma_converges_to_top_singular_value(name, make, shape):
    keras.utils.set_random_seed(1)
    layer = SpectralNormalization(make(), power_iterations=200)
    x = np.array([[1, 3, 9]]) if shape is None else np.random.rand(*shape).astype("float32")
    layer(x, training=True)
    transpose = name == "conv2d_transpose"
    mat = _matrix(layer.raw_kernel, transpose)
    w_sn = np.asarray(layer.normalized_kernel(training=False))
    # W_sn = W / sigma, so sigma = |W| / |W_sn| element-wise.
    sigma = np.abs(np.asarray(layer.raw_kernel)).max() / np.abs(w_sn).max()
    np.testing.assert_allclose(sigma, _top_singular_value(mat), rtol=1e-5)
    np.testing.assert_allclose(_top_singular_value(_matrix(w_sn, transpose)), 1.0, rtol=1e-5)
    if transpose:
        # Output channels are on axis 2: flattening (kh, kw, out, in) as it lies
        # would give a different matrix and a different sigma.
        wrong = np.asarray(layer.raw_kernel, np.float64).reshape(-1, 3)
        assert abs(_top_singular_value(wrong) - sigma) > 1e-3
        assert layer.u.shape == (5,)


def test_transposed_conv_kernel_is_never_copied_transposed():
    """sigma of a Conv2DTranspose kernel (kh, kw, out, in) by output channels is taken on
    its (kh*kw, out, in) view: the training step's graph (power iteration, W / sigma and
    their gradients) holds no Transpose of the kernel, and sigma and the gradient equal
    those of the explicit (kh*kw*in, out) matrix."""
    keras.utils.set_random_seed(2)
    layer = SpectralNormalization(keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same"))
    x = tf.random.normal([2, 4, 4, 5])
    layer(x)
    u = np.asarray(layer.u)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.sin(y))
        return tape.gradient(loss, layer.raw_kernel), layer.normalized_kernel(False)

    graph = step.get_concrete_function(x).graph
    assert "Transpose" not in {op.type for op in graph.get_operations()}
    layer.u.assign(u)
    _, w_sn = step(x)
    kernel = np.asarray(layer.raw_kernel, np.float64)
    mat = _matrix(kernel, transpose=True)  # (kh*kw*in, out)
    u_ref = u.astype(np.float64)
    v = mat @ u_ref
    v /= np.linalg.norm(v)
    u_ref = mat.T @ v
    u_ref /= np.linalg.norm(u_ref)
    np.testing.assert_allclose(np.asarray(layer.u), u_ref, rtol=1e-5, atol=1e-6)
    sigma = np.linalg.norm(mat @ u_ref)  # read-only: v = W u / |W u|, sigma = v^T W u
    np.testing.assert_allclose(np.asarray(w_sn), kernel / sigma, rtol=1e-5, atol=1e-6)


def test_raw_kernel_is_never_overwritten():
    layer = SpectralNormalization(keras.layers.Dense(4), power_iterations=5)
    x = np.random.rand(2, 3).astype("float32")
    layer.build((None, 3))
    before = np.asarray(layer.raw_kernel).copy()
    for _ in range(3):
        layer(x, training=True)
    np.testing.assert_array_equal(np.asarray(layer.raw_kernel), before)
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias"]
    assert [w.name for w in layer.non_trainable_weights] == ["u"]


def test_inference_leaves_u_unchanged_and_training_advances_it():
    layer = SpectralNormalization(keras.layers.Conv2D(4, 3), power_iterations=1)
    x = np.random.rand(2, 6, 6, 3).astype("float32")
    layer(x, training=False)
    u0 = np.asarray(layer.u).copy()
    layer(x, training=False)
    layer(x)  # training defaults to inference
    np.testing.assert_array_equal(np.asarray(layer.u), u0)
    layer(x, training=True)
    u1 = np.asarray(layer.u).copy()
    layer(x, training=True)
    u2 = np.asarray(layer.u).copy()
    assert not np.allclose(u0, u1) and not np.allclose(u1, u2)
    np.testing.assert_allclose(np.linalg.norm(u2), 1.0, rtol=1e-6)


def test_gradient_flows_through_sigma():
    """d/dW of L(W / sigma(W)) matches finite differences of the exact function."""
    keras.utils.set_random_seed(3)
    layer = SpectralNormalization(keras.layers.Dense(4, use_bias=False), power_iterations=500)
    x = np.random.default_rng(0).normal(size=(6, 5))
    c = np.random.default_rng(1).normal(size=(6, 4))
    layer(x.astype("float32"), training=True)  # converge u

    with tf.GradientTape() as tape:
        y = layer(x.astype("float32"), training=False)
        loss = tf.reduce_sum(y * c.astype("float32"))
    grad = np.asarray(tape.gradient(loss, layer.raw_kernel))

    def exact(w):
        return np.sum((x @ (w / _top_singular_value(w))) * c)

    w0 = np.asarray(layer.raw_kernel, np.float64)
    numeric = np.zeros_like(w0)
    h = 1e-6
    for idx in np.ndindex(*w0.shape):
        wp, wm = w0.copy(), w0.copy()
        wp[idx] += h
        wm[idx] -= h
        numeric[idx] = (exact(wp) - exact(wm)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, atol=2e-4, rtol=2e-3)

    # The in-place-assign version (Keras / tfa) treats sigma as a constant.
    assign_grad = (x.T @ c) / _top_singular_value(w0)
    assert np.abs(assign_grad - numeric).max() > 50 * np.abs(grad - numeric).max()
    assert np.abs(assign_grad - numeric).max() > 1e-2


def test_u_update_under_mirrored_strategy(mirrored):
    strategy = mirrored
    with strategy.scope():
        layer = SpectralNormalization(keras.layers.Dense(3), power_iterations=1)
        layer.build((None, 4))
    single = SpectralNormalization(keras.layers.Dense(3), power_iterations=1)
    single.build((None, 4))
    single.set_weights([np.asarray(w) for w in layer.weights])
    x = np.random.rand(4, 4).astype("float32")

    @tf.function
    def step(batch):
        return strategy.run(lambda b: layer(b, training=True), args=(batch,))

    dist = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x))
    for batch in dist:
        step(batch)
    single(x, training=True)
    for value in strategy.experimental_local_results(layer.u):
        np.testing.assert_allclose(np.asarray(value), np.asarray(single.u), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="layer"):
        SpectralNormalization(keras.layers.ReLU())
    with pytest.raises(ValueError, match="power_iterations"):
        SpectralNormalization(keras.layers.Dense(2), power_iterations=0)


@pytest.mark.parametrize("use_bias", [True, False])
def test_shared_layer_checks(tmp_path, use_bias):
    x = np.random.rand(2, 5, 5, 3).astype("float32")

    def reference(layer, x):
        return numpy_ref.apply_conv(layer, x)

    check_layer(
        SpectralNormalization,
        {"layer": keras.layers.Conv2D(4, 3, padding="same", use_bias=use_bias)},
        [x],
        [(2, 5, 5, 4)],
        tmp_path,
        reference_fn=reference,
    )


def test_mixed_bfloat16_keeps_sigma_in_float32():
    keras.utils.set_random_seed(0)  # 50 power iterations were too few for some draws
    layer = SpectralNormalization(keras.layers.Dense(3, dtype="mixed_bfloat16"),
                                  dtype="mixed_bfloat16", power_iterations=300)
    y = layer(np.random.rand(2, 4).astype("float32"), training=True)
    assert y.dtype == "bfloat16"
    assert layer.u.dtype == "float32" and layer.raw_kernel.dtype == "float32"
    w_sn = np.asarray(layer.normalized_kernel())
    assert w_sn.dtype == np.float32
    np.testing.assert_allclose(_top_singular_value(w_sn.astype(np.float64)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("flatten", ["output", "input"])
def test_conv_transpose_flattening_axis_against_numpy(flatten):
    """`output`: the (kh*kw*in, out) matrix (PyTorch's spectral_norm, dim=1); `input`:
    heykeetae's SAGAN, whose ConvTranspose2d weight (in, out, kh, kw) is viewed as
    (in, out*kh*kw). The two sigmas differ; each matches its NumPy reference."""
    keras.utils.set_random_seed(3)
    layer = SpectralNormalization(keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same"),
                                  power_iterations=300, transpose_flatten=flatten)
    layer(np.random.rand(2, 4, 4, 3).astype("float32"), training=True)
    kernel = np.asarray(layer.raw_kernel, np.float64)  # (kh, kw, out, in)
    torch_layout = np.transpose(kernel, (3, 2, 0, 1))  # (in, out, kh, kw)
    if flatten == "input":
        expected = _top_singular_value(torch_layout.reshape(3, -1))  # rows = in_channels
        assert layer.u.shape == (3,)
    else:
        expected = _top_singular_value(np.transpose(torch_layout, (1, 0, 2, 3)).reshape(5, -1))
        assert layer.u.shape == (5,)
    w_sn = np.asarray(layer.normalized_kernel(training=False))
    sigma = np.abs(kernel).max() / np.abs(w_sn).max()
    np.testing.assert_allclose(sigma, expected, rtol=1e-5)
    other = (_top_singular_value(np.transpose(torch_layout, (1, 0, 2, 3)).reshape(5, -1))
             if flatten == "input" else _top_singular_value(torch_layout.reshape(3, -1)))
    assert abs(other - sigma) > 1e-3
    assert SpectralNormalization.from_config(layer.get_config()).transpose_flatten == flatten
    with pytest.raises(ValueError, match="applies to Conv2DTranspose only"):
        SpectralNormalization(keras.layers.Dense(3), transpose_flatten="input")
