"""sagan_tf: Self-Attention GAN (Zhang et al. 2018) in Keras 3 / TensorFlow 2."""

__version__ = "0.2.0"
