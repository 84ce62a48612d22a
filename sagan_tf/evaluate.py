"""sagan-evaluate (python -m sagan_tf.evaluate): FID, KID and IS of an exported
generator, one JSON line.

    sagan-evaluate --model=savedmodels/mnist5k --dataset=mnist5k --split=test
    sagan-evaluate --model=savedmodels/celeba --dataset=celeb_a \\
        --backbone=inception_graph --inception_graph=classify_image_graph_def.pb --num_samples=50000

Real statistics come from the dataset split, fake ones from the SavedModel's
`generate` signature; both are streamed in batches (see `sagan_tf.evaluation`).
"""

import json

from sagan_tf import cli


def define_flags(flag_values):
    from sagan_tf import config

    define = cli.flag_definer(flag_values)
    define("string", "model", None, "Exported model: savedmodels/NAME or a version directory.")
    define("string", "dataset", "mnist5k", "Real data (as in training).")
    define("string", "split", None, "Real split (default: test for mnist5k, train otherwise).")
    define("integer", "num_samples", 5000, "Generated samples.", lower_bound=10)
    define("integer", "num_real", None, "Real samples (default: --num_samples, or the split).",
           lower_bound=4)
    define("enum", "backbone", "classifier", list(config.BACKBONES), "Feature network.")
    define("string", "inception_graph", None, "Path of classify_image_graph_def.pb.")
    define("string", "keras_inception_weights", "imagenet", "Keras InceptionV3 weights.")
    define("float", "truncation", 2.0, "Truncation of z, in (0, 2].", lower_bound=1e-3,
           upper_bound=2.0)
    define("integer", "batch_size", 100, "Batch size.", lower_bound=1, upper_bound=1024)
    define("integer", "seed", 0, "Sampling seed.", lower_bound=0, upper_bound=2**31 - 1)
    define("string", "data_dir", None, "TFDS data directory.")


def main(argv):
    from absl import flags, logging

    from sagan_tf import backbones, data, evaluation, metrics, sampling

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    try:
        path = sampling.resolve_model_dir(FLAGS.model)
        sample, size = evaluation.savedmodel_sampler(path, FLAGS.truncation, FLAGS.seed)
        split = FLAGS.split or ("test" if FLAGS.dataset == "mnist5k" else "train")
        spec = data.DataSpec(FLAGS.dataset, size, 3, split=split, data_dir=FLAGS.data_dir,
                             deterministic=True)
        backbone = backbones.get(FLAGS.backbone, FLAGS.inception_graph,
                                 FLAGS.keras_inception_weights)
        real = evaluation.real_stats(backbone, spec, FLAGS.num_real or FLAGS.num_samples,
                                     FLAGS.batch_size)
        result = evaluation.evaluate(sample, backbone, real, FLAGS.num_samples, FLAGS.batch_size)
    except (sampling.GenerateError, data.DataError, backbones.BackboneError,
            metrics.MetricError) as e:
        cli.fail(e)
    for warning in result["warnings"]:
        logging.warning("%s", warning)
    result.update(model=path, dataset=FLAGS.dataset, split=split)
    print(json.dumps(result))


run = cli.entry_point(define_flags, main)

if __name__ == "__main__":
    run()
