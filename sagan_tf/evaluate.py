"""sagan-evaluate (python -m sagan_tf.evaluate): FID, KID and IS of a generator, one
JSON line.

    sagan-evaluate --model=savedmodels/mnist5k_32 --dataset=mnist5k --split=test
    sagan-evaluate --model=savedmodels/celeb_a_64 --dataset=celeb_a \\
        --eval_backbone=inception_graph --inception_graph=classify_image_graph_def.pb \\
        --eval_samples=50000
    sagan-evaluate --workdir=runs/mnist5k_32 --eval_samples=2000

Fake images are drawn as the run's own periodic evaluation draws them: untruncated
z ~ N(0, 1) and labels from the same seeded stream, scored with the same KID
subsets. With `--workdir` they come from the run's latest checkpoint (the EMA
generator when the run keeps one), so `--eval_samples` equal to the run's
reproduces its last evaluation; with `--model`, from the
SavedModel's `serving_default` signature (uint8 images), so an export of that
checkpoint scores the same up to rounding. `--truncation=T` (in (0, 2]) samples
the SavedModel's `generate` signature with z truncated to [-T, T] instead
(BigGAN's trade of variety for fidelity: lower recall, often lower FID). Real
statistics come from the dataset split; both are streamed in batches (see
`sagan_tf.evaluation`).

The options are sagan-train's where they mean the same (`--dataset`, `--data_dir`,
`--background`, `--eval_samples`, `--eval_backbone`, `--eval_classifier_dataset`,
`--inception_graph`, `--batch_size`); with `--workdir`, `--dataset`, `--data_dir`,
`--background`, `--eval_classifier_dataset` and `--seed` default to the run's, and
the crop and labels are the run's. `--num_samples`, `--backbone` and
`--classifier_dataset` are the previous spellings, kept for one release.
"""

import dataclasses
import json
from typing import Optional

from sagan_tf import cli, config
from sagan_tf.config import Section, option


@dataclasses.dataclass
class EvaluateOptions(Section):
    """sagan-evaluate's own options: the run, the real split and the feature
    network's weights."""

    workdir: Optional[str] = option(None, "A training run instead of --model: its latest "
                                    "checkpoint, sampled as its periodic evaluation samples.")
    split: Optional[str] = option(None, "Real split (default: test for mnist5k, train "
                                  "otherwise).")
    num_real: Optional[int] = option(None, "Real samples (default: --eval_samples, or the "
                                     "split).", minimum=4)
    keras_inception_weights: str = option("imagenet", "Keras InceptionV3 weights.")


# The shared options sagan-evaluate takes (the sampling section's and sagan-train's),
# and the defaults it gives some of them (None: the run's with --workdir).
SHARED = {config.SamplingConfig: ("model", "version", "truncation", "seed"),
          config.DataConfig: ("dataset", "data_dir", "background"),
          config.EvalConfig: ("eval_samples", "eval_backbone", "eval_classifier_dataset",
                              "inception_graph"),
          config.TrainingConfig: ("batch_size",)}
DEFAULTS = dict(seed=None, dataset=None, background=None, eval_samples=5000, batch_size=100)
# What --workdir takes from the run unless given.
FROM_RUN = ("dataset", "data_dir", "crop", "folder_labels", "background",
            "eval_classifier_dataset", "seed")
DEPRECATED = {"num_samples": "eval_samples", "backbone": "eval_backbone",
              "classifier_dataset": "eval_classifier_dataset"}


def define_flags(flag_values):
    config.define_command_flags(flag_values, EvaluateOptions, SHARED, DEFAULTS)
    for old, new in DEPRECATED.items():
        cli.deprecate(flag_values, old, new)


def _run_record(workdir, model):
    """The config.json of the --workdir run ({} for --model)."""
    from sagan_tf import checkpoints, sampling

    if bool(model) == bool(workdir):
        raise sampling.GenerateError("give one of --model (a SavedModel) and --workdir (a run)")
    return checkpoints.run_config(workdir) if workdir else {}


def _sampler(own, sample, num_samples, record):
    """(sample_fn, image size, KID arguments, what was sampled) of --model or --workdir."""
    from sagan_tf import checkpoints, evaluation, sampling

    kid = dict(kid_subsets=evaluation.TRAINING_KID_SUBSETS,
               kid_subset_size=min(evaluation.TRAINING_KID_SUBSET_SIZE, num_samples))
    if sample.model:
        path = sampling.resolve_model_dir(sample.model, sample.version)
        sampler, size = evaluation.savedmodel_sampler(path, sample.truncation, sample.seed)
        return sampler, size, kid, path
    if sample.truncation:
        raise sampling.GenerateError("--truncation applies to --model only (a run's checkpoint "
                                     "is sampled as its evaluation samples: untruncated)")
    generator, step = checkpoints.restore_generator_for_export(own.workdir, record)
    return (evaluation.generator_sampler(generator, sample.seed), generator.image_size, kid,
            f"{own.workdir} (step {step})")


def main(argv):
    from absl import flags, logging

    from sagan_tf import backbones, evaluation

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    own = config.read_section(EvaluateOptions, FLAGS)
    record = _run_record(own.workdir, FLAGS.model)
    run = {k: v for k, v in record.get("flags", {}).items() if k in FROM_RUN}
    sample, data_config, eval_config, training = (
        config.read_section(section, FLAGS, run, only=names) for section, names in SHARED.items())
    batch_size = training.batch_size
    classifier_dataset = eval_config.eval_classifier_dataset
    backbones.check_fits(eval_config.eval_backbone, classifier_dataset or data_config.dataset)
    fake, size, kid, source = _sampler(own, sample, eval_config.eval_samples, record)
    spec = data_config.evaluation_spec(size, own.split)
    backbone = backbones.get(eval_config.eval_backbone, eval_config.inception_graph,
                             own.keras_inception_weights, data_spec=spec,
                             classifier_dataset=classifier_dataset)
    real = evaluation.real_stats(backbone, spec, own.num_real or eval_config.eval_samples,
                                 batch_size)
    result = evaluation.evaluate(fake, backbone, real, eval_config.eval_samples, batch_size,
                                 **kid)
    for warning in result["warnings"]:
        logging.warning("%s", warning)
    result.update(model=source, dataset=data_config.dataset, split=spec.split)
    print(json.dumps(result))


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
