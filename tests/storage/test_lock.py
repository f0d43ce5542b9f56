"""The output's lock is created only if absent, as atomically as the file system allows
(``storage.lock``, ``spark.classic``)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from insiders_spark.core.errors import OutputInUseError
from insiders_spark.spark.classic import create_exclusive
from insiders_spark.storage import lock as lock_module
from insiders_spark.storage.lock import CHECK_THEN_CREATE, LOCK, create_if_absent, output_lock


def test_on_a_local_disk_exactly_one_of_many_racing_writers_creates_the_lock(tmp_path):
    path = str(tmp_path / "out" / LOCK)
    results, start = [], threading.Barrier(16)

    def race(i):
        start.wait()
        results.append((create_if_absent(None, path, f"writer {i}".encode()), i))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for (created, _), i in results if created]
    assert len(winners) == 1 and {how for (_, how), _ in results} == {"O_EXCL"}
    assert Path(path).read_text() == f"writer {winners[0]}"


@pytest.mark.spark
def test_through_the_session_s_hadoop_file_system_the_second_create_is_refused(spark, tmp_path):
    """What HDFS and S3A get from a classic session: Hadoop's create(overwrite=false), here on
    Hadoop's local file system (where it is a check and a create; on HDFS the NameNode's create)."""
    path = f"file://{tmp_path}/{LOCK}"
    assert create_exclusive(spark, path, b"first") == (True, "hadoop create(overwrite=false)")
    assert create_exclusive(spark, path, b"second") == (False, "hadoop create(overwrite=false)")
    assert (tmp_path / LOCK).read_bytes() == b"first"
    assert create_exclusive(None, path, b"x") is None  # no JVM (a Spark Connect client): the caller falls back
    assert create_exclusive(spark, "nosuchscheme://bucket/x", b"x") is None  # no connector for it


def test_without_an_atomic_create_the_lock_is_checked_then_created_and_says_so(tmp_path, monkeypatch, caplog):
    """A Spark Connect client on S3 without a JVM: the fallback still refuses a held lock, reads its
    own holder back, and warns that the scheduler must keep runs apart."""
    monkeypatch.setattr(lock_module.filesystem, "local_path", lambda path: None)
    monkeypatch.setattr(lock_module, "create_exclusive", lambda spark, path, data: None)
    output = tmp_path / "out"
    with caplog.at_level(logging.WARNING), output_lock(None, str(output), "test") as mine:
        assert mine["exclusive"] == CHECK_THEN_CREATE
        assert json.loads((output / LOCK).read_text())["token"] == mine["token"]
        with pytest.raises(OutputInUseError, match=r"delete .*_RUNNING\.json"), output_lock(None, str(output), "2nd"):
            pass
    assert "not atomic on this file system" in caplog.text
    assert not output.exists()  # made for the lock, and empty again: removed
