"""The driver's file operations on pyarrow.fs, without a JVM (``storage.filesystem``, ``storage.uris``)."""

from __future__ import annotations

import bz2
import gzip
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from insiders_spark.storage import filesystem
from insiders_spark.storage.uris import component_matcher, expand_braces, resolve

PACKAGE = Path(__file__).resolve().parents[2] / "insiders_spark"


@pytest.fixture
def drops(tmp_path) -> Path:
    """A drop folder as schedulers and Hadoop leave them: data, hidden and temporary files, a subfolder."""
    folder = tmp_path / "drops"
    for name, text in {
        "day1.csv": "a,b\n1,2\n",
        "day2.csv": "a,b\n3,4\n",
        "day[1].csv": "a,b\n5,6\n",
        "sub/day3.csv": "a,b\n7,8\n",
        "_temporary/0/part-0.csv": "x",
        ".staging/day4.csv": "x",
        "sub/_SUCCESS": "",
        "day5.csv._COPYING_": "x",
    }.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _names(listed) -> list[str]:
    return [f.path.rsplit("/drops/", 1)[1] for f in listed]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("{folder}", ["day1.csv", "day2.csv", "day[1].csv", "sub/day3.csv"]),
        ("{folder}/", ["day1.csv", "day2.csv", "day[1].csv", "sub/day3.csv"]),
        ("{folder}/*", ["day1.csv", "day2.csv", "day[1].csv", "sub/day3.csv"]),
        ("{folder}/day?.csv", ["day1.csv", "day2.csv"]),
        ("{folder}/day{{1,2}}.csv", ["day1.csv", "day2.csv"]),
        ("{folder}/day[^1].csv", ["day2.csv"]),
        ("{folder}/day\\[1\\].csv", ["day[1].csv"]),
        ("{folder}/*/day3.csv", ["sub/day3.csv"]),
        ("{folder}/{{sub/day3,day1}}.csv", ["day1.csv", "sub/day3.csv"]),
        ("file://{folder}/day1.csv", ["day1.csv"]),
        ("file:{folder}/*.csv", ["day1.csv", "day2.csv", "day[1].csv"]),
    ],
)
def test_list_files_expands_folders_and_hadoop_globs_and_skips_what_spark_skips(drops, pattern, expected):
    given = pattern.format(folder=drops)
    listed = filesystem.list_files(None, given)
    assert _names(listed) == expected
    assert all(f.size == 8 for f in listed)
    scheme = re.match(r"file:/*", given)
    assert all(f.path.startswith(scheme.group(0) if scheme else "/") for f in listed)  # the caller's form


def test_list_files_says_when_nothing_matches(drops):
    for missing in (drops / "nope", drops / "*.parquet", drops / "no" / "*.csv"):
        with pytest.raises(FileNotFoundError):
            filesystem.list_files(None, str(missing))


def test_relative_paths_are_the_working_folder_s(drops, monkeypatch):
    monkeypatch.chdir(drops.parent)
    assert _names(filesystem.list_files(None, "drops/day1.csv")) == ["day1.csv"]


def test_first_line_reads_compressed_text_and_drops_the_byte_order_mark(tmp_path):
    header = "InvoiceNo,StockCode,Description"
    body = "\n" + "536365,85123A,WHITE HANGING HEART\n" * 10
    (tmp_path / "plain.csv").write_text("\ufeff" + header + "\r\n" + body, encoding="utf-8")
    (tmp_path / "log.csv.gz").write_bytes(gzip.compress((header + body).encode()))
    (tmp_path / "log.csv.bz2").write_bytes(bz2.compress((header + body).encode()))
    (tmp_path / "latin.csv").write_bytes("Désignation,Prix\n1,2\n".encode("iso-8859-1"))
    (tmp_path / "utf16.csv").write_text(header + "\n1,2\n", encoding="utf-16")
    (tmp_path / "empty.csv").write_bytes(b"")
    for name in ("plain.csv", "log.csv.gz", "log.csv.bz2"):
        assert filesystem.first_line(None, str(tmp_path / name), "UTF-8") == header, name
    assert filesystem.first_line(None, str(tmp_path / "latin.csv"), "ISO-8859-1") == "Désignation,Prix"
    assert filesystem.first_line(None, str(tmp_path / "latin.csv"), "UTF-8") == "D\ufffdsignation,Prix"
    assert filesystem.first_line(None, str(tmp_path / "utf16.csv"), "UTF-16") == header
    assert filesystem.first_line(None, str(tmp_path / "empty.csv"), "UTF-8") == ""
    with pytest.raises(LookupError):
        filesystem.first_line(None, str(tmp_path / "plain.csv"), "no-such-encoding")


def test_first_line_reads_only_the_start_of_a_large_compressed_file(tmp_path):
    """2 GiB of text compressed to a few MB: reading it whole would take many seconds (and the
    driver's memory); the header comes back at once."""
    path = tmp_path / "huge.csv.gz"
    row = b"536365,85123A,WHITE HANGING HEART,6,2011-03-01 10:00:00,2.55,17850,United Kingdom\n" * 12_000
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(b"a,b,c\n")
        for _ in range(2**31 // len(row)):
            stream.write(row)
    started = time.perf_counter()
    assert filesystem.first_line(None, str(path), "UTF-8") == "a,b,c"
    assert time.perf_counter() - started < 1.0


def test_parquet_columns_come_from_the_footer(tmp_path):
    pd.DataFrame({"CustomerID": [1.0], "Country": ["UK"], "Quantity": [6]}).to_parquet(tmp_path / "day1.parquet")
    assert filesystem.parquet_columns(None, str(tmp_path / "day1.parquet")) == ["CustomerID", "Country", "Quantity"]


def test_small_files_are_written_whole_moved_listed_and_deleted(tmp_path):
    output = tmp_path / "out"
    metrics = f"{output}/runs/run_date=1/metrics.json"
    assert filesystem.write_text(None, metrics, "{}") == metrics
    assert filesystem.read_text(None, f"file://{output}/runs/run_date=1/metrics.json") == "{}"
    filesystem.write_text(None, f"{output}/runs/run_date=1/metrics.json", '{"a": 1}')  # replaced whole
    assert sorted(p.name for p in (output / "runs" / "run_date=1").iterdir()) == ["metrics.json"]  # no temporary left
    filesystem.rename(None, f"{output}/runs", f"{output}/aside/runs")  # a folder, its parent created
    assert (output / "aside" / "runs" / "run_date=1" / "metrics.json").read_text() == '{"a": 1}'
    assert filesystem.list_dirs(None, str(output)) == [f"{output}/aside"]
    assert filesystem.list_dirs(None, str(output / "nope")) == []
    filesystem.write_text(None, f"{output}/x.json", "{}")
    with pytest.raises(OSError, match="the target exists"):  # never onto something: that is no commit
        filesystem.rename(None, f"{output}/x.json", f"{output}/aside")
    with pytest.raises(OSError, match="does not exist"):
        filesystem.rename(None, f"{output}/nope", f"{output}/nope2")
    assert filesystem.list_names(None, str(output)) == ["aside", "x.json"]
    filesystem.delete_path(None, f"{output}/aside")
    filesystem.delete_path(None, f"{output}/x.json")
    filesystem.delete_path(None, f"{output}/never-was")
    assert filesystem.list_names(None, str(output)) == []


def test_a_replaced_file_is_read_whole_before_during_and_after(tmp_path):
    path = str(tmp_path / "CURRENT")
    assert filesystem.read_replaced_text(None, path) is None
    filesystem.replace_text(None, path, "v1\n")
    filesystem.replace_text(None, path, "v2\n")
    assert filesystem.read_replaced_text(None, path) == "v2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT"]


@pytest.mark.parametrize(
    ("uri", "inner", "back"),
    [
        ("s3a://bucket/out/segments", "bucket/out/segments", "s3a://bucket/out/segments"),
        ("s3n://bucket/out/", "bucket/out", "s3n://bucket/out"),
        ("s3://bucket", "bucket", "s3://bucket"),
        ("gs://bucket/out", "bucket/out", "gs://bucket/out"),
        ("abfss://box@acct.dfs.core.windows.net/out/x", "box/out/x", "abfss://box@acct.dfs.core.windows.net/out/x"),
        ("file:///tmp/out", "/tmp/out", "file:///tmp/out"),
        ("file:/tmp/out", "/tmp/out", "file:/tmp/out"),
    ],
)
def test_hadoop_uris_map_onto_pyarrow_and_back(monkeypatch, uri, inner, back):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # no region lookup over the network
    where = resolve(uri)
    assert (where.path, where.uri(where.path)) == (inner, back)
    assert where.is_object_store == (not uri.startswith("file:"))


def test_s3_schemes_share_one_client_and_hdfs_without_libhdfs_says_what_to_install(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve("s3a://bucket/a").fs is resolve("s3n://bucket/b").fs
    assert type(resolve("s3://bucket/a").fs).__name__ == "S3FileSystem"
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    with pytest.raises(OSError, match=r"ARROW_LIBHDFS_DIR .* CLASSPATH=\$\(hadoop classpath --glob\)"):
        resolve("hdfs://namenode-that-is-not-here:8020/out")
    with pytest.raises(ValueError, match="not one the job's driver reads or writes"):
        resolve("ftp://host/out")


def test_hadoop_glob_pieces():
    assert expand_braces("a{b,c{d,e}}f") == ["abf", "acdf", "acef"]
    assert expand_braces("x\\{b,c\\}") == ["x\\{b,c\\}"]
    assert component_matcher("day1.csv") is None
    matcher = component_matcher("day[!1-2]?.c*")
    assert matcher.match("day3x.csv") and not matcher.match("day1x.csv") and not matcher.match("day3x.txt")
