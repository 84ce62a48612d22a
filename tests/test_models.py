import numpy as np
import keras
import pytest

from sagan_tf import checkpoints
from sagan_tf.models import (PRESETS, DCGANDiscriminator, DCGANGenerator, Discriminator,
                             Generator, ResNetDiscriminator, ResNetGenerator)
from tests.layer_test_util import check_layer

TINY = [
    ("dcgan", 16, 0, (4, 8)),
    ("dcgan", 32, 4, (16,)),
    ("resnet", 16, 0, (8,)),
    ("resnet", 32, 4, (16,)),
    ("baseline", 16, 3, ()),
]


def _twin_without_attention(model):
    """Same weights, no attention layers: equal outputs while every gamma is 0."""
    config = dict(model.get_config(), attention_resolutions=[])
    twin = type(model).from_config(config)
    twin.build()
    ours = {v.path.split("/", 1)[1]: v for v in model.weights}
    for var in twin.weights:
        var.assign(ours[var.path.split("/", 1)[1]])
    return twin


def _labels(num_classes, batch=3):
    return np.arange(batch, dtype="int32") % max(num_classes, 1)


@pytest.mark.parametrize("arch,size,num_classes,attention", TINY)
def test_generator_shared_checks(arch, size, num_classes, attention, tmp_path):
    z = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    inputs = [z, _labels(num_classes)] if num_classes else [z]

    def reference(model, z, labels=None):
        twin = _twin_without_attention(model)
        return np.asarray(twin(z, labels, training=False))

    model = check_layer(
        Generator.family(arch),
        dict(image_size=size, z_dim=16, base_channels=8,
             attention_resolutions=attention, num_classes=num_classes),
        inputs, [(3, size, size, 3)], tmp_path, reference_fn=reference,
        # At gamma = 0 no gradient reaches the attention convs (only gamma).
        zero_grad_ok=("attention",),
    )
    images = np.asarray(model(*inputs))
    assert images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("arch,size,num_classes,attention", TINY)
def test_discriminator_shared_checks(arch, size, num_classes, attention, tmp_path):
    if arch == "dcgan":
        attention = tuple(r for r in (size // 4, size // 8) if r >= 4)
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, size, size, 3)).astype("float32")
    inputs = [x, _labels(num_classes)] if num_classes else [x]

    def reference(model, x, labels=None):
        return np.asarray(_twin_without_attention(model)(x, labels, training=False))

    check_layer(
        Discriminator.family(arch),
        dict(image_size=size, base_channels=8,
             attention_resolutions=attention, num_classes=num_classes),
        inputs, [(3,)], tmp_path, reference_fn=reference, atol=1e-4,
        zero_grad_ok=("attention",),
    )


def test_attention_changes_output_once_gamma_moves():
    g = DCGANGenerator(16, z_dim=16, base_channels=8, attention_resolutions=(8,))
    z = np.random.default_rng(0).normal(size=(2, 16)).astype("float32")
    g.build()
    twin = _twin_without_attention(g)
    g.attention_layers[0].gamma.assign(1.0)
    assert np.abs(np.asarray(g(z)) - np.asarray(twin(z))).max() > 1e-4


def test_popular_pytorch_parameter_counts():
    """dcgan_64 is the PyTorch SAGAN's 64 px model: same trainable parameter counts."""
    g, d = Generator.from_preset("dcgan_64"), Discriminator.from_preset("dcgan_64")
    g.build()
    d.build()
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert count(g) == 3_832_885
    assert count(d) == 3_175_299
    assert [a.name for a in g.attention_layers] == ["attention16", "attention32"]
    assert [a.name for a in d.attention_layers] == ["attention8", "attention4"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_with_the_right_shapes(preset):
    size = PRESETS[preset]["image_size"]
    g = Generator.from_preset(preset, base_channels=8, z_dim=8)
    d = Discriminator.from_preset(preset, base_channels=8)
    images, maps = g(np.zeros((2, 8), "float32"), return_attention=True)
    assert images.shape == (2, size, size, 3)
    assert len(maps) == len(PRESETS[preset]["g_attention"])
    logits, d_maps = d(images, return_attention=True)
    assert logits.shape == (2,) and len(d_maps) == len(PRESETS[preset]["d_attention"])
    for attention, layer in zip(maps, g.attention_layers):
        assert attention.shape[1] == layer.height * layer.width
    # Checkpoints key variables by path: unique, and the same in a second build (no
    # auto-numbered layer names that depend on what the process built before).
    for model, again in ((g, Generator.from_preset(preset, base_channels=8, z_dim=8)),
                         (d, Discriminator.from_preset(preset, base_channels=8))):
        again.build()
        paths = checkpoints.weights_by_path(model)
        assert list(paths) == list(checkpoints.weights_by_path(again))
        assert len(paths) == len(model.weights)


def test_conditional_models_depend_on_labels():
    g = ResNetGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(), num_classes=5)
    d = ResNetDiscriminator(16, base_channels=8, attention_resolutions=(), num_classes=5)
    z = np.random.default_rng(0).normal(size=(2, 8)).astype("float32")
    a = np.array([0, 1], "int32")
    b = np.array([3, 4], "int32")
    # Train-mode batch norm: gains and biases of the classes differ.
    assert np.abs(np.asarray(g(z, a, training=True)) - np.asarray(g(z, b, training=True))).max() > 1e-4
    x = np.asarray(g(z, a))
    assert np.abs(np.asarray(d(x, a)) - np.asarray(d(x, b))).max() > 1e-5


def test_orthogonal_initialisation_and_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(8,),
                      kernel_initializer="orthogonal")
        d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=(4,),
                          kernel_initializer="orthogonal")
        images = g(np.zeros((2, 8), "float32"), training=True)
        logits = d(images, training=True)
    finally:
        keras.config.set_dtype_policy("float32")
    assert images.dtype == "float32" and logits.dtype == "float32"
    assert g.stages[0][0].raw_kernel.dtype == "float32"
    kernel = np.asarray(g.stages[1][0].raw_kernel).reshape(-1, 16)  # (4*4*8, 16)
    np.testing.assert_allclose(kernel.T @ kernel / (kernel.T @ kernel)[0, 0], np.eye(16), atol=1e-4)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Generator.from_preset("dcgan_48"), "preset.*dcgan_64"),
        (lambda: DCGANGenerator(48), "image_size.*16, 32, 64, 128"),
        (lambda: Generator.from_config({"architecture": "transformer"}), "architecture"),
        (lambda: DCGANGenerator(64, attention_resolutions=(64,)), "attention_resolutions.*4, 8, 16, 32"),
        (lambda: ResNetDiscriminator(32, attention_resolutions=(32,)), "attention_resolutions.*16, 8"),
        (lambda: DCGANGenerator(32, output_channels=2), "output_channels"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_shapes():
    g = DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=())
    with pytest.raises(ValueError, match="z.*8"):
        g(np.zeros((2, 9), "float32"))
    d = DCGANDiscriminator(16, base_channels=8, attention_resolutions=())
    with pytest.raises(ValueError, match="images"):
        d(np.zeros((2, 32, 32, 3), "float32"))
    with pytest.raises(ValueError, match="labels"):
        DCGANGenerator(16, z_dim=8, base_channels=8, attention_resolutions=(),
                  num_classes=3)(np.zeros((2, 8), "float32"))
