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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import optimize, special

from insiders_spark.cleaning.rules import is_purchase
from insiders_spark.core.names import CUSTOMER_ID, INVOICE_NO, INVOICE_TS, QUANTITY, REASON, UNIT_PRICE
from insiders_spark.evaluation.quality import bounded_sample
from insiders_spark.features.customers import (
    GUEST_INVOICE,
    REVENUE_UNITS,
    days_between,
    invoice_day,
    is_kept,
    line_revenue_units,
)

log = logging.getLogger(__name__)

REPEAT_PURCHASES = "repeat_purchases"  # x: purchase days after the first
LAST_PURCHASE_AGE = "last_purchase_age"  # t_x: days from the first purchase day to the last
CUSTOMER_AGE = "customer_age"  # T: days from the first purchase day to the as-of date
REPEAT_SPEND = "repeat_spend"  # m_x: mean revenue of the repeat purchase days (null when x = 0)
P_ALIVE = "p_alive"
EXPECTED_PURCHASES = "expected_purchases"  # purchase days expected in the horizon
EXPECTED_SPEND = "expected_spend"  # per purchase day
EXPECTED_REVENUE = "expected_revenue"  # expected_purchases × expected_spend: the horizon's CLV

LOG_BOUND = 15.0  # the fits search each parameter in [e^-15, e^15]
MIN_REPEAT_BUYERS = 50  # below this the Gamma-Gamma's three parameters (its mean) are not identified

_DAY, _UNITS, _DAYS, _FIRST, _LAST, _FIRST_UNITS, _TOTAL = "_day", "_units", "_days", "_first", "_last", "_f", "_t"


class ClvFitError(ValueError):
    """The log cannot support a CLV fit (too few repeat buyers, or a fit that does not converge)."""


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters (time in days). Arrays in, arrays out: x, t_x, T broadcast together."""

    r: float
    alpha: float
    a: float
    b: float

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Each customer's log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, t_x, age = (np.asarray(v, dtype=float) for v in (x, t_x, age))
        beta_ab = special.betaln(a, b)
        alive = special.betaln(a, b + x) - beta_ab - (r + x) * np.log(alpha + age)
        gone = special.betaln(a + 1, b + np.maximum(x, 1) - 1) - beta_ab - (r + x) * np.log(alpha + t_x)
        gone = np.where(x > 0, gone, -np.inf)
        return special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + np.logaddexp(alive, gone)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """P(still active at T | x, t_x, T); 1 for x = 0 (nobody drops out before a repeat purchase)."""
        x, t_x, age = (np.asarray(v, dtype=float) for v in (x, t_x, age))
        log_odds = (
            np.log(self.a)
            - np.log(self.b + np.maximum(x, 1) - 1)
            + (self.r + x) * np.log((self.alpha + age) / (self.alpha + t_x))
        )
        return np.where(x > 0, special.expit(-log_odds), 1.0)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10).

        Written with Euler's transformation, ₂F₁(A, B; C; z) = (1 − z)^(C−A−B) ₂F₁(C−A, C−B; C; z):
        ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z) = w^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z) with
        w = 1 − z = (α+T)/(α+T+t), so the function's first parameters stay small however many
        purchases a customer made (the untransformed product overflows past a few hundred).
        Undefined at a = 1 exactly (a removable singularity of the closed form).
        """
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x, age = np.asarray(x, dtype=float), np.asarray(age, dtype=float)
        z = t / (alpha + age + t)
        hyp = special.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        unconditional = (a + b + x - 1) / (a - 1) * (1 - (1 - z) ** (a - 1) * hyp)
        return unconditional * self.p_alive(x, t_x, age)

    @property
    def mean_dropout(self) -> float:
        """The mean drop-out probability after a purchase, a / (a + b). Near 0 the fit is at BG/NBD's
        NBD limit (nobody drops out): a and b are then not identified apart (no standard errors),
        only this ratio is, and the predictions are the NBD's."""
        return self.a / (self.a + self.b)

    def describe(self) -> dict:
        return {"r": self.r, "alpha_days": self.alpha, "a": self.a, "b": self.b, "mean_dropout": self.mean_dropout}


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma parameters of the value of a purchase day."""

    p: float
    q: float
    gamma: float

    @property
    def mean(self) -> float:
        """The population's mean spend per purchase, p·γ / (q − 1) (finite for q > 1)."""
        return self.p * self.gamma / (self.q - 1)

    def log_likelihood(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """Each repeat buyer's log-likelihood of her mean spend (Fader & Hardie 2013, eq. 3)."""
        p, q, gamma = self.p, self.q, self.gamma
        x, m_x = np.asarray(x, dtype=float), np.asarray(m_x, dtype=float)
        px = p * x
        return (
            special.gammaln(px + q)
            - special.gammaln(px)
            - special.gammaln(q)
            + q * np.log(gamma)
            + (px - 1) * np.log(m_x)
            + px * np.log(x)
            - (px + q) * np.log(gamma + m_x * x)
        )

    def expected_spend(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x, m_x] = p(γ + x·m_x) / (p·x + q − 1): a weighted mean of the
        population mean and m_x; at x = 0 (m_x ignored) the population mean."""
        x = np.asarray(x, dtype=float)
        m_x = np.where(x > 0, np.asarray(m_x, dtype=float), 0.0)
        return self.p * (self.gamma + x * m_x) / (self.p * x + self.q - 1)

    def describe(self) -> dict:
        return {"p": self.p, "q": self.q, "gamma": self.gamma, "mean_spend": self.mean}


@dataclass(frozen=True)
class Fit:
    """A maximum-likelihood fit: the total log-likelihood, and each parameter's standard error from
    the observed information (None where the Hessian is not positive definite)."""

    log_likelihood: float
    standard_errors: tuple[float | None, ...]
    rows: int  # customers the fit saw
    at_bound: tuple[str, ...] = ()  # parameters at the search's bound: a limit of the model


@dataclass(frozen=True)
class ClvModel:
    bg_nbd: BgNbd
    gamma_gamma: GammaGamma
    bg_nbd_fit: Fit
    gamma_gamma_fit: Fit
    sample_seed: int | None = None

    def describe(self) -> dict:
        """The manifest entry: parameters (6 significant digits) and the derived mean, their standard
        errors (the fitted parameters'; None where not identified), what each fit saw."""

        def entry(params: dict, fit: Fit) -> dict:
            errors = dict(zip(params, fit.standard_errors, strict=False))  # the derived value has none
            return {
                **{k: _significant(v) for k, v in params.items()},
                "standard_errors": {k: None if v is None else _significant(v) for k, v in errors.items()},
                "log_likelihood": round(fit.log_likelihood, 3),
                "customers": fit.rows,
                **({"at_bound": list(fit.at_bound)} if fit.at_bound else {}),
            }

        return {
            "frequency": "purchase days after the first",
            "time_unit": "day",
            "sample_seed": self.sample_seed,
            "bg_nbd": entry(self.bg_nbd.describe(), self.bg_nbd_fit),
            "gamma_gamma": entry(self.gamma_gamma.describe(), self.gamma_gamma_fit),
        }


def _significant(value: float) -> float:
    return float(f"{value:.6g}")


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
            F.when(F.col(CUSTOMER_ID).isNull(), F.col(INVOICE_NO)).alias(GUEST_INVOICE),
            invoice_day(F.col(INVOICE_TS)).alias(_DAY),
            line_revenue_units(F.col(QUANTITY), F.col(UNIT_PRICE)).alias(_UNITS),
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
        F.when(repeats > 0, (F.col(_TOTAL) - F.col(_FIRST_UNITS)) / F.lit(REVENUE_UNITS) / repeats)
        .cast(T.DoubleType())
        .alias(REPEAT_SPEND),
    )


# --- the fits (driver) --------------------------------------------------------------------------


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> tuple[BgNbd, Fit]:
    """Maximum likelihood over the distinct (x, t_x, T) rows, weighted by their counts."""
    rows, weights = np.unique(np.column_stack([x, t_x, age]).astype(float), axis=0, return_counts=True)
    x_u, t_u, age_u = rows.T

    def loss(log_params: np.ndarray) -> float:
        return -float(weights @ BgNbd(*np.exp(log_params)).log_likelihood(x_u, t_u, age_u)) / weights.sum()

    start = np.log([1.0, max(float(np.mean(age)), 1.0), 1.0, 1.0])
    params, fit = _maximise(loss, start, names=("r", "alpha_days", "a", "b"), rows=int(weights.sum()), what="BG/NBD")
    return BgNbd(*params), fit


def fit_gamma_gamma(x: np.ndarray, m_x: np.ndarray) -> tuple[GammaGamma, Fit]:
    """Maximum likelihood over repeat buyers (x ≥ 1, m_x > 0). q ≤ 1 leaves the population's mean
    spend infinite (no fallback for x = 0): a ``ClvFitError``."""
    x, m_x = np.asarray(x, dtype=float), np.asarray(m_x, dtype=float)
    repeat = (x > 0) & (m_x > 0)
    rows, weights = np.unique(np.column_stack([x[repeat], m_x[repeat]]), axis=0, return_counts=True)
    if weights.sum() < MIN_REPEAT_BUYERS:
        raise ClvFitError(
            f"{int(weights.sum())} repeat buyers: a CLV fit needs at least {MIN_REPEAT_BUYERS} customers who bought "
            "on two days or more"
        )
    x_u, m_u = rows.T

    def loss(log_params: np.ndarray) -> float:
        return -float(weights @ GammaGamma(*np.exp(log_params)).log_likelihood(x_u, m_u)) / weights.sum()

    start = np.log([1.0, 2.0, float(np.mean(m_u))])
    params, fit = _maximise(loss, start, names=("p", "q", "gamma"), rows=int(weights.sum()), what="Gamma-Gamma")
    model = GammaGamma(*params)
    if model.q <= 1:
        raise ClvFitError(f"Gamma-Gamma q = {model.q:.3f} <= 1: the spend per purchase has no finite mean")
    return model, fit


def fit_clv_arrays(x: np.ndarray, t_x: np.ndarray, age: np.ndarray, m_x: np.ndarray) -> ClvModel:
    """Both fits over driver-side arrays (a summary's columns)."""
    x = np.asarray(x, dtype=float)
    repeat_buyers = int(np.sum(x > 0))
    if repeat_buyers < MIN_REPEAT_BUYERS:
        raise ClvFitError(
            f"{repeat_buyers} repeat buyers among {len(x)} customers: a CLV fit needs at least {MIN_REPEAT_BUYERS} "
            "customers who bought on two days or more"
        )
    bg_nbd, bg_fit = fit_bgnbd(x, t_x, age)
    gamma_gamma, gg_fit = fit_gamma_gamma(x, m_x)
    return ClvModel(bg_nbd, gamma_gamma, bg_fit, gg_fit)


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


def _maximise(
    loss: Callable[[np.ndarray], float], start: np.ndarray, *, names: Sequence[str], rows: int, what: str
) -> tuple[tuple, Fit]:
    """Minimise a mean negative log-likelihood over log-parameters in [−LOG_BOUND, LOG_BOUND]
    (L-BFGS-B; Nelder-Mead where it stops early); the standard errors come from the Hessian in log
    space (delta method). A parameter at a bound is one of the models' limits (BG/NBD's a → 0 or
    b → ∞: nobody drops out, the NBD; Gamma-Gamma's q, γ → ∞: everyone's spend has one mean), where
    the predictions converge: kept, and named in ``Fit.at_bound``. A non-finite likelihood is a
    ``ClvFitError``."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    best = optimize.minimize(loss, start, method="L-BFGS-B", bounds=bounds)
    if not best.success:
        simplex = optimize.minimize(loss, best.x, method="Nelder-Mead", bounds=bounds, options={"maxiter": 20_000})
        best = simplex if simplex.fun <= best.fun else best
    if not np.isfinite(best.fun) or not np.all(np.isfinite(best.x)):
        raise ClvFitError(f"the {what} fit did not converge ({best.message}); parameters {np.exp(best.x)}")
    params = np.exp(best.x)
    at_bound = tuple(name for name, value in zip(names, best.x, strict=True) if abs(value) > LOG_BOUND - 1e-3)
    if at_bound:
        log.warning("clv: the %s fit is at a limit of its model (%s at e^±%g)", what, ", ".join(at_bound), LOG_BOUND)
    hessian = _hessian(loss, best.x) * rows
    try:
        variances = np.diag(np.linalg.inv(hessian))
    except np.linalg.LinAlgError:
        variances = np.full(len(params), np.nan)
    errors = tuple(float(p * np.sqrt(v)) if v > 0 else None for p, v in zip(params, variances, strict=True))
    return tuple(float(p) for p in params), Fit(
        log_likelihood=float(-best.fun * rows), standard_errors=errors, rows=rows, at_bound=at_bound
    )


def _hessian(f: Callable[[np.ndarray], float], at: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central finite differences."""
    n = len(at)
    hessian = np.empty((n, n))
    unit = np.eye(n) * step
    for i in range(n):
        for j in range(i, n):
            value = (
                f(at + unit[i] + unit[j])
                - f(at + unit[i] - unit[j])
                - f(at - unit[i] + unit[j])
                + f(at - unit[i] - unit[j])
            ) / (4 * step * step)
            hessian[i, j] = hessian[j, i] = value
    return hessian


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
