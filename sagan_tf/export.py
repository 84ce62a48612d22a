"""sagan-export (python -m sagan_tf.export): a training run's generator as a
versioned SavedModel for TF Serving.

    sagan-export --workdir=runs/mnist5k_32 --export_dir=savedmodels

Restores the run's latest checkpoint (the EMA generator when the run keeps one)
and writes `EXPORT_DIR/NAME/VERSION` (see `sagan_tf.serving` for the layout and
the signatures); prints the version directory.
"""

from sagan_tf import cli


def define_flags(flag_values):
    from sagan_tf.names import SERVING_MAX_BATCH

    from sagan_tf import config

    define = cli.flag_definer(flag_values)
    define("string", "workdir", None, "Training run directory holding config.json and "
           "checkpoints.")
    define("string", "name", None, "Model name under --export_dir (default: the workdir's name).")
    config.define_flags(flag_values, only=("export_dir",))
    define("integer", "max_batch", SERVING_MAX_BATCH, "Largest batch (z rows or num) a request "
           "may ask for.", lower_bound=1, upper_bound=65536)


def main(argv):
    from absl import flags, logging

    from sagan_tf import callbacks, serving

    FLAGS = flags.FLAGS
    cli.check_no_arguments(argv)
    if not FLAGS.workdir:
        cli.fail("--workdir is required")
    stopper = callbacks.SignalStop(action="abandoning the export")
    stopper.install()
    try:
        path = serving.export_workdir(FLAGS.workdir, FLAGS.export_dir, FLAGS.name,
                                      FLAGS.max_batch, should_stop=stopper.requested)
    except serving.ExportAbandoned as e:
        import signal
        import sys

        stopper.ignore_further()
        print(f"stopped by {signal.Signals(stopper.received).name}: {e}; nothing was written",
              file=sys.stderr, flush=True)
        sys.exit(128 + stopper.received)
    finally:
        stopper.uninstall()
    logging.info("exported %s", path)
    print(path)


run = cli.entry_point(define_flags, main, doc=__doc__)

if __name__ == "__main__":
    run()
