"""Parsing: raw fields (text from CSV, typed from parquet) -> typed lines, keeping the raw fields.

A value that does not parse becomes null here; ``cleaning.rules`` says why the line is set aside.
Every parser is Column -> Column.
"""

from __future__ import annotations

import sys

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import (
    CORRUPT_RECORD,
    COUNTRY,
    CUSTOMER_ID,
    DESCRIPTION,
    INVOICE_NO,
    INVOICE_TS,
    QUANTITY,
    RAW_TO_COLUMN,
    SOURCE_FILE,
    STOCK_CODE,
    UNIT_PRICE,
)

HAS_CUSTOMER_VALUE = "has_customer_value"  # the raw customer field was not empty
RAW_PREFIX = "raw_"  # the line's original fields, as read, for quarantine and replay
RAW_LINE = "raw_line"  # a CSV line that did not split into the header's columns


# --- parsing: raw value -> typed value (null when it does not parse) --------------------------


def blank_to_null(text: Column) -> Column:
    trimmed = F.trim(text)
    return F.when(trimmed != "", trimmed)


MAX_WHOLE_NUMBER = 10**18  # under the long range (about 9.2e18), far past any real quantity


def to_whole_number(number: Column) -> Column:
    """A whole number as a long; 6.5, NaN and the infinities -> null (not a quantity).

    Beyond ±10^18 every number is whole but would not fit a long (the cast fails the whole job
    under ANSI mode): it is held at ±10^18, far past ``MAX_LINE_QUANTITY``, so the line is
    quarantined as ``amount_out_of_range`` with its raw text kept. The finiteness check comes first
    (NaN is above every number in Spark, so it would pass as "beyond").
    """
    limit = F.lit(MAX_WHOLE_NUMBER)
    finite = F.abs(number.cast(T.DoubleType())) <= F.lit(sys.float_info.max)
    whole = (
        F.when(number >= limit, limit.cast(T.LongType()))
        .when(number <= -limit, (-limit).cast(T.LongType()))
        .when(number == F.floor(number), number.cast(T.LongType()))
    )
    return F.when(finite, whole)


def parse_whole_number(text: Column) -> Column:
    """'6' -> 6; '6.0' -> 6; '6.5', '5.9999999', 'six', '' -> null; '1e30' -> 10^18 (see
    ``to_whole_number``). The decimal keeps 6 places, so a text it had to round ('5.9999999' to 6)
    is not whole: it is checked against the same text read as a double (as a parquet double is)."""
    value = blank_to_null(text)
    number = value.try_cast(T.DecimalType(38, 6))
    unrounded = number.cast(T.DoubleType()) == value.try_cast(T.DoubleType())
    return F.when(unrounded, to_whole_number(number))


def parse_number(text: Column) -> Column:
    """'2.55' -> 2.55; '1,25', 'n/a', '' -> null (a decimal comma is not guessed at)."""
    return blank_to_null(text).try_cast(T.DoubleType())


ISO_SECONDS = "yyyy-MM-dd HH:mm:ss"  # the published file's pattern: a fast, equally strict path
ISO_SECONDS_SHAPE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\z"  # its text, as a regex (\z: no line end)
)


def parse_timestamp(text: Column, pattern: str) -> Column:
    """Text -> timestamp by the Spark datetime ``pattern``; null when it does not match.

    For ``yyyy-MM-dd HH:mm:ss`` a plain cast (much cheaper than a pattern parser), guarded by the
    pattern's shape as a regular expression, accepts what the pattern accepts. Measured on 10M
    timestamps (JVM CPU seconds): the cast alone 1.6-2.2, with this guard 5.6-5.8, with five
    ``substring`` checks 6.5-7.5, with ``translate`` (a hash lookup per character) 10.1-10.5, the
    pattern parser 7.8-9.3.
    """
    value = blank_to_null(text)
    if pattern == ISO_SECONDS:
        return F.when(value.rlike(ISO_SECONDS_SHAPE), value.try_cast(T.TimestampType()))
    return F.try_to_timestamp(value, F.lit(pattern))


MAX_CUSTOMER_ID = 2.0**53  # every whole number below it is exact in a double


def to_customer_id(number: Column) -> Column:
    """A customer id is a positive whole number (17850 or 17850.0); anything else is not one.

    NaN, infinities and numbers past 2^53 are not ids; the range is checked before ``floor``,
    which fails the whole job past the long range under ANSI mode (NaN is above every number in
    Spark, so ``NaN > 0`` holds and only the upper bound stops it).
    """
    in_range = (number > 0) & (number < F.lit(MAX_CUSTOMER_ID))
    return F.when(in_range, F.when(number == F.floor(number), number.cast(T.LongType())))


def finite_number(number: Column) -> Column:
    """The number, or null for NaN and the infinities (parsed from "NaN"/"Infinity", or stored in
    parquet): a price that is not a number must not be billed, nor pass ``price < minimum``
    (false for NaN in Spark)."""
    return F.when(F.abs(number) <= F.lit(sys.float_info.max), number)


def parse_customer_id(text: Column) -> Column:
    return to_customer_id(blank_to_null(text).try_cast(T.DoubleType()))


def _is_text(frame: DataFrame, name: str) -> bool:
    return isinstance(frame.schema[name].dataType, T.StringType)


def _typed(frame: DataFrame, name: str, text_parser, typed_parser) -> Column:
    """Parse ``name`` from text, or check it when the source (parquet) already typed it."""
    column = F.col(name)
    return text_parser(column) if _is_text(frame, name) else typed_parser(column)


def _as_double(number: Column) -> Column:
    return number.cast(T.DoubleType())


def _typed_quantity(frame: DataFrame):
    """Whole-number types are already quantities; a fractional type (a pandas export stores a
    column with gaps as float64) is checked like text, so 6.5 or NaN is not silently cut to 6."""
    if isinstance(frame.schema[QUANTITY].dataType, T.IntegralType):
        return lambda number: number.cast(T.LongType())
    return to_whole_number


def to_parsed_lines(raw: DataFrame, *, timestamp_format: str) -> DataFrame:
    """Raw fields (text from CSV, typed from parquet) -> typed lines, keeping the raw fields.

    A value that does not parse becomes null here; :func:`with_reason` says why.
    """
    timestamp_text = F.col("invoice_date")
    if isinstance(raw.schema["invoice_date"].dataType, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        invoice_ts = timestamp_text.cast(T.TimestampType())
    else:
        invoice_ts = parse_timestamp(timestamp_text.cast(T.StringType()), timestamp_format)
    if _is_text(raw, CUSTOMER_ID):
        has_customer = blank_to_null(F.col(CUSTOMER_ID)).isNotNull()
        customer_id = parse_customer_id(F.col(CUSTOMER_ID))
    else:
        has_customer = F.col(CUSTOMER_ID).isNotNull()
        customer_id = to_customer_id(F.col(CUSTOMER_ID).cast(T.DoubleType()))
    return raw.select(
        blank_to_null(F.col(INVOICE_NO).cast(T.StringType())).alias(INVOICE_NO),
        blank_to_null(F.col(STOCK_CODE).cast(T.StringType())).alias(STOCK_CODE),
        F.col(DESCRIPTION).cast(T.StringType()).alias(DESCRIPTION),
        _typed(raw, QUANTITY, parse_whole_number, _typed_quantity(raw)).alias(QUANTITY),
        invoice_ts.alias(INVOICE_TS),
        finite_number(_typed(raw, UNIT_PRICE, parse_number, _as_double)).alias(UNIT_PRICE),
        customer_id.alias(CUSTOMER_ID),
        F.trim(F.col(COUNTRY).cast(T.StringType())).alias(COUNTRY),
        has_customer.alias(HAS_CUSTOMER_VALUE),
        *[F.col(name).alias(f"{RAW_PREFIX}{name}") for name in RAW_TO_COLUMN.values()],
        F.col(CORRUPT_RECORD).alias(RAW_LINE),
        *([F.col(SOURCE_FILE)] if SOURCE_FILE in raw.columns else []),
    )
