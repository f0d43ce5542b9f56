"""The BG/NBD and Gamma-Gamma models on the driver: likelihoods, predictions and their
maximum-likelihood fits over a bounded summary (numpy and scipy; no Spark).

``evaluation.clv`` builds the summary in Spark, fits these on a bounded sample of it and scores
every customer in Spark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from insiders_spark.core.errors import ClvFitError

log = logging.getLogger(__name__)


LOG_BOUND = 15.0  # the fits search each parameter in [e^-15, e^15]


MIN_REPEAT_BUYERS = 50  # below this the Gamma-Gamma's three parameters (its mean) are not identified


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
