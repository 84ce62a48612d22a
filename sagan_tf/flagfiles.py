"""The preset flag files (`flags/*.flags` in the repository, shipped inside the
package as `sagan_tf/flags/`), found by name from any directory.

`--flagfile=mnist5k_32` (or `mnist5k_32.flags`) names a preset; a path that
exists (`--flagfile=flags/mnist5k_32.flags`, `--flagfile=~/my.flags`) is read as
absl reads any flag file.
"""

import os

from sagan_tf.errors import UserError

SUFFIX = ".flags"


def directory():
    """The directory of the preset flag files: inside the installed package, or the
    repository's `flags/` beside the package in a source checkout."""
    package = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(package, "flags"),
                      os.path.join(os.path.dirname(package), "flags")):
        if os.path.isdir(candidate):
            return candidate
    return None


def available():
    """{preset name: path} of the preset flag files."""
    root = directory()
    if root is None:
        return {}
    return {name[:-len(SUFFIX)]: os.path.join(root, name)
            for name in sorted(os.listdir(root)) if name.endswith(SUFFIX)}


def describe():
    """One line per preset: its name and the first line of its file."""
    lines = []
    for name, path in available().items():
        with open(path) as f:
            lines.append(f"  --flagfile={name}: {f.readline().lstrip('# ').strip()}")
    return "\n".join(lines)


class UnknownFlagFile(UserError, ValueError):
    pass


def resolve(value):
    """The path of `--flagfile=value`: the value itself when it names an existing
    file, else the preset of that name; raises UnknownFlagFile naming the presets."""
    path = os.path.expanduser(value)
    if os.path.isfile(path):
        return path
    presets = available()
    name = os.path.basename(value)
    name = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
    if name in presets and os.sep not in value.replace("flags" + os.sep, "", 1):
        return presets[name]
    raise UnknownFlagFile(f"flag file {value!r} is neither a file nor a preset; presets: "
                          f"{', '.join(presets) or 'none found'}")


def rewrite_argv(argv):
    """`argv` with every `--flagfile=NAME` of a preset made its path."""
    out = []
    for arg in argv:
        for prefix in ("--flagfile=", "-flagfile="):
            if arg.startswith(prefix):
                arg = prefix + resolve(arg[len(prefix):])
        out.append(arg)
    return out
