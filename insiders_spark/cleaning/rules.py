"""The quality rules: every line ends with a ``reason``, null when it is kept.

A line's reason is the first rule it fails, in the order of ``core.names.RULE_ORDER``. Parsing
problems come first (the line cannot be trusted at all), then the as-of window, then the business
rules of ``[cleaning]``. Rules are Column -> Column predicates so each is readable and testable on
its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.parsing import EVERY_COLUMN, HAS_CUSTOMER_VALUE, RAW_LINE, RAW_PREFIX, LineFormat
from insiders_spark.core.config import CleaningConfig
from insiders_spark.core.names import (
    AFTER_AS_OF,
    AMOUNT_OUT_OF_RANGE,
    CANONICAL_COLUMNS,
    COUNTRY,
    CUSTOMER_ID,
    EXCLUDED_COUNTRY,
    EXCLUDED_CUSTOMER,
    INVALID_CUSTOMER_ID,
    INVOICE_ID,
    INVOICE_TS,
    LINE_AMOUNT,
    MALFORMED_LINE,
    MISSING_INVOICE,
    MISSING_PRODUCT,
    NON_NUMERIC_AMOUNT,
    NON_NUMERIC_PRICE,
    NON_NUMERIC_QUANTITY,
    NON_PRODUCT_CODE,
    PRICE_BELOW_MINIMUM,
    PRODUCT_ID,
    QUANTITY,
    QUARANTINE_REASONS,
    REASON,
    REPEATED_HEADER,
    SOURCE_CUSTOMER_ID,
    SOURCE_FILE,
    TEXT_IDS,
    UNIT_PRICE,
    UNPARSABLE_TIMESTAMP,
)

# --- rules: Column -> Column predicates ------------------------------------------------------


def is_malformed(raw_line: Column) -> Column:
    return raw_line.isNotNull()


def is_repeated_header(raw_fields: dict[str, Column]) -> Column:
    """A line that repeats the header: drops joined with their headers (``cat day1.csv day2.csv``).

    ``raw_fields`` maps each required column's name to the line's field for it, as read; the line
    is a header when every one holds its column's name (spaces around it allowed, as in a header).
    A typed parquet column never holds its name, so only text fields can match.
    """
    matches = [F.trim(field.cast(T.StringType())) == F.lit(name) for name, field in raw_fields.items()]
    result = matches[0]
    for match in matches[1:]:
        result = result & match
    return F.coalesce(result, F.lit(False))


def is_missing(value: Column) -> Column:
    return value.isNull()


def is_invalid_customer_id(customer_id: Column, has_customer_value: Column) -> Column:
    """A customer field that holds something which is not a positive whole number."""
    return has_customer_value & customer_id.isNull()


# No real sale comes near these; the exact revenue sums (1/10,000 currency units in 64 bits,
# cleaning.parsing.revenue_units) hold a customer's lines up to them with room to spare.
MAX_LINE_QUANTITY = 1e9
MAX_LINE_AMOUNT = 1e10  # currency units, for the price and for a line's amount


def is_amount_out_of_range(quantity: Column, unit_price: Column, line_amount: Column | None = None) -> Column:
    """A quantity, price or line amount too large to be a sale, checked in floating point (which
    cannot overflow): past these, the revenue in 1/10,000 units would not fit a 64-bit integer."""
    quantity_size = F.abs(quantity.cast(T.DoubleType()))
    price_size = F.abs(unit_price)
    out = (
        (quantity_size > F.lit(MAX_LINE_QUANTITY))
        | (price_size > F.lit(MAX_LINE_AMOUNT))
        | (quantity_size * price_size > F.lit(MAX_LINE_AMOUNT))
    )
    return out if line_amount is None else out | (F.abs(line_amount) > F.lit(MAX_LINE_AMOUNT))


def is_after(invoice_ts: Column, as_of: dt.date) -> Column:
    return invoice_ts >= F.lit(as_of + dt.timedelta(days=1)).cast(T.TimestampType())


def is_price_below(unit_price: Column, minimum: float) -> Column:
    return unit_price < F.lit(minimum)


def is_in(value: Column, values: Sequence) -> Column:
    return value.isin(list(values)) if values else F.lit(False)


def is_return(quantity: Column) -> Column:
    return quantity < 0


def is_purchase(quantity: Column) -> Column:
    return quantity >= 0


def can_hold_a_header(schema: T.StructType, columns: Collection[str]) -> bool:
    """Whether a line of this input could repeat the header: only when every raw field is text.

    A typed column (a parquet quantity of longs) never holds its name, so no line of such an input
    is a header, and the check, which reads every raw field, the description too, is left out of
    the plan: the read + aggregation then does not decode a column it never uses.
    """
    return all(isinstance(schema[f"{RAW_PREFIX}{name}"].dataType, T.StringType) for name in columns)


def _excluded_customer(rules: CleaningConfig, line_format: LineFormat) -> Column:
    if line_format.customer_ids == TEXT_IDS:
        return is_in(F.col(SOURCE_CUSTOMER_ID), rules.excluded_customers)
    numbers = [int(float(value)) for value in rules.excluded_customers if _is_number(value)]
    return is_in(F.col(CUSTOMER_ID), numbers)


def _is_number(text: str) -> bool:
    try:
        return float(text) == int(float(text))
    except ValueError:
        return False


def reason_for(
    rules: CleaningConfig, as_of: dt.date | None, *, line_format: LineFormat, headers_possible: bool
) -> Column:
    """The first rule a parsed line fails, or null when it is kept. A rule about a column the input
    does not have never fails (``line_format.columns``); ``headers_possible``: whether the input's
    raw fields are text (:func:`can_hold_a_header`)."""
    has = line_format.has
    amount = F.col(LINE_AMOUNT) if has(LINE_AMOUNT) else None
    header_fields = {source: F.col(f"{RAW_PREFIX}{name}") for name, source in line_format.columns.items()}
    never = F.lit(False)
    checks: list[tuple[str, Column]] = [
        (MALFORMED_LINE, is_malformed(F.col(RAW_LINE))),
        (REPEATED_HEADER, is_repeated_header(header_fields) if headers_possible else never),
        (MISSING_INVOICE, is_missing(F.col(INVOICE_ID))),
        (MISSING_PRODUCT, is_missing(F.col(PRODUCT_ID)) if has(PRODUCT_ID) else never),
        (UNPARSABLE_TIMESTAMP, is_missing(F.col(INVOICE_TS))),
        (NON_NUMERIC_QUANTITY, is_missing(F.col(QUANTITY)) if has(QUANTITY) else never),
        (NON_NUMERIC_PRICE, is_missing(F.col(UNIT_PRICE)) if amount is None else never),
        (NON_NUMERIC_AMOUNT, is_missing(amount) if amount is not None else never),
        (
            INVALID_CUSTOMER_ID,
            is_invalid_customer_id(F.col(CUSTOMER_ID), F.col(HAS_CUSTOMER_VALUE))
            if line_format.customer_ids != TEXT_IDS
            else never,
        ),
        (AMOUNT_OUT_OF_RANGE, is_amount_out_of_range(F.col(QUANTITY), F.col(UNIT_PRICE), amount)),
        (AFTER_AS_OF, is_after(F.col(INVOICE_TS), as_of) if as_of else never),
        (PRICE_BELOW_MINIMUM, is_price_below(F.col(UNIT_PRICE), rules.min_unit_price)),
        (NON_PRODUCT_CODE, is_in(F.col(PRODUCT_ID), rules.non_product_codes) if has(PRODUCT_ID) else never),
        (EXCLUDED_COUNTRY, is_in(F.col(COUNTRY), rules.excluded_countries) if has(COUNTRY) else never),
        (EXCLUDED_CUSTOMER, _excluded_customer(rules, line_format)),
    ]
    reason = F.when(checks[0][1], F.lit(checks[0][0]))
    for name, failed in checks[1:]:
        reason = reason.when(failed, F.lit(name))
    return reason


def with_reason(
    lines: DataFrame, *, rules: CleaningConfig, as_of: dt.date | None, line_format: LineFormat = EVERY_COLUMN
) -> DataFrame:
    headers_possible = can_hold_a_header(lines.schema, line_format.columns)
    return lines.withColumn(
        REASON, reason_for(rules, as_of, line_format=line_format, headers_possible=headers_possible)
    )


def to_quarantine(lines: DataFrame) -> DataFrame:
    """The set-aside lines with their raw text, file and reason (lines after as-of stay out)."""
    return lines.where(F.col(REASON).isin(list(QUARANTINE_REASONS))).select(
        *[F.col(f"{RAW_PREFIX}{name}").cast(T.StringType()).alias(name) for name in CANONICAL_COLUMNS],
        F.col(RAW_LINE),
        F.col(SOURCE_FILE),
        F.col(REASON),
    )
