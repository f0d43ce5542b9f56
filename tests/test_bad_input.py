"""Dirty input: every line accounted for, bad lines quarantined with the right reason, fatal
problems stopped with a message naming the file and the problem, and nothing published lost."""

from __future__ import annotations

import csv
import datetime as dt
import io as _io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

import insiders_spark.runs.runner as run_module
from insiders_spark.cli import main
from insiders_spark.core.config import load_config
from insiders_spark.core.errors import DuplicateCustomerIdError, InputError, RunFailedError
from insiders_spark.core.names import RAW_COLUMNS
from insiders_spark.core.paths import local_input_bytes
from insiders_spark.features.table import prepare_customers
from insiders_spark.runs.runner import run
from insiders_spark.storage.inputs import list_input_files
from insiders_spark.storage.synthetic import SyntheticLogSpec, generate_chunk

HEADER = ",".join(RAW_COLUMNS)
GOOD = SyntheticLogSpec(lines=3_000, seed=11)


def _good_lines() -> pd.DataFrame:
    table = generate_chunk(GOOD, 0, chunk_lines=GOOD.lines).to_pandas()
    table["CustomerID"] = table["CustomerID"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return table


def _to_csv(frame: pd.DataFrame) -> str:
    buffer = _io.StringIO()
    frame.to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buffer.getvalue()


def _line(invoice, code="85123A", description="WHITE HANGING HEART", quantity="6",
          when="2011-03-01 10:00:00", price="2.55", customer="17850.0", country="United Kingdom") -> str:
    return ",".join([invoice, code, description, quantity, when, price, customer, country])


# (marker, raw CSV line, expected reason): every kind of bad line the job must recognise.
BAD_LINES = [
    ("BAD01", "BAD01,85123A,SHORT LINE,6", "malformed_line"),
    ("BAD02", _line("BAD02") + ",extra,fields", "malformed_line"),
    ("BAD03", 'BAD03,85123A,"UNTERMINATED QUOTE,6,2011-03-01 10:00:00,2.55,17850.0,United Kingdom', "malformed_line"),
    ("BAD04", _line("BAD04", price='"1,25"'), "non_numeric_price"),
    ("BAD05", _line("BAD05", price="n/a"), "non_numeric_price"),
    ("BAD06", _line("BAD06", when="3/1/2011 10:00"), "unparsable_timestamp"),
    ("BAD07", _line("BAD07", when=""), "unparsable_timestamp"),
    ("BAD08", _line("BAD08", quantity="6.5"), "non_numeric_quantity"),
    ("BAD09", _line("BAD09", quantity="six"), "non_numeric_quantity"),
    ("BAD10", _line("BAD10", customer="A17850"), "invalid_customer_id"),
    ("BAD11", _line("BAD11", customer="-5"), "invalid_customer_id"),
    # 1/10,000 units of these overflow a 64-bit integer: the job used to stop on the first one
    ("BAD18", _line("BAD18", price="1e15"), "amount_out_of_range"),
    ("BAD19", _line("BAD19", quantity="9000000000000000000"), "amount_out_of_range"),
    ("BAD12", _line("", description="BAD12 NO INVOICE"), "missing_invoice"),
    ("BAD13", _line("BAD13", code=""), "missing_stock_code"),
    ("BAD14", _line("BAD14", price="0.0"), "price_below_minimum"),
    ("BAD15", _line("BAD15", code="POST"), "non_product_code"),
    ("BAD16", _line("BAD16", country="Unspecified"), "excluded_country"),
    ("BAD17", _line("BAD17", customer="16446.0"), "excluded_customer"),
    # drops joined with their headers (cat day1.csv day2.csv): the header again, mid-file
    ("InvoiceNo", HEADER, "repeated_header"),
]


def _config(tmp_path: Path, input_path: Path | str, **overrides):
    values = {"input.path": str(input_path), "output.path": str(tmp_path / "out")}
    values.update(overrides)
    return load_config(env="test", overrides=values, environ={})


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    good = _to_csv(_good_lines())
    (folder / "clean").mkdir()
    (folder / "clean" / "day1.csv").write_text(good)
    (folder / "dirty").mkdir()
    body = good.splitlines()
    mixed = [body[0]]
    for i, line in enumerate(body[1:]):
        mixed.append(line)
        if i % 150 == 0 and i // 150 < len(BAD_LINES):
            mixed.append(BAD_LINES[i // 150][1])
    (folder / "dirty" / "day1.csv").write_text("\n".join(mixed) + "\n")
    return folder


def test_the_corrupted_log_keeps_exactly_the_good_lines(spark, logs, tmp_path):
    from insiders_spark.core.names import QUARANTINE_REASONS

    assert len(BAD_LINES) >= 12 and {reason for _, _, reason in BAD_LINES} == set(QUARANTINE_REASONS)
    clean = prepare_customers(spark, _config(tmp_path, logs / "clean"))
    dirty = prepare_customers(spark, _config(tmp_path, logs / "dirty"), as_of=clean.as_of)
    try:
        # same kept lines -> the same customers with the same features, to the cent
        assert_df_equality(dirty.features(), clean.features(), ignore_row_order=True)
        assert dirty.accounting.input == clean.accounting.input + len(BAD_LINES)
        assert dirty.accounting.kept == clean.accounting.kept
        accounted = dirty.accounting.kept + dirty.accounting.after_as_of + dirty.accounting.quarantined_total
        assert accounted == dirty.accounting.input

        quarantine = dirty.lines.where(F.col("reason").isNotNull()).select(
            F.coalesce("raw_invoice_no", F.lit("")).alias("invoice"),
            F.coalesce("raw_description", F.lit("")).alias("description"),
            F.coalesce("raw_line", F.lit("")).alias("raw_line"),
            "reason",
        ).collect()
        for marker, _, reason in BAD_LINES:
            found = [r.reason for r in quarantine if marker in (r.invoice + r.description + r.raw_line)]
            assert found == [reason], (marker, found)
        # the clean log's own set-aside lines (study rules) are still set aside for the same reasons
        injected = {reason for _, _, reason in BAD_LINES}
        for reason, count in clean.accounting.quarantined.items():
            extra = sum(1 for _, _, r in BAD_LINES if r == reason)
            assert dirty.accounting.quarantined[reason] == count + extra
        assert set(dirty.accounting.quarantined) >= injected
    finally:
        clean.unpersist()
        dirty.unpersist()


def test_the_quarantine_output_holds_raw_text_file_and_reason(spark, logs, tmp_path):
    config = _config(tmp_path, logs / "dirty")
    result = run(spark, config)
    quarantine = spark.read.parquet(str(tmp_path / "out" / "quarantine"))
    assert quarantine.count() == result.metrics["rows"]["quarantined_total"]
    row = quarantine.where(F.col("invoice_no") == "BAD04").first()
    assert row.unit_price == "1,25" and row.reason == "non_numeric_price"
    assert row.source_file.endswith("dirty/day1.csv")
    short = quarantine.where(F.col("raw_line").startswith("BAD01")).first()
    assert short.raw_line == "BAD01,85123A,SHORT LINE,6" and short.reason == "malformed_line"
    assert set(quarantine.columns) >= {*["invoice_no", "quantity", "unit_price", "customer_id"], "raw_line", "source_file", "reason"}


def _cli(capsys, *args):
    status = main(["run", "--env", "test", *args])
    return status, capsys.readouterr().err


def test_missing_required_column_is_fatal_and_named(capsys, tmp_path):
    path = tmp_path / "drop.csv"
    path.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n1,A,B,1,2011-01-01 10:00:00,1.0,UK\n")
    status, err = _cli(capsys, "--input", str(path), "--output", str(tmp_path / "out"))
    assert status == 1
    assert str(path) in err and "required column(s) CustomerID missing" in err
    assert "expected InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country" in err


def test_a_later_file_with_another_header_is_fatal_and_named(capsys, logs, tmp_path):
    folder = tmp_path / "drops"
    folder.mkdir()
    (folder / "2011-01-01.csv").write_text((logs / "clean" / "day1.csv").read_text())
    (folder / "2011-01-02.csv").write_text(HEADER.replace("CustomerID", "Customer ID") + "\n" + _line("X1") + "\n")
    status, err = _cli(capsys, "--input", str(folder), "--output", str(tmp_path / "out"))
    assert status == 1
    assert "2011-01-02.csv" in err and "expected column 'CustomerID' but found 'Customer ID'" in err
    assert "at org.apache" not in err


def test_a_file_that_is_not_csv_is_fatal_and_named(capsys, logs, tmp_path):
    folder = tmp_path / "drops"
    folder.mkdir()
    (folder / "2011-01-01.csv").write_text((logs / "clean" / "day1.csv").read_text())
    (folder / "2011-01-02.csv").write_bytes(bytes(range(256)) * 4)
    status, err = _cli(capsys, "--input", str(folder), "--output", str(tmp_path / "out"))
    assert status == 1
    assert "2011-01-02.csv" in err and "not a transaction-log CSV" in err


def test_a_broken_parquet_file_is_fatal_and_named(capsys, tmp_path):
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    status, err = _cli(capsys, "--input", str(path), "--output", str(tmp_path / "out"))
    assert status == 1
    assert "log.parquet" in err and "not a readable parquet file" in err


def test_empty_inputs_are_fatal_and_explained(capsys, tmp_path):
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    status, err = _cli(capsys, "--input", str(empty_folder), "--output", str(tmp_path / "out"))
    assert status == 1 and "holds no data files" in err
    empty_file = tmp_path / "empty.csv"
    empty_file.write_text("")
    status, err = _cli(capsys, "--input", str(empty_file), "--output", str(tmp_path / "out"))
    assert status == 1 and "every file is empty" in err
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER + "\n")
    status, err = _cli(capsys, "--input", str(header_only), "--output", str(tmp_path / "out"))
    assert status == 1 and "no customer has a kept purchase: 0 lines read" in err


def test_a_path_that_does_not_exist_is_fatal(capsys, tmp_path):
    status, err = _cli(capsys, "--input", str(tmp_path / "missing" / "*.csv"), "--output", str(tmp_path / "out"))
    assert status == 1 and "does not exist" in err and str(tmp_path / "missing") in err


def test_above_the_threshold_nothing_is_published_and_earlier_outputs_stay(spark, capsys, logs, tmp_path):
    output = tmp_path / "out"
    status, _ = _cli(capsys, "--input", str(logs / "clean"), "--output", str(output), "--run-date", "2011-12-31")
    assert status == 0
    before = spark.read.parquet(str(output / "segments")).collect()
    metrics_before = (output / "runs" / "run_date=2011-12-31" / "metrics.json").read_text()

    broken = _good_lines().astype({"UnitPrice": object})
    broken.loc[broken.index % 3 == 0, "UnitPrice"] = "1,25"  # a third of the prices in decimal-comma form
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "day1.csv").write_text(_to_csv(broken))
    status, err = _cli(capsys, "--input", str(folder), "--output", str(output), "--run-date", "2011-12-31")
    assert status == 1
    assert "too much of the input was set aside" in err and "non_numeric_price" in err and "> 1.00%" in err
    assert sorted(spark.read.parquet(str(output / "segments")).collect()) == sorted(before)
    assert (output / "runs" / "run_date=2011-12-31" / "metrics.json").read_text() == metrics_before
    failed = list((output / "failed_runs" / "run_date=2011-12-31").iterdir())
    assert len(failed) == 1 and str(failed[0]) in err
    failure = json.loads((failed[0] / "failure.json").read_text())
    assert failure["rows"]["quarantined"]["non_numeric_price"] == 1_000
    assert spark.read.parquet(str(failed[0] / "quarantine")).where(F.col("reason") == "non_numeric_price").count() == 1_000
    assert not (output / "_staging").exists() or not any((output / "_staging").iterdir())


def test_a_wrong_encoding_does_not_crash_and_is_reported(spark, tmp_path):
    folder = tmp_path / "latin1"
    folder.mkdir()
    lines = [HEADER, _line("L1", description="CAFÉ NOIR MUG"), _line("L2", description="PLAIN MUG", when="2011-03-02 10:00:00")]
    (folder / "day1.csv").write_bytes(("\n".join(lines) + "\n").encode("iso-8859-1"))
    as_utf8 = prepare_customers(spark, _config(tmp_path, folder))
    as_latin1 = prepare_customers(spark, _config(tmp_path, folder, **{"input.encoding": "ISO-8859-1"}))
    try:
        assert as_utf8.accounting.undecodable == 1 and as_utf8.accounting.kept == 2
        assert as_latin1.accounting.undecodable == 0
        description = as_latin1.lines.where(F.col("invoice_no") == "L1").first().description
        assert description == "CAFÉ NOIR MUG"
    finally:
        as_utf8.unpersist()
        as_latin1.unpersist()


def test_extra_columns_are_ignored_and_reported(spark, tmp_path):
    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "day1.csv").write_text(HEADER + ",Channel\n" + _line("E1") + ",web\n")
    table = prepare_customers(spark, _config(tmp_path, folder))
    try:
        assert table.source.extra_columns == ("Channel",)
        assert table.accounting.kept == 1 and table.accounting.quarantined_total == 0
    finally:
        table.unpersist()


def test_spark_side_failures_print_one_message_and_no_java_stack_trace(logs, tmp_path):
    """As a user sees it: a separate process, the JVM's own output included."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "drops"
    folder.mkdir()
    (folder / "2011-01-01.csv").write_text((logs / "clean" / "day1.csv").read_text())
    (folder / "2011-01-02.csv").write_text(HEADER.replace("Country", "Land") + "\n" + _line("X1") + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", "--input", str(folder),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert result.returncode == 1
    assert "2011-01-02.csv" in result.stderr and "expected column 'Country' but found 'Land'" in result.stderr
    assert "at org.apache" not in result.stderr and "Traceback" not in result.stderr


def test_quarantine_shares_are_of_the_lines_the_run_judged():
    """A backfill at an early as-of date leaves most lines for later runs: 30 set aside of the 100
    lines up to that date is 30%, not 3% of the 1,000 read."""
    from insiders_spark.cleaning.accounting import RowAccounting
    from insiders_spark.core.errors import QuarantineThresholdError

    limits = load_config(env="test", environ={}).quarantine
    backfill = RowAccounting(input=1_000, kept=70, after_as_of=900, quarantined={"excluded_country": 30})
    backfill.check()
    with pytest.raises(QuarantineThresholdError) as error:
        backfill.check_thresholds(limits)
    message = str(error.value)
    assert "excluded_country: 30 lines (30.00%) > 2.00%" in message
    assert "900 of them after the as-of date" in message and "of the 100 judged" in message
    assert "{" not in message  # no unfilled placeholder
    RowAccounting(input=1_000, kept=990, after_as_of=0, quarantined={"excluded_country": 10}).check_thresholds(limits)


def test_a_registered_id_among_the_guest_numbers_stops_the_run(spark, tmp_path):
    """Guest invoices are numbered from cleaning.guest_customer_id_start (19000 in the study): a real
    customer with id 19000 would be merged with the first guest invoice, features and all."""
    first_guest = _line("G0001", when="2010-11-30 09:00:00", customer="")  # the earliest: number 19000
    registered = _line("R0001", customer="19000.0")
    path = tmp_path / "drop" / "day1.csv"
    path.parent.mkdir()
    path.write_text(_to_csv(_good_lines()) + first_guest + "\n" + registered + "\n")
    with pytest.raises(DuplicateCustomerIdError, match="collide with real customer ids.*guest_customer_id_start"):
        prepare_customers(spark, _config(tmp_path, path.parent))
    # numbered above every real id, the same log runs, the guest and the customer apart
    table = prepare_customers(spark, _config(tmp_path, path.parent, **{"cleaning.guest_customer_id_start": 100_000}))
    try:
        assert table.summary.distinct_ids == table.summary.customers
        rows = table.customers.where(F.col("customer_id").isin(19_000, 100_000)).select("customer_id", "is_guest").collect()
        assert sorted((r.customer_id, r.is_guest) for r in rows) == [(19_000, False), (100_000, True)]
    finally:
        table.unpersist()


def test_a_nightly_drop_folder_reads_gzip_skips_empty_files_and_refuses_mixed_formats(spark, tmp_path):
    import gzip

    good = _good_lines()
    first, second = good.iloc[:1_500], good.iloc[1_500:]
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "2011-12-01.csv").write_text(_to_csv(first))
    (drop / "2011-12-02.csv.gz").write_bytes(gzip.compress(_to_csv(second).encode()))
    (drop / "2011-12-03.csv").write_text("")  # a 0-byte drop: skipped and listed, not an error
    table = prepare_customers(spark, _config(tmp_path, drop))
    try:
        assert table.source.format == "csv" and table.accounting.input == len(good)
        assert [Path(f).name for f in table.source.empty_files] == ["2011-12-03.csv"]
        whole = tmp_path / "whole.csv"
        whole.write_text(_to_csv(good))
        together = prepare_customers(spark, _config(tmp_path, whole), as_of=table.as_of)
        try:  # the gzip drop's lines count like plain ones: the same customers, to the cent
            assert_df_equality(table.features(), together.features(), ignore_row_order=True)
        finally:
            together.unpersist()
    finally:
        table.unpersist()
    good.head(10).to_parquet(drop / "2011-12-04.parquet")  # one export in the other format
    with pytest.raises(InputError, match="cannot tell the input format.*mixes both.*--format"):
        prepare_customers(spark, _config(tmp_path, drop))
    (drop / "2011-12-04.parquet").unlink()
    (drop / "notes.json").write_text("{}")
    with pytest.raises(InputError, match="notes.json is neither .csv nor .parquet"):
        prepare_customers(spark, _config(tmp_path, drop))


def test_the_overall_quarantine_limit_holds_when_every_reason_is_within_its_own():
    """Six parse reasons at 0.9% each stay under their 1% limits, but together they set aside 5.4%
    of the lines, past the 5% of all reasons: the run must stop."""
    from insiders_spark.cleaning.accounting import RowAccounting
    from insiders_spark.core.errors import QuarantineThresholdError

    limits = load_config(env="test", environ={}).quarantine
    assert limits.max_share == 0.05
    reasons = ("malformed_line", "missing_invoice", "missing_stock_code", "unparsable_timestamp",
               "non_numeric_quantity", "non_numeric_price")
    assert all(limits.max_share_by_reason[reason] == 0.01 for reason in reasons)
    spread = RowAccounting(input=10_000, kept=9_460, after_as_of=0, quarantined={r: 90 for r in reasons})
    spread.check()
    with pytest.raises(QuarantineThresholdError) as error:
        spread.check_thresholds(limits)
    message = str(error.value)
    assert "all reasons: 540 lines (5.40%) > 5.00%" in message
    assert not any(f"{reason}:" in message for reason in reasons)  # each alone is within its limit
    RowAccounting(  # 4.5% in all: within every limit
        input=10_000, kept=9_550, after_as_of=0, quarantined={r: 90 for r in reasons[:5]}
    ).check_thresholds(limits)


def test_a_line_dated_in_the_future_does_not_move_the_as_of_date(spark, tmp_path, caplog):
    """A wrong year in one line (2101) must not make the default as-of date 2101, adding decades to
    every customer's recency and publishing under run_date=2101-...: it waits, counted, like a line
    after an as-of date."""
    good = _good_lines()
    future = good.iloc[[5]].assign(InvoiceDate="2101-12-09 12:50:00")
    path = tmp_path / "drop.csv"
    path.write_text(_to_csv(pd.concat([good, future])))
    clean = tmp_path / "clean.csv"
    clean.write_text(_to_csv(good))
    expected = prepare_customers(spark, _config(tmp_path, clean))
    table = prepare_customers(spark, _config(tmp_path, path))
    assert table.as_of == expected.as_of < dt.date(2100, 1, 1)
    assert (table.accounting.input, table.accounting.after_as_of) == (expected.accounting.input + 1, 1)
    assert_df_equality(table.features(), expected.features(), ignore_row_order=True)
    assert "1 lines are dated after today" in caplog.text
    for frame in (table, expected):
        frame.unpersist()


def test_every_parquet_file_is_checked_for_the_columns_not_just_one(capsys, tmp_path):
    """Spark reads a column one file lacks as nulls: a drop without CustomerID would have made
    every one of its customers a guest, silently."""
    good = _good_lines()
    good["CustomerID"] = pd.to_numeric(good["CustomerID"].replace("", None))
    folder = tmp_path / "drops"
    folder.mkdir()
    good.iloc[:1500].to_parquet(folder / "day1.parquet", index=False)
    good.iloc[1500:].drop(columns=["CustomerID"]).to_parquet(folder / "day2.parquet", index=False)
    status, err = _cli(capsys, "--input", str(folder), "--output", str(tmp_path / "out"))
    assert status == 1
    assert "day2.parquet: required column(s) CustomerID missing" in err
    assert not (tmp_path / "out" / "segments").exists()


def test_file_names_with_glob_characters_are_read_as_themselves(spark, tmp_path):
    """Spark globs the paths it is given: day[1].csv would have been read as day1.csv."""
    lines = _good_lines()
    folder = tmp_path / "drops"
    folder.mkdir()
    (folder / "day[1].csv").write_text(_to_csv(lines.iloc[:1000]))
    (folder / "day1.csv").write_text(_to_csv(lines.iloc[1000:]))
    table = prepare_customers(spark, _config(tmp_path, folder))
    assert table.accounting.input == len(lines)
    assert sorted(Path(f).name for f in table.source.files) == ["day1.csv", "day[1].csv"]
    table.unpersist()


def test_an_input_rewritten_during_the_run_is_caught_by_the_quarantine_count(spark, tmp_path, monkeypatch):
    """The quarantine is a second pass over the input; a drop corrected in place between the two
    passes must not publish a quarantine that disagrees with the counts."""
    lines = _good_lines().astype({"UnitPrice": object})
    lines.loc[[3, 7], "UnitPrice"] = "#.##"
    broken = _to_csv(lines)
    corrected = broken.replace("#.##", "9.99")  # same length: the listing's sizes still hold
    path = tmp_path / "drop.csv"
    path.write_text(broken)
    real = prepare_customers

    def then_corrected(*args, **kwargs):  # the export re-delivers the corrected file mid-run
        table = real(*args, **kwargs)
        path.write_text(corrected)
        return table

    monkeypatch.setattr(run_module, "prepare_customers", then_corrected)
    with pytest.raises(RunFailedError, match="the input changed while the run read it") as error:
        run(spark, _config(tmp_path, path))
    found = re.search(r"holds ([\d,]+) lines but the run counted ([\d,]+)", str(error.value)).groups()
    written, counted = (int(n.replace(",", "")) for n in found)
    assert counted - written == 2  # the two prices corrected in between
    assert not (tmp_path / "out" / "segments").exists()


def test_a_glob_skips_the_hidden_and_temporary_folders_and_uploads_a_folder_skips(spark, tmp_path):
    lines = _good_lines()
    folder = tmp_path / "drops"
    (folder / "_temporary" / "0").mkdir(parents=True)
    (folder / ".staging").mkdir()
    (folder / "day1.csv").write_text(_to_csv(lines))
    for leftover in (folder / "_temporary" / "0" / "part-0000.csv", folder / ".staging" / "day2.csv",
                     folder / "day2.csv._COPYING_"):
        leftover.write_text(_to_csv(lines.iloc[:10]))
    for given in (folder, f"{folder}/*"):
        listed = list_input_files(spark, str(given))
        assert [Path(f.path).name for f in listed] == ["day1.csv"], given
        assert local_input_bytes(str(given)) == (folder / "day1.csv").stat().st_size


def test_a_header_with_spaces_around_its_names_is_read_and_a_later_one_without_them_is_named(spark, capsys, tmp_path):
    lines = _good_lines()
    body = _to_csv(lines).split("\n", 1)[1]
    spaced = "InvoiceNo, StockCode,Description , Quantity,InvoiceDate,UnitPrice,CustomerID,Country \n"
    folder = tmp_path / "drops"
    folder.mkdir()
    (folder / "day1.csv").write_text(spaced + body)
    table = prepare_customers(spark, _config(tmp_path, folder))
    assert (table.accounting.input, table.accounting.quarantined.get("malformed_line", 0)) == (len(lines), 0)
    clean = tmp_path / "clean.csv"
    clean.write_text(_to_csv(lines))
    expected = prepare_customers(spark, _config(tmp_path, clean))
    assert_df_equality(table.features(), expected.features(), ignore_row_order=True)
    for frame in (table, expected):
        frame.unpersist()
    (folder / "day2.csv").write_text(_to_csv(lines.iloc[:10]))  # the same names without the spaces
    status, err = _cli(capsys, "--input", str(folder), "--output", str(tmp_path / "out"))
    assert status == 1
    assert "day2.csv" in err and "expected column ' StockCode' but found 'StockCode'" in err
    assert "differ only in the spaces around the name" in err
