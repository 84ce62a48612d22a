"""benchmarks/emoji.py: the labelled emoji folder, from a tiny fake package."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from benchmarks import emoji
from tests.commands import run_command

ENTRIES = [  # (short name, category, image file, has a google drawing)
    ("grinning", "Smileys & Emotion", "1f600.png", True),
    ("heart", "Smileys & Emotion", "2764-fe0f.png", True),
    ("flag-eg", "Flags", "1f1ea-1f1ec.png", True),
    ("skin-tone-2", "Component", "1f3fb.png", True),
    ("no-google", "Flags", "1f1fa-1f1f8.png", False),
]


def _png(seed):
    rgba = np.random.default_rng(seed).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def package(tmp_path):
    """A .tgz laid out as `npm pack emoji-datasource-google` writes it."""
    table = [dict(short_name=n, unified=f.split(".")[0].upper(), category=c, image=f,
                  has_img_google=g) for n, c, f, g in ENTRIES]
    members = {"package/emoji.json": json.dumps(table).encode(),
               "package/LICENSE": b"Apache License 2.0",
               "package/img/apple/64/1f600.png": _png(99)}
    for i, (_, _, image, google) in enumerate(ENTRIES):
        if google:
            members[f"package/img/google/64/{image}"] = _png(i)
    path = tmp_path / "emoji-datasource-google-0.0.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_writes_one_sub_folder_per_category_with_the_names_kept(package, tmp_path):
    out = tmp_path / "emoji"
    counts = emoji.write_folder(str(package), str(out))
    assert counts == {"smileys_emotion": 2, "flags": 1}  # no Component, no missing drawing
    assert sorted(os.listdir(out)) == ["LICENSE", "flags", "smileys_emotion"]
    assert sorted(os.listdir(out / "smileys_emotion")) == ["grinning.png", "heart.png"]
    with Image.open(out / "flags" / "flag-eg.png") as image:  # the google drawing, untouched
        assert image.mode == "RGBA" and (out / "flags" / "flag-eg.png").read_bytes() == _png(2)


def test_categories_pick_a_subset_and_an_unknown_one_is_named(package, tmp_path):
    counts = emoji.write_folder(str(package), str(tmp_path / "faces"), ["smileys_emotion"])
    assert counts == {"smileys_emotion": 2}
    with pytest.raises(emoji.EmojiError, match="unknown category people; the package has "
                                               "flags, smileys_emotion"):
        emoji.write_folder(str(package), str(tmp_path / "x"), ["people"])


def test_the_command_takes_an_unpacked_package_and_refuses_bad_input(package, tmp_path):
    with tarfile.open(package) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    proc = run_command("benchmarks.emoji", f"--out={tmp_path / 'out'}",
                       f"--package={tmp_path / 'unpacked'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3  images in" in proc.stdout and "(2 categories)" in proc.stdout
    again = run_command("benchmarks.emoji", f"--out={tmp_path / 'out'}",
                        f"--package={tmp_path / 'unpacked'}")
    assert again.returncode != 0 and "is not an empty folder" in again.stderr
    (tmp_path / "junk.tgz").write_bytes(b"not a tar")
    bad = run_command("benchmarks.emoji", f"--out={tmp_path / 'new'}",
                      f"--package={tmp_path / 'junk.tgz'}")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ") and "not a readable" in bad.stderr
