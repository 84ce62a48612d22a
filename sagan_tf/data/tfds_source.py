"""TFDS datasets: building them (with the manual directory, network probing and
one-line hints for what is missing) and reading a split."""

import os
import shutil
import time

import tensorflow as tf

from sagan_tf.data.spec import (TFDS_DATASETS, DataError, DataInfo, center_crop_resize,
                                check_subset, set_channels)

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


def source(spec, input_context=None):
    """(dataset, prepare, DataInfo) of a TFDS split, sharded for `input_context`."""
    import tensorflow_datasets as tfds

    label_key, default_crop = TFDS_DATASETS[spec.dataset]
    crop = spec.crop if spec.crop is not None else default_crop
    builder = _tfds_builder(spec)
    read_config = tfds.ReadConfig(shuffle_seed=spec.seed, input_context=input_context)
    split_info = builder.info.splits.get(spec.split) if hasattr(builder.info.splits, "get") else None
    num_examples = split_info.num_examples if split_info is not None else None
    split = spec.split
    if spec.subset is not None:
        check_subset(spec, num_examples)
        split, num_examples = f"{spec.split}[:{spec.subset}]", spec.subset
    ds = builder.as_dataset(split=split, shuffle_files=True, read_config=read_config)

    def prepare(example):
        image = center_crop_resize(example["image"], spec.image_size, crop)
        label = tf.cast(example[label_key], tf.int32) if label_key else tf.constant(0, tf.int32)
        return set_channels(image, spec.channels), label

    num_classes = builder.info.features[label_key].num_classes if label_key else 0
    return ds, prepare, DataInfo(num_classes, num_examples or None, f"tfds {spec.dataset}/{spec.split}")
