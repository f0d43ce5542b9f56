"""Per-customer features, in one explicit aggregation over the classified lines.

The aggregation groups by the source customer id, and for lines without one by their invoice (each
guest invoice is one synthetic customer). It runs over kept lines *and* lines the study's rules set
aside, because a guest invoice's number depends on its first timestamp among all its valid lines;
every feature itself counts kept lines only. Guest invoices are then numbered from
``guest_customer_id_start`` in order of (first timestamp, invoice number) with a distributed,
deterministic index (a total sort, then ``zipWithIndex``): nothing is pulled to the driver.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.parsing import REVENUE_SCALE
from insiders_spark.cleaning.rules import is_purchase, is_return
from insiders_spark.core.names import (
    AVG_TICKET,
    BUSINESS_RULE_REASONS,
    CUSTOMER_ID,
    FIRST_PURCHASE_DATE,
    FREQUENCY,
    GROSS_REVENUE,
    INVOICE_ID,
    INVOICE_TS,
    IS_GUEST,
    LAST_PURCHASE_DATE,
    PRODUCT_ID,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    QTY_RETURNS,
    QUANTITY,
    REASON,
    RECENCY_DAYS,
    REVENUE_UNITS,
    SOURCE_CUSTOMER_ID,
)

GUEST_INVOICE = "guest_invoice_no"  # the invoice a guest customer stands for
FIRST_SEEN_TS = "first_seen_ts"  # first timestamp among the group's valid lines
KEPT_LINES = "kept_lines"
LAST_KEPT_DATE = "last_kept_date"  # last invoice date among kept lines (purchases and returns)
GUEST_RANK = "guest_rank"
# the group's one long key held more than one guest invoice (a hash collision): aggregate again by
# (customer id, guest invoice) instead; see ``group_key``
SHARED_GUEST_KEY = "shared_guest_key"
SHARED_CUSTOMER_KEY = "shared_customer_key"  # two text customer ids hashed to one number
GUEST_KEY_BITS = 63  # bits of an invoice number's hash in a guest's group key (tests lower it)


# --- line-level measures (Column -> Column) --------------------------------------------------


def is_kept(reason: Column) -> Column:
    return reason.isNull()


def invoice_day(invoice_ts: Column) -> Column:
    return F.to_date(invoice_ts)


def days_between(later: Column, earlier: Column) -> Column:
    """Calendar days from ``earlier`` to ``later``."""
    return F.datediff(later, earlier)


# --- aggregation -----------------------------------------------------------------------------


def is_valid_line(reason: Column) -> Column:
    """Kept, or set aside only by one of the business rules (the line itself is sound)."""
    return reason.isNull() | reason.isin(list(BUSINESS_RULE_REASONS))


def distinct_count(values: Column) -> Column:
    """Exact count of the distinct non-null values, as the size of their set.

    Two ``count_distinct`` of different columns in one ``groupBy`` make Spark ``Expand`` every
    line into one copy per distinct column (plus one for the other aggregates) before the shuffle;
    a set per group keeps one row per line and aggregates partially before the shuffle
    (ObjectHashAggregate), which measured faster (docs/performance.md). A group's set holds its
    distinct invoices or products, small next to its lines.
    """
    return F.size(F.collect_set(values)).cast(T.LongType())


# one narrow column per aggregate's input, each null where the line does not count for it
_VALID_TS = "_valid_ts"
_KEPT = "_kept"
_KEPT_TS = "_kept_ts"
_PURCHASE_REVENUE = "_purchase_revenue_units"
_PURCHASE_INVOICE = "_purchase_invoice_no"
_PURCHASE_ITEMS = "_purchase_items"
_PURCHASE_PRODUCT = "_purchase_stock_code"
_PURCHASE_TS = "_purchase_ts"
_RETURNED_ITEMS = "_returned_items"


def to_aggregate_inputs(lines: DataFrame, *, text_ids: bool = False) -> DataFrame:
    """Per line: the group's key and one plain column per aggregate's input (DataFrame -> DataFrame).

    The conditions are evaluated once per line, in the scan's generated code, and only these
    narrow columns reach the aggregation: its two sets keep it out of generated code (every
    condition inside it would be interpreted, per line and per aggregate), and past 128 keys per
    task it sorts the rows it is given, so every column dropped here is sorted less. Measured in
    docs/performance.md.
    """
    reason, quantity, invoice_ts = F.col(REASON), F.col(QUANTITY), F.col(INVOICE_TS)
    kept = is_kept(reason)
    kept_purchase = kept & is_purchase(quantity)
    kept_return = kept & is_return(quantity)
    return lines.select(
        F.col(CUSTOMER_ID),
        F.when(F.col(CUSTOMER_ID).isNull(), F.col(INVOICE_ID)).alias(GUEST_INVOICE),
        F.when(is_valid_line(reason), invoice_ts).alias(_VALID_TS),
        kept.alias(_KEPT),
        F.when(kept, invoice_ts).alias(_KEPT_TS),
        F.when(kept_purchase, F.col(REVENUE_UNITS)).alias(_PURCHASE_REVENUE),
        F.when(kept_purchase, F.col(INVOICE_ID)).alias(_PURCHASE_INVOICE),
        F.when(kept_purchase, quantity).alias(_PURCHASE_ITEMS),
        F.when(kept_purchase, F.col(PRODUCT_ID)).alias(_PURCHASE_PRODUCT),
        F.when(kept_purchase, invoice_ts).alias(_PURCHASE_TS),
        F.when(kept_return, -quantity).alias(_RETURNED_ITEMS),
        *([F.col(SOURCE_CUSTOMER_ID)] if text_ids else []),
    )


_GROUP_KEY = "_group_key"
_LAST_GUEST_INVOICE = "_last_guest_invoice_no"
_LAST_SOURCE_ID = "_last_source_customer_id"
_SIGN_BIT = -(1 << 63)


def group_key(customer_id: Column, guest_invoice: Column, *, guest_key_bits: int = GUEST_KEY_BITS) -> Column:
    """One long per group: a registered customer's id, or for a guest invoice a hash of its number.

    Customer ids are positive (``cleaning.to_customer_id``); a guest's key has the sign bit set
    and ``guest_key_bits`` bits of the invoice number's ``xxhash64`` below it, so the two never
    meet. The aggregation then sorts by one long instead of (id, invoice text): past 128 groups
    per task it sorts every line it is given, and a single long key is radix-sorted by its
    prefix, where two keys are compared row by row on every tie of the id (docs/performance.md,
    "One long key for the aggregation"). Two guest invoices can share a key; the aggregation
    marks such a group (``SHARED_GUEST_KEY``) and the caller aggregates again exactly.
    """
    if not 1 <= guest_key_bits <= 63:
        raise ValueError(f"guest_key_bits must be 1..63, not {guest_key_bits}")
    hashed = F.xxhash64(guest_invoice).bitwiseAND(F.lit((1 << guest_key_bits) - 1)).bitwiseOR(F.lit(_SIGN_BIT))
    return F.coalesce(customer_id, F.when(guest_invoice.isNotNull(), hashed))


def to_customer_activity(
    lines: DataFrame,
    *,
    exact_keys: bool = False,
    guest_key_bits: int | None = None,
    text_ids: bool = False,
    distinct: Callable[[Column], Column] = distinct_count,
) -> DataFrame:
    """One row per source customer or guest invoice, with every feature's raw ingredients.

    Every aggregate is conditional (its input is null where a line does not count), so the lines
    need no filter first (a filter would be pushed below the rules and evaluate them twice).
    Dates are taken from the smallest and largest timestamps after the aggregation (a day is a
    non-decreasing function of the timestamp), not from every line. Groups made only of broken
    lines have no ``first_seen_ts`` and are dropped.

    The lines are grouped by one long (``group_key``); ``SHARED_GUEST_KEY`` is true for a group
    whose key more than one guest invoice hashed to, whose row is then wrong.
    ``exact_keys``: group by (customer id, guest invoice) instead, slower and never shared.
    ``text_ids``: customer ids are hashes of text ids (``cleaning.parsing.customer_key``): each group
    keeps its text, and ``SHARED_CUSTOMER_KEY`` marks a group two texts hashed to.
    ``distinct``: how the invoices and products are counted (``distinct_count`` by default).
    """
    inputs = lines.transform(to_aggregate_inputs, text_ids=text_ids)
    texts = (
        [F.min(SOURCE_CUSTOMER_ID).alias(SOURCE_CUSTOMER_ID), F.max(SOURCE_CUSTOMER_ID).alias(_LAST_SOURCE_ID)]
        if text_ids
        else []
    )
    if exact_keys:
        grouped = inputs.groupBy(CUSTOMER_ID, GUEST_INVOICE)
        identity: list[Column] = []
    else:
        bits = GUEST_KEY_BITS if guest_key_bits is None else guest_key_bits
        key = group_key(F.col(CUSTOMER_ID), F.col(GUEST_INVOICE), guest_key_bits=bits)
        grouped = inputs.withColumn(_GROUP_KEY, key).groupBy(_GROUP_KEY)
        identity = [F.min(GUEST_INVOICE).alias(GUEST_INVOICE), F.max(GUEST_INVOICE).alias(_LAST_GUEST_INVOICE)]
    revenue = F.sum(_PURCHASE_REVENUE) / F.lit(REVENUE_SCALE)
    activity = grouped.agg(
        *identity,
        *texts,
        F.min(_VALID_TS).alias(FIRST_SEEN_TS),
        F.count_if(F.col(_KEPT)).alias(KEPT_LINES),
        invoice_day(F.max(_KEPT_TS)).alias(LAST_KEPT_DATE),
        revenue.alias(GROSS_REVENUE),
        distinct(F.col(_PURCHASE_INVOICE)).alias(QTY_INVOICES),
        F.sum(_PURCHASE_ITEMS).alias(QTY_ITEMS),
        distinct(F.col(_PURCHASE_PRODUCT)).alias(QTY_PRODUCTS),
        invoice_day(F.min(_PURCHASE_TS)).alias(FIRST_PURCHASE_DATE),
        invoice_day(F.max(_PURCHASE_TS)).alias(LAST_PURCHASE_DATE),
        F.sum(_RETURNED_ITEMS).alias(QTY_RETURNS),
        (revenue / F.count(_PURCHASE_REVENUE)).alias(AVG_TICKET),
    ).where(F.col(FIRST_SEEN_TS).isNotNull())
    shared_text = (~F.col(SOURCE_CUSTOMER_ID).eqNullSafe(F.col(_LAST_SOURCE_ID)) if text_ids else F.lit(False)).alias(
        SHARED_CUSTOMER_KEY
    )
    if exact_keys:
        return activity.select(
            *[F.col(name) for name in activity.columns if name != _LAST_SOURCE_ID],
            F.lit(False).alias(SHARED_GUEST_KEY),
            shared_text,
        )
    key = F.col(_GROUP_KEY)
    return activity.select(
        F.when(key > 0, key).alias(CUSTOMER_ID),  # a guest's key is negative
        *[F.col(name) for name in activity.columns if name not in (_GROUP_KEY, _LAST_GUEST_INVOICE, _LAST_SOURCE_ID)],
        # null-safe: registered customers have no guest invoice at all
        (~F.col(GUEST_INVOICE).eqNullSafe(F.col(_LAST_GUEST_INVOICE))).alias(SHARED_GUEST_KEY),
        shared_text,
    )


def with_guest_customer_ids(activity: DataFrame, *, start: int) -> DataFrame:
    """Give each guest invoice a customer id: ``start`` + its rank by (first timestamp, invoice).

    Every guest invoice with a valid line is numbered, even one the study's rules empty later, so
    the numbers match the study's. The rank is a total order, so the ids do not depend on
    partitioning, and invoices up to a date keep their numbers when later days are added.
    """
    registered = activity.where(F.col(GUEST_INVOICE).isNull()).withColumn(IS_GUEST, F.lit(False))
    guests = (
        activity.where(F.col(GUEST_INVOICE).isNotNull())
        .orderBy(FIRST_SEEN_TS, GUEST_INVOICE)
        .zipWithIndex(GUEST_RANK)
        .withColumn(CUSTOMER_ID, F.lit(start) + F.col(GUEST_RANK))
        .withColumn(IS_GUEST, F.lit(True))
        .drop(GUEST_RANK)
    )
    return registered.unionByName(guests)


@dataclass(frozen=True)
class CustomerSummary:
    """Counts of the numbered customer table (one small aggregation)."""

    customers: int  # customers with at least one kept line
    with_purchases: int
    returns_only: int
    guests: int
    distinct_ids: int
    last_kept_date: dt.date | None
    shared_guest_keys: int  # groups, kept lines or not, whose key several guest invoices shared
    shared_customer_keys: int = 0  # groups whose key (a hash) several text customer ids shared


def summarise_customers(customers: DataFrame) -> CustomerSummary:
    has_kept = F.col(KEPT_LINES) > 0
    row = customers.agg(
        F.count_if(has_kept).alias("customers"),
        F.count_if(has_kept & F.col(GROSS_REVENUE).isNotNull()).alias("with_purchases"),
        F.count_if(has_kept & F.col(GROSS_REVENUE).isNull()).alias("returns_only"),
        F.count_if(has_kept & F.col(IS_GUEST)).alias("guests"),
        F.count_distinct(F.when(has_kept, F.col(CUSTOMER_ID))).alias("distinct_ids"),
        F.max(F.when(has_kept, F.col(LAST_KEPT_DATE))).alias("last_kept_date"),
        F.count_if(F.col(SHARED_GUEST_KEY)).alias("shared_guest_keys"),
        F.count_if(F.col(SHARED_CUSTOMER_KEY)).alias("shared_customer_keys"),
    ).first()
    return CustomerSummary(**row.asDict())


def to_customer_features(customers: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Customers with at least one kept purchase, with the study's features as of ``as_of``.

    Customers whose kept lines are returns only are left out here (counted by the summary).
    """
    source_id = (
        F.col(SOURCE_CUSTOMER_ID)
        if SOURCE_CUSTOMER_ID in customers.columns
        else F.when(~F.col(IS_GUEST), F.col(CUSTOMER_ID).cast(T.StringType()))
    )
    as_of_date = F.lit(as_of).cast(T.DateType())
    first, last = F.col(FIRST_PURCHASE_DATE), F.col(LAST_PURCHASE_DATE)
    return customers.where((F.col(KEPT_LINES) > 0) & F.col(GROSS_REVENUE).isNotNull()).select(
        F.col(CUSTOMER_ID).cast(T.LongType()).alias(CUSTOMER_ID),
        source_id.cast(T.StringType()).alias(SOURCE_CUSTOMER_ID),
        F.col(IS_GUEST),
        F.col(GROSS_REVENUE).cast(T.DoubleType()).alias(GROSS_REVENUE),
        days_between(as_of_date, last).cast(T.IntegerType()).alias(RECENCY_DAYS),
        F.col(QTY_INVOICES).cast(T.LongType()).alias(QTY_INVOICES),
        F.col(QTY_ITEMS).cast(T.LongType()).alias(QTY_ITEMS),
        F.col(QTY_PRODUCTS).cast(T.LongType()).alias(QTY_PRODUCTS),
        (F.col(QTY_INVOICES) / (days_between(last, first) + 1)).cast(T.DoubleType()).alias(FREQUENCY),
        F.coalesce(F.col(QTY_RETURNS), F.lit(0)).cast(T.LongType()).alias(QTY_RETURNS),
        F.col(AVG_TICKET).cast(T.DoubleType()).alias(AVG_TICKET),
        first.alias(FIRST_PURCHASE_DATE),
        last.alias(LAST_PURCHASE_DATE),
    )
