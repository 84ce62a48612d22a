"""What a dataset is to the pipeline: the names it takes, `DataSpec` (what to
load and how), `DataInfo` (what a source holds), `DataError`, and the
preprocessing every source shares (crop, resize, channels, range)."""

import dataclasses
from typing import Optional

import tensorflow as tf

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


def set_channels(image, channels):
    """HWC image with `channels` channels (3: RGB, 1: grayscale)."""
    if channels == 3:
        return to_rgb(image)
    return tf.image.rgb_to_grayscale(image) if image.shape[-1] == 3 else image


def to_model_range(image):
    """uint8 or float [0, 255] -> float32 [-1, 1]."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def evaluation_split(dataset):
    """The split evaluations compare generated images with: mnist5k's held-out
    `test` digits, the `train` split of every other dataset (TFDS's test splits are
    small or missing; folders have one split)."""
    return "test" if dataset == "mnist5k" else "train"


def check_subset(spec, num_examples):
    """Raises DataError when `spec.subset` asks for more images than the split holds."""
    if num_examples is not None and spec.subset > num_examples:
        raise DataError(f"a subset of {spec.subset} images is larger than {spec.dataset}'s "
                        f"{spec.split} split ({num_examples} images)")
