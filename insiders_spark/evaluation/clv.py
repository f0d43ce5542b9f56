"""Customer lifetime value: BG/NBD expected purchases × Gamma-Gamma expected spend.

The backtest's standard reference (``clv``), and columns a later step can publish. The models:

* **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while active, a
  customer buys at a Poisson rate λ ~ Gamma(r, α); after each repeat purchase she drops out with
  probability p ~ Beta(a, b). The data of a customer are (x, t_x, T): her repeat purchases, the
  time of the last one and her age, all from her first purchase.
* **Gamma-Gamma** (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"): each purchase's
  value is Gamma(p, ν) with ν ~ Gamma(q, γ), independent of the purchase process; the data are
  (x, m_x), the mean value of the x repeat purchases.

Definitions (``to_rfm_summary``):

* a **purchase** is a customer's purchase day: the kept purchase lines of one calendar day, however
  many invoices (orders split over a day are one occasion; the Poisson process counts occasions).
  Guest invoices are customers of one invoice, so one purchase and x = 0.
* the **time unit is the day**: t_x = days from the first to the last purchase day, T = days from
  the first purchase day to the as-of date (the cut-off); the horizon t is in days too.
* x = purchase days − 1; m_x = revenue of the purchase days after the first / x (null when x = 0).
* a customer with x = 0 has no spend of her own to shrink: Gamma-Gamma's conditional mean is then
  the population mean p·γ / (q − 1), which is what its formula gives at x = 0.

Scale: the summary and the scoring run in Spark; the fits run on the driver over at most
``max_rows`` customers, those with the smallest seeded hash of their id (``bounded_sample``), and
over the distinct (x, t_x, T) and (x, m_x) rows of that sample, weighted by their counts. The
conditional expectation needs the Gauss hypergeometric function ₂F₁, which Spark lacks: it runs
in a vectorised ``pandas_udf`` (``scipy.special.hyp2f1``); P(alive) and the spend are built-ins.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.parsing import REVENUE_SCALE
from insiders_spark.cleaning.rules import is_purchase
from insiders_spark.core.names import CUSTOMER_ID, INVOICE_ID, INVOICE_TS, QUANTITY, REASON, REVENUE_UNITS
from insiders_spark.evaluation.clv_model import BgNbd, ClvModel, GammaGamma, fit_clv_arrays
from insiders_spark.evaluation.quality import bounded_sample
from insiders_spark.features.customers import GUEST_INVOICE, days_between, invoice_day, is_kept

log = logging.getLogger(__name__)

REPEAT_PURCHASES = "repeat_purchases"  # x: purchase days after the first
LAST_PURCHASE_AGE = "last_purchase_age"  # t_x: days from the first purchase day to the last
CUSTOMER_AGE = "customer_age"  # T: days from the first purchase day to the as-of date
REPEAT_SPEND = "repeat_spend"  # m_x: mean revenue of the repeat purchase days (null when x = 0)
P_ALIVE = "p_alive"
EXPECTED_PURCHASES = "expected_purchases"  # purchase days expected in the horizon
EXPECTED_SPEND = "expected_spend"  # per purchase day
EXPECTED_REVENUE = "expected_revenue"  # expected_purchases × expected_spend: the horizon's CLV

_DAY, _UNITS, _DAYS, _FIRST, _LAST, _FIRST_UNITS, _TOTAL = "_day", "_units", "_days", "_first", "_last", "_f", "_t"


# --- the summary (Spark) ------------------------------------------------------------------------


def to_rfm_summary(lines: DataFrame, customers: DataFrame, *, as_of: dt.date) -> DataFrame:
    """Per customer with a kept purchase up to ``as_of``: (customer_id, x, t_x, T, m_x) as defined
    in the module docstring. ``lines`` carry a ``reason`` classified as of ``as_of``; ``customers``
    is a :class:`CustomerTable`'s numbered table (it gives a guest invoice its customer id). Two
    aggregations: by (customer, purchase day), then by customer; revenue is summed exactly, in
    1/10,000 units, like ``gross_revenue``."""
    purchase = is_kept(F.col(REASON)) & is_purchase(F.col(QUANTITY))
    per_day = (
        lines.where(purchase)
        .select(
            F.col(CUSTOMER_ID),
            F.when(F.col(CUSTOMER_ID).isNull(), F.col(INVOICE_ID)).alias(GUEST_INVOICE),
            invoice_day(F.col(INVOICE_TS)).alias(_DAY),
            F.col(REVENUE_UNITS).alias(_UNITS),
        )
        .groupBy(CUSTOMER_ID, GUEST_INVOICE, _DAY)
        .agg(F.sum(_UNITS).alias(_UNITS))
    )
    per_customer = per_day.groupBy(CUSTOMER_ID, GUEST_INVOICE).agg(
        F.count(F.lit(1)).alias(_DAYS),
        F.min(_DAY).alias(_FIRST),
        F.max(_DAY).alias(_LAST),
        F.sum(_UNITS).alias(_TOTAL),
        F.min_by(_UNITS, _DAY).alias(_FIRST_UNITS),  # one row per day: the first day's revenue
    )
    guest_numbers = customers.where(F.col(GUEST_INVOICE).isNotNull()).select(
        GUEST_INVOICE, F.col(CUSTOMER_ID).alias("_guest_id")
    )
    numbered = per_customer.join(guest_numbers, on=GUEST_INVOICE, how="left").withColumn(
        CUSTOMER_ID, F.coalesce(F.col(CUSTOMER_ID), F.col("_guest_id"))
    )
    repeats = F.col(_DAYS) - 1
    return numbered.where(F.col(CUSTOMER_ID).isNotNull()).select(
        F.col(CUSTOMER_ID).cast(T.LongType()).alias(CUSTOMER_ID),
        repeats.cast(T.LongType()).alias(REPEAT_PURCHASES),
        days_between(F.col(_LAST), F.col(_FIRST)).cast(T.IntegerType()).alias(LAST_PURCHASE_AGE),
        days_between(F.lit(as_of).cast(T.DateType()), F.col(_FIRST)).cast(T.IntegerType()).alias(CUSTOMER_AGE),
        F.when(repeats > 0, (F.col(_TOTAL) - F.col(_FIRST_UNITS)) / F.lit(REVENUE_SCALE) / repeats)
        .cast(T.DoubleType())
        .alias(REPEAT_SPEND),
    )


# --- the fits (driver) --------------------------------------------------------------------------


def fit_clv(summary: DataFrame, *, max_rows: int, seed: int) -> ClvModel:
    """Fit both models on at most ``max_rows`` customers of a ``to_rfm_summary`` frame (the seeded
    ``bounded_sample``: the same customers however the frame is partitioned)."""
    columns = [REPEAT_PURCHASES, LAST_PURCHASE_AGE, CUSTOMER_AGE, REPEAT_SPEND]
    sample = bounded_sample(
        summary.select(CUSTOMER_ID, *columns), key=CUSTOMER_ID, max_rows=max_rows, seed=seed
    ).toPandas()  # bounded: max_rows rows
    model = fit_clv_arrays(*(sample[c].to_numpy(dtype=float, na_value=np.nan) for c in columns))
    model = dataclasses.replace(model, sample_seed=seed)
    log.info("clv: fitted on %s customers: %s", f"{len(sample):,}", model.describe())
    return model


# --- scoring (Spark) ----------------------------------------------------------------------------


def p_alive(model: BgNbd, x: Column, t_x: Column, age: Column) -> Column:
    """``BgNbd.p_alive`` as a Column."""
    r, alpha, a, b = (F.lit(v) for v in (model.r, model.alpha, model.a, model.b))
    log_odds = F.log(a) - F.log(b + x - 1) + (r + x) * F.log((alpha + age) / (alpha + t_x))
    return F.when(x > 0, F.lit(1.0) / (F.lit(1.0) + F.exp(log_odds))).otherwise(F.lit(1.0))


def expected_spend(model: GammaGamma, x: Column, m_x: Column) -> Column:
    """``GammaGamma.expected_spend`` as a Column (the population mean where x = 0)."""
    p, q, gamma = (F.lit(v) for v in (model.p, model.q, model.gamma))
    return p * (gamma + x * F.coalesce(m_x, F.lit(0.0))) / (p * x + q - F.lit(1.0))


def expected_purchases(model: BgNbd, *, horizon_days: int) -> Callable[..., Column]:
    """``BgNbd.expected_purchases`` over ``horizon_days`` as a vectorised ``pandas_udf`` of
    (x, t_x, T): Spark has no ₂F₁."""
    horizon = float(horizon_days)

    @F.pandas_udf(T.DoubleType())
    def expected(x: pd.Series, t_x: pd.Series, age: pd.Series) -> pd.Series:
        return pd.Series(model.expected_purchases(horizon, x.to_numpy(float), t_x.to_numpy(float), age.to_numpy(float)))

    return expected


def with_clv(summary: DataFrame, model: ClvModel, *, horizon_days: int) -> DataFrame:
    """A ``to_rfm_summary`` frame plus P(alive), the purchase days expected in the next
    ``horizon_days``, the expected spend per purchase day and their product, the expected revenue."""
    x, t_x, age = F.col(REPEAT_PURCHASES), F.col(LAST_PURCHASE_AGE), F.col(CUSTOMER_AGE)
    purchases = expected_purchases(model.bg_nbd, horizon_days=horizon_days)(x, t_x, age)
    return (
        summary.withColumn(P_ALIVE, p_alive(model.bg_nbd, x, t_x, age))
        .withColumn(EXPECTED_PURCHASES, purchases)
        .withColumn(EXPECTED_SPEND, expected_spend(model.gamma_gamma, x, F.col(REPEAT_SPEND)))
        .withColumn(EXPECTED_REVENUE, F.col(EXPECTED_PURCHASES) * F.col(EXPECTED_SPEND))
    )
