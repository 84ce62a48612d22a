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
    words = re.findall(r"\b(sessions?|issues?|tasks?|lent|device status)\b", _prose(path), re.I)
    assert not words, words


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
