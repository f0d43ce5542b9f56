"""Per-customer revenue windows, the features the future-revenue trees learn from, the window totals."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.parsing import REVENUE_SCALE
from insiders_spark.cleaning.rules import is_purchase
from insiders_spark.core.names import (
    AFTER_AS_OF,
    CUSTOMER_ID,
    INVOICE_ID,
    INVOICE_TS,
    IS_GUEST,
    QTY_ITEMS,
    QTY_RETURNS,
    QUANTITY,
    REASON,
    REVENUE_UNITS,
)
from insiders_spark.evaluation.backtest.names import (
    FUTURE_LABEL,
    IS_GUEST_VALUE,
    NEXT_REVENUE,
    RETURNS_RATE,
    REVENUE_DECAYED,
    REVENUE_PREVIOUS,
    REVENUE_RECENT,
)
from insiders_spark.features.customers import GUEST_INVOICE, days_between, invoice_day, is_kept
from insiders_spark.features.table import CustomerTable

log = logging.getLogger(__name__)


def to_revenue_windows(lines: DataFrame, customers: DataFrame, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """Per customer, from the kept purchases up to ``as_of``: revenue in ``(as_of − h, as_of]``,
    in the ``h`` days before, and every purchase decayed with a half-life of ``h`` days.

    ``lines`` carry a ``reason`` classified as of ``as_of`` (lines after it are not kept);
    ``customers`` is a :class:`CustomerTable`'s numbered table, which gives guest lines their
    customer id through their invoice. A guest invoice it does not number (one after that table's
    as-of date: a new customer) keeps a null ``customer_id``; each row is one customer. One
    aggregation per (customer, guest invoice), then a join of the guest groups to their numbers.
    """
    purchase = is_kept(F.col(REASON)) & is_purchase(F.col(QUANTITY))
    age = days_between(F.lit(as_of).cast(T.DateType()), invoice_day(F.col(INVOICE_TS)))
    revenue = F.col(REVENUE_UNITS) / F.lit(REVENUE_SCALE)
    per_group = (
        lines.where(purchase)
        .withColumn(GUEST_INVOICE, F.when(F.col(CUSTOMER_ID).isNull(), F.col(INVOICE_ID)))
        .groupBy(CUSTOMER_ID, GUEST_INVOICE)
        .agg(
            F.sum(F.when(age < horizon_days, revenue)).alias(REVENUE_RECENT),
            F.sum(F.when((age >= horizon_days) & (age < 2 * horizon_days), revenue)).alias(REVENUE_PREVIOUS),
            F.sum(revenue * F.pow(F.lit(0.5), age / F.lit(float(horizon_days)))).alias(REVENUE_DECAYED),
        )
    )
    registered = per_group.where(F.col(GUEST_INVOICE).isNull()).drop(GUEST_INVOICE)
    guest_numbers = customers.where(F.col(GUEST_INVOICE).isNotNull()).select(GUEST_INVOICE, CUSTOMER_ID)
    guests = (
        per_group.where(F.col(GUEST_INVOICE).isNotNull())
        .drop(CUSTOMER_ID)
        .join(guest_numbers, on=GUEST_INVOICE, how="left")
        .drop(GUEST_INVOICE)
    )
    return registered.unionByName(guests).select(
        F.col(CUSTOMER_ID).cast(T.LongType()).alias(CUSTOMER_ID),
        *[
            F.coalesce(F.col(c), F.lit(0.0)).cast(T.DoubleType()).alias(c)
            for c in (REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED)
        ],
    )


@dataclass(frozen=True)
class LogReach:
    last_kept_date: dt.date | None
    lines_after: int  # valid lines after the as-of date the lines were classified for


def log_reach(lines: DataFrame) -> LogReach:
    """How far a classified log goes (one aggregation over its lines)."""
    row = lines.agg(
        F.max(F.when(is_kept(F.col(REASON)), invoice_day(F.col(INVOICE_TS)))).alias("last"),
        F.count_if(F.col(REASON) == AFTER_AS_OF).alias("after"),
    ).first()
    return LogReach(last_kept_date=row["last"], lines_after=int(row["after"] or 0))


def with_model_features(features: DataFrame, windows: DataFrame) -> DataFrame:
    """The job's features plus the revenue windows, the returns rate and ``is_guest`` as 0/1."""
    returned, bought = F.col(QTY_RETURNS), F.col(QTY_ITEMS)
    return (
        features.join(windows, on=CUSTOMER_ID, how="left")
        .fillna(0.0, subset=[REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED])
        .withColumn(
            RETURNS_RATE,
            F.when(returned + bought > 0, returned / (returned + bought)).otherwise(F.lit(0.0)).cast(T.DoubleType()),
        )
        .withColumn(IS_GUEST_VALUE, F.col(IS_GUEST).cast(T.DoubleType()))
    )


@dataclass(frozen=True)
class WindowTotals:
    revenue: float  # all revenue in the window
    known_revenue: float  # spent by the eligible customers
    new_customers: int  # customers with window revenue who were not eligible


def window_totals(next_revenue: DataFrame, eligible: DataFrame) -> WindowTotals:
    """One aggregation: the window's revenue, the eligible customers' part, the new customers."""
    known = eligible.select(CUSTOMER_ID, F.lit(True).alias("is_known"))
    row = (
        next_revenue.join(known, on=CUSTOMER_ID, how="left")
        .agg(
            F.sum(NEXT_REVENUE).alias("revenue"),
            F.sum(F.when(F.col("is_known"), F.col(NEXT_REVENUE))).alias("known_revenue"),
            F.count_if(F.col("is_known").isNull()).alias("new_customers"),  # null ids: new guests
        )
        .first()
    )
    return WindowTotals(
        revenue=float(row["revenue"] or 0.0),
        known_revenue=float(row["known_revenue"] or 0.0),
        new_customers=int(row["new_customers"] or 0),
    )


def to_training_set(train: CustomerTable, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """Features as of the training cut-off, labelled ``FUTURE_LABEL`` with each customer's revenue
    in the ``h`` days after it (the table's lines classified again as of the label window's end)."""
    label_end = as_of + dt.timedelta(days=horizon_days)
    label = to_revenue_windows(
        train.classified(train.lines, as_of=label_end), train.customers, as_of=label_end, horizon_days=horizon_days
    ).select(CUSTOMER_ID, F.col(REVENUE_RECENT).alias(FUTURE_LABEL))
    windows = to_revenue_windows(train.lines, train.customers, as_of=as_of, horizon_days=horizon_days)
    return (
        train.features()
        .transform(with_model_features, windows)
        .join(label.where(F.col(CUSTOMER_ID).isNotNull()), on=CUSTOMER_ID, how="left")
        .fillna(0.0, subset=[FUTURE_LABEL])
    )
