"""Process set-up shared by the command-line entry points: TensorFlow's settings
and a quiet start on machines without a GPU.

`setup()` must run before TensorFlow is imported:
  - `TF_ENABLE_ONEDNN_OPTS=1` unless the user set it: TensorFlow turns its
    oneDNN CPU kernels on by itself only on CPUs with AVX512_VNNI, BF16 or AMX;
    on AVX2-only CPUs they made training about 1.8x faster here;
  - `TF_CPP_MIN_LOG_LEVEL=2` unless set;
  - at that default level, the C++ lines TensorFlow writes before its logging
    starts (CUDA stub and cuInit failures on CPU-only machines, the oneDNN
    notice) are discarded while TensorFlow is imported and looks for GPUs.
    Set `TF_CPP_MIN_LOG_LEVEL=0` to see them;
  - TensorFlow's and Keras's own INFO lines through absl (signature renaming,
    checkpoint sharding timings) are dropped; warnings and errors stay.
"""

import logging
import os
import sys


class _LibraryInfoFilter(logging.Filter):
    """Drops INFO and DEBUG records that TensorFlow or Keras log through absl."""

    def filter(self, record):
        if record.levelno >= logging.WARNING:
            return True
        path = record.pathname.replace(os.sep, "/")
        return "/tensorflow/" not in path and "/keras/" not in path


def setup():
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from absl import logging as absl_logging

    absl_logging.get_absl_logger().addFilter(_LibraryInfoFilter())
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] < "2":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # where the CUDA probes print
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
