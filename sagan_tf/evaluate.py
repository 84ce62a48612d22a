"""sagan-evaluate (python -m sagan_tf.evaluate): FID, KID and IS of a generator, one
JSON line.

    sagan-evaluate --model=savedmodels/mnist5k_32 --dataset=mnist5k --split=test
    sagan-evaluate --model=savedmodels/celeb_a_64 --dataset=celeb_a \\
        --backbone=inception_graph --inception_graph=classify_image_graph_def.pb --num_samples=50000
    sagan-evaluate --workdir=runs/mnist5k_32 --num_samples=2000

Fake images are drawn as the run's own periodic evaluation draws them: untruncated
z ~ N(0, 1) and labels from the same seeded stream, scored with the same KID
subsets. With `--workdir` they come from the run's latest checkpoint (the EMA
generator when the run keeps one), so `--num_samples` equal to the run's
`--eval_samples` reproduces its last evaluation; with `--model`, from the
SavedModel's `serving_default` signature (uint8 images), so an export of that
checkpoint scores the same up to rounding. `--truncation=T` (in (0, 2]) samples
the SavedModel's `generate` signature with z truncated to [-T, T] instead
(BigGAN's trade of variety for fidelity: lower recall, often lower FID). Real
statistics come from the dataset split; both are streamed in batches (see
`sagan_tf.evaluation`).
"""

import json

from sagan_tf import cli


def define_flags(flag_values):
    from sagan_tf import config

    define = cli.flag_definer(flag_values)
    define("string", "model", None, "Exported model: savedmodels/NAME or a version directory.")
    define("string", "workdir", None, "A training run instead of --model: its latest checkpoint, "
           "sampled as its periodic evaluation samples (default --dataset, --data_dir and "
           "--seed: the run's).")
    define("string", "dataset", None, "Real data, as in training (default: mnist5k, or the "
           "run's with --workdir).")
    define("string", "split", None, "Real split (default: test for mnist5k, train otherwise).")
    define("integer", "num_samples", 5000, "Generated samples.", lower_bound=10)
    define("integer", "num_real", None, "Real samples (default: --num_samples, or the split).",
           lower_bound=4)
    define("enum", "backbone", "classifier", list(config.BACKBONES), "Feature network "
           "(classifier: a CNN trained offline on the dataset itself: mnist5k, or a folder "
           "with class sub-folders).")
    define("string", "classifier_dataset", None, "Train the classifier backbone on this "
           "labelled dataset instead of --dataset (e.g. the whole folder a one-class subset "
           "came from); class accuracy is then not reported (default: the run's "
           "--eval_classifier_dataset with --workdir).")
    define("string", "inception_graph", None, "Path of classify_image_graph_def.pb (default: downloaded once "
           "into the cache).")
    define("string", "keras_inception_weights", "imagenet", "Keras InceptionV3 weights.")
    define("float", "truncation", 0.0, "--model: 0 samples z ~ N(0, 1) as training evaluates; "
           "T in (0, 2] truncates z to [-T, T] (the generate signature).")
    define("integer", "batch_size", 100, "Batch size.", lower_bound=1, upper_bound=1024)
    define("integer", "seed", None, "Sampling seed (default: 0, or the run's with --workdir).",
           lower_bound=0, upper_bound=2**31 - 1)
    define("string", "data_dir", None, "TFDS data directory.")
    define("string", "background", None, "Colour under transparent pixels of folder images "
           "(default: white, or the run's with --workdir).")


def _run_record(FLAGS):
    """The config.json of the --workdir run ({} for --model)."""
    from sagan_tf import checkpoints, sampling

    if bool(FLAGS.model) == bool(FLAGS.workdir):
        raise sampling.GenerateError("give one of --model (a SavedModel) and --workdir (a run)")
    if not FLAGS.workdir:
        return {}
    return checkpoints.run_config(FLAGS.workdir)


def _sampler(FLAGS, record):
    """(sample_fn, image size, KID arguments, what was sampled) of --model or --workdir."""
    from sagan_tf import checkpoints, evaluation, sampling

    kid = dict(kid_subsets=evaluation.TRAINING_KID_SUBSETS,
               kid_subset_size=min(evaluation.TRAINING_KID_SUBSET_SIZE, FLAGS.num_samples))
    if FLAGS.model:
        path = sampling.resolve_model_dir(FLAGS.model)
        sample, size = evaluation.savedmodel_sampler(path, FLAGS.truncation, FLAGS.seed or 0)
        return sample, size, kid, path
    if FLAGS.truncation:
        raise sampling.GenerateError("--truncation applies to --model only (a run's checkpoint "
                                     "is sampled as its evaluation samples: untruncated)")
    generator, step = checkpoints.restore_generator_for_export(FLAGS.workdir, record)
    seed = record.get("flags", {}).get("seed", 0) if FLAGS.seed is None else FLAGS.seed
    return (evaluation.generator_sampler(generator, seed), generator.image_size, kid,
            f"{FLAGS.workdir} (step {step})")


def main(argv):
    from absl import flags, logging

    from sagan_tf import backbones, data, evaluation, sampling

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    sampling.check_truncation(FLAGS.truncation)
    record = _run_record(FLAGS)
    run = record.get("flags", {})
    dataset = FLAGS.dataset or run.get("dataset", "mnist5k")
    classifier_dataset = FLAGS.classifier_dataset or run.get("eval_classifier_dataset")
    backbones.check_fits(FLAGS.backbone, classifier_dataset or dataset)
    sample, size, kid, source = _sampler(FLAGS, record)
    split = FLAGS.split or data.evaluation_split(dataset)
    spec = data.DataSpec(dataset, size, 3, split=split,
                         data_dir=FLAGS.data_dir or run.get("data_dir"),
                         crop=run.get("crop"), deterministic=True,
                         folder_labels=bool(run.get("folder_labels", False)),
                         background=data.parse_background(
                             FLAGS.background or run.get("background", "white")))
    backbone = backbones.get(FLAGS.backbone, FLAGS.inception_graph,
                             FLAGS.keras_inception_weights, data_spec=spec,
                             classifier_dataset=classifier_dataset)
    real = evaluation.real_stats(backbone, spec, FLAGS.num_real or FLAGS.num_samples,
                                 FLAGS.batch_size)
    result = evaluation.evaluate(sample, backbone, real, FLAGS.num_samples,
                                 FLAGS.batch_size, **kid)
    for warning in result["warnings"]:
        logging.warning("%s", warning)
    result.update(model=source, dataset=dataset, split=split)
    print(json.dumps(result))


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
