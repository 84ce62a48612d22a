"""sagan-export (python -m sagan_tf.export): a training run's generator as a
versioned SavedModel for TF Serving.

    sagan-export --workdir=runs/mnist5k_32 --export_dir=savedmodels
    sagan-export --workdir=runs/mnist5k_32 --export_name=digits   # savedmodels/digits/VERSION

Restores the run's latest checkpoint (the EMA generator when the run keeps one)
and writes `EXPORT_DIR/NAME/VERSION` (see `sagan_tf.serving` for the layout and
the signatures); prints the version directory. `--name` is the previous spelling
of `--export_name`, kept for one release.
"""

import dataclasses
from typing import Optional

from sagan_tf import cli, config
from sagan_tf.config import Section, option
from sagan_tf.names import SERVING_MAX_BATCH


@dataclasses.dataclass
class ExportOptions(Section):
    """sagan-export's own options: the run to export and the largest request."""

    workdir: Optional[str] = option(None, "Training run directory holding config.json and "
                                    "checkpoints.")
    max_batch: int = option(SERVING_MAX_BATCH, "Largest batch (z rows or num) a request may ask "
                            "for.", minimum=1, maximum=65536)


SHARED = ("export_dir", "export_name")  # of sagan-train's export section


def define_flags(flag_values):
    config.define_command_flags(flag_values, ExportOptions, {config.ExportConfig: SHARED})
    cli.deprecate(flag_values, "name", "export_name")


def main(argv):
    from absl import flags, logging

    from sagan_tf import callbacks, serving

    cli.check_no_arguments(argv)
    own = config.read_section(ExportOptions, flags.FLAGS)
    export = config.read_section(config.ExportConfig, flags.FLAGS, only=SHARED)
    if not own.workdir:
        cli.fail("--workdir is required")
    stopper = callbacks.SignalStop(action="abandoning the export")
    stopper.install()
    try:
        path = serving.export_workdir(own.workdir, export.export_dir, export.export_name,
                                      own.max_batch, should_stop=stopper.requested)
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
