"""One run at a time per output folder: the lock file ``<output>/_RUNNING.json``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from insiders_spark.core.errors import OutputInUseError
from insiders_spark.storage import filesystem

log = logging.getLogger(__name__)


LOCK = "_RUNNING.json"


def _lock_holder(spark: SparkSession, path: str) -> dict | None:
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


@contextmanager
def output_lock(spark: SparkSession, output: str, purpose: str) -> Iterator[dict]:
    """Hold ``<output>/_RUNNING.json`` while a run (or ``models use``) changes the output.

    Two runs on one output would otherwise clean up each other's staging folder as debris and
    publish over each other. The lock file is created only if absent (atomic on HDFS; a check then
    create on a local disk and on object stores, so schedulers should still run one at a time). A
    lock left by a process of this machine that no longer exists is taken over with a warning; one
    from another machine needs a person: the error says which file to delete.
    """
    path = f"{output.rstrip('/')}/{LOCK}"
    mine = {
        "token": uuid.uuid4().hex,
        "purpose": purpose,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    fs, hadoop_path = filesystem.filesystem_path(spark, path)
    folder = hadoop_path.getParent()
    created_folder = not fs.exists(folder)  # removed again if the run leaves it empty (e.g. bad input)
    for _attempt in range(2):
        if fs.exists(hadoop_path):
            holder = _lock_holder(spark, path)
            if holder is not None and _is_dead_here(holder):
                log.warning(
                    "taking over %s: its holder (pid %s, %s since %s) is no longer running",
                    path,
                    holder.get("pid"),
                    holder.get("purpose"),
                    holder.get("started"),
                )
                fs.delete(hadoop_path, False)
                continue
            raise OutputInUseError(_in_use_message(path, holder))
        try:
            stream = fs.create(hadoop_path, False)
        except Exception:
            if not fs.exists(hadoop_path):  # not a lock taken meanwhile: e.g. no permission to write there
                raise
            raise OutputInUseError(_in_use_message(path, _lock_holder(spark, path))) from None
        try:
            stream.write(bytearray(json.dumps(mine).encode("utf-8")))
        finally:
            stream.close()
        holder = _lock_holder(spark, path)
        if holder is None or holder.get("token") != mine["token"]:  # lost a race on a local disk
            raise OutputInUseError(_in_use_message(path, holder))
        break
    else:
        raise OutputInUseError(_in_use_message(path, _lock_holder(spark, path)))
    try:
        yield mine
    finally:
        holder = _lock_holder(spark, path)
        if holder is not None and holder.get("token") == mine["token"]:
            fs.delete(hadoop_path, False)
        if created_folder and fs.exists(folder) and len(fs.listStatus(folder)) == 0:
            fs.delete(folder, False)


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
