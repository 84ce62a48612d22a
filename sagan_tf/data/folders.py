"""Image folders (`folder:PATH`): the scan (sizes, class sub-folders, skipped files
and why), decoding with EXIF orientation and transparency composited onto
`--background`."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf.data.spec import (BACKGROUND_NAMES, IMAGE_EXTENSIONS, DataError, DataInfo,
                                center_crop_resize, set_channels)

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


def source(spec):
    """(arrays, prepare, DataInfo) of a folder: paths, labels and orientations."""
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
        return set_channels(image, spec.channels), label

    return ((np.asarray(paths, dtype=object), np.asarray(labels, np.int32),
             np.asarray(orientations, np.int32)), prepare,
            DataInfo(len(classes), len(paths), f"folder {root} ({len(paths)} images)",
                     tuple(classes)))
