"""Spectral normalization that keeps the gradient through sigma (Miyato et al. 2018)."""

import keras
from keras import ops

_KERNEL_ATTRS = ("kernel", "embeddings")


def _l2_normalize(x, epsilon):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), epsilon)


@keras.saving.register_keras_serializable(package="sagan_tf")
class SpectralNormalization(keras.layers.Wrapper):
    """Reparametrizes a layer's kernel as `W / sigma(W)` at every call.

    Unlike `keras.layers.SpectralNormalization` (and tensorflow-addons'), the raw
    kernel stays the trainable variable and is never overwritten: `call`
    computes `W_sn = W / sigma(W)` from it, with the power-iteration vectors `u`
    and `v` under `stop_gradient`, so the gradient flows through `sigma` exactly
    as in Miyato et al. and PyTorch's `torch.nn.utils.spectral_norm`.

    The kernel is viewed as a matrix of shape `(-1, output_channels)`: Dense
    `(in, out)`, Conv `(kh, kw, in, out)`, Conv2DTranspose `(kh, kw, out, in)`
    (output channels on axis 2: the matrix (kh*kw*in, out), multiplied through the
    kernel's (kh*kw, out, in) view without a transposed copy) and Embedding
    `(input_dim, output_dim)`. A Conv2DTranspose kernel can instead be
    flattened by input channels (`transpose_flatten="input"`: the matrix
    `(in, out * kh * kw)` up to transposition and row order, which is what
    heykeetae's PyTorch SAGAN does with its `(in, out, kh, kw)` weights); the
    default, `"output"`, is PyTorch's own `spectral_norm` (dim=1 for transposed
    convolutions). The two give different sigmas. `u` (one vector per layer, non-trainable, named
    `u`) is advanced by `power_iterations` steps only when `training=True`; at
    inference the stored `u` is read and nothing changes. `u` is created with
    `aggregation="only_first_replica"`, so its assignment inside a replica
    context is valid under `tf.distribute` strategies (every replica computes
    the same value from the same mirrored kernel).

    Power iteration and sigma are computed in the variable dtype (float32 under
    mixed precision); the normalized kernel is then cast to the compute dtype.

    Args:
        layer: a `Dense`, `Conv1D/2D/3D`, `Conv2DTranspose` or `Embedding` layer.
        power_iterations: int >= 1, power-iteration steps per training call.
        epsilon: small constant guarding the normalizations.
        transpose_flatten: `"output"` (default) or `"input"`: which channels of
            a Conv2DTranspose kernel stay a matrix axis (other layers take
            `"output"` only).
        **kwargs: base layer arguments.

    Call arguments:
        inputs: the wrapped layer's input.
        training: bool; when True, `u` is advanced and stored.

    Reference:
        Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for
        Generative Adversarial Networks", ICLR 2018, arXiv:1802.05957.
    """

    def __init__(self, layer, power_iterations=1, epsilon=1e-12, transpose_flatten="output",
                 **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(layer, **kwargs)
        if not isinstance(layer, _SUPPORTED):
            raise ValueError(
                "SpectralNormalization: argument `layer` must be one of "
                f"{[c.__name__ for c in _SUPPORTED]}; received {type(layer).__name__}."
            )
        if int(power_iterations) < 1:
            raise ValueError(
                "SpectralNormalization: argument `power_iterations` must be >= 1; "
                f"received {power_iterations}."
            )
        if transpose_flatten not in ("output", "input"):
            raise ValueError(
                "SpectralNormalization: argument `transpose_flatten` must be 'output' or "
                f"'input'; received {transpose_flatten!r}."
            )
        if transpose_flatten == "input" and not isinstance(layer, keras.layers.Conv2DTranspose):
            raise ValueError(
                "SpectralNormalization: argument `transpose_flatten='input'` applies to "
                f"Conv2DTranspose only; received {type(layer).__name__}."
            )
        self.power_iterations = int(power_iterations)
        self.epsilon = epsilon
        self.transpose_flatten = transpose_flatten

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        kernel = None
        for name in _KERNEL_ATTRS:
            kernel = getattr(self.layer, name, None)
            if kernel is not None:
                break
        if kernel is None:
            raise ValueError(
                "SpectralNormalization: argument `layer` has no `kernel` or "
                f"`embeddings` variable ({type(self.layer).__name__})."
            )
        self._kernel_shape = tuple(kernel.shape)
        # Output channels of a Conv2DTranspose kernel (kh, kw, out, in) are on axis 2.
        self._transpose = (isinstance(self.layer, keras.layers.Conv2DTranspose)
                           and self.transpose_flatten == "output")
        out_dim = self._kernel_shape[-2] if self._transpose else self._kernel_shape[-1]
        self.u = self.add_weight(
            name="u",
            shape=(out_dim,),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
        )
        self.built = True

    @property
    def ema_copied_weights(self):
        """`u`: an average of unit vectors is not one, so a moving average of this
        layer's weights (`sagan_tf.ema.EMA`) copies it."""
        return [self.u] if self.built else []

    @property
    def raw_kernel(self):
        for name in _KERNEL_ATTRS:
            kernel = getattr(self.layer, name, None)
            if kernel is not None:
                return kernel
        return None

    def _kernel_matrix(self, kernel):
        """The kernel as the matrix W whose spectral norm is taken: (rows, out), or for
        transpose_flatten="input" (kh * kw * out, in). A Conv2DTranspose kernel
        (kh, kw, out, in) flattened by output channels is kept as its (kh * kw, out, in)
        view, W[(p, i), o] = view[p, o, i], so that no transposed copy of the kernel is
        made (forward or backward); `_times_u` and `_times_v` multiply by it."""
        if self._transpose:
            return ops.reshape(kernel, (-1,) + tuple(kernel.shape[2:]))  # (kh*kw, out, in)
        return ops.reshape(kernel, (-1, kernel.shape[-1]))  # (rows, out)

    def _times_u(self, w, u):
        """W u: (rows,)."""
        if self._transpose:
            return ops.reshape(ops.matmul(u[None, None, :], w), (-1,))  # (P, 1, in) -> (P*in,)
        return ops.matmul(w, u[:, None])[:, 0]

    def _times_v(self, w, v):
        """W^T v: (out,)."""
        if self._transpose:
            v = ops.reshape(v, (w.shape[0], w.shape[2], 1))  # (P, in, 1)
            return ops.sum(ops.matmul(w, v)[..., 0], axis=0)  # (P, out) -> (out,)
        return ops.matmul(v[None, :], w)[0]

    def power_iteration(self, w_mat, u, iterations):
        """Returns (u, v, sigma) after `iterations` steps; u, v without gradient.
        `w_mat` is `_kernel_matrix(kernel)`."""
        w_const = ops.stop_gradient(w_mat)
        v = None
        for _ in range(iterations):
            v = _l2_normalize(self._times_u(w_const, u), self.epsilon)
            u = _l2_normalize(self._times_v(w_const, v), self.epsilon)
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        sigma = ops.sum(v * self._times_u(w_mat, u))
        return u, v, sigma

    def normalized_kernel(self, training=False):
        """`W / sigma(W)` in the variable dtype; advances `u` when training."""
        kernel = ops.convert_to_tensor(self.raw_kernel)
        kernel = ops.cast(kernel, self.variable_dtype)
        w_mat = self._kernel_matrix(kernel)
        u = ops.convert_to_tensor(self.u)
        if training:
            u, _, sigma = self.power_iteration(w_mat, u, self.power_iterations)
            self.u.assign(u)
        else:
            # Read-only: v from the stored u, sigma = v^T W u.
            v = _l2_normalize(self._times_u(ops.stop_gradient(w_mat), u), self.epsilon)
            sigma = ops.sum(v * self._times_u(w_mat, u))
        return kernel / sigma

    def call(self, inputs, training=None):
        # Its own name scope, so that profiles tell sigma's ops from the layer's product.
        with keras.name_scope("spectral_norm"):
            kernel = ops.cast(self.normalized_kernel(bool(training)), self.compute_dtype)
        layer = self.layer
        if isinstance(layer, keras.layers.Embedding):
            return ops.take(kernel, ops.cast(inputs, "int32"), axis=0)
        inputs = ops.cast(inputs, self.compute_dtype)
        if isinstance(layer, keras.layers.Dense):
            outputs = ops.matmul(inputs, kernel)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            outputs = ops.conv_transpose(
                inputs,
                kernel,
                strides=list(layer.strides),
                padding=layer.padding,
                output_padding=layer.output_padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        else:
            outputs = layer.convolution_op(inputs, kernel)
        if layer.use_bias:
            bias = ops.cast(layer.bias, self.compute_dtype)
            if getattr(layer, "data_format", "channels_last") == "channels_first":
                bias = ops.reshape(bias, (1, -1) + (1,) * (len(outputs.shape) - 2))
            outputs = outputs + bias
        if layer.activation is not None:
            outputs = layer.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"power_iterations": self.power_iterations, "epsilon": self.epsilon,
                       "transpose_flatten": self.transpose_flatten})
        return config


_SUPPORTED = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv2DTranspose,
    keras.layers.Embedding,
)
