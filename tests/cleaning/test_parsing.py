"""Parsing raw fields into typed values: each parser is Column -> Column, checked on tiny data
with a null row; a value that does not parse becomes null (the rules then say why)."""

import datetime as dt

import pytest
from chispa import assert_column_equality
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import (
    ISO_SECONDS,
    parse_customer_id,
    parse_number,
    parse_timestamp,
    parse_whole_number,
)


def test_parse_whole_number(spark):
    df = spark.createDataFrame(
        [
            ("6", 6),
            (" 12 ", 12),
            ("6.0", 6),
            ("-3", -3),
            ("6.5", None),
            ("six", None),
            ("", None),
            (None, None),
            ("5.9999999", None),
            ("6.0000001", None),
            ("6.000000", 6),
            ("12345678901234567", 12345678901234567),
        ],
        "text string, expected long",
    ).withColumn("parsed", parse_whole_number(F.col("text")))
    assert_column_equality(df, "parsed", "expected")


def test_parse_number_does_not_guess_a_decimal_comma(spark):
    df = spark.createDataFrame(
        [("2.55", 2.55), ("-11062.06", -11062.06), ("1,25", None), ("n/a", None), (" ", None), (None, None)],
        "text string, expected double",
    ).withColumn("parsed", parse_number(F.col("text")))
    assert_column_equality(df, "parsed", "expected")


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("yyyy-MM-dd HH:mm:ss", "2010-12-01 08:26:00"),
        ("M/d/yyyy H:mm", "12/1/2010 8:26"),
        ("d-MMM-yy", "1-Dec-10"),
    ],
)
def test_parse_timestamp_in_each_published_format(spark, pattern, text):
    expected = dt.datetime(2010, 12, 1, 8, 26) if "H" in pattern else dt.datetime(2010, 12, 1)
    df = spark.createDataFrame(
        [(text, expected), ("not a date", None), (None, None)], "text string, expected timestamp"
    ).withColumn("parsed", parse_timestamp(F.col("text"), pattern))
    assert_column_equality(df, "parsed", "expected")


def test_iso_fast_path_accepts_exactly_what_the_pattern_accepts(spark):
    """The cast behind ``yyyy-MM-dd HH:mm:ss`` against Spark's pattern parser on near misses."""
    texts = [
        "2010-12-01 08:26:00",
        " 2010-12-01 08:26:00 ",
        "2010-12-01T08:26:00",
        "2010-12-1 08:26:00",
        "2010-12-01 8:26:00",
        "2010-12-01 08:26",
        "2010-12-01",
        "2010-12-01 08:26:00.5",
        "2010-02-30 08:26:00",
        "2010-12-01 24:00:00",
        "2010/12/01 08:26:00",
        "2010-12-01 08:26:0a",
        "+010-12-01 08:26:00",
        "20101-12-01 08:26:00",
        "2010-12-01 08:26:00Z",
        "2010-12-01 08:26:00\n",
        "2010-12-01\t08:26:00",
        "",
        None,
    ]
    df = spark.createDataFrame([(t,) for t in texts], "text string").select(
        parse_timestamp(F.col("text"), ISO_SECONDS).alias("fast"),
        F.try_to_timestamp(F.trim(F.col("text")), F.lit(ISO_SECONDS)).alias("pattern"),
    )
    assert_column_equality(df, "fast", "pattern")


def test_parse_customer_id(spark):
    df = spark.createDataFrame(
        [
            ("17850", 17850),
            ("17850.0", 17850),
            ("17850.5", None),
            ("-4", None),
            ("0", None),
            ("abc", None),
            (None, None),
        ],
        "text string, expected long",
    ).withColumn("parsed", parse_customer_id(F.col("text")))
    assert_column_equality(df, "parsed", "expected")
