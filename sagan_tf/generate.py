"""sagan-generate (python -m sagan_tf.generate): PNG grids and latent interpolations
from an exported model.

Reads only the SavedModel (no training code, no checkpoint), so it works on any
model written by `sagan-export` or `sagan-train`:

    sagan-generate --model=savedmodels/mnist5k_32 --num=64 --out=runs/mnist5k_32/grid.png
    sagan-generate --model=savedmodels/mnist5k_32 --interpolate=10 --out=runs/mnist5k_32/lerp.png
    sagan-generate --model=savedmodels/mnist5k_32 --attention=4 --out=runs/mnist5k_32/attention.png
"""

import os

from sagan_tf import cli


def define_flags(flag_values):
    define = cli.flag_definer(flag_values)
    define("string", "model", None, "savedmodels/NAME (latest version) or a version directory.")
    define("integer", "version", None, "Version to load (default: the highest).")
    define("integer", "num", 64, "Images in the grid.", lower_bound=1, upper_bound=1024)
    define("string", "out", "samples.png", "Output PNG path (.png).")
    define("float", "truncation", 2.0, "Truncate z to [-t, t], t in (0, 2]; smaller = safer, "
           "less varied samples (the default 2 barely truncates); 0: no truncation, "
           "z ~ N(0, 1) as training samples.")
    define("list", "labels", None, "Class labels for conditional models (numbers, or the class "
           "names of a model trained on a labelled folder): one row per listed class, "
           "--num // len(labels) images each (at least 1).")
    define("integer", "interpolate", 0, "If > 0: rows of STEPS images interpolating between "
           "two latents.", lower_bound=0, upper_bound=64)
    define("integer", "rows", 8, "Interpolation rows.", lower_bound=1, upper_bound=64)
    define("integer", "attention", 0, "If > 0: this many images, each with where G's attention "
           "layer of the highest resolution looks from three query pixels.", lower_bound=0,
           upper_bound=16)
    define("integer", "seed", 0, "Random seed.", lower_bound=0, upper_bound=2**63 - 1)


def main(argv):
    from absl import flags, logging

    from sagan_tf import data, sampling, visualize

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    sampling.check_truncation(FLAGS.truncation)  # before any work: a bad one never loops
    path = sampling.resolve_model_dir(FLAGS.model, FLAGS.version)
    loaded = sampling.load_model(path)
    names = sampling.class_names(loaded)
    if names:
        logging.info("labels: %s", data.label_table(names))
    if FLAGS.attention > 0:
        image = sampling.attention_figure(loaded, FLAGS.attention, FLAGS.labels, FLAGS.seed,
                                          FLAGS.truncation)
    elif FLAGS.interpolate > 0:
        image = sampling.interpolation(loaded, FLAGS.interpolate, FLAGS.rows, FLAGS.labels,
                                       FLAGS.seed, FLAGS.truncation)
    else:
        image = sampling.grid(loaded, FLAGS.num, FLAGS.truncation, FLAGS.labels, FLAGS.seed)
    if not FLAGS.out.lower().endswith(".png") or os.path.isdir(FLAGS.out):
        raise sampling.GenerateError(f"--out must be a .png file path; got {FLAGS.out!r}")
    out_dir = os.path.dirname(os.path.abspath(FLAGS.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        raise sampling.GenerateError(f"cannot write {FLAGS.out}: directory {out_dir} is "
                                     "missing or not writable")
    visualize.write_png(FLAGS.out, image)
    print(FLAGS.out)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
