"""Parsing: canonical raw fields (text or typed) -> typed lines, keeping the raw fields.

A value that does not parse becomes null here; ``cleaning.rules`` says why the line is set aside.
Every parser is Column -> Column.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import (
    CANONICAL_COLUMNS,
    CORRUPT_RECORD,
    COUNTRY,
    CUSTOMER_ID,
    DESCRIPTION,
    INVOICE_DATE,
    INVOICE_ID,
    INVOICE_TS,
    LINE_AMOUNT,
    NUMBER_IDS,
    PRODUCT_ID,
    QUANTITY,
    REVENUE_UNITS,
    SOURCE_CUSTOMER_ID,
    SOURCE_FILE,
    TEXT_IDS,
    UNIT_PRICE,
)


@dataclass(frozen=True)
class LineFormat:
    """How an input's lines read: the canonical columns it has (and each one's source name, which a
    repeated header line holds), its kind of customer ids, and its timestamp pattern."""

    columns: Mapping[str, str] = field(default_factory=lambda: {name: name for name in CANONICAL_COLUMNS})
    customer_ids: str = NUMBER_IDS
    timestamp_format: str = "auto"

    def has(self, name: str) -> bool:
        return name in self.columns


EVERY_COLUMN = LineFormat()  # every canonical column, by its own name: the tests' and studies' default


HAS_CUSTOMER_VALUE = "has_customer_value"  # the raw customer field was not empty
RAW_PREFIX = "raw_"  # the line's original fields, as read, for quarantine and replay
RAW_LINE = "raw_line"  # a CSV or JSON line that did not split into the columns


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


AUTO_TIMESTAMPS = "auto"  # ISO 8601 text (a date, a time, a 'T', a zone), or epoch seconds or milliseconds
EPOCH_MILLIS_ABOVE = 10**11  # a number past this is epoch milliseconds (10^11 s is the year 5138)


def parse_timestamp(text: Column, pattern: str) -> Column:
    """Text -> timestamp by the Spark datetime ``pattern`` (date-only patterns too: ``yyyyMMdd``,
    ``dd/MM/yyyy``); null when it does not match. ``auto``: ISO 8601 text as Spark casts it
    (``2011-12-09 12:50:00``, ``2011-12-09T12:50:00Z``, ``2011-12-09``, ``... 00:00:00 UTC``).

    For ``yyyy-MM-dd HH:mm:ss`` a plain cast (much cheaper than a pattern parser), guarded by the
    pattern's shape as a regular expression, accepts exactly what the pattern accepts
    (docs/performance.md has the measurements).
    """
    value = blank_to_null(text)
    if pattern == ISO_SECONDS:
        return F.when(value.rlike(ISO_SECONDS_SHAPE), value.try_cast(T.TimestampType()))
    if pattern == AUTO_TIMESTAMPS:
        return value.try_cast(T.TimestampType())
    return F.try_to_timestamp(value, F.lit(pattern))


def to_timestamp(frame: DataFrame, name: str, pattern: str) -> Column:
    """``name`` as a timestamp: a timestamp or date column as it is, a numeric one as epoch seconds
    (or milliseconds, past ``EPOCH_MILLIS_ABOVE``), text by ``pattern``."""
    data_type = frame.schema[name].dataType
    column = F.col(name)
    if isinstance(data_type, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        return column.cast(T.TimestampType())
    if isinstance(data_type, T.NumericType):
        number = column.cast(T.DoubleType())
        seconds = F.when(F.abs(number) > F.lit(EPOCH_MILLIS_ABOVE), number / 1000).otherwise(number)
        return F.when(F.abs(seconds) < F.lit(EPOCH_MILLIS_ABOVE), F.timestamp_seconds(seconds))
    return parse_timestamp(column.cast(T.StringType()), pattern)


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


def customer_key(text: Column) -> Column:
    """A text customer id's number: 63 bits of its hash, positive (``customer_ids = "text"``)."""
    return F.pmod(F.xxhash64(text), F.lit(MAX_TEXT_KEY)) + F.lit(1)


MAX_TEXT_KEY = (1 << 63) - 1
AMOUNT_TOLERANCE = 0.005  # line_amount and unit_price x quantity disagree past half a cent
AMOUNTS_DISAGREE = "amounts_disagree"
REVENUE_SCALE = 10_000  # revenue is summed exactly, in 1/10,000 of the currency unit


def round_half_up(value: Column) -> Column:
    """A double rounded to a whole number (a double), halves away from zero: ``ROUND(x, 0)``.

    ``F.round`` of a double goes through ``BigDecimal.valueOf``, i.e. prints the double as text, per
    line. Here: the whole part, plus one when the fraction (``x - floor(x)``, exact in floating
    point) is at least a half. A double never prints as an exact half unless it is one, so both agree
    everywhere (``floor(x + 0.5)`` does not: 0.49999999999999994 + 0.5 rounds to 1.0).
    """

    def away_from_zero(positive: Column) -> Column:
        # x - fmod(x, 1) is floor(x), exactly, as a double: F.floor gives a long, which overflows
        # (an error under ANSI) past 2^63 where the caller's try_cast gives null instead
        fraction = F.pmod(positive, F.lit(1.0))
        whole = positive - fraction
        return F.when(fraction >= F.lit(0.5), whole + F.lit(1.0)).otherwise(whole)

    return F.when(value >= 0, away_from_zero(value)).otherwise(-away_from_zero(-value))


def revenue_units(quantity: Column, unit_price: Column, line_amount: Column | None) -> Column:
    """A line's revenue as a whole number of 1/10,000 currency units: ``line_amount`` when the log has
    it, else ``quantity`` times the price rounded to those units.

    Sums of these are exact, so a customer's revenue does not depend on the order Spark adds the
    lines in, and a rerun gives the same bits. Past a long's range (a line the rules set aside as
    ``amount_out_of_range``) the result is null instead of an overflow that would stop the job.
    """
    scale = F.lit(REVENUE_SCALE)
    if line_amount is not None:
        return round_half_up(line_amount * scale).try_cast(T.LongType())
    return F.try_multiply(quantity.cast(T.LongType()), round_half_up(unit_price * scale).try_cast(T.LongType()))


def to_parsed_lines(raw: DataFrame, *, line_format: LineFormat = EVERY_COLUMN) -> DataFrame:
    """Canonical raw fields (text from CSV and JSON, typed from parquet, ORC and tables) -> typed
    lines, keeping the raw fields. A value that does not parse becomes null here;
    ``cleaning.rules.with_reason`` says why.

    The columns ``line_format`` says the input lacks are derived as ``core.names.ABSENT_EFFECTS``
    says. Customer ids are numbers (a positive whole number, else an invalid id) or text (any text,
    numbered by ``customer_key``), as ``line_format.customer_ids`` says.
    """
    has = frozenset(line_format.columns)
    customer_ids, timestamp_format = line_format.customer_ids, line_format.timestamp_format
    amount = finite_number(_typed(raw, LINE_AMOUNT, parse_number, _as_double)) if LINE_AMOUNT in has else None
    if QUANTITY in has:
        quantity = _typed(raw, QUANTITY, parse_whole_number, _typed_quantity(raw))
    elif amount is not None:
        quantity = F.when(amount < 0, F.lit(-1)).otherwise(F.lit(1)).cast(T.LongType())  # a refund: one item back
    else:
        quantity = F.lit(1).cast(T.LongType())
    if UNIT_PRICE in has:
        price = finite_number(_typed(raw, UNIT_PRICE, parse_number, _as_double))
    elif QUANTITY in has:
        price = F.when(quantity != 0, amount / quantity)
    else:
        price = F.abs(amount)
    customer_text = blank_to_null(F.col(CUSTOMER_ID).cast(T.StringType()))
    if customer_ids == TEXT_IDS:
        customer_id, source_id = F.when(customer_text.isNotNull(), customer_key(customer_text)), customer_text
    else:
        number = customer_text.try_cast(T.DoubleType()) if _is_text(raw, CUSTOMER_ID) else F.col(CUSTOMER_ID)
        customer_id = to_customer_id(number.cast(T.DoubleType()))
        source_id = customer_id.cast(T.StringType())
    if INVOICE_ID in has:
        invoice = blank_to_null(F.col(INVOICE_ID).cast(T.StringType()))
    else:  # one invoice per customer and timestamp (never null: a missing timestamp is its own reason)
        invoice = F.concat_ws(
            "|", F.coalesce(customer_text, F.lit("")), F.coalesce(F.col(INVOICE_DATE).cast("string"), F.lit(""))
        )
    disagree = F.lit(False)
    if amount is not None and UNIT_PRICE in has and QUANTITY in has:
        disagree = F.coalesce(F.abs(amount - price * quantity) > F.lit(AMOUNT_TOLERANCE), F.lit(False))
    return raw.select(
        invoice.alias(INVOICE_ID),
        blank_to_null(F.col(PRODUCT_ID).cast(T.StringType())).alias(PRODUCT_ID),
        F.col(DESCRIPTION).cast(T.StringType()).alias(DESCRIPTION),
        quantity.alias(QUANTITY),
        to_timestamp(raw, INVOICE_DATE, timestamp_format).alias(INVOICE_TS),
        price.alias(UNIT_PRICE),
        (amount if amount is not None else F.lit(None).cast(T.DoubleType())).alias(LINE_AMOUNT),
        revenue_units(quantity, price, amount).alias(REVENUE_UNITS),
        customer_id.alias(CUSTOMER_ID),
        source_id.alias(SOURCE_CUSTOMER_ID),
        F.trim(F.col(COUNTRY).cast(T.StringType())).alias(COUNTRY),
        customer_text.isNotNull().alias(HAS_CUSTOMER_VALUE),
        disagree.alias(AMOUNTS_DISAGREE),
        *[F.col(name).alias(f"{RAW_PREFIX}{name}") for name in CANONICAL_COLUMNS],
        F.col(CORRUPT_RECORD).alias(RAW_LINE),
        *([F.col(SOURCE_FILE)] if SOURCE_FILE in raw.columns else []),
    )
