"""Where a path lives, for pyarrow: a path or URI as Spark takes it (``/data``, ``file:///data``,
``hdfs://nn:8020/data``, ``s3a://bucket/data``, ``gs://...``, ``abfss://...``) turned into a
``pyarrow.fs`` file system and the path inside it, and back.

Spark and Hadoop name S3 ``s3a://`` (or ``s3n://``, ``s3://`` on EMR); pyarrow has one S3 client,
so all three map onto it and every path handed back keeps the caller's scheme. Hadoop's glob syntax
(``*``, ``?``, ``[abc]``, ``[^abc]``, ``{a,b}``, ``\\`` escapes) is matched here, one path component at
a time, as Hadoop's ``globStatus`` does.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyarrow import fs as pafs

LOCAL_SCHEMES = ("", "file")
HADOOP_SCHEMES = ("hdfs", "viewfs")  # through libhdfs (pyarrow.fs.HadoopFileSystem)
S3_SCHEMES = ("s3", "s3a", "s3n")
OBJECT_STORE_SCHEMES = (*S3_SCHEMES, "gs", "gcs", "abfs", "abfss")


@dataclass(frozen=True)
class Location:
    """A path inside a pyarrow file system, and how to write a path of that file system back as
    the caller wrote it (``prefix + path``)."""

    fs: pafs.FileSystem
    path: str
    prefix: str
    scheme: str
    root: str = ""  # dropped from a path before the prefix (abfs: the container, which the URI names before '@')

    def uri(self, path: str) -> str:
        return self.prefix + (path[len(self.root) :] if self.root and path.startswith(self.root) else path)

    @property
    def is_local(self) -> bool:
        return self.scheme in LOCAL_SCHEMES

    @property
    def is_object_store(self) -> bool:
        """Writing one object is atomic (a single PUT), renaming is a copy and a delete, and folders
        are only key prefixes."""
        return self.scheme in OBJECT_STORE_SCHEMES

    def child(self, path: str) -> Location:
        return Location(self.fs, path, self.prefix, self.scheme, self.root)


def scheme_of(path: str) -> str:
    """The path's scheme, lowercase; "" for a local path (a Windows drive letter included)."""
    scheme = urlsplit(path).scheme.lower()
    return scheme if len(scheme) > 1 else ""


def resolve(path: str) -> Location:
    """The file system holding ``path`` and the path inside it."""
    scheme = scheme_of(path)
    if scheme in LOCAL_SCHEMES:
        return _local(path, scheme)
    parts = urlsplit(path)
    inner = parts.path.rstrip("/") or "/"
    if scheme in HADOOP_SCHEMES:
        return Location(_hadoop(scheme, parts.netloc), inner, f"{scheme}://{parts.netloc}", scheme)
    if scheme in OBJECT_STORE_SCHEMES:
        if not parts.netloc:
            raise ValueError(f"{path}: no bucket or container in the URI")
        client = "s3" if scheme in S3_SCHEMES else "gs" if scheme == "gcs" else scheme  # one client per store
        fs, bucket = _object_store(client, parts.netloc)
        if scheme in ("abfs", "abfss"):  # abfs[s]://container@account.dfs.core.windows.net/path
            return Location(fs, f"{bucket}{inner}".rstrip("/"), f"{scheme}://{parts.netloc}", scheme, root=bucket)
        return Location(fs, f"{bucket}{inner}".rstrip("/"), f"{scheme}://", scheme)
    raise ValueError(
        f"{path}: the scheme {scheme}:// is not one the job's driver reads or writes (local paths, file://, "
        f"hdfs://, viewfs://, s3://, s3a://, s3n://, gs://, abfs://, abfss://)"
    )


def _local(path: str, scheme: str) -> Location:
    if scheme == "file":
        parts = urlsplit(path)
        inner = parts.path or "/"
        prefix = "file://" if path.lower().startswith("file://") else "file:"
    else:
        inner, prefix = os.path.abspath(os.path.expanduser(path)), ""
    inner = inner.rstrip("/") or "/"
    return Location(_local_fs(), inner, prefix, scheme)


@functools.cache
def _local_fs() -> pafs.FileSystem:
    return pafs.LocalFileSystem()


@functools.cache
def _hadoop(scheme: str, netloc: str) -> pafs.FileSystem:
    """HDFS through libhdfs: needs ``JAVA_HOME`` (libjvm), libhdfs (``ARROW_LIBHDFS_DIR`` or
    ``HADOOP_HOME/lib/native``) and the Hadoop jars and configuration on ``CLASSPATH``
    (``export CLASSPATH=$(hadoop classpath --glob)``); ``hdfs:///path`` uses ``fs.defaultFS``."""
    try:
        if not netloc:
            return pafs.HadoopFileSystem("default")
        return pafs.HadoopFileSystem.from_uri(f"{scheme}://{netloc}/")
    except OSError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(
            f"cannot reach {scheme}://{netloc or '(fs.defaultFS)'} from the driver through libhdfs ({first}): "
            "set JAVA_HOME, ARROW_LIBHDFS_DIR (the folder of libhdfs.so) and CLASSPATH=$(hadoop classpath --glob) "
            "(docs/publishing.md)"
        ) from None


@functools.cache
def _object_store(scheme: str, netloc: str) -> tuple[pafs.FileSystem, str]:
    """The client of a bucket or container, and the bucket's name as the first path component."""
    if scheme == "s3":
        return _s3(netloc), netloc
    if scheme == "gs":
        return pafs.FileSystem.from_uri(f"gs://{netloc}/")[0], netloc
    # abfs[s]://container@account.dfs.core.windows.net/path: the container is the first component
    fs, inner = pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")
    return fs, inner.strip("/").split("/", 1)[0]


def _s3(bucket: str) -> pafs.FileSystem:
    """S3 with the AWS SDK's own configuration (credentials chain, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``
    for an S3-compatible store); the bucket's region is looked up when none is configured."""
    configured = any(
        os.environ.get(name) for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    )
    if configured:
        return pafs.S3FileSystem()
    return pafs.S3FileSystem(region=pafs.resolve_s3_region(bucket))


def parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] or "/"


def name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# --- Hadoop's glob syntax ------------------------------------------------------------------------


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c{d,e}}f`` → ``abf, acdf, acef`` (Hadoop expands braces first, so ``{x/y,z}`` works)."""
    depth, start = 0, -1
    for i, c in enumerate(pattern):
        if c == "\\":
            continue
        if i and pattern[i - 1] == "\\":
            continue
        if c == "{":
            depth, start = depth + 1, (i if depth == 0 else start)
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                options = _split_top_level(pattern[start + 1 : i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [expanded for option in options for expanded in expand_braces(head + option + tail)]
    return [pattern]


def _split_top_level(text: str) -> list[str]:
    parts, depth, current, escaped = [], 0, [], False
    for c in text:
        if escaped:
            current.append(c)
            escaped = False
            continue
        if c == "\\":
            current.append(c)
            escaped = True
        elif c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            depth += {"{": 1, "}": -1}.get(c, 0)
            current.append(c)
    parts.append("".join(current))
    return parts


def component_matcher(component: str) -> re.Pattern[str] | None:
    """A regular expression for one brace-free path component, or None when it has no glob
    character (then it is a literal name, its escapes removed by :func:`unescape`)."""
    if not any(c in component for c in "*?["):
        return None
    out, i = [], 0
    while i < len(component):
        c = component[i]
        if c == "\\" and i + 1 < len(component):
            out.append(re.escape(component[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = component.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = component[i + 1 : end]
                negate = body[:1] in ("^", "!")
                body = body[1:] if negate else body
                out.append(f"[{'^' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def unescape(component: str) -> str:
    return re.sub(r"\\(.)", r"\1", component)
