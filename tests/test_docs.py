"""The README and docs/: short, linked, free of words about how they were written, and
their parameter table equal to the models'."""

import glob
import os
import re

import numpy as np
import pytest

from sagan_tf.models import Discriminator, Generator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _prose(path):
    """The page without fenced code and inline code."""
    with open(path) as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    return re.sub(r"`[^`]*`", "", text)


@pytest.mark.parametrize("path", PAGES, ids=os.path.basename)
def test_pages_speak_of_the_project_alone(path):
    prose = " ".join(_prose(path).split())
    words = re.findall(r"\b(sessions?|issues?|tasks?|lent|device status)\b", prose, re.I)
    assert not words, words
    # How it was made, not what it is: say a limitation of the project instead ("TF Serving
    # itself has not been run against these exports").
    phrases = re.findall(r"not (?:run|tried|measured|trained|computed) here|on these machines|"
                         r"machines this project|current code|an earlier configuration|"
                         r"previous flag file|options existed|runs here|here was computed|"
                         r"not measured yet|we (?:tried|found)", prose, re.I)
    assert not phrases, phrases


def test_the_readme_is_a_landing_page_with_pictures_and_working_links():
    readme = os.path.join(ROOT, "README.md")
    assert os.path.getsize(readme) <= 12_000
    with open(readme) as f:
        text = f.read()
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    pictures = [t for t in targets if t.endswith(".png")]
    assert len(pictures) >= 2
    for target in targets:
        if not target.startswith("http"):
            assert os.path.exists(os.path.join(ROOT, target)), target
    for picture in pictures:
        with open(os.path.join(ROOT, picture), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", picture
        assert os.path.getsize(os.path.join(ROOT, picture)) < 200_000, picture


def _parameter_table():
    with open(os.path.join(ROOT, "docs", "models.md")) as f:
        text = f.read()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| \[[\d, ]*\] \| \[[\d, ]*\] \| ([\d,]+) \| "
                      r"([\d,]+) \|", text, re.M)
    return [(preset, int(g.replace(",", "")), int(d.replace(",", ""))) for preset, _, g, d in rows]


def test_the_parameter_table_is_the_models():
    rows = _parameter_table()
    assert {r[0] for r in rows} >= {"dcgan_32", "dcgan_64", "resnet_32", "resnet_128"}
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    for preset, g_params, d_params in rows:
        g, d = Generator.from_preset(preset), Discriminator.from_preset(preset)
        g.build()
        d.build()
        assert (count(g), count(d)) == (g_params, d_params), preset


# Flags of other programs that the pages quote: TensorBoard, saved_model_cli, pytest, and
# heykeetae's PyTorch train.py (compared with in docs/models.md).
OTHER_PROGRAMS_FLAGS = {"logdir", "all", "dist", "adv_loss", "lr_decay", "parallel"}
ENTRY_MODULES = ("sagan_tf.train", "sagan_tf.export", "sagan_tf.generate", "sagan_tf.evaluate",
                 "sagan_tf.benchmark", "sagan_tf.import_torch", "benchmarks.emoji",
                 "benchmarks.compare")
ARGPARSE_MODULES = ("benchmarks.attention_diagnostics",
                    "benchmarks.pytorch_sagan")


def _texts():
    """(where, text) of every page, flag file, entry module docstring and flag help."""
    import importlib

    from absl import flags

    texts = [(os.path.relpath(p, ROOT), open(p).read()) for p in PAGES]
    texts += [(os.path.relpath(p, ROOT), open(p).read())
              for p in sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags")))]
    defined = set(OTHER_PROGRAMS_FLAGS) | {"help", "helpfull", "flagfile"}
    for name in ENTRY_MODULES:
        module = importlib.import_module(name)
        values = flags.FlagValues()
        module.define_flags(values)
        defined |= set(values) | {f"no{flag}" for flag in values}
        texts.append((f"{name} docstring", module.__doc__ or ""))
        texts += [(f"{name} --{flag} help", values[flag].help or "") for flag in values]
    for name in ARGPARSE_MODULES:
        module = importlib.import_module(name)
        source = open(module.__file__).read()
        defined |= set(re.findall(r'add_argument\(\s*"--(\w+)"', source))
        texts.append((f"{name} docstring", module.__doc__ or ""))
    return texts, defined


def test_every_flag_preset_variant_and_run_directory_the_docs_name_exists():
    """What the README, docs/, the flag files, the commands' docstrings and their
    --help texts name: flags the commands define, flag files and presets that exist,
    compare variants it knows, and runs/NAME or savedmodels/NAME directories that a
    documented command writes."""
    from benchmarks.compare import VARIANTS
    from sagan_tf import flagfiles
    from sagan_tf.models.presets import PRESETS

    texts, defined = _texts()
    presets = {os.path.basename(p)[:-len(".flags")]
               for p in glob.glob(os.path.join(ROOT, "flags", "*.flags"))}
    missing = []
    # Run directories a documented command writes: the flag files' own (for the folder ones,
    # with the folders the docs train on), --workdir and --export_name of training commands,
    # and the default runs/<dataset> of a plain run.
    written = {"mnist5k", "emoji", "faces"}
    for preset in presets:
        workdir = re.search(r"^--workdir=runs/(\S+)", open(flagfiles.resolve(preset)).read(), re.M)
        if workdir:
            written |= {workdir.group(1).replace("{dataset}", name) for name in ("emoji", "faces")}
    for _, text in texts:
        for line in re.sub(r"\\\n", " ", text).splitlines():  # continued lines joined
            if re.search(r"sagan-train|sagan_tf\.train|import_torch|sagan-import-torch", line):
                written |= set(re.findall(r"--(?:workdir=runs|export_name=)/?(\w+)", line))
    for where, text in texts:
        for name in set(re.findall(r"(?<![\w-])--([a-z][a-z0-9_]+)", text)) - defined:
            missing.append(f"{where}: flag --{name}")
        for name in set(re.findall(r"--flagfile=(\w+)(?![\w./])", text)) - presets:
            missing.append(f"{where}: flag file {name}")
        for name in set(re.findall(r"--preset=(\w+)", text)) - set(PRESETS):
            missing.append(f"{where}: preset {name}")
        for names in re.findall(r"--variants=([\w,]+)", text):
            missing += [f"{where}: variant {v}" for v in names.split(",") if v not in VARIANTS]
        for name in set(re.findall(r"--(?:model=savedmodels|workdir=runs)/(\w+)", text)):
            if name not in written and name.upper() != name:
                missing.append(f"{where}: runs/ or savedmodels/{name}, which no documented "
                               "command writes")
    assert not missing, missing
