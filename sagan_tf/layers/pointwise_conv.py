"""A 1x1 convolution computed as one matrix product."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="sagan_tf")
class PointwiseConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D(filters, 1)` computed as a matrix product.

    Same variables (kernel `(1, 1, C, filters)`, bias), config and output as a
    1x1, stride-1 `Conv2D`; checkpoints and weights are interchangeable. For
    channels-last inputs, `convolution_op` multiplies the `(B*H*W, C)` inputs
    by the `(C, filters)` kernel. TensorFlow's oneDNN 1x1 convolution is slow
    on CPU, its filter gradient most of all: a forward and backward pass at
    (64, 32, 32, 64) -> 64 channels took 26 ms as a convolution and 11 ms as a
    matmul (AMD EPYC Zen 5, AVX-512, 2 cores). `SpectralNormalization` calls
    the same `convolution_op`, so a wrapped layer takes the same path.

    Args:
        filters: output channels.
        kernel_size: must be 1 (accepted so that `Conv2D` configs load).
        **kwargs: other `Conv2D` arguments; `strides`, `dilation_rate` and
            `groups` must stay 1.

    Call arguments:
        inputs: (B, H, W, C) (or (B, C, H, W) with `data_format="channels_first"`,
            which falls back to the convolution).
    """

    def __init__(self, filters, kernel_size=1, **kwargs):
        for name, value in (("kernel_size", kernel_size),
                            ("strides", kwargs.get("strides", 1)),
                            ("dilation_rate", kwargs.get("dilation_rate", 1))):
            if set(value if isinstance(value, (list, tuple)) else (value,)) != {1}:
                raise ValueError(
                    f"PointwiseConv2D: argument `{name}` must be 1; received {value!r}."
                )
        if kwargs.get("groups", 1) != 1:
            raise ValueError(
                f"PointwiseConv2D: argument `groups` must be 1; received {kwargs['groups']!r}."
            )
        super().__init__(filters, 1, **kwargs)

    def convolution_op(self, inputs, kernel):
        if self.data_format != "channels_last":
            return super().convolution_op(inputs, kernel)
        channels = kernel.shape[-2]
        flat = ops.reshape(inputs, (-1, channels))  # (B*H*W, C)
        outputs = ops.matmul(flat, ops.reshape(kernel, (channels, self.filters)))  # (B*H*W, F)
        shape = ops.shape(inputs)
        return ops.reshape(outputs, (shape[0], shape[1], shape[2], self.filters))  # (B, H, W, F)
