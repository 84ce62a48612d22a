"""Residual blocks of the official SAGAN 128x128 model (BigGAN/SNGAN style)."""

import keras
from keras import ops

from sagan_tf.layers.conditional_batch_norm import ConditionalBatchNormalization
from sagan_tf.layers.pointwise_conv import PointwiseConv2D
from sagan_tf.layers.spectral_norm import SpectralNormalization


def sn_conv(filters, kernel_size, name, use_spectral_norm=True, dtype=None,
            kernel_initializer="glorot_uniform", **kwargs):
    """A `Conv2D` ('same' padding; a `PointwiseConv2D` when 1x1), spectral-normalized
    unless told otherwise."""
    conv_class = PointwiseConv2D if kernel_size in (1, (1, 1)) else keras.layers.Conv2D
    conv = conv_class(
        filters, kernel_size, padding="same", kernel_initializer=kernel_initializer,
        dtype=dtype, name=name, **kwargs
    )
    if use_spectral_norm:
        return SpectralNormalization(conv, dtype=dtype, name=f"sn_{name}")
    return conv


def _upsample(x):
    return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)  # (B, 2H, 2W, C)


def _downsample(x):
    return ops.average_pool(x, 2, 2)  # (B, H/2, W/2, C)


class _BlockBase(keras.layers.Layer):
    def __init__(self, filters, use_spectral_norm=True, kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"{type(self).__name__}: argument `filters` must be >= 1; "
                             f"received {filters}.")
        self.filters = int(filters)
        self.use_spectral_norm = use_spectral_norm
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _conv(self, kernel_size, name):
        return sn_conv(self.filters, kernel_size, name, self.use_spectral_norm,
                       self.dtype_policy, self.kernel_initializer)

    def _check_rank(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__}: argument `inputs` must be rank 4 "
                             f"(B, H, W, C); received shape {tuple(input_shape)}.")

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "use_spectral_norm": self.use_spectral_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


@keras.saving.register_keras_serializable(package="sagan_tf")
class GBlock(_BlockBase):
    """Up-sampling generator block: BN-ReLU-up-conv3-BN-ReLU-conv3 + up-conv1 shortcut.

    Batch norms are class-conditional when `num_classes > 0`.

    Args:
        filters: output channels.
        num_classes: classes for conditional batch norm; 0 for plain batch norm.
        use_spectral_norm: spectral-normalize the convs (CBN embeddings are plain, as officially).
        kernel_initializer: conv kernel initializer.
        batch_norm_momentum: moving-average momentum of both batch norms.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: (B, H, W, C_in). labels: int (B,) when conditional. training: bool.
        Returns (B, 2H, 2W, filters).

    Reference:
        Zhang et al. 2018 (official code `block`); Miyato et al. 2018.
    """

    def __init__(self, filters, num_classes=0, use_spectral_norm=True,
                 kernel_initializer="glorot_uniform", batch_norm_momentum=0.99, **kwargs):
        super().__init__(filters, use_spectral_norm, kernel_initializer, **kwargs)
        self.num_classes = int(num_classes)
        self.batch_norm_momentum = float(batch_norm_momentum)

    def build(self, input_shape):
        self._check_rank(input_shape)
        b, h, w, c = input_shape
        up_shape = (b, None if h is None else 2 * h, None if w is None else 2 * w)
        self.bn1 = ConditionalBatchNormalization(self.num_classes,
                                                 momentum=self.batch_norm_momentum,
                                                 dtype=self.dtype_policy, name="bn1")
        self.conv1 = self._conv(3, "conv1")
        self.bn2 = ConditionalBatchNormalization(self.num_classes,
                                                 momentum=self.batch_norm_momentum,
                                                 dtype=self.dtype_policy, name="bn2")
        self.conv2 = self._conv(3, "conv2")
        self.shortcut = self._conv(1, "shortcut")
        self.bn1.build(input_shape)
        self.conv1.build(up_shape + (c,))
        self.bn2.build(up_shape + (self.filters,))
        self.conv2.build(up_shape + (self.filters,))
        self.shortcut.build(up_shape + (c,))

    def call(self, inputs, labels=None, training=None):
        x = ops.relu(self.bn1(inputs, labels, training=training))
        x = self.conv1(_upsample(x), training=training)  # (B, 2H, 2W, F)
        x = ops.relu(self.bn2(x, labels, training=training))
        x = self.conv2(x, training=training)
        return x + self.shortcut(_upsample(inputs), training=training)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        config["batch_norm_momentum"] = self.batch_norm_momentum
        return config


@keras.saving.register_keras_serializable(package="sagan_tf")
class DBlock(_BlockBase):
    """Discriminator block: ReLU-conv3-ReLU-conv3-(avgpool) + conv1-(avgpool) shortcut.

    The shortcut conv is used when the block down-samples or changes channels.
    With `optimized=True` it is the optimized first block (no ReLU before the
    first conv, shortcut pooled before its conv), as in the official code.

    Args:
        filters: output channels.
        downsample: 2x2 average-pool at the end.
        optimized: the first-block variant, which takes raw images.
        use_spectral_norm: spectral-normalize the convs.
        kernel_initializer: conv kernel initializer.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: (B, H, W, C_in). training: bool.
        Returns (B, H/2, W/2, filters) when down-sampling, else (B, H, W, filters).

    Reference:
        Zhang et al. 2018 (official code `block`, `optimized_block`).
    """

    def __init__(self, filters, downsample=True, optimized=False, use_spectral_norm=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(filters, use_spectral_norm, kernel_initializer, **kwargs)
        self.downsample = bool(downsample)
        self.optimized = bool(optimized)

    def build(self, input_shape):
        self._check_rank(input_shape)
        if self.downsample and any(d is not None and d % 2 for d in input_shape[1:3]):
            raise ValueError("DBlock: argument `inputs` needs even height and width to "
                             f"down-sample; received shape {tuple(input_shape)}.")
        b, h, w, c = input_shape
        self.conv1 = self._conv(3, "conv1")
        self.conv2 = self._conv(3, "conv2")
        self.conv1.build(input_shape)
        self.conv2.build((b, h, w, self.filters))
        self.learnable_shortcut = self.optimized or self.downsample or c != self.filters
        if self.learnable_shortcut:
            self.shortcut = self._conv(1, "shortcut")
            if self.optimized and self.downsample:
                self.shortcut.build((b, None if h is None else h // 2,
                                     None if w is None else w // 2, c))
            else:
                self.shortcut.build(input_shape)

    def call(self, inputs, training=None):
        x = inputs if self.optimized else ops.relu(inputs)
        x = self.conv1(x, training=training)
        x = self.conv2(ops.relu(x), training=training)
        if self.downsample:
            x = _downsample(x)  # (B, H/2, W/2, F)
        shortcut = inputs
        if self.optimized:
            if self.downsample:
                shortcut = _downsample(shortcut)
            shortcut = self.shortcut(shortcut, training=training)
        elif self.learnable_shortcut:
            shortcut = self.shortcut(shortcut, training=training)
            if self.downsample:
                shortcut = _downsample(shortcut)
        return x + shortcut

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        if self.downsample:
            h = None if h is None else h // 2
            w = None if w is None else w // 2
        return (b, h, w, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"downsample": self.downsample, "optimized": self.optimized})
        return config
