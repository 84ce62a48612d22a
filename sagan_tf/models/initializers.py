"""Kernel initializers by name, including PyTorch's layer defaults.

`"pytorch"` reproduces what `torch.nn.Conv2d`, `ConvTranspose2d` and `Linear`
do in `reset_parameters`: kernels kaiming-uniform with a = sqrt(5), which is
U(+-1/sqrt(fan_in)) = `VarianceScaling(1/3, "fan_in", "uniform")`, and biases
U(+-1/sqrt(fan_in)). PyTorch counts a ConvTranspose2d's fan-in over its output
channels (`weight.size(1) * kh * kw`), and so does Keras for a Conv2DTranspose
kernel `(kh, kw, out, in)`, so the same formula holds for both.
"""

import math

import keras
import numpy as np

PYTORCH = "pytorch"


def get(name):
    """A Keras initializer for `name` (any Keras initializer name, or "pytorch")."""
    if name == PYTORCH:
        return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    return keras.initializers.get(name)


def _biased_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if (isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose,
                               keras.layers.Dense))
                and layer.use_bias and layer.built):
            yield layer


def reset_pytorch_biases(model):
    """Draws every conv / dense bias of a built `model` from U(+-1/sqrt(fan_in)),
    fan_in = the product of the kernel's leading dimensions (PyTorch's rule)."""
    for layer in _biased_layers(model):
        fan_in = int(np.prod(layer.kernel.shape[:-1]))
        bound = 1.0 / math.sqrt(fan_in)
        layer.bias.assign(keras.initializers.RandomUniform(-bound, bound)(layer.bias.shape))
