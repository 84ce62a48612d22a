"""Writes the colour benchmark: the Noto Emoji drawings of the `emoji-datasource-google`
npm package (Apache-2.0) as a labelled image folder, one sub-folder per category.

    python -m benchmarks.emoji --out=emoji                      # npm pack, 1,906 emoji
    python -m benchmarks.emoji --out=faces --categories=smileys_emotion   # 169 faces
    python -m benchmarks.emoji --out=emoji --package=emoji-datasource-google-16.0.0.tgz

Then `sagan-train --flagfile=colour_32 --dataset=folder:emoji --folder_labels
--conditional` trains on it.

The drawings are the package's `img/google/64/*.png` (64x64 RGBA, transparent
around the drawing), one per emoji of its `emoji.json` (skin-tone variants left
out), named by the emoji's short name (`grinning.png`, `flag-eg.png`) in a
sub-folder named after its category (`smileys_emotion`, `flags`, ...). The
"Component" category (skin-tone swatches and hair pieces) is left out. Without
`--package`, `npm pack emoji-datasource-google` fetches the package (npm must be
installed); `--package` takes the `.tgz` that `npm pack` wrote or the folder it
unpacks to. The package's LICENSE is copied beside the sub-folders.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from absl import app, flags

from sagan_tf.errors import UserError

PACKAGE = "emoji-datasource-google"
IMAGES = "img/google/64"
LEFT_OUT = ("Component",)


class EmojiError(UserError, ValueError):
    """A package or output problem, reported as one line."""


def category_folder(category):
    """`Smileys & Emotion` -> `smileys_emotion`."""
    return re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


def _npm_pack(into):
    """Runs `npm pack` of the package into `into`; the path of the .tgz it wrote."""
    npm = shutil.which("npm")
    if npm is None:
        raise EmojiError(f"npm is not installed: install Node.js's npm, or download {PACKAGE} "
                         "yourself and pass it with --package")
    done = subprocess.run([npm, "pack", PACKAGE, "--pack-destination", into],
                          capture_output=True, text=True)
    tgz = [f for f in os.listdir(into) if f.endswith(".tgz")]
    if done.returncode or not tgz:
        why = " ".join((done.stderr or done.stdout).split())[-300:]
        raise EmojiError(f"npm pack {PACKAGE} failed: {why}")
    return os.path.join(into, tgz[0])


def _unpacked(package, into):
    """The folder holding `emoji.json` of a package given as a .tgz or a folder."""
    if os.path.isfile(package):
        try:
            with tarfile.open(package) as tar:
                members = [m for m in tar.getmembers() if m.isfile() and (
                    m.name.endswith(("/emoji.json", "/LICENSE")) or f"/{IMAGES}/" in m.name)]
                tar.extractall(into, members=members, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise EmojiError(f"{package} is not a readable .tgz: {' '.join(str(e).split())}") \
                from None
        package = into
    for root in (package, os.path.join(package, "package")):
        if os.path.isfile(os.path.join(root, "emoji.json")):
            return root
    raise EmojiError(f"{package} holds no emoji.json: is it the {PACKAGE} package?")


def write_folder(package, out, categories=None):
    """Writes the drawings of `package` (an unpacked package folder or its .tgz) to
    `out`/<category>/<short name>.png; `categories` (folder names) keeps only those.

    Returns {category folder: number of images written}.
    """
    with tempfile.TemporaryDirectory(prefix="emoji_") as scratch:
        root = _unpacked(package, scratch)
        try:
            with open(os.path.join(root, "emoji.json"), encoding="utf-8") as f:
                table = json.load(f)
            entries = [e for e in table if e.get("has_img_google", True)
                       and e["category"] not in LEFT_OUT]
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise EmojiError(f"{PACKAGE}'s emoji.json cannot be read: {e}") from None
        known = sorted({category_folder(e["category"]) for e in entries})
        wanted = set(categories or known)
        unknown = sorted(wanted - set(known))
        if unknown:
            raise EmojiError(f"unknown categor{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(unknown)}; the package has {', '.join(known)}")
        counts = {}
        for entry in entries:
            folder = category_folder(entry["category"])
            source = os.path.join(root, IMAGES, entry["image"])
            if folder not in wanted or not os.path.isfile(source):
                continue
            name = re.sub(r"[^\w+-]", "_", entry.get("short_name") or entry["unified"])
            os.makedirs(os.path.join(out, folder), exist_ok=True)
            shutil.copyfile(source, os.path.join(out, folder, f"{name}.png"))
            counts[folder] = counts.get(folder, 0) + 1
        if not counts:
            raise EmojiError(f"{package} has no drawings under {IMAGES}/")
        if os.path.isfile(os.path.join(root, "LICENSE")):
            shutil.copyfile(os.path.join(root, "LICENSE"), os.path.join(out, "LICENSE"))
    return counts


def define_flags(flag_values):
    flags.DEFINE_string("out", None, "Folder to write (must not exist or be empty).",
                        flag_values=flag_values)
    flags.DEFINE_string("package", None, f"The {PACKAGE} package: the .tgz of `npm pack` or "
                        "its unpacked folder (default: npm pack it now).",
                        flag_values=flag_values)
    flags.DEFINE_list("categories", [], "Category folders to keep (default: all but "
                      "Component): activities, animals_nature, flags, food_drink, objects, "
                      "people_body, smileys_emotion, symbols, travel_places.",
                      flag_values=flag_values)
    flags.mark_flag_as_required("out", flag_values=flag_values)


def main(argv):
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {argv[1:]}")
    out = FLAGS.out
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        sys.exit(f"error: {out} exists and is not an empty folder; name a new one with --out")
    try:
        with tempfile.TemporaryDirectory(prefix="emoji_npm_") as scratch:
            package = FLAGS.package or _npm_pack(scratch)
            counts = write_folder(package, out, FLAGS.categories)
    except EmojiError as e:
        sys.exit(f"error: {e}")
    for folder, n in sorted(counts.items()):
        print(f"{n:5d}  {os.path.join(out, folder)}")
    print(f"{sum(counts.values()):5d}  images in {out} ({len(counts)} categories)")


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app.run(main)
