"""Small file helpers shared by the run, the checkpoints and the exports."""

import json
import os
import re
import shutil


def write_json(path, value):
    """Writes `value` as JSON through a temporary file, so readers never see half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1, default=str)
    os.replace(path + ".tmp", path)


def free_space(path):
    """`'N MiB free on its disk'` for the disk holding `path` (or its nearest existing
    parent), for disk-full messages."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        return f"{shutil.disk_usage(path or '.').free // 2**20} MiB free on its disk"
    except OSError:
        return "free space unknown"


def write_error_cause(error, limit=160):
    """The cause of a failed write, as one line of at most `limit` characters: an
    OSError's strerror, or a TensorFlow error's message without its function-node
    and op tags (`{{function_node ...}}`, `[Op:SaveV2]`)."""
    cause = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
    return " ".join(re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", "", str(cause)).split())[:limit]
