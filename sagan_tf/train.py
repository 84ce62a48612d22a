"""python -m sagan_tf.train: train SAGAN (defaults: the offline mnist5k dataset).

Presets are flag files: `--flagfile=flags/celeb_a_64.flags`, overridable flag by flag.
"""

import glob
import os
import sys

_FLAG_FILES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "flags", "*.flags")))
if _FLAG_FILES:
    __doc__ += "\nFlag files (presets):\n" + "".join(
        f"  --flagfile=flags/{os.path.basename(path)}: "
        f"{open(path).readline().lstrip('# ').strip()}\n" for path in _FLAG_FILES)

from sagan_tf import runtime  # noqa: E402  (before TensorFlow is imported)

runtime.setup()

from absl import app, flags, logging  # noqa: E402

from sagan_tf import training  # noqa: E402

FLAGS = flags.FLAGS
_D = training.TrainConfig.__dataclass_fields__

flags.DEFINE_string("dataset", "mnist5k", "TFDS name (celeb_a, cifar10, lsun/church_outdoor, "
                    "lsun/bedroom, imagenet2012), mnist5k (offline), or folder:PATH.")
flags.DEFINE_string("workdir", None, "Run directory (default runs/<dataset>); resumes from it.")
flags.DEFINE_string("preset", "dcgan_32", "Architecture preset: dcgan_{32,64,128}, "
                    "heykeetae_64, resnet_{32,64,128}, baseline_{32,64,128}.")
flags.DEFINE_integer("base_channels", None, "Width multiplier (default: the preset's 64).")
flags.DEFINE_integer("z_dim", 128, "Latent size.")
flags.DEFINE_list("g_attention", None, "Generator attention resolutions (default: the preset's; "
                  "empty string for none).")
flags.DEFINE_list("d_attention", None, "Discriminator attention resolutions.")
flags.DEFINE_enum("attention_variant", None, ["paper", "official"], "Attention variant.")
flags.DEFINE_boolean("conditional", False, "Class-conditional G (conditional BN) and projection D.")
flags.DEFINE_integer("label_embedding_dim", 0, "Conditional G: also feed a learned class "
                     "embedding of this size beside z (0: conditional batch norm alone).")
flags.DEFINE_integer("channels", 3, "Image channels the models use (1 or 3).")
flags.DEFINE_string("kernel_initializer", None, "e.g. glorot_uniform, orthogonal or pytorch "
                    "(PyTorch's layer defaults); default: the preset's (glorot_uniform, "
                    "heykeetae_64: pytorch).")
flags.DEFINE_float("bn_momentum", None, "G's batch-norm moving-average momentum in Keras's terms "
                   "(default: the preset's, 0.99; heykeetae_64 0.9 = PyTorch's 0.1; the "
                   "official code 0.999).")
flags.DEFINE_float("final_bn_momentum", None, "resnet G: momentum of the batch norm before the "
                   "output conv (default: --bn_momentum; the official code 0.9999).")
flags.DEFINE_boolean("attention_spectral_norm", None, "Spectral-normalize the attention 1x1 "
                     "convs (default: yes for resnet, as the official code; no for dcgan, as "
                     "the PyTorch code).")
flags.DEFINE_integer("steps", 2000, "Total generator steps.")
flags.DEFINE_integer("batch_size", 64, "Global batch size (split over replicas).")
flags.DEFINE_float("lr_g", 1e-4, "Generator learning rate (TTUR).")
flags.DEFINE_float("lr_d", 4e-4, "Discriminator learning rate (TTUR).")
flags.DEFINE_float("beta1", 0.0, "Adam beta1.")
flags.DEFINE_float("beta2", 0.9, "Adam beta2: 0.9 as the PyTorch SAGAN, 0.999 as the official code.")
flags.DEFINE_float("adam_epsilon", 1e-8, "Adam epsilon (1e-8 as PyTorch and TF1; Keras's "
                   "default is 1e-7).")
flags.DEFINE_enum("fake_labels", "real", list(training.FAKE_LABELS), "Conditional models: labels of the "
                  "generated batch: those of the real batch, or drawn uniformly over the classes "
                  "(the official code).")
flags.DEFINE_integer("d_steps", 1, "Discriminator updates per generator update.")
flags.DEFINE_string("loss", "hinge", "hinge, ns (non-saturating) or wgan_gp.")
flags.DEFINE_float("gp_weight", 10.0, "Gradient-penalty weight (wgan_gp).")
flags.DEFINE_float("ema_decay", 0.0, "EMA decay of G's weights (e.g. 0.999); 0 disables.")
flags.DEFINE_integer("ema_start", 0, "Step from which the EMA averages (before: copies).")
flags.DEFINE_string("augment", "", "DiffAugment policies for D's inputs, real and fake: a "
                    "comma-separated subset of color,translation,cutout (empty: none).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("precision", "float32", "float32, mixed_bfloat16 or mixed_float16.")
flags.DEFINE_boolean("jit_compile", False, "XLA-compile the train step (one device only).")
flags.DEFINE_integer("steps_per_execution", 1, "Training steps per tf.function call (one "
                     "Python round trip for all of them; --log_every, --sample_every, "
                     "--checkpoint_every and --eval_every must be multiples of it).")
flags.DEFINE_string("strategy", "auto", "auto, one_device, mirrored or multi_worker (TF_CONFIG).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into N logical devices (testing "
                     "MirroredStrategy without GPUs).")
flags.DEFINE_integer("sample_every", 500, "Steps between sample grids and attention maps.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_integer("log_every", 50, "Steps between progress lines and scalar summaries.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_string("manual_dir", None, "TFDS manual-download directory.")
flags.DEFINE_integer("crop", None, "Center crop before resizing (celeb_a default 140).")
flags.DEFINE_boolean("folder_labels", False, "Use class sub-folders of folder:PATH as labels.")
flags.DEFINE_boolean("deterministic", False, "Deterministic input order for TFDS datasets "
                     "(mnist5k and folders are always read in a fixed, step-indexed order).")
flags.DEFINE_integer("eval_every", 0, "Steps between FID/KID/IS evaluations (0: off); the best "
                     "checkpoint by FID is kept in <workdir>/best.")
flags.DEFINE_integer("eval_samples", 1000, "Samples per periodic evaluation.")
flags.DEFINE_enum("eval_backbone", "classifier", ["classifier", "inception_graph", "keras_inception"],
                  "Feature network of the periodic evaluation (classifier: mnist5k only).")
flags.DEFINE_string("inception_graph", None, "Path of the FID Inception graph "
                    "(classify_image_graph_def.pb) for --eval_backbone=inception_graph.")
flags.DEFINE_float("max_minutes", 0.0, "Stop after this many minutes of training (0: no limit).")
flags.DEFINE_boolean("export", True, "Export the generator as a SavedModel at the end.")
flags.DEFINE_string("export_dir", "savedmodels", "Base directory of exported SavedModels.")
flags.DEFINE_string("export_name", None, "Exported model name (default: the workdir's name).")


def _resolutions(values):
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values if v != "")
    except ValueError:
        raise training.ConfigError(f"attention resolutions must be integers; got {values}") from None


def config_from_flags():
    names = [f.name for f in training.dataclasses.fields(training.TrainConfig)]
    kwargs = {name: getattr(FLAGS, name) for name in names if name in FLAGS}
    kwargs["g_attention"] = _resolutions(FLAGS.g_attention)
    kwargs["d_attention"] = _resolutions(FLAGS.d_attention)
    return training.TrainConfig(**kwargs)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    from sagan_tf import backbones, callbacks, data, export

    try:
        config = config_from_flags()
        result = training.run(config)
    except (training.ConfigError, data.DataError, callbacks.NonFiniteLossError,
            callbacks.CheckpointWriteError,
            export.ExportError, backbones.BackboneError) as e:
        sys.exit(f"error: {e}")
    evaluation = result["logs"].get("evaluation")
    if evaluation:
        print(f"evaluation at step {evaluation['step']} ({evaluation['backbone']}, "
              f"{evaluation['num_fake']} samples vs {evaluation['num_real']} real): "
              f"{callbacks.format_result(evaluation)}", flush=True)
    logging.info("done: step %d, workdir %s%s", result["step"], result["workdir"],
                 f", SavedModel {result['export']}" if result.get("export") else "")


if __name__ == "__main__":
    app.run(main)
