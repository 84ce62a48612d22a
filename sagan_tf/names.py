"""The closed sets of names and the defaults that options take, free of
TensorFlow: flag definitions (and so every command's `--help`) read them without
importing it. The modules that implement each set import it from here.
"""

# sagan_tf.losses: the adversarial losses.
LOSSES = ("hinge", "ns", "wgan_gp")
# sagan_tf.gan: the labels of the fake batch (the real batch's, or uniform draws).
FAKE_LABELS = ("real", "uniform")
# sagan_tf.layers.self_attention: the paper's block and the official code's pooled one.
ATTENTION_VARIANTS = ("paper", "official")
# sagan_tf.augment: DiffAugment's policies, in application order.
AUGMENT_POLICIES = ("color", "translation", "cutout")
# sagan_tf.ada: the transformations, in pipeline order; the r_t target and the steps
# between adjustments of p (StyleGAN2-ADA's).
ADA_TRANSFORMS = ("xflip", "rotate90", "translate", "scale", "brightness", "contrast",
                  "saturation", "cutout")
ADA_TARGET = 0.6
ADA_INTERVAL = 4
# sagan_tf.backbones: the feature networks of FID/KID/IS.
BACKBONES = ("classifier", "inception_graph", "keras_inception")
# sagan_tf.serving: the largest batch a request may ask for.
SERVING_MAX_BATCH = 1024
