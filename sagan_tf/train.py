"""sagan-train (python -m sagan_tf.train): train SAGAN (defaults: the offline
mnist5k dataset).

    sagan-train --flagfile=mnist5k_32
    sagan-train --flagfile=celeb_a_64 --workdir=runs/celeb_a --steps=20000

Presets are flag files, named or given by path (`--flagfile=flags/celeb_a_64.flags`),
overridable flag by flag: flags are read in order, and when a flag is given more
than once (in flag files or on the command line) the last value wins, as absl
reads them. `--help` lists every training option with its default; the
options are defined, with their sections, in `sagan_tf.config`.
"""

import sys

from sagan_tf import cli


def define_flags(flag_values):
    from sagan_tf import config, flagfiles

    config.define_flags(flag_values)  # every option, listed by --help
    presets = flagfiles.describe()
    if presets:
        main_module = sys.modules.get("__main__")
        if main_module is not None and main_module.__doc__ is not None and \
                "Flag files (presets)" not in main_module.__doc__:
            main_module.__doc__ += "\nFlag files (presets):\n" + presets + "\n"


def prepare_argv(argv):
    from sagan_tf import flagfiles

    try:
        return flagfiles.rewrite_argv(argv)
    except flagfiles.UnknownFlagFile as e:  # before main: not under cli.reporting
        cli.fail(e)


def main(argv):
    from absl import flags, logging

    from sagan_tf import callbacks, config, training

    cli.check_no_arguments(argv)
    result = training.run(config.TrainConfig.from_flags(flags.FLAGS))
    if result["stop_signal"] is not None:
        import signal

        result["signals"].ignore_further()  # the checkpoint is written: exiting
        name = signal.Signals(result["stop_signal"]).name
        abandoned = " and ".join(result["abandoned"])
        print(f"stopped by {name} at step {result['step']}; checkpoint written"
              f"{f'; {abandoned} abandoned' if abandoned else ''}; run the same command to "
              "resume", file=sys.stderr, flush=True)
        sys.exit(128 + result["stop_signal"])
    evaluation = result["logs"].get("evaluation")
    if evaluation:
        print(f"evaluation at step {evaluation['step']} ({evaluation['backbone']}, "
              f"{evaluation['num_fake']} samples vs {evaluation['num_real']} real): "
              f"{callbacks.format_result(evaluation)}", flush=True)
    logging.info("done: step %d, workdir %s%s", result["step"], result["workdir"],
                 f", SavedModel {result['export']}" if result.get("export") else "")


run = cli.entry_point(define_flags, main, prepare_argv, doc=__doc__)

if __name__ == "__main__":
    run()
