"""The input contract: resolving a mapping against the columns found, and what the mapped input holds."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.errors import InputError
from insiders_spark.storage.inputs import RawInput
from insiders_spark.storage.mapping import map_columns, map_input

ORDERS = ("order_ref", "sku", "units", "ordered_at", "amount", "client")


def test_configured_columns_and_same_named_ones_are_taken():
    mapping = map_columns(
        {"customer_id": "client", "invoice_date": "ordered_at", "line_amount": "amount"},
        (*ORDERS, "quantity", "country"),
        "orders.csv",
    )
    assert dict(mapping.columns) == {
        "customer_id": "client",
        "invoice_date": "ordered_at",
        "line_amount": "amount",
        "quantity": "quantity",
        "country": "country",
    }
    assert mapping.absent == ("invoice_id", "product_id", "description", "unit_price")
    described = mapping.describe()
    assert list(described["columns"]) == ["quantity", "invoice_date", "line_amount", "customer_id", "country"]
    assert set(described["absent"]) == {"invoice_id", "product_id", "description", "unit_price"}
    assert "one invoice per customer and timestamp" in described["absent"]["invoice_id"]


def test_a_source_column_already_mapped_is_not_taken_again_by_name():
    mapping = map_columns(
        {"customer_id": "quantity", "invoice_date": "d", "unit_price": "p"}, ("quantity", "d", "p"), "x"
    )
    assert not mapping.has("quantity") and mapping.columns["customer_id"] == "quantity"


def test_a_mapped_column_the_input_lacks_is_named_with_the_columns_found():
    with pytest.raises(
        InputError,
        match=r"orders.csv: column 'cust' \(mapped to customer_id\) is not in the input; "
        r"columns found: order_ref, sku",
    ):
        map_columns({"customer_id": "cust"}, ORDERS, "orders.csv")


@pytest.mark.parametrize(
    ("found", "lacking"),
    [
        (("customer_id", "unit_price"), "no invoice_date"),
        (("invoice_date", "line_amount"), "no customer_id"),
        (("customer_id", "invoice_date", "quantity"), "no unit_price or line_amount"),
    ],
)
def test_the_required_columns_must_be_there(found, lacking):
    with pytest.raises(InputError, match=f"{lacking} column; map the input's columns with --columns"):
        map_columns({}, found, "log.parquet")


def _raw(spark, rows, ddl, fmt="parquet"):
    frame = spark.createDataFrame(rows, ddl)
    return RawInput(frame=frame, source_file=F.lit("test"), description="test", format=fmt)


def test_customer_ids_are_numbers_or_text_by_type_or_sample(spark):
    columns = {"customer_id": "c", "invoice_date": "d", "unit_price": "p"}
    numeric = _raw(spark, [(1.0, "2011-01-01", 1.0), (None, "2011-01-01", 2.0)], "c double, d string, p double")
    assert map_input(numeric, columns, customer_ids="auto").customer_ids == "number"
    numbers_as_text = _raw(
        spark,
        [("17850", "x", 1.0), ("17850.0", "x", 1.0), ("", "x", 1.0), (None, "x", 1.0)],
        "c string, d string, p double",
    )
    assert map_input(numbers_as_text, columns, customer_ids="auto").customer_ids == "number"
    text = _raw(
        spark, [("C-17850", "x", 1.0), ("17851", "x", 1.0), ("a@b.com", "x", 1.0)], "c string, d string, p double"
    )
    assert map_input(text, columns, customer_ids="auto").customer_ids == "text"
    assert map_input(text, columns, customer_ids="number").customer_ids == "number"  # as configured


def test_absent_columns_are_null_text_and_the_lines_keep_the_canonical_names(spark):
    raw = _raw(spark, [("C-1", "2011-01-01", 2.5)], "client string, day string, total double")
    mapped = map_input(
        raw, {"customer_id": "client", "invoice_date": "day", "line_amount": "total"}, customer_ids="text"
    )
    lines = mapped.lines(with_source=True)
    assert lines.columns == [
        "invoice_id",
        "product_id",
        "description",
        "quantity",
        "invoice_date",
        "unit_price",
        "line_amount",
        "customer_id",
        "country",
        "_corrupt_record",
        "source_file",
    ]
    row = lines.first()
    assert (row.customer_id, row.invoice_date, row.line_amount, row.quantity, row.source_file) == (
        "C-1",
        "2011-01-01",
        2.5,
        None,
        "test",
    )


def test_a_tables_typed_date_is_filtered_where_it_is_read(spark):
    rows = [("1", dt.datetime(2011, 6, 30, 23, 0), 1.0), ("2", dt.datetime(2011, 7, 1, 0, 0), 1.0)]
    table = _raw(spark, rows, "c string, ts timestamp, p double", fmt="table")
    columns = {"customer_id": "c", "invoice_date": "ts", "unit_price": "p"}
    mapped = map_input(table, columns, customer_ids="number", as_of=dt.date(2011, 6, 30))
    assert mapped.scan_filter == "ts < 2011-07-01"
    assert [r.customer_id for r in mapped.lines().collect()] == ["1"]
    files = map_input(
        _raw(spark, rows, "c string, ts timestamp, p double"),
        columns,
        customer_ids="number",
        as_of=dt.date(2011, 6, 30),
    )
    assert files.scan_filter is None and files.lines().count() == 2  # files: counted as after_as_of instead
