"""Lines of logs without some optional columns, with text customer ids or line amounts: parsed and
classified as core.names.ABSENT_EFFECTS says."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_column_equality
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import (
    LineFormat,
    customer_key,
    parse_timestamp,
    to_parsed_lines,
)
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import CleaningConfig
from insiders_spark.core.names import CANONICAL_COLUMNS

AS_OF = dt.date(2011, 12, 9)


def _raw(spark, rows: list[dict], types: dict[str, str] | None = None):
    """Canonical raw fields (text unless ``types`` says otherwise), absent ones null, as storage.mapping gives them."""
    types = types or {}
    ddl = ", ".join(f"{name} {types.get(name, 'string')}" for name in CANONICAL_COLUMNS) + ", _corrupt_record string"
    return spark.createDataFrame([tuple(row.get(name) for name in CANONICAL_COLUMNS) + (None,) for row in rows], ddl)


GENERIC_RULES = CleaningConfig()


def _lines(spark, rows, line_format, rules=GENERIC_RULES, types=None):
    raw = _raw(spark, rows, types)
    return raw.transform(to_parsed_lines, line_format=line_format).transform(
        with_reason, rules=rules, as_of=AS_OF, line_format=line_format
    )


def test_a_line_amount_log_without_quantity_or_price(spark):
    fmt = LineFormat(columns={"customer_id": "c", "invoice_date": "d", "line_amount": "a"}, customer_ids="text")
    rows = [
        {"customer_id": "C-1", "invoice_date": "2011-03-01 10:00:00", "line_amount": "12.34"},
        {"customer_id": "C-1", "invoice_date": "2011-03-02", "line_amount": "-5"},  # a refund: one item back
        {"customer_id": "C-2", "invoice_date": "2011-03-02", "line_amount": "n/a"},
        {"customer_id": None, "invoice_date": "2011-03-03", "line_amount": "7"},  # a guest
        {"customer_id": "C-3", "invoice_date": "2011-03-03", "line_amount": "1e11"},
    ]
    got = _lines(spark, rows, fmt).collect()
    assert [r.quantity for r in got[:2]] == [1, -1]
    assert [r.unit_price for r in got[:2]] == [12.34, 5.0]
    assert [r.revenue_units for r in got[:2]] == [123_400, -50_000]
    assert [r.reason for r in got] == [None, None, "non_numeric_amount", None, "amount_out_of_range"]
    # one invoice per customer and timestamp, made of the raw texts (never null)
    assert [r.invoice_id for r in got[:2]] == ["C-1|2011-03-01 10:00:00", "C-1|2011-03-02"]
    assert got[3].invoice_id == "|2011-03-03" and got[3].customer_id is None
    assert got[0].customer_id == got[1].customer_id > 0 and got[0].source_customer_id == "C-1"


def test_text_ids_are_numbered_by_a_hash_that_depends_on_the_text_only(spark):
    frame = spark.createDataFrame([("C-1",), ("C-1",), ("C-2",), ("a@b.com",)], "id string")
    keys = [r[0] for r in frame.select(customer_key(F.col("id"))).collect()]
    assert keys[0] == keys[1] and len(set(keys)) == 3 and all(0 < k < 2**63 for k in keys)


def test_unit_price_times_quantity_and_line_amount_both_given_the_amount_wins(spark):
    fmt = LineFormat(
        columns={name: name for name in ("customer_id", "invoice_date", "unit_price", "quantity", "line_amount")}
    )
    rows = [
        {"customer_id": "1", "invoice_date": "2011-03-01", "unit_price": "2.5", "quantity": "4", "line_amount": "10"},
        {"customer_id": "1", "invoice_date": "2011-03-01", "unit_price": "2.5", "quantity": "4", "line_amount": "9.5"},
        {"customer_id": "1", "invoice_date": "2011-03-01", "unit_price": "x", "quantity": "4", "line_amount": "9"},
    ]
    got = _lines(spark, rows, fmt).collect()
    assert [r.revenue_units for r in got] == [100_000, 95_000, 90_000]
    assert [r.amounts_disagree for r in got] == [False, True, False]  # the third has no price to compare
    assert [r.reason for r in got] == [None, None, None]  # a bad price does not matter when the amount is there


def test_without_product_id_or_country_their_rules_never_fail(spark):
    fmt = LineFormat(columns={"customer_id": "c", "invoice_date": "d", "unit_price": "p", "quantity": "q"})
    rules = CleaningConfig(non_product_codes=("POST",), excluded_countries=("Unspecified",))
    got = _lines(
        spark, [{"customer_id": "1", "invoice_date": "2011-03-01", "unit_price": "1", "quantity": "2"}], fmt, rules
    )
    assert got.first().reason is None and got.first().product_id is None


def test_excluded_customers_are_matched_as_the_log_writes_them(spark):
    rules = CleaningConfig(excluded_customers=("16446", "C-9"))
    number = LineFormat(columns={"customer_id": "c", "invoice_date": "d", "unit_price": "p"})
    text = LineFormat(columns={"customer_id": "c", "invoice_date": "d", "unit_price": "p"}, customer_ids="text")
    rows = [
        {"customer_id": "16446.0", "invoice_date": "2011-03-01", "unit_price": "1"},
        {"customer_id": "C-9", "invoice_date": "2011-03-01", "unit_price": "1"},
    ]
    assert [r.reason for r in _lines(spark, rows, number, rules).collect()] == [
        "excluded_customer",
        "invalid_customer_id",
    ]
    assert [r.reason for r in _lines(spark, rows, text, rules).collect()] == [None, "excluded_customer"]


def test_a_repeated_header_holds_the_source_names(spark):
    fmt = LineFormat(
        columns={"customer_id": "Client", "invoice_date": "Order Date", "line_amount": "Total"}, customer_ids="text"
    )
    rows = [{"customer_id": "Client", "invoice_date": " Order Date ", "line_amount": "Total"}]
    assert _lines(spark, rows, fmt).first().reason == "repeated_header"


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("auto", "2011-12-09 12:50:00", dt.datetime(2011, 12, 9, 12, 50)),
        ("auto", "2011-12-09T12:50:00Z", dt.datetime(2011, 12, 9, 12, 50)),
        ("auto", "2011-12-09", dt.datetime(2011, 12, 9)),
        ("auto", "2019-10-01 00:00:00 UTC", dt.datetime(2019, 10, 1)),
        ("auto", "12/9/2011 12:50", None),
        ("yyyyMMdd", "20111209", dt.datetime(2011, 12, 9)),
        ("dd/MM/yyyy", "09/12/2011", dt.datetime(2011, 12, 9)),
        ("dd/MM/yyyy", "2011-12-09", None),
        ("M/d/yyyy H:mm", "12/9/2011 12:50", dt.datetime(2011, 12, 9, 12, 50)),
        ("yyyy-MM-dd HH:mm:ss", "2011-12-09", None),
    ],
)
def test_timestamp_patterns_date_only_ones_too(spark, pattern, text, expected):
    frame = spark.createDataFrame([(text, expected)], "text string, expected timestamp")
    assert_column_equality(frame.withColumn("got", parse_timestamp(F.col("text"), pattern)), "got", "expected")


def test_typed_and_epoch_dates_need_no_pattern(spark):
    fmt = LineFormat(
        columns={"customer_id": "c", "invoice_date": "d", "unit_price": "p"}, timestamp_format="dd/MM/yyyy"
    )
    epoch = _lines(
        spark,
        [
            {"customer_id": "1", "invoice_date": 1_323_435_000, "unit_price": "1"},
            {"customer_id": "1", "invoice_date": 1_323_435_000_000, "unit_price": "1"},
        ],
        fmt,
        types={"invoice_date": "long"},
    ).collect()
    assert [r.invoice_ts for r in epoch] == [dt.datetime(2011, 12, 9, 12, 50)] * 2
    typed = _lines(
        spark,
        [{"customer_id": "1", "invoice_date": dt.date(2011, 12, 9), "unit_price": "1"}],
        fmt,
        types={"invoice_date": "date"},
    ).first()
    assert typed.invoice_ts == dt.datetime(2011, 12, 9)
