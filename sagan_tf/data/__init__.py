"""Input pipelines: TFDS datasets, image folders and the offline `mnist5k` default.

Every source yields `(image, label)`: image float32 in [-1, 1], HWC, at the
model's size and channel count; label int32 (0 for sources without labels,
whose `num_classes` is 0). `input_fn` adds shuffling (a stateless permutation
per epoch for mnist5k and folders, so the data of a step depends only on the
step; a shuffle buffer for TFDS), caching, repetition, batching and
prefetching; `distributed_dataset` gives each replica its share of the global
batch through `strategy.distribute_datasets_from_function`, so one code path
serves one device, MirroredStrategy and multi-worker training.

Modules: `spec` (what a dataset is: `DataSpec`, `DataInfo`, `DataError`, the
shared preprocessing), one per source (`mnist5k`, `folders`, `tfds_source`),
and `pipeline` (subsets, shuffling, batching, distribution). This package
gives their public names.
"""

from sagan_tf.data.folders import (_FOLDER_CACHE, MAX_IMAGE_PIXELS, SKIP_REASONS, composite,
                                   input_error, max_image_pixels, scan_folder, upright)
from sagan_tf.data.mnist5k import MNIST5K_HELDOUT, load_mnist5k, mnist5k_path
from sagan_tf.data.pipeline import (check_batch_size, describe, distributed_dataset, input_fn,
                                    load_images, stream_indices)
from sagan_tf.data.spec import (BACKGROUND_NAMES, IMAGE_EXTENSIONS, KNOWN_DATASETS,
                                OFFLINE_DATASETS, SUBSET_SEED, TFDS_DATASETS, DataError,
                                DataInfo, DataSpec, center_crop_resize, check_dataset_name,
                                evaluation_split, label_table, parse_background, set_channels,
                                to_model_range)
from sagan_tf.data.tfds_source import TFDS_FILES

__all__ = [
    "_FOLDER_CACHE", "MAX_IMAGE_PIXELS", "SKIP_REASONS", "composite", "input_error",
    "max_image_pixels", "scan_folder", "upright", "MNIST5K_HELDOUT", "load_mnist5k",
    "mnist5k_path", "check_batch_size", "describe", "distributed_dataset", "input_fn",
    "load_images", "stream_indices", "BACKGROUND_NAMES", "IMAGE_EXTENSIONS", "KNOWN_DATASETS",
    "OFFLINE_DATASETS", "SUBSET_SEED", "TFDS_DATASETS", "DataError", "DataInfo", "DataSpec",
    "center_crop_resize", "check_dataset_name", "evaluation_split", "label_table",
    "parse_background", "set_channels", "to_model_range", "TFDS_FILES",
]
