"""The package as users get it: installed (not editable) with console commands, flag
files found by name, library modules that leave the process as it was."""

import os
import re
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from sagan_tf import config as config_lib
from sagan_tf import flagfiles

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY_MODULES = [
    "sagan_tf", "sagan_tf.layers", "sagan_tf.models", "sagan_tf.gan", "sagan_tf.training",
    "sagan_tf.evaluation", "sagan_tf.serving", "sagan_tf.sampling", "sagan_tf.benchmarking",
    "sagan_tf.callbacks", "sagan_tf.checkpoints", "sagan_tf.data", "sagan_tf.config",
    "sagan_tf.loop", "sagan_tf.losses", "sagan_tf.metrics", "sagan_tf.backbones",
    "sagan_tf.augment", "sagan_tf.visualize", "sagan_tf.flagfiles", "sagan_tf.runtime",
    "sagan_tf.cli", "sagan_tf.heykeetae", "sagan_tf.regularizers", "sagan_tf.ema",
    # The entry modules too: importing one (as `sagan_tf.train`, not running it) sets
    # nothing up either.
    "sagan_tf.train", "sagan_tf.export", "sagan_tf.generate", "sagan_tf.evaluate",
    "sagan_tf.benchmark", "sagan_tf.import_torch",
]

_SNAPSHOT = """
import logging, os, sys
from absl import logging as absl_logging
def snapshot():
    return (dict(os.environ), list(absl_logging.get_absl_logger().filters),
            logging.getLogger("tensorflow").level, list(logging.getLogger().handlers))
"""


def test_importing_the_library_changes_nothing_in_the_process():
    # TensorFlow, Keras and TFDS set variables of their own when imported: they come
    # first, then every sagan_tf module must leave the process as it found it.
    script = _SNAPSHOT + f"""
import tensorflow, keras, tensorflow_datasets
before = snapshot()
import importlib
for name in {LIBRARY_MODULES!r}:
    importlib.import_module(name)
after = snapshot()
changed = sorted(k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k))
assert not changed, changed
assert before[1:] == after[1:], (before[1:], after[1:])
print("unchanged")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0 and "unchanged" in proc.stdout, proc.stderr[-2000:]


def test_the_entry_points_set_the_process_up():
    # What `sagan-train` does first (runtime.setup) is what importing never does.
    script = _SNAPSHOT + """
from sagan_tf import cli
os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
before = snapshot()
run = cli.entry_point(lambda flag_values: None, lambda argv: None)
try:
    sys.argv = ["x"]
    run()
except SystemExit:
    pass
after = snapshot()
assert "TF_ENABLE_ONEDNN_OPTS" not in before[0] and after[0]["TF_ENABLE_ONEDNN_OPTS"] == "1"
assert len(after[1]) == len(before[1]) + 1
print("set up")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "set up" in proc.stdout, proc.stderr[-2000:]


def test_flag_files_by_name_and_by_path(tmp_path):
    presets = flagfiles.available()
    assert {"mnist5k_32", "celeb_a_64", "cifar10_32"} <= set(presets)
    path = presets["mnist5k_32"]
    assert flagfiles.resolve("mnist5k_32") == flagfiles.resolve("mnist5k_32.flags") == path
    # The repository-relative form works from any directory.
    assert os.path.samefile(flagfiles.resolve("flags/mnist5k_32.flags"), path)
    own = tmp_path / "own.flags"
    own.write_text("--steps=7\n")
    assert flagfiles.resolve(str(own)) == str(own)
    with pytest.raises(flagfiles.UnknownFlagFile, match="presets: .*mnist5k_32"):
        flagfiles.resolve("mnist5k_31")
    with pytest.raises(flagfiles.UnknownFlagFile):
        flagfiles.resolve(str(tmp_path / "missing" / "mnist5k_32.flags"))


def test_a_flag_given_twice_takes_the_last_value(tmp_path):
    first, second = tmp_path / "a.flags", tmp_path / "b.flags"
    first.write_text("--steps=10\n--lr_g=1e-3\n")
    second.write_text("--steps=20\n")
    flag_values = absl_flags.FlagValues()
    config_lib.define_flags(flag_values)
    flag_values(["train", f"--flagfile={first}", f"--flagfile={second}", "--lr_g=2e-3"])
    config = config_lib.TrainConfig.from_flags(flag_values)
    assert config.training.steps == 20 and config.training.lr_g == 2e-3


def test_the_folder_recipes_get_their_own_run_directories(tmp_path):
    """The README's own-folder recipes, run one after another on one folder, write
    runs/<folder> (a preset), runs/<folder>_few_images_64 and runs/<folder>_colour_32."""
    folder = tmp_path / "shapes"

    def workdir(*args):
        flag_values = absl_flags.FlagValues()
        config_lib.define_flags(flag_values)
        flag_values(flagfiles.rewrite_argv(["train", *args, f"--dataset=folder:{folder}"]))
        config = config_lib.TrainConfig.from_flags(flag_values)
        return config.run.workdir, config.export_name

    assert workdir("--preset=dcgan_64") == (os.path.join("runs", "shapes"), "shapes")
    assert workdir("--flagfile=few_images_64") == ("runs/shapes_few_images_64",
                                                  "shapes_few_images_64")
    assert workdir("--flagfile=colour_32") == ("runs/shapes_colour_32", "shapes_colour_32")
    assert workdir("--flagfile=colour_32", "--workdir=/x/{dataset}") == ("/x/shapes", "shapes")
    with pytest.raises(config_lib.ConfigError, match=r"the only placeholder it takes is \{dataset\}"):
        workdir("--workdir=runs/{folder}")


def test_every_option_is_defined_once_with_its_default():
    flag_values = absl_flags.FlagValues()
    config_lib.define_flags(flag_values)
    fields = dict((f.name, f) for _, f in config_lib.option_fields())
    assert len(fields) == len(list(config_lib.option_fields()))  # one definition each
    for name, field in fields.items():
        flag = flag_values[name]
        assert flag.default == (list(field.default) if isinstance(field.default, tuple)
                                else field.default), name
        assert field.metadata["help"] in flag.help, name
    # A config round-trips through its flat form (what config.json records).
    config = config_lib.TrainConfig.from_flat(preset="resnet_32", steps=9, g_attention=(8,))
    assert config_lib.TrainConfig.from_flat(**config.flat()) == config
    with pytest.raises(config_lib.ConfigError, match="--loss='lsgan' is unknown"):
        config.replace(loss="lsgan")


def _installed(tmp_path):
    """A non-editable install of this checkout into `tmp_path/site` (no dependencies:
    they are this interpreter's)."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), ROOT], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return site


def test_a_wheel_install_runs_the_console_commands_from_any_directory(tmp_path):
    site = _installed(tmp_path)
    assert sorted(os.listdir(site / "sagan_tf" / "flags")) == sorted(
        os.path.basename(p) for p in flagfiles.available().values())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")

    def command(name, *args):
        return subprocess.run([sys.executable, str(site / "bin" / name), *args], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=300)

    import importlib

    from absl import flags as absl_flags

    for name in ("sagan-train", "sagan-export", "sagan-generate", "sagan-evaluate",
                 "sagan-benchmark", "sagan-import-torch"):
        proc = command(name, "--helpshort")
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.strip().startswith(f"{name} (python -m sagan_tf."), (name, proc.stdout)
        # --help lists every flag the command defines, and nothing of TensorFlow's.
        own = absl_flags.FlagValues()
        importlib.import_module("sagan_tf." + name[len("sagan-"):].replace("-", "_")
                                ).define_flags(own)
        listed = set(re.findall(r"^  --(?:\[no\])?(\w+):", proc.stdout, re.M))
        from sagan_tf import cli

        assert listed == set(own) - set(cli.DEPRECATED), (name, set(own) ^ listed)
        assert "tt_check_filter" not in proc.stdout and proc.stderr.strip() == "", name
    # A preset by name is found from the installed package, parsed and validated.
    proc = command("sagan-train", "--flagfile=mnist5k_32", "--steps=-1")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: --steps must be >= 1; got -1"
    helpfull = command("sagan-train", "--helpfull").stdout
    assert "--steps: [training] Total generator steps.\n    (default: '2000')" in helpfull
    assert "last value wins" in helpfull and "--flagfile=mnist5k_32:" in helpfull
    proc = command("sagan-train", "--flagfile=nope")
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: flag file 'nope' is neither a file nor a preset; "
                                   "presets: " + ", ".join(flagfiles.available()))
    # python -m works there too.
    proc = subprocess.run([sys.executable, "-m", "sagan_tf.train", "--flagfile=cifar10_32",
                           "--steps=0"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "error: --steps must be >= 1; got 0" in proc.stderr


def test_error_lines_carry_no_terminal_escapes():
    from sagan_tf import cli

    assert cli.one_line("\x1b[31mInvalid magic number;\x1b[0m corrupt\n file\x07") == \
        "Invalid magic number; corrupt file"


def _subclasses(cls):
    return {cls} | {s for sub in cls.__subclasses__() for s in _subclasses(sub)}


def test_every_user_error_ends_as_one_line_with_its_exit_status(capsys):
    """Table-driven over every UserError the package defines: raised in a command's
    main, it is the one line `error: <message>` and its exit status; nothing else
    is caught."""
    import importlib

    from sagan_tf import cli
    from sagan_tf.errors import UserError

    for module in ("backbones", "callbacks", "checkpoints", "config", "data", "downloads",
                   "flagfiles", "heykeetae", "metrics", "sampling", "serving"):
        importlib.import_module(f"sagan_tf.{module}")
    kinds = _subclasses(UserError) - {UserError}
    names = {k.__name__ for k in kinds}
    assert {"ConfigError", "DataError", "ExportError", "GenerateError", "BackboneError",
            "MetricError", "DownloadError", "UnknownFlagFile", "TorchImportError",
            "NonFiniteLossError", "CheckpointWriteError", "WorkdirError"} <= names, names
    for kind in sorted(kinds, key=lambda k: k.__name__):
        def main(argv, kind=kind):
            raise kind(f"{kind.__name__} says\nwhat went wrong")

        with pytest.raises(SystemExit) as done:
            cli.reporting(main)(["x"])
        assert done.value.code == kind.exit_code == 1, kind
        assert capsys.readouterr().err == f"error: {kind.__name__} says what went wrong\n"

    def broken(argv):
        raise KeyError("a bug")

    with pytest.raises(KeyError):  # a bug is not a user error: its traceback stays
        cli.reporting(broken)(["x"])


def test_help_groups_the_flags_by_section():
    """`--help` of a command: its docstring, its own flags, then each config section it
    takes, in order, every flag once; without importing TensorFlow."""
    from tests.commands import run_command

    proc = run_command("sagan_tf.export", "--help", timeout=120)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("sagan-export (python -m sagan_tf.export)")
    assert out.index("\nflags:\n  --max_batch:") < out.index("\nexport options:\n  --export_dir:")
    proc = run_command("sagan_tf.train", "--help", "--flagfile=nope", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    headings = re.findall(r"^(\w+) options:$", proc.stdout, re.M)
    assert headings == ["model", "data", "training", "run", "eval", "export"]
    listed = re.findall(r"^  --(?:\[no\])?(\w+):", proc.stdout, re.M)
    assert sorted(listed) == sorted(f.name for _, f in config_lib.option_fields())
    section_of = {f.name: s for s, f in config_lib.option_fields()}
    blocks = re.split(r"^(\w+) options:$", proc.stdout, flags=re.M)[1:]
    for heading, block in zip(blocks[::2], blocks[1::2]):
        for name in re.findall(r"^  --(?:\[no\])?(\w+):", block, re.M):
            assert section_of[name] == heading, name
    probe = ("import sys, runpy; sys.argv = ['sagan-train', '--help']\n"
             "try:\n    runpy.run_module('sagan_tf.train', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.stdout.strip().endswith("False"), proc.stdout[-500:] + proc.stderr[-500:]
