"""One run at a time per output folder: the lock file ``<output>/_RUNNING.json``.

The file is created only if it is absent, as atomically as the output's file system allows:

* a local disk (and ``file://``): ``open(O_CREAT | O_EXCL)``, atomic (on NFS too, v3 and later);
* HDFS, from a classic session: Hadoop's ``create(overwrite=false)``, atomic at the NameNode;
* S3 through S3A, from a classic session, where the store declares conditional creates
  (``fs.s3a.create.conditional.enabled``, Hadoop 3.4.2+): a PUT with ``If-None-Match: *``, atomic;
* anything else (a Spark Connect client off a local disk, GCS, ADLS, S3 without conditional
  creates): a check, then a create, then the holder read back. Not atomic: two runs starting in
  the same moment can both believe they hold it, so the scheduler must still run one at a time.

What :func:`output_lock` yields says which of these took it (``exclusive``), and the log warns
when it was not atomic.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from insiders_spark.core.errors import OutputInUseError
from insiders_spark.spark.classic import create_exclusive
from insiders_spark.storage import filesystem
from insiders_spark.storage.uris import parent

log = logging.getLogger(__name__)


LOCK = "_RUNNING.json"
CHECK_THEN_CREATE = "check-then-create (not atomic)"


def _lock_holder(spark: Any, path: str) -> dict | None:
    try:
        return json.loads(filesystem.read_text(spark, path))
    except Exception:  # gone meanwhile, or half-written by a holder that is writing it right now
        return None


def _is_dead_here(holder: dict) -> bool:
    """The holder ran on this machine and its process is gone (killed, or the machine rebooted)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def create_if_absent(spark: Any, path: str, data: bytes) -> tuple[bool, str]:
    """Create ``path`` with ``data`` unless it exists: (created, how it was done)."""
    local = filesystem.local_path(path)
    if local is not None:
        os.makedirs(parent(local), exist_ok=True)
        try:
            descriptor = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False, "O_EXCL"
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        return True, "O_EXCL"
    through_hadoop = create_exclusive(spark, path, data)
    if through_hadoop is not None:
        return through_hadoop
    if filesystem.exists(spark, path):
        return False, CHECK_THEN_CREATE
    filesystem.write_bytes(spark, path, data)
    return True, CHECK_THEN_CREATE


@contextmanager
def output_lock(spark: Any, output: str, purpose: str) -> Iterator[dict]:
    """Hold ``<output>/_RUNNING.json`` while a run (or ``models use``) changes the output.

    Two runs on one output would otherwise clean up each other's staging folder as debris and
    publish over each other. A lock left by a process of this machine that no longer exists is
    taken over with a warning; one from another machine needs a person: the error says which file
    to delete.
    """
    path = f"{output.rstrip('/')}/{LOCK}"
    mine = {
        "token": uuid.uuid4().hex,
        "purpose": purpose,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    folder = output.rstrip("/")
    created_folder = not filesystem.exists(spark, folder)  # removed again if the run leaves it empty
    for _attempt in range(2):
        created, how = create_if_absent(spark, path, json.dumps(mine).encode("utf-8"))
        if not created:
            holder = _lock_holder(spark, path)
            if holder is not None and _is_dead_here(holder):
                log.warning(
                    "taking over %s: its holder (pid %s, %s since %s) is no longer running",
                    path,
                    holder.get("pid"),
                    holder.get("purpose"),
                    holder.get("started"),
                )
                filesystem.delete_path(spark, path)
                continue
            raise OutputInUseError(_in_use_message(path, holder))
        holder = _lock_holder(spark, path)
        if holder is None or holder.get("token") != mine["token"]:  # lost a race where creating is not atomic
            raise OutputInUseError(_in_use_message(path, holder))
        if how == CHECK_THEN_CREATE:
            log.warning(
                "%s was taken by a check then a create, which is not atomic on this file system: "
                "run one job per output at a time (docs/publishing.md)",
                path,
            )
        mine["exclusive"] = how
        break
    else:
        raise OutputInUseError(_in_use_message(path, _lock_holder(spark, path)))
    try:
        yield mine
    finally:
        holder = _lock_holder(spark, path)
        if holder is not None and holder.get("token") == mine["token"]:
            filesystem.delete_path(spark, path)
        if created_folder and filesystem.exists(spark, folder) and not filesystem.list_names(spark, folder):
            filesystem.delete_path(spark, folder)


def _in_use_message(path: str, holder: dict | None) -> str:
    who = (
        f"{holder.get('purpose', 'a run')} on {holder.get('host')} (pid {holder.get('pid')}) "
        f"since {holder.get('started')}"
        if holder
        else "another run"
    )
    return (
        f"the output is in use by {who}: one output folder takes one run at a time (schedule runs of one "
        f"output one after another, e.g. Airflow's max_active_runs=1). If no such run is going any more, "
        f"delete {path} and start again"
    )
