"""Reading the raw log: which files an input names, their format, their headers and columns.

Each problem is stopped with a message naming the file and the problem (``spark.messages.explain``
turns Spark's own errors into one); nothing here is quietly read as something else.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from insiders_spark.core.errors import InputError
from insiders_spark.core.names import CANONICAL_COLUMNS, CORRUPT_RECORD
from insiders_spark.core.paths import local_input_bytes
from insiders_spark.spark.messages import explain
from insiders_spark.storage.filesystem import list_files
from insiders_spark.storage.inputs import detect_format, read_input
from insiders_spark.storage.mapping import map_input
from insiders_spark.storage.synthetic import ONLINE_RETAIL_COLUMNS
from tests import support

GOOD = [support.csv_line(f"53636{i}", when=f"2011-03-0{1 + i} 10:00:00") for i in range(5)]


def _read(spark, path, **overrides):
    config = support.study_config({"input.path": str(path), **overrides})
    return read_input(spark, config.input, config.synthetic)


def _mapped(source):
    """The raw input through the study's mapping: the canonical columns the rules read."""
    return map_input(source, support.study_config().input.columns, customer_ids="number")


def _spark_message(frame) -> str:
    """The one-paragraph message of the error Spark raises when it reads ``frame``."""
    with pytest.raises(Exception) as error:
        frame.count()
    return explain(error.value)


def test_a_folder_is_read_recursively_and_its_files_listed_in_order(spark, tmp_path):
    drop = tmp_path / "drop"
    support.write_csv(drop / "2011-12-02.csv", GOOD[2:])
    support.write_csv(drop / "december" / "2011-12-01.csv", GOOD[:2])
    source = _read(spark, drop)
    assert source.format == "csv" and source.description == str(drop)
    assert [Path(f).name for f in source.files] == ["2011-12-02.csv", "2011-12-01.csv"]  # sorted by path
    assert source.frame.count() == 5
    files = {Path(r.source_file).name for r in _mapped(source).lines(with_source=True).select("source_file").collect()}
    assert files == {"2011-12-01.csv", "2011-12-02.csv"}
    assert source.frame.columns == [*ONLINE_RETAIL_COLUMNS, CORRUPT_RECORD]  # the source's own names
    assert _mapped(source).lines().columns == [*CANONICAL_COLUMNS, CORRUPT_RECORD]  # no file column to scan


def test_a_glob_skips_hidden_and_temporary_folders_and_uploads_in_progress(spark, tmp_path):
    folder = tmp_path / "drops"
    support.write_csv(folder / "day1.csv", GOOD)
    for leftover in (folder / "_temporary" / "0" / "part-0000.csv", folder / ".staging" / "day2.csv"):
        support.write_csv(leftover, GOOD[:1])
    support.write_csv(folder / "day2.csv._COPYING_", GOOD[:1])
    for given in (folder, f"{folder}/*"):
        listed = list_files(spark, str(given))
        assert [Path(f.path).name for f in listed] == ["day1.csv"], given
        assert local_input_bytes(str(given)) == (folder / "day1.csv").stat().st_size  # the launch plan agrees


def test_file_names_with_glob_characters_are_read_as_themselves(spark, tmp_path):
    """Spark globs the paths it is given: day[1].csv would have been read as day1.csv."""
    folder = tmp_path / "drops"
    support.write_csv(folder / "day[1].csv", GOOD[:2])
    support.write_csv(folder / "day1.csv", GOOD[2:])
    source = _read(spark, folder)
    assert sorted(Path(f).name for f in source.files) == ["day1.csv", "day[1].csv"]
    assert source.frame.count() == 5


def test_gzip_drops_are_read_and_empty_files_skipped_and_listed(spark, tmp_path):
    drop = tmp_path / "drop"
    support.write_csv(drop / "2011-12-01.csv", GOOD[:2])
    (drop / "2011-12-02.csv.gz").write_bytes(gzip.compress(("\n".join([support.HEADER, *GOOD[2:]]) + "\n").encode()))
    (drop / "2011-12-03.csv").write_text("")  # a 0-byte drop: skipped and listed, not an error
    source = _read(spark, drop)
    assert source.format == "csv" and source.frame.count() == 5
    assert [Path(f).name for f in source.empty_files] == ["2011-12-03.csv"]


def test_the_format_comes_from_the_file_names_or_the_setting():
    assert detect_format(["a.csv", "b.CSV.gz", "c.txt"], "auto") == "csv"
    assert detect_format(["a.parquet", "b.parq"], "auto") == "parquet"
    assert detect_format(["a.jsonl", "b.ndjson.gz"], "auto") == "json"
    assert detect_format(["a.orc"], "auto") == "orc"
    assert detect_format(["export.dat"], "csv") == "csv"  # input.format / --format decides
    with pytest.raises(
        InputError,
        match=r"cannot tell the input format: .*or the input mixes formats; set --format csv\|parquet\|json\|orc",
    ):
        detect_format(["a.csv", "b.parquet"], "auto")
    with pytest.raises(InputError, match=r"notes\.xlsx is not a csv, parquet, json, orc file by its name"):
        detect_format(["a.csv", "notes.xlsx"], "auto")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda folder: folder.mkdir(), r"holds no data files"),
        (lambda folder: None, r"does not exist \(no file or folder matches it\)"),
        (lambda folder: support.write_csv(folder / "a.csv", []).write_text(""), r"every file is empty \(0 bytes\)"),
    ],
    ids=["empty folder", "missing", "only empty files"],
)
def test_an_input_with_nothing_to_read_is_refused(spark, tmp_path, make, match):
    folder = tmp_path / "drop"
    make(folder)
    with pytest.raises(InputError, match=match):
        _read(spark, folder)


def test_a_missing_required_column_is_named_with_the_file(spark, tmp_path):
    path = support.write_csv(
        tmp_path / "drop.csv", ["1,A,B,1,2011-01-01 10:00:00,1.0,UK"], header=support.HEADER.replace(",CustomerID", "")
    )
    with pytest.raises(InputError) as error:
        _mapped(_read(spark, path))
    assert str(error.value) == (
        f"{path}: column 'CustomerID' (mapped to customer_id) is not in the input; columns found: InvoiceNo, "
        "StockCode, Description, Quantity, InvoiceDate, UnitPrice, Country"
    )


def test_extra_columns_are_ignored(spark, tmp_path):
    path = support.write_csv(tmp_path / "day1.csv", [GOOD[0] + ",web"], header=support.HEADER + ",Channel")
    lines = _mapped(_read(spark, path)).lines()
    assert "Channel" not in lines.columns
    assert [(r.invoice_id, r._corrupt_record) for r in lines.collect()] == [("536360", None)]


def test_a_header_with_spaces_is_read_and_a_later_file_without_them_is_named(spark, tmp_path):
    spaced = "InvoiceNo, StockCode,Description , Quantity,InvoiceDate,UnitPrice,CustomerID,Country "
    folder = tmp_path / "drops"
    support.write_csv(folder / "day1.csv", GOOD, header=spaced)
    source = _read(spark, folder)
    rows = _mapped(source).lines().collect()
    assert [(r.product_id, r._corrupt_record) for r in rows] == [("85123A", None)] * 5
    support.write_csv(folder / "day2.csv", GOOD[:1])  # the same names without the spaces
    message = _spark_message(_read(spark, folder).frame)
    assert "day2.csv" in message and "expected column ' StockCode' but found 'StockCode'" in message
    assert "differ only in the spaces around the name" in message


def test_a_later_file_with_another_header_is_named(spark, tmp_path):
    folder = tmp_path / "drops"
    support.write_csv(folder / "2011-01-01.csv", GOOD)
    support.write_csv(folder / "2011-01-02.csv", GOOD[:1], header=support.HEADER.replace("CustomerID", "Customer ID"))
    message = _spark_message(_read(spark, folder).frame)
    assert "2011-01-02.csv" in message and "expected column 'CustomerID' but found 'Customer ID'" in message
    assert "Every CSV file of one input must have the same columns" in message


def test_a_file_that_is_not_a_csv_log_is_named(spark, tmp_path):
    folder = tmp_path / "drops"
    support.write_csv(folder / "2011-01-01.csv", GOOD)
    (folder / "2011-01-02.csv").write_bytes(bytes(range(256)) * 4)
    message = _spark_message(_read(spark, folder).frame)
    assert "2011-01-02.csv" in message and "not a transaction-log CSV" in message


def test_a_broken_parquet_file_is_named(spark, tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(Exception) as error:
        _read(spark, path).frame.count()
    message = explain(error.value)
    assert "log.parquet" in message and "not a readable parquet file" in message


def test_every_parquet_file_is_checked_for_the_columns_not_just_one(spark, tmp_path):
    """Spark reads a column one file lacks as nulls: a drop without CustomerID would have made
    every one of its customers a guest, silently."""
    good = support.synthetic_frame(2_000, 11)
    folder = tmp_path / "drops"
    folder.mkdir()
    good.iloc[:1_000].to_parquet(folder / "day1.parquet", index=False)
    good.iloc[1_000:].drop(columns=["CustomerID"]).to_parquet(folder / "day2.parquet", index=False)
    must = r"day2\.parquet: column\(s\) CustomerID missing; every file of one input must have the columns of .*day1"
    with pytest.raises(InputError, match=must):
        _read(spark, folder)


def test_an_unknown_encoding_is_named(spark, tmp_path):
    path = support.write_csv(tmp_path / "day1.csv", GOOD)
    with pytest.raises(InputError, match=r"unknown text encoding 'UTF-9' \(input\.encoding / --encoding\)"):
        _read(spark, path, **{"input.encoding": "UTF-9"})


def test_csv_column_pruning_must_be_off(spark, tmp_path):
    """With pruning on, Spark does not notice lines with too few or too many fields."""
    path = support.write_csv(tmp_path / "day1.csv", GOOD)
    spark.conf.set("spark.sql.csv.parser.columnPruning.enabled", "true")
    try:
        with pytest.raises(InputError, match=r"columnPruning\.enabled must be false"):
            _read(spark, path)
    finally:
        spark.conf.set("spark.sql.csv.parser.columnPruning.enabled", "false")


def test_the_synthetic_log_is_generated_when_no_path_is_given(spark):
    source = _read(spark, "", **{"synthetic.lines": 1_000, "synthetic.seed": 3})
    assert (source.format, source.files, source.description) == ("synthetic", (), "synthetic(lines=1000,seed=3)")
    expected = pd.Series(sorted(support.synthetic_frame(1_000, 3)["InvoiceNo"]))
    got = pd.Series(sorted(r.InvoiceNo for r in source.frame.select("InvoiceNo").collect()))
    pd.testing.assert_series_equal(got, expected, check_names=False)
