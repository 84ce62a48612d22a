"""The SAGAN self-attention block, in the paper's and the official code's variants."""

import keras
from keras import ops

from sagan_tf.layers import attention_ops
from sagan_tf.layers.pointwise_conv import PointwiseConv2D
from sagan_tf.layers.spectral_norm import SpectralNormalization
from sagan_tf.names import ATTENTION_VARIANTS as VARIANTS


@keras.saving.register_keras_serializable(package="sagan_tf")
class SelfAttention2D(keras.layers.Layer):
    """SAGAN self-attention over the spatial positions of an NHWC feature map.

    `y = gamma * o + x`, with a scalar `gamma` initialised to 0 and
    `o_i = sum_j softmax_j(q_i . k_j) v_j` (softmax over keys, in float32).

    Two variants:
      - `"paper"` (the paper's text and the popular PyTorch code): 1x1 convs
        query/key C -> C/8, value C -> C, keys over all N = H*W positions.
      - `"official"` (the authors' TF code, also BigGAN and TF-GAN): query/key
        C -> C/8, value C -> C/2, 2x2 max-pool on key and value (N/4 keys), and
        a 1x1 output conv C/2 -> C.

    When the attention map is not requested and there are more than
    `query_tile_size` query positions, the output is computed block by block
    of queries (forward and backward), so the dense (B, N, N_key) map is never
    held in memory.

    Args:
        variant: `"paper"` or `"official"`.
        use_spectral_norm: wrap every 1x1 conv in `SpectralNormalization`.
        use_bias: bias on the 1x1 convs; default True for `"paper"` (as the
            PyTorch code), False for `"official"`.
        key_divisor: query/key channels are C // key_divisor (8 in SAGAN).
        query_tile_size: queries per block in the memory-bounded path; the
            dense path is used when N <= query_tile_size.
        kernel_initializer: initializer of the 1x1 convs.
        power_iterations: spectral-norm power iterations per training step.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: (B, H, W, C) with C divisible by `key_divisor`.
        training: bool, forwarded to spectral normalization.
        return_attention: when True, returns `(y, attention)` with attention of
            shape (B, N_query, N_key): row i is where query pixel i looks.

    Reference:
        Zhang, Goodfellow, Metaxas, Odena, "Self-Attention Generative
        Adversarial Networks", ICML 2019, arXiv:1805.08318.
    """

    def __init__(
        self,
        variant="paper",
        use_spectral_norm=True,
        use_bias=None,
        key_divisor=8,
        query_tile_size=1024,
        kernel_initializer="glorot_uniform",
        power_iterations=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise ValueError(
                f"SelfAttention2D: argument `variant` must be one of {VARIANTS}; "
                f"received {variant!r}."
            )
        if int(query_tile_size) < 1:
            raise ValueError(
                "SelfAttention2D: argument `query_tile_size` must be >= 1; "
                f"received {query_tile_size}."
            )
        self.variant = variant
        self.use_spectral_norm = use_spectral_norm
        self.use_bias = (variant == "paper") if use_bias is None else bool(use_bias)
        self.key_divisor = int(key_divisor)
        self.query_tile_size = int(query_tile_size)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.power_iterations = power_iterations

    def _conv(self, filters, name):
        conv = PointwiseConv2D(
            filters,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        if self.use_spectral_norm:
            return SpectralNormalization(
                conv,
                power_iterations=self.power_iterations,
                dtype=self.dtype_policy,
                name=f"sn_{name}",
            )
        return conv

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "SelfAttention2D: argument `inputs` must be rank 4 (B, H, W, C); "
                f"received shape {tuple(input_shape)}."
            )
        _, height, width, channels = input_shape
        if channels is None or channels % self.key_divisor or channels < self.key_divisor:
            raise ValueError(
                "SelfAttention2D: argument `inputs` must have channels divisible by "
                f"key_divisor={self.key_divisor}; received {channels}."
            )
        if height is None or width is None:
            raise ValueError(
                "SelfAttention2D: argument `inputs` needs a static height and width; "
                f"received shape {tuple(input_shape)}."
            )
        if self.variant == "official" and (height % 2 or width % 2):
            raise ValueError(
                "SelfAttention2D: variant 'official' max-pools keys by 2x2, so "
                f"argument `inputs` needs even height and width; received {height}x{width}."
            )
        self.height, self.width, self.channels = height, width, channels
        key_channels = channels // self.key_divisor
        value_channels = channels if self.variant == "paper" else channels // 2
        self.query_conv = self._conv(key_channels, "query")
        self.key_conv = self._conv(key_channels, "key")
        self.value_conv = self._conv(value_channels, "value")
        self.query_conv.build(input_shape)
        self.key_conv.build(input_shape)
        self.value_conv.build(input_shape)
        if self.variant == "official":
            self.output_conv = self._conv(channels, "output")
            self.output_conv.build((None, height, width, value_channels))
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, inputs, training=None, return_attention=False):
        h, w = self.height, self.width
        n = h * w
        q = self.query_conv(inputs, training=training)  # (B, H, W, C/8)
        k = self.key_conv(inputs, training=training)  # (B, H, W, C/8)
        v = self.value_conv(inputs, training=training)  # (B, H, W, Cv)
        if self.variant == "official":
            k = ops.max_pool(k, 2, 2)  # (B, H/2, W/2, C/8)
            v = ops.max_pool(v, 2, 2)  # (B, H/2, W/2, C/2)
        q = ops.reshape(q, (-1, n, q.shape[-1]))  # (B, N, C/8)
        k = ops.reshape(k, (-1, k.shape[1] * k.shape[2], k.shape[-1]))  # (B, Nk, C/8)
        v = ops.reshape(v, (-1, v.shape[1] * v.shape[2], v.shape[-1]))  # (B, Nk, Cv)
        attention = None
        if return_attention:
            o, attention = attention_ops.dense_attention(q, k, v)  # (B, N, Cv)
        elif n <= self.query_tile_size:
            o = attention_ops.dense_output(q, k, v)  # (B, N, Cv)
        else:
            o = attention_ops.tiled_attention(q, k, v, self.query_tile_size)
        o = ops.reshape(o, (-1, h, w, o.shape[-1]))  # (B, H, W, Cv)
        if self.variant == "official":
            o = self.output_conv(o, training=training)  # (B, H, W, C)
        outputs = ops.cast(self.gamma, o.dtype) * o + ops.cast(inputs, o.dtype)
        if return_attention:
            return outputs, attention
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "variant": self.variant,
                "use_spectral_norm": self.use_spectral_norm,
                "use_bias": self.use_bias,
                "key_divisor": self.key_divisor,
                "query_tile_size": self.query_tile_size,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "power_iterations": self.power_iterations,
            }
        )
        return config
