import subprocess
import sys

import pytest

from sagan_tf import runtime

_PROBE = """
import ctypes, sys
from sagan_tf import runtime
applied = runtime.keep_freed_memory()
# mallinfo2's hblks: blocks currently served by mmap. A 64 MiB allocation with the setting
# applied adds none (the block comes from the heap); glibc's default maps it.
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(applied, libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
@pytest.mark.parametrize("env, expected", [({}, "True 0"), ({"MALLOC_MMAP_MAX_": "65536"},
                                                            "False 1")])
def test_large_blocks_come_from_the_heap_unless_the_user_tuned_malloc(env, expected):
    import os

    clean = {k: v for k, v in os.environ.items() if k not in runtime._MALLOC_VARIABLES}
    result = subprocess.run([sys.executable, "-c", _PROBE], env=dict(clean, **env),
                            capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected.split()
