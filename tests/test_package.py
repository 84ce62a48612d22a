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
    """A non-editable install of this checkout's files into `tmp_path/site` (no
    dependencies: they are this interpreter's). It builds from a copy without the
    checkout's build outputs, so a stale `build/` (a module since moved) cannot reach
    the wheel and nothing is written into the checkout."""
    import shutil

    source, site = tmp_path / "source", tmp_path / "site"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "runs", "savedmodels", "__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)], capture_output=True, text=True, timeout=600)
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


COMMANDS = ("sagan_tf.train", "sagan_tf.export", "sagan_tf.generate", "sagan_tf.evaluate",
            "sagan_tf.benchmark", "sagan_tf.import_torch", "benchmarks.compare")


@pytest.mark.parametrize("module_name", COMMANDS)
def test_every_command_takes_its_options_from_the_config_tree(module_name):
    """Each flag of a command is one option of a config section: a shared section's,
    with that option's help and default (or the command's declared default), or one
    of the command's own section; old spellings are aliases only."""
    import dataclasses
    import importlib

    from sagan_tf import cli

    module = importlib.import_module(module_name)
    values = absl_flags.FlagValues()
    module.define_flags(values)  # absl refuses a name defined twice
    own = {f.name: f for c in vars(module).values()
           if isinstance(c, type) and issubclass(c, config_lib.Section) and c.name is None
           and c.__module__ == module.__name__ for f in dataclasses.fields(c)}
    command_defaults = getattr(module, "DEFAULTS", {})
    names = [n for n in values if n not in cli.DEPRECATED]
    assert names and len(set(names)) == len(names)
    for name in names:
        flag = values[name]
        section = re.match(r"^\[(\w+)\] ", flag.help)
        if section:
            field = {f.name: f for f in dataclasses.fields(
                config_lib.SHARED_SECTIONS[section.group(1)])}[name]
            default = command_defaults.get(name, field.default)
        else:
            assert name in own, (module_name, name)
            field, default = own[name], own[name].default
        assert field.metadata["help"] in flag.help, (module_name, name)
        assert flag.default == (list(map(str, default)) if isinstance(default, tuple)
                                else default), (module_name, name)
    for old, new in cli.DEPRECATED.items():
        if old in values:
            assert values[old].help == f"Alias for --{new}.", old


def test_a_section_checks_its_allowed_values(tmp_path):
    """An option's choices and bounds are checked by its section, one line each."""
    from benchmarks.compare import CompareOptions
    from sagan_tf.benchmark import BenchmarkOptions
    from sagan_tf.export import ExportOptions
    from sagan_tf.generate import GenerateOptions
    from sagan_tf.import_torch import ImportOptions

    png = str(tmp_path / "x.png")
    for section, message in [
        (config_lib.SamplingConfig(seed=-1), "--seed must be >= 0; got -1"),
        (config_lib.SamplingConfig(seed=2**31), "--seed must be <= 2147483647; got 2147483648"),
        (config_lib.SamplingConfig(version=-2), "--version must be >= 0; got -2"),
        (config_lib.SamplingConfig(truncation=float("nan")),
         r"--truncation must be 0 \(no truncation.*; got nan"),
        (GenerateOptions(num=0, out=png), "--num must be >= 1; got 0"),
        (GenerateOptions(attention=17, out=png), "--attention must be <= 16; got 17"),
        (GenerateOptions(out=str(tmp_path / "x.jpg")), "--out must be a .png file path"),
        (GenerateOptions(out=str(tmp_path / "no" / "x.png")), "cannot write .*directory .* is "
         "missing or not writable"),
        (BenchmarkOptions(mode="fast"), r"--mode='fast' is unknown; use one of \['train'"),
        (ExportOptions(max_batch=0), "--max_batch must be >= 1; got 0"),
        (CompareOptions(variants=("sagan", "attention")), "--variants='attention' is unknown"),
        (CompareOptions(minutes=-1.0), "--minutes must be >= 0; got -1.0"),
        (ImportOptions(generator="g.pth"), "nothing to write: give --workdir and/or "
         "--export_name"),
        (ImportOptions(generator="g.pth", export_name="../x"), "--export_name: .*plain "
         "directory name"),
    ]:
        with pytest.raises(config_lib.ConfigError, match=message):
            section.validate()
    GenerateOptions(out=png).validate()  # the defaults pass
    config_lib.SamplingConfig(truncation=2.0, seed=2**31 - 1).validate()


def test_read_section_takes_the_flag_then_the_run_then_the_default(caplog):
    """A command's option: the flag when given; when not (None), the run's recorded
    value where the command inherits it, else the option's default; a section taken in
    part reads only its own options (the sampling seed is not training's)."""
    from sagan_tf import cli, evaluate

    values = absl_flags.FlagValues()
    evaluate.define_flags(values)
    run = {"dataset": "folder:/data/emoji", "background": "black", "crop": 40, "seed": 7}
    values(["evaluate", "--workdir=w", "--data_dir=/tfds"])
    data = config_lib.read_section(config_lib.DataConfig, values, run,
                                   only=evaluate.SHARED[config_lib.DataConfig])
    assert (data.dataset, data.background, data.crop, data.data_dir) == (
        "folder:/data/emoji", "black", 40, "/tfds")
    sample = config_lib.read_section(config_lib.SamplingConfig, values, run)
    assert (sample.seed, sample.truncation) == (7, 0.0)
    assert config_lib.read_section(config_lib.SamplingConfig, values).seed == 0  # --model
    values(["evaluate", "--dataset=mnist5k", "--seed=3", "--num_samples=70",
            "--classifier_dataset=folder:/c", "--backbone=inception_graph"])
    data = config_lib.read_section(config_lib.DataConfig, values, run,
                                   only=evaluate.SHARED[config_lib.DataConfig])
    assert data.dataset == "mnist5k"
    training = config_lib.read_section(config_lib.TrainingConfig, values, only=("batch_size",))
    assert (training.batch_size, training.seed) == (100, 0)
    # The previous spellings set the training names.
    assert (values.eval_samples, values.eval_classifier_dataset, values.eval_backbone) == (
        70, "folder:/c", "inception_graph")
    with caplog.at_level("WARNING"):
        cli.warn_deprecated(values)
    for old, new in (("num_samples", "eval_samples"), ("backbone", "eval_backbone"),
                     ("classifier_dataset", "eval_classifier_dataset")):
        assert f"--{old} is deprecated and will be removed in the next release; use --{new}" \
            in caplog.text


def test_training_and_sagan_evaluate_compare_with_one_evaluation_spec():
    """The periodic evaluation and `sagan-evaluate --workdir` build the real data from
    one function: the run's dataset options, the evaluation split, every image (no
    training subset), in a fixed order, in colour."""
    config = config_lib.TrainConfig.from_flat(
        dataset="folder:/data/emoji", folder_labels=True, conditional=True, background="black",
        crop=30, train_subset=100, manual_dir="/m", preset="dcgan_32", channels=1)
    spec = config.data.evaluation_spec(32)
    assert (spec.dataset, spec.split, spec.image_size, spec.channels, spec.subset,
            spec.deterministic, spec.manual_dir, spec.crop, spec.folder_labels) == (
        "folder:/data/emoji", "train", 32, 3, None, True, None, 30, True)
    assert config.data_spec().subset == 100  # training itself takes the subset
    assert config_lib.DataConfig().evaluation_spec(32).split == "test"  # mnist5k's held-out
