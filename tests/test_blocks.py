import numpy as np
import pytest

from sagan_tf.layers import ConditionalBatchNormalization, DBlock, GBlock
from tests import numpy_ref
from tests.layer_test_util import check_layer


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _cbn_reference(layer, x, labels, eps=1e-5):
    # Inference: moving mean 0 and variance 1 at initialisation.
    bn = layer.batch_norm
    mean = np.asarray(bn.moving_mean)
    var = np.asarray(bn.moving_variance)
    normalized = (x - mean) / np.sqrt(var + eps)
    if layer.num_classes == 0:
        return normalized * np.asarray(bn.gamma) + np.asarray(bn.beta)
    gain = numpy_ref.kernel_of(layer.gain)[0][labels]
    bias = numpy_ref.kernel_of(layer.bias)[0][labels]
    return normalized * (1 + gain[:, None, None, :]) + bias[:, None, None, :]


@pytest.mark.parametrize("num_classes,sn", [(0, False), (5, False), (5, True)])
def test_conditional_batch_norm_shared_checks(num_classes, sn, tmp_path):
    x = _x((4, 3, 3, 6))
    labels = np.array([0, 4, 2, 4], dtype="int32")
    inputs = [x, labels] if num_classes else [x]
    check_layer(
        ConditionalBatchNormalization,
        {"num_classes": num_classes, "use_spectral_norm": sn},
        inputs,
        [(4, 3, 3, 6)],
        tmp_path,
        reference_fn=lambda layer, x, labels=None: _cbn_reference(layer, x, labels),
        atol=1e-5,
    )


def test_conditional_batch_norm_starts_as_plain_batch_norm():
    """Official SAGAN: per-class gamma ones, beta zeros (here gain = bias = 0)."""
    layer = ConditionalBatchNormalization(3)
    x = _x((6, 2, 2, 4)) * 3 + 1
    y = np.asarray(layer(x, np.array([0, 1, 2, 0, 1, 2], "int32"), training=True))
    expected = (x - x.mean(axis=(0, 1, 2))) / np.sqrt(x.var(axis=(0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(y, expected, atol=1e-4)
    assert not any("u" == w.name for w in layer.weights)


@pytest.mark.parametrize("sn", [False, True])
def test_conditional_batch_norm_training_uses_batch_statistics_and_labels(sn):
    x = _x((6, 2, 2, 4)) * 3 + 1
    labels = np.array([0, 1, 2, 0, 1, 2], "int32")
    layer = ConditionalBatchNormalization(3, use_spectral_norm=sn)
    layer.build(x.shape)
    rng = np.random.default_rng(3)
    if sn:
        u_gain, u_bias = np.asarray(layer.gain.u, np.float64), np.asarray(layer.bias.u, np.float64)
    else:
        layer.gain.embeddings.assign(rng.normal(0, 0.3, (3, 4)).astype("float32"))
        layer.bias.embeddings.assign(rng.normal(0, 0.3, (3, 4)).astype("float32"))
    y = np.asarray(layer(x, labels, training=True))
    mean = x.mean(axis=(0, 1, 2))
    var = x.var(axis=(0, 1, 2))
    if sn:
        gain = numpy_ref.sn_kernel_training(layer.gain, u_gain)[labels]
        bias = numpy_ref.sn_kernel_training(layer.bias, u_bias)[labels]
    else:
        gain = np.asarray(layer.gain.embeddings)[labels]
        bias = np.asarray(layer.bias.embeddings)[labels]
    expected = (x - mean) / np.sqrt(var + 1e-5) * (1 + gain[:, None, None]) + bias[:, None, None]
    np.testing.assert_allclose(y, expected, atol=1e-4)
    # Same features, different labels: different outputs.
    y_other = np.asarray(layer(x, (labels + 1) % 3, training=True))
    assert np.abs(y - y_other).max() > 1e-3


def test_conditional_batch_norm_requires_labels():
    layer = ConditionalBatchNormalization(3)
    with pytest.raises(ValueError, match="labels"):
        layer(_x((2, 2, 2, 4)))


def _gblock_reference(layer, x, labels=None):
    def bn(sub, h):
        return _cbn_reference(sub, h, labels)

    def up(h):
        return h.repeat(2, axis=1).repeat(2, axis=2)

    h = np.maximum(bn(layer.bn1, x), 0)
    h = numpy_ref.apply_conv(layer.conv1, up(h))
    h = np.maximum(bn(layer.bn2, h), 0)
    h = numpy_ref.apply_conv(layer.conv2, h)
    return h + numpy_ref.apply_conv(layer.shortcut, up(x))


def _dblock_reference(layer, x):
    h = x if layer.optimized else np.maximum(x, 0)
    h = numpy_ref.apply_conv(layer.conv1, h)
    h = numpy_ref.apply_conv(layer.conv2, np.maximum(h, 0))
    if layer.downsample:
        h = numpy_ref.avg_pool2(h)
    s = x
    if layer.optimized:
        s = numpy_ref.avg_pool2(s) if layer.downsample else s
        s = numpy_ref.apply_conv(layer.shortcut, s)
    elif layer.learnable_shortcut:
        s = numpy_ref.apply_conv(layer.shortcut, s)
        s = numpy_ref.avg_pool2(s) if layer.downsample else s
    return h + s


@pytest.mark.parametrize("num_classes", [0, 3])
def test_gblock(num_classes, tmp_path):
    x = _x((2, 4, 4, 8))
    labels = np.array([0, 2], "int32")
    inputs = [x, labels] if num_classes else [x]
    check_layer(GBlock, {"filters": 6, "num_classes": num_classes}, inputs,
                [(2, 8, 8, 6)], tmp_path, reference_fn=_gblock_reference, atol=1e-4)


@pytest.mark.parametrize("downsample,optimized,filters", [
    (True, False, 6), (False, False, 8), (False, False, 6), (True, True, 6)])
def test_dblock(downsample, optimized, filters, tmp_path):
    x = _x((2, 8, 8, 8 if not optimized else 3))
    size = 4 if downsample else 8
    check_layer(DBlock, {"filters": filters, "downsample": downsample, "optimized": optimized},
                [x], [(2, size, size, filters)], tmp_path, reference_fn=_dblock_reference,
                atol=1e-4)


def test_block_bad_input():
    with pytest.raises(ValueError, match="rank 4"):
        DBlock(4)(np.zeros((2, 8, 3), "float32"))
    with pytest.raises(ValueError, match="even"):
        DBlock(4)(np.zeros((2, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="filters"):
        GBlock(0)
