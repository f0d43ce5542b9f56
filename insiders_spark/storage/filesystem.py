"""Small files and folders on the driver, on any path the job reads or writes (local, ``file://``,
HDFS, S3, GCS, ADLS), through ``pyarrow.fs``: no JVM, so it works from a Spark Connect client too.

It lists the input, reads a CSV's header line and parquet footers, and reads and writes the job's
metadata, manifests, reports, pointers and the commit's moves. Nothing of the input's size is read
here: a first line is read up to its end (at most ``FIRST_LINE_LIMIT`` bytes), a footer by seeking.

The ``spark`` parameter of every function is not used any more; it stays so that callers (and
tests that replace a function) keep their signatures.
"""

from __future__ import annotations

import codecs
import logging
import os
import uuid
import zlib
from dataclasses import dataclass
from typing import Any

from pyarrow import fs as pafs
from pyarrow import parquet as pq

from insiders_spark.core.paths import is_data_file, is_glob
from insiders_spark.storage.uris import (
    Location,
    component_matcher,
    expand_braces,
    name,
    parent,
    resolve,
    unescape,
)

log = logging.getLogger(__name__)

FIRST_LINE_LIMIT = 16 * 2**20  # a header longer than this is not a header
CHUNK = 64 * 2**10
COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}  # Hadoop's codecs that pyarrow's streams read
HADOOP_FRAMED = (".lz4", ".snappy")  # Hadoop's own block framing: not the standard formats pyarrow reads


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int


def exists(spark: Any, path: str) -> bool:
    where = resolve(path)
    return where.fs.get_file_info(where.path).type != pafs.FileType.NotFound


def is_object_store(path: str) -> bool:
    return resolve(path).is_object_store


def local_path(path: str) -> str | None:
    """The operating system's path of a local (or ``file://``) path; None for any other."""
    where = resolve(path)
    return where.path if where.is_local else None


def delete_path(spark: Any, path: str) -> None:
    """Delete a file or a folder with everything in it; nothing when it does not exist."""
    where = resolve(path)
    kind = where.fs.get_file_info(where.path).type
    if kind == pafs.FileType.Directory:
        where.fs.delete_dir(where.path)
    elif kind != pafs.FileType.NotFound:
        where.fs.delete_file(where.path)


def remove_empty_folder(spark: Any, path: str) -> None:
    """Remove a folder if it is empty; one filled meanwhile (or absent) stays. Not recursive."""
    where = resolve(path)
    try:
        if where.is_local:
            os.rmdir(where.path)
        elif not where.fs.get_file_info(pafs.FileSelector(where.path, allow_not_found=True)):
            where.fs.delete_dir(where.path)  # a check, then a delete: no empty-only delete here
    except OSError as error:
        log.debug("kept %s: %s", path, error)


def write_bytes(spark: Any, path: str, data: bytes) -> str:
    """Write a small driver-side file (metrics, report, pointer), replacing any file there.

    The file appears whole or not at all where the file system allows it: on a local disk it is
    written beside its place and renamed over it; on an object store a single PUT is atomic; on
    HDFS it is written in place (HDFS's rename cannot replace a file atomically through libhdfs).
    """
    where = resolve(path)
    if where.is_local:
        os.makedirs(parent(where.path), exist_ok=True)
        temporary = f"{parent(where.path)}/.{name(where.path)}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(temporary, "wb") as stream:
                stream.write(data)
            os.replace(temporary, where.path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise
        return path
    if not where.is_object_store:
        where.fs.create_dir(parent(where.path), recursive=True)
    with where.fs.open_output_stream(where.path, compression=None) as stream:
        stream.write(data)
    return path


def write_text(spark: Any, path: str, text: str) -> str:
    return write_bytes(spark, path, text.encode("utf-8"))


def read_bytes(spark: Any, path: str) -> bytes:
    where = resolve(path)
    with where.fs.open_input_stream(where.path, compression=None) as stream:
        return stream.read()


def read_text(spark: Any, path: str) -> str:
    return read_bytes(spark, path).decode("utf-8")


def rename(spark: Any, source: str, target: str) -> None:
    """Move a file or a folder to ``target``, which must not exist (its parent is created).

    Atomic on a local disk and on HDFS. On an object store a rename is a copy of every object and
    a delete: neither atomic nor cheap (the pointer publishing of ``storage.pointers`` avoids it).
    """
    here, there = resolve(source), resolve(target)
    if here.fs is not there.fs:
        raise OSError(f"could not move {source} to {target}: not on the same file system")
    if there.fs.get_file_info(there.path).type != pafs.FileType.NotFound:
        raise OSError(f"could not move {source} to {target}: the target exists")
    kind = here.fs.get_file_info(here.path).type
    if kind == pafs.FileType.NotFound:
        raise OSError(f"could not move {source} to {target}: {source} does not exist")
    try:
        if here.is_object_store and kind == pafs.FileType.Directory:
            _copy_tree(here, there.path)
            here.fs.delete_dir(here.path)
            return
        if not here.is_object_store:
            here.fs.create_dir(parent(there.path), recursive=True)
        here.fs.move(here.path, there.path)
    except OSError as error:
        raise OSError(f"could not move {source} to {target}: {error}") from error


def _copy_tree(source: Location, target: str) -> None:
    for info in source.fs.get_file_info(pafs.FileSelector(source.path, recursive=True)):
        if info.type == pafs.FileType.File:
            source.fs.copy_file(info.path, target + info.path[len(source.path) :])


def copy_to_local(spark: Any, path: str, target: str) -> None:
    """Copy a file or a folder (everything in it) to the local folder ``target``, created if need be:
    a folder's files land in ``target`` itself, a file in ``target/<its name>``."""
    where = resolve(path)
    os.makedirs(target, exist_ok=True)
    local = _local_filesystem()
    if where.fs.get_file_info(where.path).type == pafs.FileType.Directory:
        pafs.copy_files(where.path, target, source_filesystem=where.fs, destination_filesystem=local)
    else:
        destination = f"{target}/{name(where.path)}"
        pafs.copy_files(where.path, destination, source_filesystem=where.fs, destination_filesystem=local)


def _local_filesystem() -> pafs.FileSystem:
    return resolve("/").fs


def list_dirs(spark: Any, path: str) -> list[str]:
    """The folders directly inside ``path``, sorted; [] when it does not exist."""
    where = resolve(path)
    infos = where.fs.get_file_info(pafs.FileSelector(where.path, allow_not_found=True))
    return sorted(where.uri(i.path) for i in infos if i.type == pafs.FileType.Directory)


def list_names(spark: Any, path: str) -> list[str]:
    """The names of the files and folders directly inside ``path``, sorted; [] when it does not exist."""
    where = resolve(path)
    return sorted(name(i.path) for i in where.fs.get_file_info(pafs.FileSelector(where.path, allow_not_found=True)))


def replace_text(spark: Any, path: str, text: str) -> None:
    """Replace a small file so that a reader always finds the old or the new text.

    On an object store one PUT does that. Elsewhere the old file is moved aside
    (``<path>.previous``) before the new one moves in and deleted after, so a process killed in
    between leaves one of the two for :func:`read_replaced_text`.
    """
    if is_object_store(path):
        write_text(spark, path, text)
        return
    temporary, previous = f"{path}.tmp", f"{path}.previous"
    write_text(spark, temporary, text)
    delete_path(spark, previous)
    if exists(spark, path):
        rename(spark, path, previous)
    rename(spark, temporary, path)
    delete_path(spark, previous)


def read_replaced_text(spark: Any, path: str) -> str | None:
    """A file written by :func:`replace_text`, or None when there is none."""
    for candidate in (path, f"{path}.previous"):
        if exists(spark, candidate):
            return read_text(spark, candidate)
    return None


def list_files(spark: Any, path: str) -> list[FileInfo]:
    """Expand a file, folder (recursively) or glob into its data files, sorted by path: hidden and
    underscore-prefixed names are skipped (``core.paths.is_data_file``), at any depth of a folder.

    ``FileNotFoundError`` when nothing matches."""
    where = resolve(path)
    matches = _glob(where) if is_glob(where.path) else [where.fs.get_file_info(where.path)]
    matches = [m for m in matches if m.type != pafs.FileType.NotFound]
    if not matches:
        raise FileNotFoundError(path)
    files: dict[str, FileInfo] = {}
    for match in matches:
        if is_glob(where.path) and not is_data_file(name(match.path)):
            continue  # 'drops/*' must not read drops/_temporary or drops/.staging, as 'drops/' does not
        if match.type == pafs.FileType.Directory:
            for found in where.fs.get_file_info(pafs.FileSelector(match.path, recursive=True)):
                relative = found.path[len(match.path) :]
                if found.type == pafs.FileType.File and all(is_data_file(p) for p in relative.split("/") if p):
                    files[found.path] = FileInfo(where.uri(found.path), int(found.size))
        elif is_data_file(name(match.path)):
            files[match.path] = FileInfo(where.uri(match.path), int(match.size))
    return sorted(files.values(), key=lambda f: f.path)


def _glob(where: Location) -> list[pafs.FileInfo]:
    """Hadoop's glob: braces expanded, then matched one path component at a time."""
    found: dict[str, pafs.FileInfo] = {}
    for pattern in expand_braces(where.path):
        absolute = pattern.startswith("/")
        current = ["/" if absolute else ""]
        for component in (c for c in pattern.split("/") if c):
            matcher, following = component_matcher(component), []
            for folder in current:
                if matcher is None:
                    following.append(_join(folder, unescape(component)))
                    continue
                listed = where.fs.get_file_info(pafs.FileSelector(folder or "/", allow_not_found=True))
                following += [i.path for i in listed if matcher.match(name(i.path))]
            current = following
        for info in where.fs.get_file_info(current) if current else []:
            found.setdefault(info.path, info)
    return [found[p] for p in sorted(found)]


def _join(folder: str, child: str) -> str:
    return f"{folder.rstrip('/')}/{child}" if folder else child


def first_line(spark: Any, path: str, encoding: str) -> str:
    """The first line of a (possibly compressed: .gz, .bz2, .zst, .deflate) text file,
    decoded with ``encoding`` (a byte-order mark dropped); ``LookupError`` for an unknown encoding.

    Only the bytes up to the first line break are read (at most ``FIRST_LINE_LIMIT``)."""
    decoder = codecs.getincrementaldecoder(codecs.lookup(encoding).name)(errors="replace")
    where = resolve(path)
    suffix = os.path.splitext(where.path)[1].lower()
    if suffix in HADOOP_FRAMED:
        raise OSError(f"{path}: {suffix} files use Hadoop's own framing, which the driver cannot read; use .gz or .bz2")
    inflate = zlib.decompressobj() if suffix == ".deflate" else None
    text, read = "", 0
    with where.fs.open_input_stream(where.path, compression=COMPRESSION.get(suffix)) as stream:
        while read < FIRST_LINE_LIMIT:
            chunk = stream.read(CHUNK)
            if inflate is not None:
                chunk = inflate.decompress(chunk)
            read += len(chunk)
            text += decoder.decode(chunk, final=not chunk)
            if not chunk or "\n" in text or "\r" in text:
                break
    line = text.replace("\r\n", "\n").replace("\r", "\n").split("\n", 1)[0]
    return line.lstrip("\ufeff")


def parquet_columns(spark: Any, path: str) -> list[str]:
    """A parquet file's top-level column names, from its footer (no data read)."""
    where = resolve(path)
    with where.fs.open_input_file(where.path) as source:
        return list(pq.ParquetFile(source).schema_arrow.names)
