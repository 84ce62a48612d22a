"""What every generator and discriminator family shares: arguments, attention
stages, building, configs, and construction by family name or preset.

A family is one subclass of `Generator` and one of `Discriminator` that sets the
class attribute `architecture` (its name in configs and presets) and builds its
own stages; `Generator.from_config` and `Generator.from_preset` (and the same on
`Discriminator`) pick the family's class from the name, so a new family is a new
module and nothing else changes.
"""

import keras
from keras import ops

from sagan_tf.layers import SelfAttention2D
from sagan_tf.layers.spectral_norm import SpectralNormalization
from sagan_tf.models import initializers
from sagan_tf.models import presets as P


def check_choice(owner, argument, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"{owner}: argument `{argument}` must be one of {list(allowed)}; received {value!r}."
        )


class _FamilyModel(keras.Model):
    """The machinery common to G and D (not a model by itself).

    Class attributes a family sets:
        architecture: the family's name (`"dcgan"`, `"resnet"`, ...).
        default_attention_variant: `"paper"` or `"official"`.
        default_attention_spectral_norm: whether the attention's 1x1 convs are
            spectral-normalized unless told otherwise.
        use_spectral_norm: whether the family's convs are spectral-normalized.
    """

    architecture = None
    default_attention_variant = "paper"
    default_attention_spectral_norm = False
    use_spectral_norm = True
    _families = None  # {architecture: class}, one dict per base (G or D)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_families" in cls.__dict__:  # a base: G or D
            return
        if cls.__dict__.get("architecture"):
            cls._families[cls.architecture] = cls

    def _init_common(self, image_size, base_channels, attention_resolutions, attention_variant,
                     num_classes, kernel_initializer, attention_spectral_norm):
        owner = type(self).__name__
        if self.architecture is None:
            raise TypeError(f"{owner} is a base class; use a family class "
                            f"({', '.join(sorted(self._families))}) or {owner}.from_preset")
        check_choice(owner, "image_size", image_size, P.IMAGE_SIZES)
        self.image_size = int(image_size)
        self.base_channels = int(base_channels)
        self.attention_resolutions = tuple(int(r) for r in attention_resolutions)
        self.attention_variant = attention_variant or self.default_attention_variant
        self.num_classes = int(num_classes)
        self.kernel_initializer = kernel_initializer
        if attention_spectral_norm is None:
            attention_spectral_norm = self.default_attention_spectral_norm
        self.attention_spectral_norm = bool(attention_spectral_norm)

    def _check_attention(self, resolutions):
        for r in self.attention_resolutions:
            check_choice(type(self).__name__, "attention_resolutions", r, resolutions)

    def _attention(self, resolution):
        if resolution not in self.attention_resolutions:
            return None
        return SelfAttention2D(self.attention_variant,
                               use_spectral_norm=self.attention_spectral_norm,
                               kernel_initializer=self.init, name=f"attention{resolution}")

    def _sn(self, layer, transpose_flatten="output"):
        """`layer`, spectral-normalized when the family uses spectral norm."""
        if not self.use_spectral_norm:
            return layer
        return SpectralNormalization(layer, transpose_flatten=transpose_flatten,
                                     name=f"sn_{layer.name}")

    @property
    def attention_layers(self):
        """The `SelfAttention2D` layers, input side first."""
        return [a for _, _, a in self.stages if a is not None]

    @staticmethod
    def _attend(attention, x, training, return_attention, maps):
        if attention is None:
            return x
        if return_attention:
            x, attention_map = attention(x, training=training, return_attention=True)
            maps.append(attention_map)
            return x
        return attention(x, training=training)

    def _build_from(self, *inputs):
        labels = ops.zeros((1,), "int32") if self.num_classes else None
        self.call(*inputs, labels, training=False)
        if self.kernel_initializer == initializers.PYTORCH:
            initializers.reset_pytorch_biases(self)

    def _check_labels(self, labels):
        if self.num_classes and labels is None:
            raise ValueError(f"{type(self).__name__}: argument `labels` is required "
                             f"(num_classes={self.num_classes}).")

    def _common_config(self):
        return {
            "name": self.name,
            "architecture": self.architecture,
            "image_size": self.image_size,
            "base_channels": self.base_channels,
            "attention_resolutions": list(self.attention_resolutions),
            "attention_variant": self.attention_variant,
            "num_classes": self.num_classes,
            "kernel_initializer": self.kernel_initializer,
            "attention_spectral_norm": self.attention_spectral_norm,
        }

    # Arguments a family does not take, with the value that means "not used": a
    # config.json written when every family took every argument carries them.
    _UNUSED_DEFAULTS = {"sn_transpose_flatten": "output", "final_batch_norm_momentum": None}

    @classmethod
    def family(cls, architecture):
        """The class of the family named `architecture`."""
        if architecture not in cls._families:  # the family modules register on import
            import importlib

            for module in ("baseline", "dcgan", "resnet"):
                importlib.import_module(f"sagan_tf.models.{module}")
        check_choice(cls.__name__, "architecture", architecture, sorted(cls._families))
        return cls._families[architecture]

    @classmethod
    def from_config(cls, config):
        """Builds the family named by `config["architecture"]` (a family class also
        accepts a config without it)."""
        config = dict(config)
        architecture = config.pop("architecture", cls.architecture)
        target = cls.family(architecture)
        if cls.architecture is not None and target is not cls:
            raise ValueError(f"{cls.__name__}.from_config: the config is of the "
                             f"{architecture!r} family")
        for name, unused in cls._UNUSED_DEFAULTS.items():
            if name in config and name not in target.own_arguments:
                if config[name] != unused:
                    raise ValueError(f"{target.__name__}: argument `{name}` does not apply to "
                                     f"the {architecture!r} family; received {config[name]!r}.")
                del config[name]
        return target(**config)

    @classmethod
    def from_preset(cls, preset, **overrides):
        """The model of a named preset (`sagan_tf.models.PRESETS`), with `overrides`."""
        g_kwargs, d_kwargs = P.preset_kwargs(preset)
        kwargs = dict(g_kwargs if issubclass(cls, Generator) else d_kwargs, **overrides)
        return cls.from_config(kwargs)


@keras.saving.register_keras_serializable(package="sagan_tf")
class Generator(_FamilyModel):
    """Base of the SAGAN generators: z (and a class label) to images in [-1, 1],
    NHWC float32. Build one with a family class (`DCGANGenerator`,
    `ResNetGenerator`, `BaselineGenerator`), `Generator.from_preset(name)` or
    `Generator.from_config(config)`.

    Args:
        image_size: output height and width, one of 16, 32, 64, 128.
        z_dim: latent size.
        base_channels: width multiplier (g_conv_dim / gf_dim).
        attention_resolutions: feature-map sizes after which a
            `SelfAttention2D` is applied.
        attention_variant: `"paper"` or `"official"`; default per family.
        num_classes: 0 for unconditional, else conditional batch norm.
        output_channels: 3 for RGB, 1 for grayscale.
        kernel_initializer: e.g. `"glorot_uniform"`, `"orthogonal"`, or
            `"pytorch"` (PyTorch's layer defaults for kernels and biases, see
            `sagan_tf.models.initializers`).
        attention_spectral_norm: spectral-normalize the attention block's 1x1
            convs. Default per family: True for `resnet` (the official code),
            False for `dcgan` (the PyTorch code's `Self_Attn` uses plain convs).
        label_embedding_dim: for conditional models, also feed a learned class
            embedding of this size beside z into the first layer (BigGAN's
            shared embedding, concatenated); 0 conditions through the batch
            norms alone (the official SAGAN code).
        batch_norm_momentum: moving-average momentum of the batch norms, in
            Keras's terms (PyTorch's momentum m is 1 - m here: heykeetae 0.9;
            the official code's conditional batch norms 0.999).
        **kwargs: base model arguments.

    Call arguments:
        z: (B, z_dim) float.
        labels: int (B,), required when `num_classes > 0`.
        training: bool.
        return_attention: also return a list of attention maps (B, N, N_key),
            one per attention layer, in order.

    Reference:
        Zhang, Goodfellow, Metaxas, Odena, arXiv:1805.08318.
    """

    _families = {}
    own_arguments = ()  # family-specific constructor arguments

    def __init__(self, image_size=64, z_dim=128, base_channels=64, attention_resolutions=(16, 32),
                 attention_variant=None, num_classes=0, output_channels=3,
                 kernel_initializer="glorot_uniform", attention_spectral_norm=None,
                 label_embedding_dim=0, batch_norm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        self._init_common(image_size, base_channels, attention_resolutions, attention_variant,
                          num_classes, kernel_initializer, attention_spectral_norm)
        check_choice(type(self).__name__, "output_channels", output_channels, (1, 3))
        self.z_dim = int(z_dim)
        self.output_channels = int(output_channels)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self._check_momentum("batch_norm_momentum", self.batch_norm_momentum)
        self.label_embedding_dim = int(label_embedding_dim) if self.num_classes else 0
        if self.label_embedding_dim < 0:
            raise ValueError(f"{type(self).__name__}: argument `label_embedding_dim` must be "
                             f">= 0; received {label_embedding_dim}.")
        if self.label_embedding_dim:
            self.label_embedding = keras.layers.Embedding(
                self.num_classes, self.label_embedding_dim, name="label_embedding")
        # Made after the embedding: an initializer draws its seed when it is made.
        self.init = initializers.get(kernel_initializer)

    def _check_momentum(self, name, value):
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError(f"{type(self).__name__}: argument `{name}` must be in [0, 1); "
                             f"received {value}.")

    def build(self, input_shape=None):
        self._build_from(ops.zeros((1, self.z_dim)))

    def call(self, z, labels=None, training=None, return_attention=False):
        if len(z.shape) != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"{type(self).__name__}: argument `z` must have shape "
                             f"(batch, {self.z_dim}); received {tuple(z.shape)}.")
        self._check_labels(labels)
        maps = []
        if self.label_embedding_dim:
            z = ops.concatenate(  # (B, z_dim + label_embedding_dim)
                [z, ops.cast(self.label_embedding(labels), z.dtype)], axis=-1)
        x = self.synthesize(z, labels, training, lambda a, h: self._attend(
            a, h, training, return_attention, maps))  # (B, S, S, output_channels)
        images = ops.cast(ops.tanh(ops.cast(x, "float32")), "float32")
        return (images, maps) if return_attention else images

    def synthesize(self, z, labels, training, attend):
        """The family's layers: (B, z) to pre-tanh images (B, S, S, output_channels);
        `attend(attention, x)` applies a stage's attention (None: none)."""
        raise NotImplementedError

    def get_config(self):
        config = self._common_config()
        config.update(z_dim=self.z_dim, output_channels=self.output_channels,
                      label_embedding_dim=self.label_embedding_dim,
                      batch_norm_momentum=self.batch_norm_momentum)
        return config


@keras.saving.register_keras_serializable(package="sagan_tf")
class Discriminator(_FamilyModel):
    """Base of the SAGAN discriminators: images (and labels) to one logit per
    image. Build one with a family class (`DCGANDiscriminator`,
    `ResNetDiscriminator`, `BaselineDiscriminator`),
    `Discriminator.from_preset(name)` or `Discriminator.from_config(config)`.

    Class-conditional models (`num_classes > 0`) add the projection term
    `sum(embed(y) * h)` on the pooled features h (Miyato & Koyama 2018).

    Args:
        image_size: input height and width, one of 16, 32, 64, 128.
        base_channels: width multiplier (d_conv_dim / df_dim).
        attention_resolutions: feature-map sizes after which a
            `SelfAttention2D` is applied.
        attention_variant: `"paper"` or `"official"`; default per family.
        num_classes: 0 for unconditional, else the projection head.
        input_channels: 3 for RGB, 1 for grayscale.
        kernel_initializer: e.g. `"glorot_uniform"`, `"orthogonal"` or
            `"pytorch"` (PyTorch's layer defaults, kernels and biases).
        attention_spectral_norm: spectral-normalize the attention block's 1x1
            convs; default per family.
        **kwargs: base model arguments.

    Call arguments:
        images: (B, S, S, input_channels) in [-1, 1].
        labels: int (B,), required when `num_classes > 0`.
        training: bool.
        return_attention: also return the list of attention maps.

    Reference:
        Zhang et al., arXiv:1805.08318; Miyato, Koyama, arXiv:1802.05637.
    """

    _families = {}
    own_arguments = ()
    # Whether D normalizes over the batch: then real and fake batches must go
    # through it in separate calls, so that their statistics never mix.
    uses_batch_norm = False

    def __init__(self, image_size=64, base_channels=64, attention_resolutions=(8, 4),
                 attention_variant=None, num_classes=0, input_channels=3,
                 kernel_initializer="glorot_uniform", attention_spectral_norm=None, **kwargs):
        super().__init__(**kwargs)
        self._init_common(image_size, base_channels, attention_resolutions, attention_variant,
                          num_classes, kernel_initializer, attention_spectral_norm)
        check_choice(type(self).__name__, "input_channels", input_channels, (1, 3))
        self.input_channels = int(input_channels)
        self.init = initializers.get(kernel_initializer)

    def _projection_head(self, feature_channels):
        """The class embedding of the projection term (conditional models)."""
        self.feature_channels = feature_channels
        if self.num_classes:
            self.embedding = self._sn(keras.layers.Embedding(
                self.num_classes, feature_channels, embeddings_initializer=self.init,
                name="class_embedding"))

    def build(self, input_shape=None):
        self._build_from(ops.zeros((1, self.image_size, self.image_size, self.input_channels)))

    def call(self, images, labels=None, training=None, return_attention=False):
        expected = (self.image_size, self.image_size, self.input_channels)
        if len(images.shape) != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__}: argument `images` must have shape "
                             f"(batch, {', '.join(map(str, expected))}); "
                             f"received {tuple(images.shape)}.")
        self._check_labels(labels)
        maps = []
        logits, features = self.score(images, training, lambda a, h: self._attend(
            a, h, training, return_attention, maps))  # (B,), (B, C)
        if self.num_classes:
            embedded = self.embedding(labels, training=training)  # (B, C)
            logits = logits + ops.sum(ops.cast(embedded, features.dtype) * features, axis=-1)
        logits = ops.cast(logits, "float32")
        return (logits, maps) if return_attention else logits

    def score(self, images, training, attend):
        """The family's layers: images to (unconditional logits (B,), pooled
        features (B, C) for the projection term)."""
        raise NotImplementedError

    def get_config(self):
        config = self._common_config()
        config.update(input_channels=self.input_channels)
        return config
