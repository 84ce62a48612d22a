"""What every command-line entry point does: process set-up, flags, errors.

An entry module (`sagan_tf.train`, `.export`, `.generate`, `.evaluate`,
`.benchmark`, `.import_torch`) defines `define_flags(flag_values)` and
`main(argv)` and ends with `run = cli.entry_point(define_flags, main)`; the
console commands (`sagan-train`, ...) call `run`, and so does
`python -m sagan_tf.<name>`. Nothing here runs at import: `runtime.setup()`
(which must come before TensorFlow is imported) is the first thing `run` does.
"""

import sys

from sagan_tf import runtime

HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def entry_point(define_flags, main, prepare_argv=None):
    """A `run()` for a console command: set up the process, define the flags, then
    `absl.app.run(main)`. `prepare_argv(argv)` may rewrite the arguments first."""

    def run():
        runtime.setup()
        from absl import app, flags

        define_flags(flags.FLAGS)
        argv = sys.argv if prepare_argv is None else prepare_argv(sys.argv)
        try:
            app.run(main, argv=argv)
        except SystemExit as e:
            # absl exits with status 1 after printing the help that was asked for.
            if e.code == 1 and any(_is_help(arg) for arg in argv[1:]):
                sys.exit(0)
            raise

    return run


def _is_help(arg):
    name, _, value = arg.lstrip("-").partition("=")
    return arg.startswith("-") and name in HELP_FLAGS and value.lower() not in ("false", "0")


def check_no_arguments(argv):
    """Exits with one line when positional arguments follow the flags."""
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")


def fail(error):
    """Exits with `error: <message>` (one line) and status 1."""
    sys.exit(f"error: {error}")


def flag_definer(flag_values):
    """`define(kind, name, default, help, **kwargs)`: absl's `DEFINE_<kind>` into
    `flag_values`."""
    from absl import flags

    def define(kind, *args, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(*args, flag_values=flag_values, **kwargs)

    return define
