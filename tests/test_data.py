import logging
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sagan_tf import data
from sagan_tf.data import tfds_source


def _first_batch(spec, batch=8):
    images, labels = next(iter(data.input_fn(spec, batch)))
    return images.numpy(), labels.numpy()


def test_tfds_celeb_a_mocked_shapes_range_and_crop(tfds_manual_files):
    # A 218x178 image whose central 140x140 square is white and the rest black:
    # after the default 140 px center crop only white remains.
    image = np.zeros((218, 178, 3), np.uint8)
    top, left = (218 - 140) // 2, (178 - 140) // 2
    image[top:top + 140, left:left + 140] = 255

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensors({"image": image}).repeat(16)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        x, y = _first_batch(data.DataSpec("celeb_a", 64, 3))
        assert x.shape == (8, 64, 64, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x, 1.0, atol=1e-6)
        assert (y == 0).all()
        # A wider crop takes in the black border.
        x_wide, _ = _first_batch(data.DataSpec("celeb_a", 64, 3, crop=178))
        assert x_wide.min() == -1.0

    with tfds.testing.mock_data(num_examples=12):
        x, _ = _first_batch(data.DataSpec("celeb_a", 32, 1))
        assert x.shape == (8, 32, 32, 1) and -1 <= x.min() and x.max() <= 1
        assert data.describe(data.DataSpec("celeb_a", 64)).num_classes == 0


def test_tfds_cifar10_mocked_labels(tfds_manual_files):
    with tfds.testing.mock_data(num_examples=40):
        x, y = _first_batch(data.DataSpec("cifar10", 32, 3), batch=16)
        assert data.describe(data.DataSpec("cifar10", 32)).num_classes == 10
    assert x.shape == (16, 32, 32, 3)
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() < 10
    assert -1 <= x.min() and x.max() <= 1


def test_tfds_failure_names_dataset_cause_and_both_ways_out(monkeypatch, tmp_path):
    def fail(self, *args, **kwargs):
        raise RuntimeError("Google Drive quota exceeded for this file " + "word " * 100)

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    monkeypatch.setattr(tfds_source, "_unreachable_hosts", lambda urls: [])  # as if online
    data_dir = str(tmp_path / "tfds_test")
    with pytest.raises(data.DataError) as err:
        data.describe(data.DataSpec("celeb_a", 64, data_dir=data_dir))
    message = str(err.value)
    assert "\n" not in message
    for part in ("'celeb_a'", "quota exceeded", "manual", data_dir, "folder:PATH",
                 "img_align_celeba.zip", "list_attr_celeba.txt", "identity_CelebA.txt"):
        assert part in message
    # The cause is cut at a word boundary, never mid-word.
    assert "word ... --" in message


def test_tfds_without_network_fails_in_seconds_naming_the_manual_files(tmp_path):
    import time

    # Port 9 on loopback (discard) refuses at once: the host is unreachable.
    start = time.time()
    assert tfds_source._unreachable_hosts(["http://127.0.0.1:9/x"], timeout=2)
    spec = data.DataSpec("cifar10", 32, data_dir=str(tmp_path / "tfds"))
    original = tfds_source._unreachable_hosts
    try:
        tfds_source._unreachable_hosts = lambda urls: original(
            [u.replace("www.cs.toronto.edu", "127.0.0.1:9") for u in urls], timeout=2)
        with pytest.raises(data.DataError) as err:
            data.describe(spec)
    finally:
        tfds_source._unreachable_hosts = original
    assert time.time() - start < 30
    message = str(err.value)
    assert "cannot reach 127.0.0.1" in message and "cifar-10-binary.tar.gz" in message
    assert str(tmp_path / "tfds" / "downloads" / "manual") in message
    # imagenet2012 is never downloaded: without its files it stops before any attempt.
    with pytest.raises(data.DataError, match="never downloads.*ILSVRC2012_img_train.tar.*image-net"):
        data.describe(data.DataSpec("imagenet2012", 128, data_dir=str(tmp_path / "tfds")))


def test_tfds_missing_module_is_named_with_its_pip_package(monkeypatch, tmp_path):
    def fail(self, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'",
                                  name="importlib_resources")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    monkeypatch.setattr(tfds_source, "_unreachable_hosts", lambda urls: [])
    with pytest.raises(data.DataError) as err:
        data.describe(data.DataSpec("celeb_a", 64, data_dir=str(tmp_path)))
    assert str(err.value) == (
        "TFDS needs the Python module 'importlib_resources' for 'celeb_a', which is not "
        "installed: pip install importlib_resources (or pip install -r requirements.txt)")


def test_failed_download_leaves_no_partial_files(monkeypatch, tmp_path):
    downloads = tmp_path / "downloads" / "celeb_a"

    def fail(self, *args, **kwargs):
        downloads.mkdir(parents=True)
        (downloads / "ucexport_download_id_X.tmp.0123").write_bytes(b"half")
        raise OSError("connection reset")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    monkeypatch.setattr(tfds_source, "_unreachable_hosts", lambda urls: [])
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "kept.zip").write_bytes(b"a finished download")
    with pytest.raises(data.DataError, match="connection reset"):
        data.describe(data.DataSpec("celeb_a", 64, data_dir=str(tmp_path)))
    assert not list(downloads.iterdir())
    assert (tmp_path / "downloads" / "kept.zip").exists()


@pytest.mark.parametrize("dataset", ["celeb_a", "cifar10", "lsun/church_outdoor",
                                     "lsun/bedroom", "imagenet2012"])
def test_tfds_builders_of_the_flag_files_import_and_list_their_files(dataset):
    """Every dataset a flag file names: its TFDS builder imports and lists its download
    URLs (this needs importlib_resources, which a fresh install lacked), and the
    files `TFDS_FILES` tells users to put in the manual directory are the ones TFDS
    looks for there. No network."""
    builder = tfds.builder(dataset)
    names = {info.filename for info in builder.url_infos.values()}
    files, _ = data.TFDS_FILES[dataset]
    if dataset == "imagenet2012":  # manual-only: TFDS names the tar files in its instructions
        assert all(f in builder.MANUAL_DOWNLOAD_INSTRUCTIONS for f in files)
    else:
        assert set(files) <= names


def _write(path, array, fmt):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i, (fmt, ext) in enumerate([("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"),
                                    ("BMP", "bmp")]):
        for j in range(2):
            arr = rng.integers(0, 255, size=(48, 40, 3), dtype=np.uint8)
            _write(str(root / f"class{i % 2}" / "deeper" / f"img{j}.{ext}"), arr, fmt)
    _write(str(root / "class1" / "tiny.png"), np.full((8, 8, 3), 200, np.uint8), "PNG")
    (root / "class0" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "class1" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_skips_what_tensorflow_cannot_decode(tmp_path, caplog):
    """Files PIL reads but training's decoder does not (a TIFF named .png, a 1-bit BMP)
    or misreads (a palette BMP) are skipped and counted at the scan, so training
    never meets them."""
    from PIL import Image

    root = tmp_path / "odd"
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(str(root / f"good{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), "PNG")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "tiff.png",
                                                                             format="TIFF")
    Image.fromarray(rng.integers(0, 2, (40, 40), dtype=np.uint8) * 255).convert("1").save(
        root / "onebit.bmp")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).convert(
        "P", palette=Image.Palette.ADAPTIVE).save(root / "palette.bmp")
    data._FOLDER_CACHE.clear()
    caplog.set_level(logging.WARNING)
    spec = data.DataSpec(f"folder:{root}", 32, 3)
    assert data.describe(spec).num_examples == 3
    assert "skipped 3 file(s)" in caplog.text
    assert "1 corrupt or not an image its name says" in caplog.text
    assert "2 palette or 1-bit BMPs" in caplog.text
    for name in ("tiff.png", "onebit.bmp", "palette.bmp"):
        assert name in caplog.text
    images, _ = next(iter(data.input_fn(spec, 3, repeat=False)))
    assert images.shape == (3, 32, 32, 3)


def _png_header(width, height):
    """A PNG that declares width x height pixels and holds none (what a decompression
    bomb looks like to a reader of headers)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_huge_images_and_gifs_are_skipped_with_their_reason(tmp_path, caplog, capfd,
                                                            monkeypatch):
    from PIL import Image

    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    for i in range(2):
        _write(str(root / f"good{i}.png"), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), "PNG")
    (root / "bomb.png").write_bytes(_png_header(30000, 30000))  # over PIL's hard limit
    (root / "huge.png").write_bytes(_png_header(10000, 10000))  # over PIL's warning limit
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "anim.gif")
    data._FOLDER_CACHE.clear()
    caplog.set_level(logging.WARNING)
    spec = data.DataSpec(f"folder:{root}", 32, 3)
    assert data.describe(spec).num_examples == 2
    text = caplog.text
    assert "skipped 3 file(s)" in text
    assert "2 over the 89,478,485-pixel limit that guards against decompression bombs (set " \
           "SAGAN_TF_MAX_IMAGE_PIXELS to raise it)" in text
    assert "1 GIFs (not read" in text
    assert "bomb.png (900,000,000 px)" in text and "huge.png (100,000,000 px)" in text
    assert "DecompressionBomb" not in capfd.readouterr().err  # no raw Python warning
    # The limit is a setting: below 40 x 40, the good images are too large as well.
    monkeypatch.setenv("SAGAN_TF_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(data.DataError, match="has no readable image"):
        data.describe(spec)
    monkeypatch.setenv("SAGAN_TF_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(data.DataError, match="SAGAN_TF_MAX_IMAGE_PIXELS must be a whole number"):
        data.describe(spec)


def test_folder_skips_corrupt_counts_tiny_and_reads_every_format(image_folder, caplog):
    data._FOLDER_CACHE.clear()
    caplog.set_level(logging.WARNING)
    spec = data.DataSpec(f"folder:{image_folder}", 32, 3, folder_labels=True, shuffle_buffer=1)
    info = data.describe(spec)
    assert info.num_examples == 9 and info.num_classes == 2
    text = caplog.text
    assert "skipped 2 file(s)" in text and "2 corrupt or not an image" in text
    assert "corrupt.jpg" in text and "empty.png" in text
    assert "1 image(s)" in text and "upscaled" in text
    images, labels = next(iter(data.input_fn(spec, 9, repeat=False)))
    assert images.shape == (9, 32, 32, 3)
    assert sorted(labels.numpy().tolist()) == [0] * 4 + [1] * 5
    # The upscaled 8x8 image (value 200) survives as a flat image.
    flat = [im for im in images.numpy() if np.ptp(im) < 1e-3]
    assert len(flat) == 1
    np.testing.assert_allclose(flat[0], 200 / 127.5 - 1, atol=1e-2)


def test_folder_errors(tmp_path):
    data._FOLDER_CACHE.clear()
    with pytest.raises(data.DataError, match="does not exist"):
        data.describe(data.DataSpec(f"folder:{tmp_path / 'missing'}", 32))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "bad.jpg").write_bytes(b"junk")
    with pytest.raises(data.DataError, match="no readable image"):
        data.describe(data.DataSpec(f"folder:{tmp_path / 'empty'}", 32))


def test_mnist5k_real_file_splits():
    train_x, train_y = data.load_mnist5k("train")
    test_x, test_y = data.load_mnist5k("test")
    assert train_x.shape == (4500, 28, 28, 1) and test_x.shape == (500, 28, 28, 1)
    train_rows = {row.tobytes() for row in train_x.reshape(4500, -1)}
    test_rows = {row.tobytes() for row in test_x.reshape(500, -1)}
    assert not train_rows & test_rows  # disjoint
    # The file is sorted by class; after the seeded shuffle every class is near 10%.
    for labels in (train_y, test_y):
        share = np.bincount(labels, minlength=10) / len(labels)
        assert share.min() > 0.06 and share.max() < 0.14
    # Same split every time.
    np.testing.assert_array_equal(data.load_mnist5k("test")[1], test_y)


@pytest.mark.parametrize("channels", [1, 3])
def test_mnist5k_pipeline(channels):
    x, y = _first_batch(data.DataSpec("mnist5k", 32, channels, seed=1), batch=32)
    assert x.shape == (32, 32, 32, channels)
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[:, :2], -1.0)  # 2 px padding border is black
    assert 0 <= y.min() and y.max() <= 9 and len(set(y.tolist())) > 3
    if channels == 3:
        np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_deterministic_order_with_seed():
    spec = data.DataSpec("mnist5k", 32, 1, seed=7, deterministic=True)
    a = _first_batch(spec)[1]
    b = _first_batch(spec)[1]
    c = _first_batch(data.DataSpec("mnist5k", 32, 1, seed=8, deterministic=True))[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_two_replicas_get_half_the_global_batch_each(mirrored):
    strategy = mirrored
    ds = data.distributed_dataset(strategy, data.DataSpec("mnist5k", 32, 1), 16)
    images, labels = next(iter(ds))
    shapes = [t.shape for t in strategy.experimental_local_results(images)]
    assert shapes == [(8, 32, 32, 1), (8, 32, 32, 1)]
    with pytest.raises(data.DataError, match="multiple of the number of replicas"):
        data.distributed_dataset(strategy, data.DataSpec("mnist5k", 32, 1), 15)


def _take(ds, count):
    return np.array([int(i) for i in ds.take(count)])


def test_stream_indices_permute_each_epoch_and_split_batches_exactly():
    n, batch = 10, 4
    stream = _take(data.stream_indices(n, seed=3, global_batch=batch), 3 * n)
    # Each epoch is a permutation of all examples, and epochs differ.
    epochs = stream.reshape(3, n)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(n))
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(stream, _take(data.stream_indices(n, 4, batch), 3 * n))
    # Starting at global batch 2 reads exactly what the stream reads from position 8.
    np.testing.assert_array_equal(_take(data.stream_indices(n, 3, batch, start_batch=2), 12),
                                  stream[8:20])
    # Two pipelines: pipeline p takes the p-th half of every global batch.
    halves = [_take(data.stream_indices(n, 3, batch, start_batch=1, pipeline=p, pipelines=2), 6)
              for p in range(2)]
    rebuilt = np.concatenate([np.concatenate([h[2 * b:2 * b + 2] for h in halves])
                              for b in range(3)])
    np.testing.assert_array_equal(rebuilt, stream[4:16])


def test_input_fn_start_batch_and_replicas_read_the_same_global_batches(mirrored):
    spec = data.DataSpec("mnist5k", 32, 1, seed=5)
    batches = [b[0].numpy() for b in data.input_fn(spec, 16).take(4)]
    resumed = next(iter(data.input_fn(spec, 16, start_batch=3)))[0].numpy()
    np.testing.assert_array_equal(resumed, batches[3])
    ds = data.distributed_dataset(mirrored, spec, 16, start_batch=2)
    images, _ = next(iter(ds))
    parts = [t.numpy() for t in mirrored.experimental_local_results(images)]
    np.testing.assert_array_equal(np.concatenate(parts), batches[2])


def test_bad_specs():
    with pytest.raises(data.DataError, match="unknown dataset 'celeba'.*celeb_a.*mnist5k.*folder:PATH"):
        data.DataSpec("celeba")
    with pytest.raises(data.DataError, match="image size 48"):
        data.DataSpec("mnist5k", 48)
    with pytest.raises(data.DataError, match="splits"):
        data.load_mnist5k("validation")


def test_folder_turns_exif_rotated_photos_upright(tmp_path):
    """A phone portrait: landscape pixels with EXIF orientation 6 (turn 90 degrees
    clockwise). Training sees what PIL's exif_transpose shows."""
    from PIL import ImageOps

    root = tmp_path / "photos"
    root.mkdir()
    pixels = np.zeros((32, 64, 3), np.uint8)  # landscape: a white left half
    pixels[:, :32] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(root / "portrait.jpg", exif=exif, quality=100)
    data._FOLDER_CACHE.clear()
    spec = data.DataSpec(f"folder:{root}", 32, 3, crop=32)
    (images, _), = data.input_fn(spec, 1, repeat=False)
    with Image.open(root / "portrait.jpg") as original:
        upright = np.asarray(ImageOps.exif_transpose(original))  # (64, 32, 3): white top half
    assert upright.shape == (64, 32, 3)
    ours = (images.numpy()[0] + 1) * 127.5  # the central 32x32 square, upright
    expected = upright[16:48].astype(np.float32)
    assert np.abs(ours - expected).mean() < 8
    assert ours[:8].mean() > 200 and ours[-8:].mean() < 50  # top white, bottom black


def test_folder_reads_any_file_name_and_skips_what_is_not_a_file(tmp_path, caplog):
    root = tmp_path / "odd_names"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in (b"caf\xe9.png", b"plain.png"):  # the first is Latin-1, not UTF-8
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            os.path.join(os.fsencode(root), name))
    os.mkfifo(root / "pipe.png")
    os.symlink(root / "gone.png", root / "dangling.png")
    data._FOLDER_CACHE.clear()
    caplog.set_level(logging.WARNING)
    start = time.time()
    spec = data.DataSpec(f"folder:{root}", 32, 3)
    assert data.describe(spec).num_examples == 2
    assert time.time() - start < 30  # the FIFO is never opened
    assert "skipped 2 file(s)" in caplog.text
    assert "1 broken links" in caplog.text and "1 not regular files" in caplog.text
    images, _ = next(iter(data.input_fn(spec, 2, repeat=False)))
    assert images.shape == (2, 32, 32, 3)


def _transparent_images(rng):
    """{name: (PIL image, RGBA array a viewer composites)}: RGBA, gray + alpha and
    palette PNGs and a WebP with alpha, whose transparent pixels store other colours."""
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    rgba[:16, :, 3] = 0                 # fully transparent, a random colour stored under it
    rgba[16:24, :, 3] = 255             # opaque
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    palette = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE,
                                                     colors=16)
    palette.info["transparency"] = 3    # one palette colour is transparent
    return {"rgba.png": Image.fromarray(rgba, "RGBA"), "la.png": la, "palette.png": palette,
            "alpha.webp": Image.fromarray(rgba, "RGBA")}


@pytest.mark.parametrize("background,colour", [("white", (255, 255, 255)),
                                               ("#0a64c8", (10, 100, 200))])
def test_transparent_pixels_are_composited_onto_the_background(tmp_path, caplog, background,
                                                               colour):
    """Training decodes each image with alpha to its composite over --background, the
    colour a viewer shows, not the one the file stores under transparent pixels."""
    from sagan_tf import config as config_lib

    images = _transparent_images(np.random.default_rng(0))
    root = tmp_path / "sprites"
    root.mkdir()
    expected = {}
    for name, image in images.items():
        kwargs = dict(lossless=True) if name.endswith(".webp") else {}
        if name == "palette.png":
            kwargs["transparency"] = 3
        image.save(root / name, **kwargs)
        rgba = np.asarray(Image.open(root / name).convert("RGBA")).astype(np.int64)
        assert rgba[..., 3].min() == 0 and (rgba[..., 3] == 0).mean() < 1
        composite = (rgba[..., :3] * rgba[..., 3:] + np.array(colour) * (255 - rgba[..., 3:])
                     + 127) // 255
        expected[name] = composite
    Image.fromarray(expected["rgba.png"].astype(np.uint8)).save(root / "opaque.jpg", quality=100)
    data._FOLDER_CACHE.clear()
    config = config_lib.TrainConfig.from_flat(dataset=f"folder:{root}", background=background)
    spec = config.data_spec()
    assert spec.background == colour
    with caplog.at_level(logging.INFO, logger="absl"):
        describe = data.describe(spec)
    assert describe.num_examples == 5
    assert "4 image(s)" in caplog.text and "transparent pixels" in caplog.text
    paths, *_ = data.scan_folder(str(root), 32)
    by_name = dict(zip([os.path.basename(os.fsdecode(p)) for p in paths],
                       data.load_images(spec)[0]))
    for name, composite in expected.items():
        np.testing.assert_array_equal(by_name[name], composite, err_msg=name)
    # The batches a training step reads ([-1, 1]) hold the same composites.
    batch, _ = next(iter(data.input_fn(spec, 5, repeat=False)))
    read = (batch.numpy() + 1) * 127.5
    for name, composite in expected.items():
        assert min(np.abs(r - composite).max() for r in read) < 0.5, name


def test_background_values():
    assert data.parse_background("White") == (255, 255, 255)
    assert data.parse_background("#FF8000") == data.parse_background("ff8000") == (255, 128, 0)
    with pytest.raises(data.DataError, match="background 'pink' is not a colour"):
        data.parse_background("pink")


def test_folder_labels_name_the_images_they_leave_out(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for name in ("cats/a.png", "dogs/b.png", "loose.png", "also loose.jpg"):
        _write(str(tmp_path / "pets" / name), rng.integers(0, 255, (40, 40, 3), np.uint8),
               "JPEG" if name.endswith(".jpg") else "PNG")
    data._FOLDER_CACHE.clear()
    caplog.set_level(logging.WARNING)
    info = data.describe(data.DataSpec(f"folder:{tmp_path / 'pets'}", 32, 3, folder_labels=True))
    assert info.num_examples == 2 and info.class_names == ("cats", "dogs")
    assert "left out 2 image(s) directly in" in caplog.text
    assert "also loose.jpg, loose.png" in caplog.text
