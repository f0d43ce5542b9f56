"""The study's rules and the order they are applied in: each Column -> Column rule on tiny data
with a null row, then every reason a line can get, first rule first."""

import datetime as dt

from chispa import assert_column_equality, assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import LineFormat, revenue_units, to_parsed_lines
from insiders_spark.cleaning.rules import (
    is_after,
    is_in,
    is_price_below,
    is_purchase,
    is_repeated_header,
    is_return,
    to_quarantine,
    with_reason,
)
from insiders_spark.core.config import CleaningConfig, dataset_columns
from insiders_spark.core.names import (
    AFTER_AS_OF,
    AMOUNT_OUT_OF_RANGE,
    EXCLUDED_COUNTRY,
    EXCLUDED_CUSTOMER,
    INVALID_CUSTOMER_ID,
    MALFORMED_LINE,
    MISSING_INVOICE,
    MISSING_PRODUCT,
    NON_NUMERIC_PRICE,
    NON_NUMERIC_QUANTITY,
    NON_PRODUCT_CODE,
    PRICE_BELOW_MINIMUM,
    REPEATED_HEADER,
    UNPARSABLE_TIMESTAMP,
)

RULES = CleaningConfig(
    min_unit_price=0.04,
    non_product_codes=("POST", "M"),
    excluded_countries=("Unspecified",),
    excluded_customers=("16446",),
)
# The study's export: its header names (a repeated header holds them), no line amount, ISO stamps.
STUDY_COLUMNS = dataset_columns("online_retail")
STUDY_FORMAT = LineFormat(columns=STUDY_COLUMNS, timestamp_format="yyyy-MM-dd HH:mm:ss")


def test_price_rule_keeps_the_minimum_itself(spark):
    df = spark.createDataFrame(
        [(0.04, False), (0.039, True), (0.0, True), (-11062.06, True), (2.55, False), (None, None)],
        "price double, expected boolean",
    ).withColumn("below", is_price_below(F.col("price"), 0.04))
    assert_column_equality(df, "below", "expected")


def test_membership_rules_are_case_sensitive_and_empty_lists_match_nothing(spark):
    df = spark.createDataFrame(
        [("POST", True, False), ("post", False, False), ("85123A", False, False), (None, None, False)],
        "code string, expected boolean, expected_empty boolean",
    ).select(
        "*",
        is_in(F.col("code"), ("POST", "M")).alias("listed"),
        is_in(F.col("code"), ()).alias("listed_empty"),
    )
    assert_column_equality(df, "listed", "expected")
    assert_column_equality(df, "listed_empty", "expected_empty")


def test_a_repeated_header_is_a_line_whose_every_field_is_its_column_name(spark):
    df = spark.createDataFrame(
        [
            ("InvoiceNo", "StockCode", "Quantity", True),
            (" InvoiceNo", "StockCode ", "Quantity", True),  # as a header with spaces writes it
            ("InvoiceNo", "85123A", "6", False),  # a real line whose invoice happens to read so
            ("invoiceno", "stockcode", "quantity", False),  # the header names are case-sensitive
            ("InvoiceNo", None, "Quantity", False),
            (None, None, None, False),
        ],
        "invoice string, code string, quantity string, expected boolean",
    ).withColumn(
        "header",
        is_repeated_header({"InvoiceNo": F.col("invoice"), "StockCode": F.col("code"), "Quantity": F.col("quantity")}),
    )
    assert_column_equality(df, "header", "expected")


def test_purchase_and_return_split_at_zero(spark):
    df = spark.createDataFrame(
        [(3, True, False), (0, True, False), (-1, False, True), (None, None, None)],
        "quantity long, purchase boolean, return_ boolean",
    ).select(
        "*",
        is_purchase(F.col("quantity")).alias("is_purchase"),
        is_return(F.col("quantity")).alias("is_return"),
    )
    assert_column_equality(df, "is_purchase", "purchase")
    assert_column_equality(df, "is_return", "return_")


def test_after_as_of_includes_the_whole_as_of_day(spark):
    df = spark.createDataFrame(
        [
            (dt.datetime(2011, 9, 9, 23, 59, 59), False),
            (dt.datetime(2011, 9, 10, 0, 0, 0), True),
            (dt.datetime(2011, 1, 1), False),
            (None, None),
        ],
        "ts timestamp, expected boolean",
    ).withColumn("after", is_after(F.col("ts"), dt.date(2011, 9, 9)))
    assert_column_equality(df, "after", "expected")


TYPED_DDL = (
    "invoice_id string, product_id string, description string, quantity long, invoice_date string, "
    "unit_price double, customer_id double, country string, _corrupt_record string, source_file string"
)
RAW_TEXT_DDL = (
    "invoice_id string, product_id string, description string, quantity string, invoice_date string, "
    "unit_price string, customer_id string, country string, _corrupt_record string, source_file string"
)


def _raw(spark, rows, ddl=RAW_TEXT_DDL):
    """The study's lines as the mapping gives them: its eight fields, line_amount absent (null)."""
    return spark.createDataFrame([(*row, None) for row in rows], ddl + ", line_amount string")


def _classified(raw, as_of=None):
    return raw.transform(to_parsed_lines, line_format=STUDY_FORMAT).transform(
        with_reason, rules=RULES, as_of=as_of, line_format=STUDY_FORMAT
    )


def _reasons(spark, rows, as_of=None):
    lines = _classified(_raw(spark, rows), as_of)
    return [r.reason for r in lines.orderBy("raw_invoice_id").select("reason").collect()]


def test_each_line_gets_the_first_rule_it_fails(spark):
    ok = ["2010-12-01 08:26:00", "2.55", "17850.0", "United Kingdom", None, "f.csv"]
    rows = [
        ("01", "85123A", "d", "6", *ok),
        ("02", "85123A", "d", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "United Kingdom", "01,x", "f.csv"),
        ("03", "85123A", "d", "6", "01/12/2010", "2.55", "17850.0", "United Kingdom", None, "f.csv"),
        ("04", "85123A", "d", "six", *ok),
        ("05", "85123A", "d", "6", "2010-12-01 08:26:00", "1,25", "17850.0", "United Kingdom", None, "f.csv"),
        ("06", "85123A", "d", "6", "2010-12-01 08:26:00", "2.55", "A17", "United Kingdom", None, "f.csv"),
        ("07", "POST", "d", "6", "2010-12-01 08:26:00", "0.0", "17850.0", "United Kingdom", None, "f.csv"),
        ("08", "POST", "d", "6", *ok),
        ("09", "85123A", "d", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "Unspecified", None, "f.csv"),
        ("10", "85123A", "d", "6", "2010-12-01 08:26:00", "2.55", "16446.0", "United Kingdom", None, "f.csv"),
        ("11", " ", "d", "6", *ok),
        ("12", "85123A", None, "6", "2010-12-01 08:26:00", "2.55", "", "United Kingdom", None, "f.csv"),
        ("13", "85123A", "d", "-2", "2011-01-02 10:00:00", "2.55", "17850.0", "United Kingdom", None, "f.csv"),
        (None, "85123A", "d", "6", *ok),
    ]
    assert _reasons(spark, rows, as_of=dt.date(2011, 1, 1)) == [
        MISSING_INVOICE,  # null invoice sorts first
        None,
        MALFORMED_LINE,
        UNPARSABLE_TIMESTAMP,
        NON_NUMERIC_QUANTITY,
        NON_NUMERIC_PRICE,
        INVALID_CUSTOMER_ID,
        PRICE_BELOW_MINIMUM,  # price comes before the stock code rule
        NON_PRODUCT_CODE,
        EXCLUDED_COUNTRY,
        EXCLUDED_CUSTOMER,
        MISSING_PRODUCT,
        None,  # a guest line (empty customer) with no description is fine
        AFTER_AS_OF,
    ]


def test_parquet_typed_fields_are_cast_not_parsed(spark):
    raw = _raw(
        spark,
        [
            ("536365", "85123A", "d", 6, "2010-12-01 08:26:00", 2.55, 17850.0, "United Kingdom", None, "p"),
            ("536366", "85123A", "d", 6, "2010-12-01 08:28:00", 2.55, None, "United Kingdom", None, "p"),
            ("536367", "85123A", "d", 6, "2010-12-01 08:28:00", 2.55, 17850.5, "United Kingdom", None, "p"),
        ],
        TYPED_DDL,
    )
    lines = _classified(raw)
    got = lines.select("invoice_id", "quantity", "unit_price", "customer_id", "reason")
    expected = spark.createDataFrame(
        [
            ("536365", 6, 2.55, 17850, None),
            ("536366", 6, 2.55, None, None),
            ("536367", 6, 2.55, None, INVALID_CUSTOMER_ID),
        ],
        "invoice_id string, quantity long, unit_price double, customer_id long, reason string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def _scanned_columns(frame):
    """The columns the parquet scans under ``frame`` read (after Spark's column pruning)."""
    leaves = frame._jdf.queryExecution().sparkPlan().collectLeaves()
    return {name for i in range(leaves.length()) for name in leaves.apply(i).requiredSchema().fieldNames()}


def test_a_typed_input_has_no_header_lines_and_its_description_is_not_read(spark, tmp_path):
    """With a typed column no line can repeat the header, so classifying the lines reads only what
    the other rules need: the description stays on disk. With text fields it is read and checked."""
    headers = list(STUDY_COLUMNS.values())  # the header's names, in the columns' order below
    typed = _raw(spark, [(*headers[:3], 6, "2010-12-01 08:26:00", 2.55, 17850.0, headers[7], None, "p")], TYPED_DDL)
    text = _raw(spark, [(*headers, None, "f.csv")])
    for frame, folder in ((typed, "typed"), (text, "text")):
        frame.write.parquet(str(tmp_path / folder))

    def classified(folder):
        return _classified(spark.read.parquet(str(tmp_path / folder))).select("reason")

    assert [r.reason for r in classified("typed").collect()] == [None]
    assert "description" not in _scanned_columns(classified("typed"))
    assert [r.reason for r in classified("text").collect()] == [REPEATED_HEADER]
    assert "description" in _scanned_columns(classified("text"))


def test_non_finite_prices_and_ids_are_quarantined_not_billed_or_crashing(spark):
    """NaN and infinities (as text or stored in parquet), and ids past 2^53, are not numbers the
    job can use: each gets its reason, and none fails the job (``floor`` of 1e300 overflows a long
    under ANSI mode)."""
    ok = ("2010-12-01 08:26:00",)
    text_rows = [
        ("01", "85123A", "d", "6", *ok, "NaN", "17850", "United Kingdom", None, "f.csv"),
        ("02", "85123A", "d", "6", *ok, "Infinity", "17850", "United Kingdom", None, "f.csv"),
        ("03", "85123A", "d", "6", *ok, "-Infinity", "17850", "United Kingdom", None, "f.csv"),
        ("04", "85123A", "d", "6", *ok, "2.55", "NaN", "United Kingdom", None, "f.csv"),
        ("05", "85123A", "d", "6", *ok, "2.55", "Infinity", "United Kingdom", None, "f.csv"),
        ("06", "85123A", "d", "6", *ok, "2.55", "1e300", "United Kingdom", None, "f.csv"),
        ("07", "85123A", "d", "6", *ok, "2.55", "9007199254740993", "United Kingdom", None, "f.csv"),
    ]
    assert _reasons(spark, text_rows, as_of=None) == [NON_NUMERIC_PRICE] * 3 + [INVALID_CUSTOMER_ID] * 4
    nan, inf = float("nan"), float("inf")
    typed = _raw(
        spark,
        [
            ("1", "85123A", "d", 6, *ok, nan, 17850.0, "United Kingdom", None, "p"),
            ("2", "85123A", "d", 6, *ok, -inf, 17850.0, "United Kingdom", None, "p"),
            ("3", "85123A", "d", 6, *ok, 2.55, nan, "United Kingdom", None, "p"),
            ("4", "85123A", "d", 6, *ok, 2.55, inf, "United Kingdom", None, "p"),
            ("5", "85123A", "d", 6, *ok, 2.55, 1e300, "United Kingdom", None, "p"),
        ],
        TYPED_DDL,
    )
    reasons = _classified(typed).orderBy("invoice_id").select("reason")
    assert [r.reason for r in reasons.collect()] == [NON_NUMERIC_PRICE] * 2 + [INVALID_CUSTOMER_ID] * 3


def test_amounts_past_the_exact_revenue_range_are_quarantined_not_crashing(spark):
    """A quantity past 1e9, a price or a line amount past 1e10: each would overflow the revenue's
    64-bit 1/10,000 units and fail the job (ANSI mode); the limits themselves are still sales."""
    ok = ("2010-12-01 08:26:00",)
    rows = [
        ("01", "85123A", "d", "1000000000", *ok, "10", "17850", "United Kingdom", None, "f.csv"),  # 1e10: at the limit
        ("02", "85123A", "d", "1000000001", *ok, "0.05", "17850", "United Kingdom", None, "f.csv"),  # quantity
        ("03", "85123A", "d", "1", *ok, "1e15", "17850", "United Kingdom", None, "f.csv"),  # price
        ("04", "85123A", "d", "0", *ok, "2e10", "17850", "United Kingdom", None, "f.csv"),  # price, no amount
        ("05", "85123A", "d", "-2000000", *ok, "5001", "17850", "United Kingdom", None, "f.csv"),  # amount
        ("06", "85123A", "d", "9223372036854775807", *ok, "2.55", "17850", "United Kingdom", None, "f.csv"),
        ("07", "85123A", "d", "10000000000000000000", *ok, "2.55", "17850", "United Kingdom", None, "f.csv"),  # > long
        ("08", "85123A", "d", "-1e30", *ok, "2.55", "17850", "United Kingdom", None, "f.csv"),
    ]
    out = AMOUNT_OUT_OF_RANGE
    assert _reasons(spark, rows, as_of=None) == [None, out, out, out, out, out, out, out]
    typed = _raw(
        spark,
        [
            ("1", "85123A", "d", 9_000_000_000_000_000_000, *ok, 2.55, 17850.0, "United Kingdom", None, "p"),
            ("2", "85123A", "d", 3, *ok, 4e10, 17850.0, "United Kingdom", None, "p"),
        ],
        TYPED_DDL,
    )
    lines = _classified(typed)
    assert [r.reason for r in lines.orderBy("invoice_id").select("reason").collect()] == [out, out]
    # at the limit, the line's revenue in 1/10,000 units is exact: 1e9 x 10 x 10,000
    at_limit = _raw(spark, rows[:1]).transform(to_parsed_lines, line_format=STUDY_FORMAT)
    units = at_limit.select(revenue_units(F.col("quantity"), F.col("unit_price"), None).alias("units")).first()
    assert units.units == 10**14 == at_limit.first().revenue_units


def test_the_revenue_of_a_price_past_the_range_is_null_not_an_overflow(spark):
    ok = ("2010-12-01 08:26:00",)
    rows = [("03", "85123A", "d", "1", *ok, "1e15", "17850", "United Kingdom", None, "f.csv")]
    lines = _classified(_raw(spark, rows))
    assert [(r.revenue_units, r.reason) for r in lines.select("revenue_units", "reason").collect()] == [
        (None, AMOUNT_OUT_OF_RANGE)
    ]


def test_quarantine_keeps_raw_text_file_and_reason_but_not_later_lines(spark):
    raw = _raw(
        spark,
        [
            ("1", "X", "d", "6", "2010-12-01 08:26:00", "1,25", "17850.0", "UK", None, "a.csv"),
            ("2", "X", "d", "6", "2011-12-01 08:26:00", "2.5", "17850.0", "UK", None, "b.csv"),
            ("3", "X", "d", "6", "2010-12-01 08:26:00", "2.5", "17850.0", "UK", None, "c.csv"),
        ],
        RAW_TEXT_DDL,
    )
    quarantine = _classified(raw, as_of=dt.date(2011, 1, 1)).transform(to_quarantine)
    expected = spark.createDataFrame(
        [("1", "X", "d", "6", "2010-12-01 08:26:00", "1,25", None, "17850.0", "UK", None, "a.csv", NON_NUMERIC_PRICE)],
        "invoice_id string, product_id string, description string, quantity string, invoice_date string, "
        "unit_price string, line_amount string, customer_id string, country string, raw_line string, "
        "source_file string, reason string",
    )
    assert_df_equality(quarantine, expected, ignore_nullable=True)


def test_a_fractional_parquet_quantity_is_checked_like_text_not_truncated(spark):
    """A pandas export stores a quantity column with gaps as float64: 6.0 is a quantity, 6.5, NaN
    and the infinities are not (not silently cut to 6, nor failing the job), 1e19 is out of range."""
    ok = ("2010-12-01 08:26:00",)
    rows = [
        (str(i), "85123A", "d", quantity, *ok, 2.55, 17850.0, "United Kingdom", None, "p")
        for i, quantity in enumerate([6.0, 6.5, float("nan"), float("inf"), -float("inf"), 1e19, -3.0, None])
    ]
    typed = _raw(
        spark,
        rows,
        TYPED_DDL.replace("quantity long", "quantity double"),
    )
    lines = _classified(typed)
    got = [(r.quantity, r.reason) for r in lines.orderBy("invoice_id").select("quantity", "reason").collect()]
    bad = NON_NUMERIC_QUANTITY
    assert got == [
        (6, None),
        (None, bad),
        (None, bad),
        (None, bad),
        (None, bad),
        (10**18, AMOUNT_OUT_OF_RANGE),
        (-3, None),
        (None, bad),
    ]
