"""What an input path names, without a JVM: which names are data files, whether a path is a glob,
and a local input's size.

Kept apart from ``insiders_spark.storage`` (pyspark, pyarrow, the synthetic log) so that the launch
plan can size the input before the JVM starts without importing them first.
"""

from __future__ import annotations

import glob
import os
from urllib.parse import urlparse


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[{")


def is_data_file(name: str) -> bool:
    """Not hidden, not underscore-prefixed (Spark's and Hadoop's own markers and temporary folders),
    not an HDFS upload in progress (``x.csv._COPYING_``)."""
    return not (name.startswith(("_", ".")) or name.endswith("._COPYING_"))


def local_input_bytes(path: str) -> int | None:
    """The size of a local input (file, folder read recursively, or glob) as the job reads it,
    known before the JVM starts (``io.list_input_files`` lists through it): the launch plan needs it.

    Hidden and underscore-prefixed names are skipped, as the reader skips them. ``None`` for a
    remote URI (``s3a://``, ``hdfs://``...) or a path that matches nothing.
    """
    parsed = urlparse(path)
    if parsed.scheme == "file":
        path = parsed.path
    elif parsed.scheme and len(parsed.scheme) > 1:
        return None
    matches = glob.glob(os.path.expanduser(path))
    if not matches:
        return None
    total = 0
    for match in matches:
        if is_glob(path) and not is_data_file(os.path.basename(match.rstrip("/"))):
            continue
        if os.path.isdir(match):
            for root, folders, files in os.walk(match):
                folders[:] = [name for name in folders if is_data_file(name)]
                total += sum(os.path.getsize(os.path.join(root, name)) for name in files if is_data_file(name))
        elif is_data_file(os.path.basename(match)):
            total += os.path.getsize(match)
    return total
