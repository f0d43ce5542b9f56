"""What an input path names, without a JVM: data files, globs, and a local input's size."""

from __future__ import annotations

import pytest

from insiders_spark.core.paths import is_data_file, is_glob, local_input_bytes


def _write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_a_local_input_counts_the_files_the_reader_reads(tmp_path):
    drop = tmp_path / "drop"
    first = _write(drop / "2011-12-01.csv", 100)
    _write(drop / "december" / "2011-12-02.csv", 250)
    _write(drop / "_SUCCESS", 7)  # markers, hidden files and underscore folders are not read
    _write(drop / ".2011-12-03.csv.crc", 9)
    _write(drop / "_temporary" / "part.csv", 50)
    _write(drop / "2011-12-04.csv._COPYING_", 11)  # an HDFS upload in progress

    assert local_input_bytes(str(drop)) == 350
    assert local_input_bytes(str(drop / "*.csv")) == 100
    assert local_input_bytes(str(drop / "*")) == 350  # the folder through a glob: the same files
    assert local_input_bytes(first.as_uri()) == 100
    assert local_input_bytes(str(tmp_path / "missing")) is None
    assert local_input_bytes("s3a://lake/transactions/") is None


@pytest.mark.parametrize(
    ("name", "data"),
    [("day1.csv", True), ("part-0.parquet", True), ("_SUCCESS", False), (".crc", False), ("x.csv._COPYING_", False)],
)
def test_data_files_are_what_spark_and_hadoop_do_not_mark(name, data):
    assert is_data_file(name) is data


@pytest.mark.parametrize(
    ("path", "glob"),
    [("drops/*.csv", True), ("day?.csv", True), ("d[12].csv", True), ("{a,b}.csv", True), ("drops/day1.csv", False)],
)
def test_globs_are_told_from_paths(path, glob):
    assert is_glob(path) is glob
