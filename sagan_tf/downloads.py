"""The FID Inception graph, downloaded once into a cache and checked before use.

`inception_graph_file()` returns the path of `classify_image_graph_def.pb` from
the TTUR archive `inception-2015-12-05.tgz` (the file the TTUR FID code and
most papers use): from the cache (`$XDG_CACHE_HOME/sagan_tf`, else
`~/.cache/sagan_tf`) when it is there, else downloaded into it. The archive is
streamed to a temporary file in the cache directory; the graph is taken out,
checked (a GraphDef with the tensor names and shapes `sagan_tf.backbones`
reads) and only then renamed into place, so an interrupted or wrong download
never counts. The archive's checksum is not pinned: no published one could be
found, so the check is the graph's structure.
"""

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

from sagan_tf.errors import UserError

INCEPTION_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_MEMBER = "classify_image_graph_def.pb"
TIMEOUT_S = 30.0


class DownloadError(UserError, RuntimeError):
    """A file that could not be downloaded or is not what it should be (one line)."""


def cache_dir():
    """`$XDG_CACHE_HOME/sagan_tf`, else `~/.cache/sagan_tf`."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "sagan_tf")


def inception_graph_path(directory=None):
    """Where the cached graph lives (whether or not it is there yet)."""
    return os.path.join(directory or cache_dir(), "inception-2015-12-05", INCEPTION_MEMBER)


def inception_graph_file(url=INCEPTION_URL, directory=None, check=None, timeout=TIMEOUT_S):
    """The cached `classify_image_graph_def.pb`, downloading `url` first if needed.

    Args:
        url: the archive (http(s) or file URL).
        directory: the cache directory (default `cache_dir()`).
        check: `check(graph_bytes, origin)` raising on a wrong graph (default:
            `sagan_tf.backbones.check_inception_graph`).
        timeout: seconds without data before the download is given up.
    Raises:
        DownloadError: offline, or the archive is not the Inception archive.
    """
    if check is None:
        from sagan_tf.backbones import check_inception_graph as check
    target = inception_graph_path(directory)
    if os.path.exists(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    offline_help = (f"put {INCEPTION_MEMBER} from that archive at {target}, or pass "
                    "--inception_graph=PATH")
    archive = tempfile.NamedTemporaryFile(dir=os.path.dirname(target), prefix=".download-",
                                          delete=False)
    try:
        try:
            with archive, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, archive)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"cannot download the FID Inception graph from {url} "
                                f"({' '.join(str(reason).split())[:120]}); {offline_help}") from None
        graph = _member(archive.name, url)
        try:
            check(graph, url)
        except Exception as e:  # noqa: BLE001 - the checker's own error, any type
            raise DownloadError(f"{url} is not the FID Inception archive: {e}; nothing was "
                                "cached") from None
        staged = target + ".partial"
        with open(staged, "wb") as f:
            f.write(graph)
        os.replace(staged, target)
    finally:
        os.unlink(archive.name)
    return target


def _member(path, url):
    """The bytes of `classify_image_graph_def.pb` inside the archive at `path`."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                if member.isfile() and os.path.basename(member.name) == INCEPTION_MEMBER:
                    return tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"{url} is not a readable .tgz archive ({e}); nothing was "
                            "cached") from None
    raise DownloadError(f"{url} holds no {INCEPTION_MEMBER}; nothing was cached")
