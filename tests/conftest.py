import os

import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The entry points turn oneDNN on (sagan_tf.runtime); the tests run the same kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# One cache (the mnist5k classifier backbone) for the whole session and its subprocesses.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="sagan_tf_test_cache_")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so distribution tests can run a 2-replica MirroredStrategy.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import pytest  # noqa: E402

_MIRRORED = []


@pytest.fixture
def mirrored():
    """One 2-replica MirroredStrategy per test process.

    Each new strategy over the same devices restarts its collective instance
    keys, which then collide with those a previous strategy left in the
    runtime; a real run makes one strategy per process, so the tests share one.
    """
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


@pytest.fixture
def tfds_manual_files(tmp_path, monkeypatch):
    """A TFDS data dir whose manual directory holds (empty) files of every name TFDS
    would download, so the no-network check passes for `tfds.testing.mock_data` tests."""
    from sagan_tf import data

    manual = tmp_path / "tfds" / "downloads" / "manual"
    manual.mkdir(parents=True)
    for files, _ in data.TFDS_FILES.values():
        for name in files:
            (manual / name).write_bytes(b"")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    return manual
