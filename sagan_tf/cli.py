"""What every command-line entry point does: process set-up, flags, errors.

An entry module (`sagan_tf.train`, `.export`, `.generate`, `.evaluate`,
`.benchmark`, `.import_torch`) defines `define_flags(flag_values)` (its options are
sections of `sagan_tf.config`: the shared ones it takes and its own) and
`main(argv)` and ends with `run = cli.entry_point(define_flags, main, doc=__doc__)`; the
console commands (`sagan-train`, ...) call `run`, and so does
`python -m sagan_tf.<name>`. Nothing here runs at import: `runtime.setup()`
(which must come before TensorFlow is imported) is the first thing `run` does.
"""

import re
import sys

from sagan_tf import runtime

HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def entry_point(define_flags, main, prepare_argv=None, doc=None):
    """A `run()` for a console command: set up the process, define the flags, then
    `absl.app.run(main)`. `prepare_argv(argv)` may rewrite the arguments first; `doc`
    (the entry module's docstring) heads `--help`, which absl takes from `__main__`
    (a console command's `__main__` is its generated script)."""

    def run():
        # --help needs no TensorFlow: its import (seconds) waits for a command that runs.
        runtime.setup(import_tensorflow=not any(_is_help(arg) for arg in sys.argv[1:]))
        main_module = sys.modules.get("__main__")
        if doc and main_module is not None and not main_module.__doc__:
            main_module.__doc__ = doc
        from absl import app, flags

        define_flags(flags.FLAGS)
        if any(_is_help(arg, SHORT_HELP_FLAGS) for arg in sys.argv[1:]):
            print(grouped_help(flags.FLAGS, getattr(main_module, "__doc__", None) or doc))
            sys.exit(0)
        argv = sys.argv if prepare_argv is None else prepare_argv(sys.argv)
        try:
            app.run(reporting(main), argv=argv)
        except SystemExit as e:
            # absl exits with status 1 after printing the help that was asked for.
            if e.code == 1 and any(_is_help(arg) for arg in argv[1:]):
                sys.exit(0)
            raise

    return run


def reporting(main):
    """`main` with every `errors.UserError` it raises turned into the one line
    `error: <message>` and the error's exit status."""
    from sagan_tf.errors import UserError

    def run_main(argv):
        from absl import flags

        warn_deprecated(flags.FLAGS)
        try:
            return main(argv)
        except UserError as e:
            fail(e, e.exit_code)

    return run_main


SHORT_HELP_FLAGS = ("help", "helpshort", "?")  # the command's own flags; --helpfull: all


def _is_help(arg, names=HELP_FLAGS):
    name, _, value = arg.lstrip("-").partition("=")
    return arg.startswith("-") and name in names and value.lower() not in ("false", "0")


_SECTION = re.compile(r"^\[(\w+)\] ")


def grouped_help(flag_values, doc):
    """`--help`: the command's docstring, then the key flags of the program that runs
    (every flag the command defines, nothing of TensorFlow's): its own first, then
    those of each config section it takes, in the sections' order (help texts that
    start with `[section]`)."""
    from sagan_tf.config import HELP_ORDER

    groups = {}
    for flag in flag_values.get_key_flags_for_module(sys.argv[0]):
        match = _SECTION.match(flag.help or "")
        section = match.group(1) if match and match.group(1) in HELP_ORDER else ""
        groups.setdefault(section, []).append(flag)
    lines = [(doc or "").strip(), ""]
    for name in ("", *HELP_ORDER):
        if name not in groups:
            continue
        lines.append(f"{name} options:" if name else "flags:")
        flag_values._render_flag_list(groups[name], lines, "  ")  # absl's own format
        lines.append("")
    lines.append("Try --helpfull to get a list of all flags.")
    return "\n".join(lines)


def check_no_arguments(argv):
    """Exits with one line when positional arguments follow the flags."""
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}")


def fail(error, status=1):
    """Exits with `error: <message>` (one line) and `status`. The line is written
    here, not left to SystemExit, which Python prints after the exit handlers
    (`runtime.filter_stderr` drains stderr in one)."""
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    sys.exit(status)


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


def one_line(message):
    """`message` as one plain line: terminal escape sequences and control characters
    (colours that libraries put in their errors) removed, white space folded."""
    return " ".join(_ESCAPES.sub("", str(message)).split())


def deprecate(flag_values, old, new):
    """`--old` as a spelling of `--new` kept for one release: it sets `--new`, and
    `reporting` prints a one-line notice when it is used."""
    from absl import flags

    flags.DEFINE_alias(old, new, flag_values=flag_values)
    DEPRECATED[old] = new


# Old flag spellings still accepted: {old: new}.
DEPRECATED = {}


def warn_deprecated(flag_values):
    from absl import logging

    for old, new in DEPRECATED.items():
        if old in flag_values and flag_values[old].present:
            logging.warning("--%s is deprecated and will be removed in the next release; use "
                            "--%s", old, new)
