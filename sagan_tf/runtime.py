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
    checkpoint sharding timings) are dropped; warnings and errors stay;
  - at that default level, one known harmless line of TensorFlow's graph optimizer
    is dropped from stderr (`filter_stderr`, `HARMLESS_STDERR`): Grappler's
    remapper tries to fuse a convolution, its bias `Add` and the LeakyReLU of D
    into one op, which would remove the `Add` output that LeakyReLU's gradient
    reads, so it logs `remapper failed: ... Mutation::Apply error` and leaves that
    graph as it was (the step computes exactly what it would without the remapper);
    and oneDNN's `supports DT_UINT8 only on platforms with AVX-512. Falling back to
    the default Eigen-based implementation`, printed when a folder's uint8 images
    are resized, even on CPUs with AVX-512: the Eigen kernel computes the same;
  - glibc's malloc keeps freed memory for reuse (`keep_freed_memory`): by default
    it maps every block of 32 MiB or more (an attention map of batch 128 at
    16x16 is 32 MiB) freshly from the kernel and returns it on free, so each step
    pays page faults on every large tensor it writes; an elementwise pass over
    such a tensor took 2x as long. Skipped when the user set any `MALLOC_*`
    tuning variable.
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


_MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                     "MALLOC_TOP_PAD_", "GLIBC_TUNABLES", "LD_PRELOAD")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters


def keep_freed_memory():
    """Serves large allocations from the heap and never trims it (glibc
    `mallopt(M_MMAP_MAX, 0)`, `mallopt(M_TRIM_THRESHOLD, 2**31 - 1)`): freed
    tensors' pages are reused instead of being unmapped and faulted in again.
    Returns whether it applied (glibc only; not when the user tuned malloc or
    preloaded another allocator)."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in _MALLOC_VARIABLES):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


# Byte strings of C++ log lines that say nothing a user can act on (see the module doc).
HARMLESS_STDERR = (b"remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout",
                   b"oneDNN supports DT_UINT8 only on platforms with AVX-512")

_FILTER = r"""
import os, sys
patterns = [p.encode() for p in sys.argv[1:]]
rest = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\n")
    out = b"".join(line + b"\n" for line in lines if not any(p in line for p in patterns))
    if out:
        os.write(1, out)
if rest:
    os.write(1, rest)
"""


def filter_stderr(patterns=HARMLESS_STDERR):
    """Sends this process's stderr (fd 2, C++ logs included) through a small filter
    process that drops the lines holding one of `patterns`. The filter runs in its
    own session, so Ctrl-C reaches only this process, and it reads until every
    writer has closed, so nothing written before a crash is lost. Returns whether
    it applied."""
    import subprocess

    try:
        sys.stderr.flush()
        proc = subprocess.Popen([sys.executable, "-c", _FILTER, *(p.decode() for p in patterns)],
                                stdin=subprocess.PIPE, stdout=os.dup(2), stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True)
    except OSError:
        return False
    original = os.dup(2)
    os.dup2(proc.stdin.fileno(), 2)
    proc.stdin.close()

    def drain():
        # Give fd 2 back, which closes the filter's input, and let it write what is
        # left before the shell prompt returns.
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    import atexit

    atexit.register(drain)
    return True


def setup(import_tensorflow=True):
    """The process set-up of the module doc; `import_tensorflow=False` (for --help)
    leaves TensorFlow unimported: its start-up lines are then never printed."""
    keep_freed_memory()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2":
        filter_stderr()
    from absl import logging as absl_logging

    absl_logging.get_absl_logger().addFilter(_LibraryInfoFilter())
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    if not import_tensorflow or "tensorflow" in sys.modules or \
            os.environ["TF_CPP_MIN_LOG_LEVEL"] < "2":
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
