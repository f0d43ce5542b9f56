"""The customer table (``prepare_customers``): the log read, every line classified and counted,
customers aggregated and numbered, and the problems that stop it before any model sees them."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

import insiders_spark.features.customers as customers_module
from insiders_spark.core.errors import DuplicateCustomerIdError, NoCustomersError
from insiders_spark.core.names import NON_NUMERIC_AMOUNT, QUARANTINE_REASONS
from insiders_spark.features.table import prepare_customers
from insiders_spark.storage.synthetic import SyntheticLogSpec, write_parquet
from tests import support

GOOD_LINES = 3_000
GOOD_SEED = 11


def _config(path, **overrides):
    return support.config({"input.path": str(path), **overrides})


@pytest.fixture(scope="module")
def good_frame():
    return support.synthetic_frame(GOOD_LINES, GOOD_SEED)


@pytest.fixture(scope="module")
def good_csv_text(good_frame) -> str:
    """A small clean export: 3,000 synthetic lines as CSV (guests, returns, the study's rules)."""
    return support.to_csv_text(good_frame)


@pytest.fixture
def tables():
    """Customer tables a test prepared, released however it ends (they hold cached frames)."""
    made = []
    yield made.append
    for table in made:
        table.unpersist()


def _prepared(spark, tables, config, **kwargs):
    table = prepare_customers(spark, config, **kwargs)
    tables(table)
    return table


def test_the_corrupted_log_keeps_exactly_the_good_lines(spark, tmp_path, good_csv_text, tables):
    body = good_csv_text.splitlines()
    bad = support.bad_lines(when="2011-03-01 10:00:00", bad_when="3/1/2011 10:00")
    assert {reason for _, _, reason in bad} == set(QUARANTINE_REASONS) - {NON_NUMERIC_AMOUNT}  # no line amount here
    mixed = body[1:]
    for position, (_, line, _) in enumerate(bad):
        mixed.insert(150 * position, line)
    clean = _prepared(spark, tables, _config(support.write_csv(tmp_path / "clean" / "day1.csv", body[1:])))
    dirty_path = support.write_csv(tmp_path / "dirty" / "day1.csv", mixed)
    dirty = _prepared(spark, tables, _config(dirty_path), as_of=clean.as_of)
    # same kept lines -> the same customers with the same features, to the cent
    assert_df_equality(dirty.features(), clean.features(), ignore_row_order=True)
    assert dirty.accounting.input == clean.accounting.input + len(bad) == GOOD_LINES + len(bad)
    assert dirty.accounting.kept == clean.accounting.kept
    dirty.accounting.check()
    reasons = dirty.lines.where(F.col("reason").isNotNull()).select(
        F.concat_ws("|", "raw_invoice_id", "raw_description", "raw_line").alias("text"), "reason"
    )
    found = {}
    for row in reasons.collect():  # bounded: a few hundred set-aside lines
        for marker, _, _ in bad:
            if marker in row.text:
                found.setdefault(marker, []).append(row.reason)
    assert found == {marker: [reason] for marker, _, reason in bad}
    # the clean log's own set-aside lines (study rules) keep their reasons
    for reason, count in clean.accounting.quarantined.items():
        assert dirty.accounting.quarantined[reason] == count + sum(1 for _, _, r in bad if r == reason)


def test_a_price_past_the_exact_range_is_quarantined_not_fatal(spark, tmp_path, good_csv_text, tables):
    (overflowing,) = [
        line
        for marker, line, _ in support.bad_lines(when="2011-03-01 10:00:00", bad_when="x", overflowing_price=True)
        if marker == "BAD18"
    ]
    path = support.write_csv(tmp_path / "drop" / "day1.csv", [*good_csv_text.splitlines()[1:], overflowing])
    table = _prepared(spark, tables, _config(path))
    assert table.accounting.quarantined["amount_out_of_range"] == 1
    table.accounting.check()


def test_a_wrong_encoding_is_counted_not_fatal(spark, tmp_path, tables):
    lines = [
        support.csv_line("L1", description="CAFÉ NOIR MUG"),
        support.csv_line("L2", description="PLAIN MUG", when="2011-03-02 10:00:00"),
    ]
    path = support.write_csv(tmp_path / "latin1" / "day1.csv", lines, encoding="iso-8859-1")
    as_utf8 = _prepared(spark, tables, _config(path))
    as_latin1 = _prepared(spark, tables, _config(path, **{"input.encoding": "ISO-8859-1"}))
    assert (as_utf8.accounting.undecodable, as_utf8.accounting.kept) == (1, 2)
    assert (as_latin1.accounting.undecodable, as_latin1.accounting.kept) == (0, 2)
    assert as_latin1.lines.where(F.col("invoice_id") == "L1").first().description == "CAFÉ NOIR MUG"
    assert "\ufffd" in as_utf8.lines.where(F.col("invoice_id") == "L1").first().description


def test_a_registered_id_among_the_guest_numbers_stops_the_run(spark, tmp_path, good_csv_text, tables):
    """Guest invoices are numbered from cleaning.guest_customer_id_start (19000 in the study): a real
    customer with id 19000 would be merged with the first guest invoice, features and all."""
    first_guest = support.csv_line("G0001", when="2010-11-30 09:00:00", customer="")  # the earliest: 19000
    registered = support.csv_line("R0001", customer="19000.0")
    path = support.write_csv(tmp_path / "drop" / "day1.csv", [*good_csv_text.splitlines()[1:], first_guest, registered])
    with pytest.raises(DuplicateCustomerIdError, match=r"collide with real customer ids.*guest_customer_id_start"):
        prepare_customers(spark, _config(path))
    # numbered above every real id, the same log runs, the guest and the customer apart
    table = _prepared(spark, tables, _config(path, **{"cleaning.guest_customer_id_start": 100_000}))
    assert table.summary.distinct_ids == table.summary.customers
    rows = table.customers.where(F.col("customer_id").isin(19_000, 100_000)).select("customer_id", "is_guest")
    assert sorted((r.customer_id, r.is_guest) for r in rows.collect()) == [(19_000, False), (100_000, True)]


def test_a_line_dated_in_the_future_does_not_move_the_as_of_date(spark, tmp_path, good_frame, tables, caplog):
    """A wrong year in one line (2101) must not make the default as-of date 2101, adding decades to
    every customer's recency and publishing under run_date=2101-...: it waits, counted, like a line
    after an as-of date."""
    future = good_frame.iloc[[5]].assign(InvoiceDate="2101-12-09 12:50:00")
    clean = tmp_path / "clean.csv"
    clean.write_text(support.to_csv_text(good_frame))
    path = tmp_path / "drop.csv"
    path.write_text(support.to_csv_text(pd.concat([good_frame, future])))
    expected = _prepared(spark, tables, _config(clean))
    with caplog.at_level(logging.WARNING, logger="insiders_spark"):
        table = _prepared(spark, tables, _config(path))
    assert table.as_of == expected.as_of < dt.date(2100, 1, 1)
    assert (table.accounting.input, table.accounting.after_as_of) == (expected.accounting.input + 1, 1)
    assert_df_equality(table.features(), expected.features(), ignore_row_order=True)
    assert "1 lines are dated after today" in caplog.text


def test_an_as_of_date_before_the_first_invoice_leaves_nobody_to_segment(spark, tmp_path, good_csv_text):
    path = support.write_csv(tmp_path / "day1.csv", good_csv_text.splitlines()[1:])
    with pytest.raises(NoCustomersError) as error:
        prepare_customers(spark, _config(path), as_of=dt.date(2009, 1, 1))
    message = str(error.value)
    assert message.startswith(f"no customer has a kept purchase: {GOOD_LINES:,} lines read, 0 kept, ")
    assert f"{GOOD_LINES:,} after the as-of date 2009-01-01 (is it before the log's first invoice?)" in message


def test_the_job_aggregates_again_when_guest_invoices_share_a_key(spark, tmp_path, monkeypatch, caplog, tables):
    """A collision of the guests' 63-bit keys cannot be made to order, so the keys get one bit:
    ``prepare_customers`` sees the shared keys, warns, and aggregates again by (id, invoice),
    giving the features and counts of a run without any collision."""
    write_parquet(SyntheticLogSpec(lines=4_000, seed=3), tmp_path / "log", chunk_lines=2_000)
    config = _config(tmp_path / "log")
    expected = _prepared(spark, tables, config)
    monkeypatch.setattr(customers_module, "GUEST_KEY_BITS", 1)
    with caplog.at_level(logging.WARNING, logger="insiders_spark"):
        again = _prepared(spark, tables, config)
    assert expected.summary.guests > 2 and expected.summary.shared_guest_keys == 0
    assert "group keys were shared by more than one guest invoice; aggregating again" in caplog.text
    assert again.summary == expected.summary
    assert_df_equality(again.features(), expected.features(), ignore_row_order=True)


def test_the_table_counts_what_the_oracle_counts(spark, tmp_path, good_frame, tables):
    """The synthetic log through the job's reader, rules and aggregation against the pandas oracle
    (tests/support.py), at an as-of date inside the log."""
    raw = good_frame
    raw.to_parquet(tmp_path / "log.parquet", index=False)
    as_of = dt.date(2011, 6, 30)
    table = _prepared(spark, tables, _config(tmp_path / "log.parquet"), as_of=as_of)
    expected = support.expected_outcomes(raw, support.study_config().cleaning, as_of=as_of)
    accounting, summary = table.accounting, table.summary
    assert (accounting.input, accounting.kept, accounting.after_as_of) == (
        expected.input, expected.kept, expected.after_as_of,
    )  # fmt: skip
    assert accounting.quarantined == expected.quarantined
    assert (summary.customers, summary.with_purchases, summary.returns_only, summary.guests) == (
        expected.customers_with_kept_lines, expected.segmented, expected.returns_only, expected.guests,
    )  # fmt: skip
    assert summary.last_kept_date == expected.last_kept_date and table.as_of == as_of
    revenue = table.features().agg(F.sum("gross_revenue")).first()[0]
    assert revenue == pytest.approx(expected.revenue, abs=0.01)
