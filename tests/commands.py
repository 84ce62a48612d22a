"""Running the command-line entry points from tests: in a fresh process, or in this one.

A fresh process (`run_command`) costs a TensorFlow import, 10-15 s on a 2-core CPU, and is
what a user runs: process set-up, absl's `app.run`, stderr as the terminal sees it. For
the many bad-input cases of one command `run_main` calls the entry module's `main` in this
process instead, with its flags parsed into a fresh `FlagValues` that stands in for absl's
global `FLAGS` while `main` runs; a flag the parser refuses comes back as absl's
`app.run` reports it (status 1, `FATAL Flags parsing error: ...`).
"""

import contextlib
import importlib
import io
import os
import subprocess
import sys
from unittest import mock

from absl import flags

from sagan_tf import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def run_command(module, *args, timeout=600, **kwargs):
    """`python -m <module> <args>` in a fresh process, from the repository root."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=timeout, **kwargs)


def run_main(module, *args):
    """`<module>.main` on `args` in this process: a `subprocess.CompletedProcess` with its
    exit status, stdout and stderr (what Python wrote to them; not the C++ log)."""
    entry = importlib.import_module(module)
    flag_values = flags.FlagValues()
    entry.define_flags(flag_values)
    argv = [module, *args]
    prepare_argv = getattr(entry, "prepare_argv", None)
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(flags, "FLAGS", flag_values), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            argv = flag_values(prepare_argv(argv) if prepare_argv else argv)
            status = cli.reporting(entry.main)(argv) or 0
        except flags.Error as e:
            print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
            status = 1
        except SystemExit as e:
            status = e.code
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())
