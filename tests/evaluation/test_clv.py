"""The CLV reference: BG/NBD and Gamma-Gamma fits recover the parameters customers were simulated
from; the conditional expectations agree with a published worked example and with direct numerical
integration; the Spark summary and scoring agree with hand counts and the driver-side formulas;
a log too thin to fit leaves ``clv`` not measured instead of failing the backtest."""

import dataclasses
import datetime as dt

import numpy as np
import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import functions as F
from scipy import integrate, special, stats

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import ClvFitError, ConfigError
from insiders_spark.core.names import BASELINE, CLV, FORESIGHT
from insiders_spark.evaluation.backtest import run_backtest, to_curve_frame
from insiders_spark.evaluation.clv import (
    CUSTOMER_AGE,
    EXPECTED_PURCHASES,
    EXPECTED_REVENUE,
    EXPECTED_SPEND,
    LAST_PURCHASE_AGE,
    P_ALIVE,
    REPEAT_PURCHASES,
    REPEAT_SPEND,
    fit_clv,
    to_rfm_summary,
    with_clv,
)
from insiders_spark.evaluation.clv_model import (
    MIN_REPEAT_BUYERS,
    BgNbd,
    ClvModel,
    Fit,
    GammaGamma,
    fit_bgnbd,
    fit_clv_arrays,
    fit_gamma_gamma,
)
from insiders_spark.report.backtest import LABELS, capture_chart_png, curve_markdown, summary_markdown

# The CDNOW parameters Fader, Hardie & Lee report (time in weeks), and Fader & Hardie's Gamma-Gamma.
CDNOW = BgNbd(r=0.2426, alpha=4.4136, a=0.7931, b=2.4259)
CDNOW_SPEND = GammaGamma(p=6.25, q=3.74, gamma=15.44)
SEED = 20251201


# --- simulation -------------------------------------------------------------------------------


def simulate_bgnbd(rng, model: BgNbd, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) of customers observed for ``age`` since their first purchase, drawn by the model's
    story: λ ~ Gamma(r, α), p ~ Beta(a, b); repeat purchases arrive as a Poisson(λ) process and the
    customer drops out after the J-th, J ~ Geometric(p). With K arrivals in (0, T], x = min(K, J)
    and t_x is the x-th of K uniform arrival times (a Beta(x, K − x + 1) draw, times T)."""
    n = len(age)
    rate = rng.gamma(model.r, 1 / model.alpha, n)
    dropout = rng.beta(model.a, model.b, n)
    arrivals = rng.poisson(rate * age)
    x = np.minimum(arrivals, rng.geometric(dropout))
    t_x = np.zeros(n)
    repeat = x > 0
    t_x[repeat] = age[repeat] * rng.beta(x[repeat], arrivals[repeat] - x[repeat] + 1)
    return x, t_x


def simulate_spend(rng, model: GammaGamma, x: np.ndarray) -> np.ndarray:
    """Mean spend of x purchases, each Gamma(p, rate ν), ν ~ Gamma(q, rate γ): the sum of x is
    Gamma(p·x, rate ν), so the mean is Gamma(p·x, rate x·ν)."""
    nu = rng.gamma(model.q, 1 / model.gamma, len(x))
    return rng.gamma(model.p * x, 1 / (nu * x))


def assert_recovered(truth: dict, fitted: dict, errors: tuple, *, max_z: float = 3.0, max_relative_se: float = 0.12):
    """Each estimate within ``max_z`` standard errors of the truth, and each standard error small
    enough (relative to the parameter) that this is a real constraint.

    Why this tolerance: the maximum-likelihood estimate is asymptotically normal around the truth
    with the inverse observed information as covariance (what ``Fit.standard_errors`` holds), so a
    correct fit lands within 3 SE with probability 99.7% per parameter; the seed makes the draw
    fixed, and a wrong likelihood (a sign, a missing term) moves estimates by many SE at these sizes.
    """
    for (name, true), estimate, error in zip(truth.items(), fitted.values(), errors, strict=False):
        assert error is not None and error / true < max_relative_se, (name, error)
        assert abs(estimate - true) < max_z * error, (name, true, estimate, error)


def test_bgnbd_recovers_the_parameters_customers_were_simulated_from():
    rng = np.random.default_rng(SEED)
    age = rng.uniform(27, 39, 20_000)  # CDNOW's cohort: first purchases over 12 weeks, observed to week 39
    x, t_x = simulate_bgnbd(rng, CDNOW, age)
    fitted, fit = fit_bgnbd(x, t_x, age)
    # seeded draw: r 0.2382 (SE 0.0042), α 4.397 (0.128), a 0.752 (0.059), b 2.231 (0.224): all within 1.2 SE
    assert_recovered(dataclasses.asdict(CDNOW), dataclasses.asdict(fitted), fit.standard_errors)
    assert fit.rows == 20_000
    assert fit.log_likelihood == pytest.approx(float(np.sum(fitted.log_likelihood(x, t_x, age))))


def test_gamma_gamma_recovers_the_parameters_spend_was_simulated_from():
    rng = np.random.default_rng(SEED)
    x, _ = simulate_bgnbd(rng, CDNOW, rng.uniform(27, 39, 20_000))
    x = x[x > 0]  # only repeat buyers have a mean repeat spend
    fitted, fit = fit_gamma_gamma(x, simulate_spend(rng, CDNOW_SPEND, x))
    assert_recovered(dataclasses.asdict(CDNOW_SPEND), dataclasses.asdict(fitted), fit.standard_errors)
    assert fit.rows == len(x)


def test_the_likelihoods_are_distributions_over_what_a_customer_can_show():
    """BG/NBD's likelihood is the density of a history: no purchase in (0, T] (x = 0), or x purchase
    times 0 < t_1 < ... < t_x ≤ T. It depends on t_x alone, so the first x − 1 times integrate to
    t_x^(x−1) / (x − 1)!; summed over x and integrated over t_x it must give one (a missing or
    doubled term would not). Gamma-Gamma's is a density of m_x for each x."""
    model, age = BgNbd(r=0.6, alpha=3.0, a=0.8, b=2.5), 4.0
    total = float(np.exp(model.log_likelihood(0, 0.0, age)))
    for x in range(1, 60):

        def density(t_x, x=x):
            return np.exp(model.log_likelihood(x, t_x, age)) * t_x ** (x - 1) / special.factorial(x - 1)

        total += integrate.quad(density, 0, age)[0]
    assert total == pytest.approx(1.0, abs=1e-7)
    for x in (1, 3, 20):
        mass = integrate.quad(lambda m, x=x: np.exp(CDNOW_SPEND.log_likelihood(x, m)), 0, np.inf)[0]
        assert mass == pytest.approx(1.0, abs=1e-7)


# --- the conditional expectations ---------------------------------------------------------------


def test_expected_purchases_reproduce_the_cdnow_worked_example():
    """Fader, Hardie & Lee (2005), section 5: a CDNOW customer with x = 2, t_x = 30.43, T = 38.86
    weeks is expected to make 1.226 purchases in the next 39 weeks."""
    assert CDNOW.expected_purchases(39, np.array([2]), np.array([30.43]), np.array([38.86]))[0] == pytest.approx(
        1.226, abs=5e-4
    )


def _posterior_expectation(model: BgNbd, t: float, x: int, t_x: float, age: float) -> tuple[float, float]:
    """(E[purchases in (T, T+t]], P(alive)) from the model's story, by quadrature over p.

    Alive at T with (λ, p), a customer buys (1 − e^(−λpt)) / p times in the next t (eq. 7 of the
    paper); a history's weight is its likelihood times the priors. The Gamma prior makes the
    integrals over λ elementary (∫ λ^x e^(−λs) Gamma(λ; r, α) dλ ∝ (α + s)^−(r+x), the same factor in
    every term); the integral over p, which the closed form turns into ₂F₁, is left to quadrature.
    """
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    after = (alpha + age) ** -(r + x)

    def beta(p):
        return stats.beta.pdf(p, a, b)

    def alive(p):
        return (1 - p) ** x * after * beta(p)

    def gone(p):
        return p * (1 - p) ** (x - 1) * (alpha + t_x) ** -(r + x) * beta(p) if x > 0 else 0.0

    def purchases(p):  # (1/p) ∫ λ^x e^(−λT) (1 − e^(−λpt)) Gamma dλ, without cancellation near p = 0
        return alive(p) * -np.expm1(-(r + x) * np.log1p(p * t / (alpha + age))) / p

    def integral(f):
        return integrate.quad(f, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0]

    evidence = integral(lambda p: alive(p) + gone(p))
    return integral(purchases) / evidence, integral(alive) / evidence


@pytest.mark.parametrize(
    ("model", "t", "x", "t_x", "age"),
    [
        (CDNOW, 39.0, 2, 30.43, 38.86),
        (CDNOW, 39.0, 0, 0.0, 38.86),  # no repeat purchase: alive for sure, the prior's rate shrunk by T
        (BgNbd(r=0.8, alpha=60.0, a=1.7, b=4.0), 90.0, 6, 120.0, 200.0),  # days; a > 1
        (BgNbd(r=0.8, alpha=60.0, a=0.4, b=4.0), 90.0, 9, 20.0, 250.0),  # a long silence: likely gone
    ],
)
def test_expected_purchases_and_p_alive_match_direct_integration(model, t, x, t_x, age):
    expected, alive = _posterior_expectation(model, t, x, t_x, age)
    assert model.expected_purchases(t, np.array([x]), np.array([t_x]), np.array([age]))[0] == pytest.approx(
        expected, rel=1e-6
    )
    assert model.p_alive(np.array([x]), np.array([t_x]), np.array([age]))[0] == pytest.approx(alive, rel=1e-6)


def test_expected_spend_matches_direct_integration_and_falls_back_to_the_mean():
    """E[spend | x, m_x] = E[p / ν | x, m_x], ν's posterior weighed by the density of m_x (a mean of
    x Gamma(p, ν) draws: Gamma(p·x, rate x·ν)); at x = 0 the population mean p·γ / (q − 1)."""
    model, x, m_x = CDNOW_SPEND, 3, 52.0

    def weight(nu):
        return stats.gamma.pdf(m_x, model.p * x, scale=1 / (x * nu)) * stats.gamma.pdf(
            nu, model.q, scale=1 / model.gamma
        )

    direct = integrate.quad(lambda nu: model.p / nu * weight(nu), 0, np.inf)[0] / integrate.quad(weight, 0, np.inf)[0]
    assert model.expected_spend(np.array([x]), np.array([m_x]))[0] == pytest.approx(direct, rel=1e-7)
    assert model.expected_spend(np.array([0]), np.array([np.nan]))[0] == pytest.approx(6.25 * 15.44 / 2.74)
    assert model.mean == pytest.approx(6.25 * 15.44 / 2.74)


def test_many_purchases_do_not_overflow():
    model = BgNbd(r=0.8, alpha=60.0, a=0.4, b=4.0)
    x = np.array([500, 500, 2000])
    t_x, age = np.array([300.0, 30.0, 299.0]), np.array([300.0, 300.0, 300.0])
    purchases = model.expected_purchases(90, x, t_x, age)
    assert np.all(np.isfinite(purchases))
    assert purchases[0] > 100  # ~1.7 purchase days a day, alive: about 150 in 90 days
    assert purchases[1] == pytest.approx(0.0, abs=1e-12)  # 270 silent days after 500 purchases: gone


# --- the summary and the scoring in Spark ------------------------------------------------------

LINES_DDL = (
    "invoice_id string, customer_id long, quantity long, unit_price double, invoice_ts timestamp, reason string"
)


def _ts(day, hour=10):
    return dt.datetime.fromisoformat(f"{day} {hour:02d}:00:00")


@pytest.mark.spark
def test_rfm_summary_counts_purchase_days(spark):
    as_of = dt.date(2011, 6, 30)
    lines = spark.createDataFrame(
        [
            ("1", 7, 2, 10.0, _ts("2011-06-01"), None),  # first day: 20
            ("2", 7, 1, 5.0, _ts("2011-06-01", 15), None),  # the same day, another invoice: one purchase
            ("3", 7, 3, 10.0, _ts("2011-06-11"), None),  # repeat: 30
            ("4", 7, 1, 50.0, _ts("2011-06-21"), None),  # repeat: 50
            ("4", 7, -1, 50.0, _ts("2011-06-25"), None),  # a return: not a purchase
            ("5", 7, 1, 999.0, _ts("2011-06-26"), "non_product_code"),  # not kept
            ("6", 7, 1, 999.0, _ts("2011-07-01"), "after_as_of"),
            ("7", 8, 1, 4.0, _ts("2011-06-30"), None),  # one purchase on the as-of date
            ("G1", None, 3, 1.0, _ts("2011-06-20"), None),  # a guest: customer 19000, one invoice
            ("8", None, 1, 1.0, _ts("2011-06-20"), "missing_invoice"),
        ],
        LINES_DDL,
    ).withColumn("revenue_units", (F.col("quantity") * F.col("unit_price") * 10_000).cast("long"))
    customers = spark.createDataFrame(
        [(7, None), (8, None), (19000, "G1")], "customer_id long, guest_invoice_no string"
    )
    got = {r[0]: tuple(r)[1:] for r in to_rfm_summary(lines, customers, as_of=as_of).collect()}
    assert got == {
        7: (2, 20, 29, pytest.approx(40.0)),  # x = 2 days after the first, t_x = 20, T = 29, m_x = (30 + 50) / 2
        8: (0, 0, 0, None),
        19000: (0, 0, 10, None),
    }


SUMMARY_DDL = (
    f"customer_id long, {REPEAT_PURCHASES} long, {LAST_PURCHASE_AGE} int, {CUSTOMER_AGE} int, {REPEAT_SPEND} double"
)


def _clv_model(bg_nbd, gamma_gamma):
    return ClvModel(bg_nbd, gamma_gamma, Fit(0.0, (None,) * 4, 0), Fit(0.0, (None,) * 3, 0))


@pytest.mark.spark
def test_spark_scoring_matches_the_driver_side_formulas(spark):
    model = _clv_model(BgNbd(r=0.8, alpha=60.0, a=0.6, b=3.0), GammaGamma(p=3.0, q=4.0, gamma=40.0))
    rows = [  # customer, x, t_x, T, m_x
        (1, 0, 0, 10, None),  # new: alive, the mean spend
        (2, 0, 0, 250, None),  # one purchase long ago
        (3, 4, 100, 120, 35.5),
        (4, 4, 10, 250, 35.5),  # the same history that stopped long ago
        (5, 40, 240, 250, 80.0),
        (6, 900, 30, 300, 12.0),  # many purchases, then silence: P(alive) underflows to 0
    ]
    summary = spark.createDataFrame(
        rows,
        SUMMARY_DDL,
    )
    scored = with_clv(summary, model, horizon_days=90)
    x, t_x, age = (np.array([r[i] for r in rows], dtype=float) for i in (1, 2, 3))
    m_x = np.array([np.nan if r[4] is None else r[4] for r in rows])
    purchases = model.bg_nbd.expected_purchases(90, x, t_x, age)
    spend = model.gamma_gamma.expected_spend(x, m_x)
    expected = spark.createDataFrame(
        [
            (*row, float(a), float(n), float(s), float(n * s))
            for row, a, n, s in zip(rows, model.bg_nbd.p_alive(x, t_x, age), purchases, spend, strict=True)
        ],
        scored.schema,
    )
    assert_approx_df_equality(scored, expected, precision=1e-9, ignore_row_order=True, ignore_nullable=True)
    by_id = {r["customer_id"]: r for r in scored.collect()}
    assert by_id[1][EXPECTED_SPEND] == by_id[2][EXPECTED_SPEND] == pytest.approx(model.gamma_gamma.mean)
    assert by_id[1][P_ALIVE] == 1.0 and by_id[6][P_ALIVE] == 0.0
    assert by_id[3][EXPECTED_PURCHASES] > by_id[4][EXPECTED_PURCHASES]
    assert by_id[5][EXPECTED_REVENUE] == max(r[EXPECTED_REVENUE] for r in by_id.values())


# --- fits that cannot be made -----------------------------------------------------------------


def test_too_few_repeat_buyers_is_a_clear_error():
    x = np.array([0] * 500 + [1] * (MIN_REPEAT_BUYERS - 1))
    with pytest.raises(ClvFitError, match=rf"{MIN_REPEAT_BUYERS - 1} repeat buyers among {len(x)} customers"):
        fit_clv_arrays(x, np.where(x > 0, 5.0, 0.0), np.full(len(x), 30.0), np.where(x > 0, 10.0, np.nan))


@pytest.mark.spark
def test_the_fit_sees_a_bounded_seeded_sample(spark):
    rng = np.random.default_rng(SEED)
    model = BgNbd(r=0.8, alpha=60.0, a=0.6, b=3.0)
    age = rng.integers(1, 300, 3_000).astype(float)
    x, t_x = simulate_bgnbd(rng, model, age)
    spend = np.where(x > 0, simulate_spend(rng, GammaGamma(3.0, 4.0, 40.0), np.maximum(x, 1)), np.nan)
    rows = [
        (i, int(a), int(b), int(c), None if np.isnan(d) else float(d))
        for i, (a, b, c, d) in enumerate(zip(x, np.floor(t_x), age, spend, strict=True))
    ]
    summary = spark.createDataFrame(
        rows,
        SUMMARY_DDL,
    )
    fitted = fit_clv(summary, max_rows=1_000, seed=7)
    again = fit_clv(summary.repartition(3), max_rows=1_000, seed=7)
    assert fitted.bg_nbd_fit.rows == 1_000
    assert fitted.bg_nbd == again.bg_nbd and fitted.gamma_gamma == again.gamma_gamma  # the same customers
    assert fitted.describe()["sample_seed"] == 7


def test_clv_sample_rows_is_range_checked():
    with pytest.raises(ConfigError, match=r"backtest\.clv_sample_rows = 10: expected 100 to 1,000,000"):
        load_config(env="test", overrides={"backtest.clv_sample_rows": 10}, environ={})
    assert load_config(env="test", environ={}).backtest.clv_sample_rows == 100_000


# --- in the backtest ----------------------------------------------------------------------------

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
CUTOFF = dt.date(2011, 6, 30)


def _line(invoice, day, quantity, customer):
    return f"{invoice},22423,ITEM,{quantity},{day} 10:00:00,2.5,{customer},United Kingdom"


def _simulated_log(customers: int) -> list[str]:
    """Registered customers who first buy in the first half of 2011 and come back as BG/NBD says
    (one purchase day at a time, through the window's end on 2011-07-30), and a few guests."""
    rng = np.random.default_rng(SEED)
    start = dt.date(2011, 1, 1)
    lines, invoice = [], 0
    for customer in range(101, 101 + customers):
        first = rng.integers(0, 170)
        rate, dropout = rng.gamma(1.0, 1 / 20.0), rng.beta(1.0, 3.0)
        days, day = [first], float(first)
        while True:
            day += rng.exponential(1 / rate)
            if day > 210:
                break
            days.append(int(day))
            if rng.random() < dropout:
                break
        for d in days:
            invoice += 1
            lines.append(_line(f"A{invoice}", start + dt.timedelta(days=int(d)), rng.integers(1, 40), customer))
    for g in range(10):
        lines.append(_line(f"G{g}", start + dt.timedelta(days=10 * g), 5, ""))
    return lines


def _backtest_config(tmp_path, lines):
    path = tmp_path / "log.csv"
    ending = _line("Z1", "2011-08-01", 1, 101)  # the log goes past the window's end
    path.write_text("\n".join([HEADER, *lines, ending]) + "\n")
    config = load_config(
        env="test", overrides={"input.path": str(path), "output.path": str(tmp_path / "out")}, environ={}
    )
    settings = dataclasses.replace(config.backtest, horizon_days=30, scorers=())
    return dataclasses.replace(config, backtest=settings)


@pytest.mark.spark
def test_the_backtest_ranks_by_clv(spark, tmp_path):
    result = run_backtest(spark, _backtest_config(tmp_path, _simulated_log(400)), cutoff=CUTOFF)
    assert result.clv["measured"] is True
    assert result.clv["bg_nbd"]["customers"] == result.eligible  # every customer, guests included
    assert CLV in result.scorers
    shares = result.describe()["revenue_share"][CLV]
    assert set(shares) >= {"5%", "10%", "20%"}
    for share in (0.05, 0.10, 0.20, 1.0):
        assert result.share(CLV, share) <= result.share(FORESIGHT, share) + 1e-12
    assert result.share(CLV, 1.0) == pytest.approx(result.share(BASELINE, 1.0))  # everyone: the same revenue
    curve = {(r["scorer"], r["head_count_share"]): r["gap_closed"] for r in to_curve_frame(spark, result).collect()}
    assert (CLV, 0.1) in curve and curve[(CLV, 0.1)] is None  # a reference: no gap closed
    assert f"| {LABELS[CLV]} |" in curve_markdown(result)
    assert "The CLV reference ranks by expected revenue" in summary_markdown(result)
    assert capture_chart_png(result).startswith(b"\x89PNG")


@pytest.mark.spark
def test_a_log_too_thin_for_clv_leaves_it_not_measured(spark, tmp_path):
    lines = [_line(f"A{c}", "2011-03-01", 2, c) for c in range(101, 111)]  # one-off customers
    lines += [_line("B1", "2011-05-01", 3, 101), _line("B2", "2011-07-10", 3, 101), _line("B3", "2011-07-20", 4, 102)]
    result = run_backtest(spark, _backtest_config(tmp_path, lines), cutoff=CUTOFF)
    assert result.clv == {
        "measured": False,
        "error": f"1 repeat buyers among 10 customers: a CLV fit needs at least {MIN_REPEAT_BUYERS} customers "
        "who bought on two days or more",
    }
    assert CLV not in result.scorers and BASELINE in result.scorers  # the rest of the backtest is measured
    assert result.describe()["clv"]["measured"] is False
    assert "The CLV reference (BG/NBD × Gamma-Gamma) was not measured: 1 repeat buyers" in summary_markdown(result)
