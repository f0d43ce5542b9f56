"""Two more ideas for issue 7, tried off-line on the real log with scikit-learn; neither adopted.

1. **Bagged segments** (consensus clustering): fit B trees + KMeans on bootstrap resamples of the
   customers, align each fit's clusters with the consensus (the Hungarian assignment on their
   overlap) and let every customer take the cluster most fits give it, until no customer moves.
   Averaging over resamples is the textbook cure for a partition that depends on its sample; the
   question is whether it brings the bootstrap agreement (ARI, Insiders Jaccard) to 0.9. Measured
   as ``stability.py`` measures the job: 5 bootstrap resamples (Poisson(1) weights), each bagged
   again, every customer compared with the reference. The silhouette of a consensus is taken on
   the B fits' embeddings side by side (each scaled by 1/sqrt(B)).
2. **A customer-lifetime-value ranking for the backtest**: the BG/NBD model (Fader, Hardie and Lee
   2005: repeat invoices, the span between the first and last, and the age of each customer)
   for the number of invoices in the next 90 days, times the Gamma-Gamma model of their value,
   and the BG/NBD probability that a customer is still active times past revenue; next to
   recency-decayed revenue. Each is scored as ``backtest.py`` scores a ranking: the share of all
   revenue of the 90 days after 2011-09-09 that its top 5/10/20% of the eligible customers bring,
   guest invoices last.

The features are the pandas reference's (``benchmarks.reference_pandas.compute_features``, identical
to the job's); the tree is scikit-learn's (depth 4, leaves of ≥ 1% of the weight, thresholds at
midpoints where MLlib bins) with the job's leaf-path vectors and its local KMeans solver; its
single fit (bags = 1) is the job's segmentation as near as scikit-learn's tree allows, and the
first row of the table shows how near.

    python -m studies.offline_alternatives

Under a minute on 2 cores, no Spark; writes studies/output/offline_alternatives.md and .json (the
findings: docs/studies/offline_alternatives.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment, minimize
from scipy.special import betaln, gammaln, hyp2f1
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.tree import DecisionTreeRegressor

from benchmarks.reference_pandas import MODEL_INPUT_COLUMNS, compute_features, leaf_paths
from insiders_spark.core.config import load_config
from insiders_spark.model.clustering import N_INIT, weighted_kmeans
from studies.common import input_path, start_study, study_parser, window_revenue, write_study

log = logging.getLogger("offline_alternatives")

K = 9
SEED = 42
OUTER_BOOTSTRAPS = 5
BAGS = (1, 10, 30)
CUTOFF = dt.date(2011, 9, 9)
HORIZON = 90
SHARES = (0.05, 0.10, 0.20)
SILHOUETTE_SAMPLE = 2000


# --- 1: bagged segments ----------------------------------------------------------------------


class Segmenter:
    """The job's segmentation (tree on log1p revenue, leaf paths, local KMeans at k = 9), weighted."""

    def __init__(self, features: pd.DataFrame, config) -> None:
        self.x = features[list(MODEL_INPUT_COLUMNS)].to_numpy(dtype=np.float64)
        self.revenue = features["gross_revenue"].to_numpy(dtype=np.float64)
        self.label = np.log1p(self.revenue)
        self.config = config
        self.n = len(features)

    def fit(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every customer's cluster rank (0 = Insiders) and leaf-path vector, from one weighted fit."""
        embedding = self.config.embedding
        tree = DecisionTreeRegressor(
            max_depth=embedding.max_depth, min_weight_fraction_leaf=embedding.min_leaf_share, random_state=SEED
        ).fit(self.x, self.label, sample_weight=weights)
        leaf_of_node, vectors = leaf_paths(tree)
        leaf = np.array([leaf_of_node[node] for node in tree.apply(self.x)])
        customers = np.bincount(leaf, weights=weights, minlength=len(vectors))
        occupied = np.flatnonzero(customers > 0)
        labels, _ = weighted_kmeans(vectors[occupied], customers[occupied], k=K, starts=N_INIT, seed=SEED)
        leaf_cluster = np.full(len(vectors), -1)
        leaf_cluster[occupied] = labels
        return self.ranked(leaf_cluster[leaf], weights), vectors[leaf]

    def ranked(self, clusters: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Clusters renumbered by mean revenue over the weighted customers, 0 the highest."""
        size = np.bincount(clusters, weights=weights, minlength=K)
        total = np.bincount(clusters, weights=weights * self.revenue, minlength=K)
        mean = np.where(size > 0, total / np.maximum(size, 1e-12), -np.inf)
        rank = np.empty(K, dtype=np.int64)
        rank[np.argsort(-mean, kind="stable")] = np.arange(K)
        return rank[clusters]


def aligned(labels: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``labels`` renamed to the ``target`` clusters they overlap most (one to one)."""
    overlap = np.zeros((K, K))
    np.add.at(overlap, (labels, target), weights)
    rows, cols = linear_sum_assignment(-overlap)
    names = np.empty(K, dtype=np.int64)
    names[rows] = cols
    return names[labels]


def consensus(fits: list[np.ndarray], weights: np.ndarray, rounds: int = 50) -> np.ndarray:
    current = fits[0]
    for _ in range(rounds):
        votes = np.zeros((len(current), K))
        for fit in fits:
            votes[np.arange(len(current)), aligned(fit, current, weights)] += 1
        voted = votes.argmax(axis=1)
        if np.array_equal(voted, current):
            break
        current = voted
    return current


def bagged(segmenter: Segmenter, weights: np.ndarray, bags: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The consensus of ``bags`` fits on resamples of ``weights`` (one plain fit when bags = 1)."""
    if bags == 1:
        return segmenter.fit(weights)
    rng = np.random.default_rng(seed)
    fits, vectors = [], []
    for _ in range(bags):
        ranks, embedded = segmenter.fit(weights * rng.poisson(1.0, segmenter.n))
        fits.append(ranks)
        vectors.append(embedded)
    voted = consensus(fits, weights)
    return segmenter.ranked(voted, weights), np.hstack(vectors) / math.sqrt(bags)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def bagging_study(features: pd.DataFrame, config) -> list[dict]:
    segmenter = Segmenter(features, config)
    everyone = np.ones(segmenter.n)
    rows = []
    for bags in BAGS:
        started = time.perf_counter()
        reference, embedded = bagged(segmenter, everyone, bags, seed=SEED)
        sizes = np.bincount(reference, minlength=K) / segmenter.n
        insiders = reference == 0
        runs = []
        for b in range(1, OUTER_BOOTSTRAPS + 1):
            weights = np.random.default_rng(SEED + b).poisson(1.0, segmenter.n).astype(np.float64)
            other, _ = bagged(segmenter, weights, bags, seed=SEED + 100 * b)
            runs.append({"ari": adjusted_rand_score(reference, other), "jaccard": jaccard(insiders, other == 0)})
        rows.append(
            {
                "bags": bags,
                "silhouette": float(
                    silhouette_score(
                        embedded, reference, metric="sqeuclidean", sample_size=SILHOUETTE_SAMPLE, random_state=SEED
                    )
                ),
                "smallest_cluster": float(sizes.min()),
                "insiders_customers": float(insiders.mean()),
                "insiders_revenue": float(segmenter.revenue[insiders].sum() / segmenter.revenue.sum()),
                "ari_min": min(r["ari"] for r in runs),
                "ari_mean": float(np.mean([r["ari"] for r in runs])),
                "jaccard_min": min(r["jaccard"] for r in runs),
                "jaccard_mean": float(np.mean([r["jaccard"] for r in runs])),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        log.info("bags %d: %s", bags, rows[-1])
    return rows


# --- 2: customer-lifetime-value rankings -----------------------------------------------------


def bgnbd_negative_ll(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    stays = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    drops = np.where(
        x > 0, betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return float(-(common + np.logaddexp(stays, drops)).sum())


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    result = minimize(
        bgnbd_negative_ll,
        np.log([0.5, 50.0, 1.0, 3.0]),
        args=(x, t_x, age),
        method="Nelder-Mead",
        options={"maxiter": 10_000, "xatol": 1e-8, "fatol": 1e-8},
    )
    return np.exp(result.x)


def expected_invoices(params: np.ndarray, days: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    ahead = (
        (a + b + x - 1)
        / (a - 1)
        * (
            1
            - ((alpha + age) / (alpha + age + days)) ** (r + x)
            * hyp2f1(r + x, b + x, a + b + x - 1, days / (alpha + age + days))
        )
    )
    return ahead * probability_active(params, x, t_x, age)  # the model's denominator is 1 / P(active)


def probability_active(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, age: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    return np.where(
        x > 0, 1 / (1 + (a / np.maximum(b + x - 1, 1e-12)) * ((alpha + age) / (alpha + t_x)) ** (r + x)), 1.0
    )


def gamma_gamma_negative_ll(log_params: np.ndarray, invoices: np.ndarray, value: np.ndarray) -> float:
    p, q, gamma = np.exp(log_params)
    px = p * invoices
    return float(
        -(
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(gamma)
            + (px - 1) * np.log(value)
            + px * np.log(invoices)
            - (px + q) * np.log(gamma + invoices * value)
        ).sum()
    )


def expected_value(invoices: np.ndarray, value: np.ndarray) -> np.ndarray:
    repeat = (invoices >= 2) & (value > 0)
    result = minimize(
        gamma_gamma_negative_ll,
        np.zeros(3),
        args=(invoices[repeat], value[repeat]),
        method="Nelder-Mead",
        options={"maxiter": 10_000},
    )
    p, q, gamma = np.exp(result.x)
    return (p * (gamma + invoices * value)) / (p * invoices + q - 1)


def decayed_revenue(path: Path, customers: pd.Series, half_lives_days: tuple[float, ...]) -> dict[float, np.ndarray]:
    """For each half-life h: each registered customer's purchase lines up to the cut-off, each
    halved every h days before it (the log read once). A ranking signal only: the lines are the
    purchases at ≥ 0.01 a unit, not every rule of the job's cleaning."""
    lines = pd.read_parquet(path, columns=["CustomerID", "Quantity", "UnitPrice", "InvoiceDate"])
    when = pd.to_datetime(lines["InvoiceDate"])
    end = pd.Timestamp(CUTOFF + dt.timedelta(days=1))
    kept = (when < end) & lines["CustomerID"].notna() & (lines["Quantity"] > 0) & (lines["UnitPrice"] >= 0.01)
    age = (end - when[kept]).dt.days.to_numpy()
    revenue = lines["Quantity"][kept].to_numpy() * lines["UnitPrice"][kept].to_numpy()
    owner = lines["CustomerID"][kept].astype(np.int64).to_numpy()
    decayed = {}
    for half_life in half_lives_days:
        sums = pd.Series(revenue * 0.5 ** (age / half_life)).groupby(owner).sum()
        decayed[half_life] = customers.map(sums).fillna(0.0).to_numpy()
    return decayed


def clv_study(path: Path, config) -> dict:
    now, _ = compute_features(path, config, as_of=CUTOFF)
    later, _ = compute_features(path, config, as_of=CUTOFF + dt.timedelta(days=HORIZON))
    future, window_total = window_revenue(now, later)  # new customers in the total
    guest = now["is_guest"].to_numpy()
    past = now["gross_revenue"].to_numpy()

    def shares(score: np.ndarray, *, guests_last: bool = True) -> dict[str, float]:
        order = np.lexsort((-past, -score, guest if guests_last else np.zeros(len(score), dtype=bool)))
        return {f"{s:.0%}": float(future[order[: round(s * len(score))]].sum() / window_total) for s in SHARES}

    first = pd.to_datetime(now["first_purchase_date"])
    last = pd.to_datetime(now["last_purchase_date"])
    age = ((pd.Timestamp(CUTOFF) - first).dt.days + 1).to_numpy(dtype=np.float64)
    t_x = (last - first).dt.days.to_numpy(dtype=np.float64)
    invoices = now["qty_invoices"].to_numpy(dtype=np.float64)
    x = invoices - 1
    params = fit_bgnbd(x[~guest], t_x[~guest], age[~guest])
    ahead = np.where(guest, 0.0, expected_invoices(params, HORIZON, x, t_x, age))
    value = expected_value(invoices, past / invoices)
    active = probability_active(params, x, t_x, age)
    decayed = decayed_revenue(path, now["customer_id"], (90, 180))
    rankings = {
        "baseline: top past revenue": shares(past, guests_last=False),
        "perfect foresight": shares(future, guests_last=False),
        "top past revenue, guests last": shares(past),
        "BG/NBD: expected invoices in the next 90 days": shares(ahead),
        "BG/NBD × Gamma-Gamma: expected revenue in the next 90 days": shares(ahead * value),
        "BG/NBD probability of being active × past revenue": shares(active * past),
        **{f"revenue decayed with a half-life of {h} days": shares(score) for h, score in decayed.items()},
    }
    return {
        "cutoff": CUTOFF.isoformat(),
        "horizon_days": HORIZON,
        "eligible": len(now),
        "window_revenue": round(window_total, 2),
        "bgnbd": dict(zip(("r", "alpha", "a", "b"), (round(float(v), 6) for v in params), strict=True)),
        "rankings": rankings,
    }


# --- report ----------------------------------------------------------------------------------


def render(result: dict) -> str:
    lines = [
        "# Bagged segments and lifetime-value rankings, tried off-line; neither adopted",
        "",
        f"Real log (UCI Online Retail, CC BY 4.0), scikit-learn; {result['minutes']} min on {result['date']}. "
        "Generated by `python -m studies.offline_alternatives` (its docstring says what each measures).",
        "",
        "## 1: bagged segments (k = 9)",
        "",
        "Bags = 1 is one fit, as the job does (its single-fit numbers are close to the job's: "
        "docs/studies/quality_real_log.md). Stability: 5 bootstrap resamples, each bagged again, against the "
        "reference, over every customer.",
        "",
        "| bags | silhouette | smallest cluster | Insiders' customers | Insiders' revenue | "
        "bootstrap ARI worst / mean | bootstrap Jaccard worst / mean |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["bagging"]:
        lines.append(
            f"| {r['bags']} | {r['silhouette']:.3f} | {r['smallest_cluster']:.1%} | {r['insiders_customers']:.1%} | "
            f"{r['insiders_revenue']:.1%} | {r['ari_min']:.3f} / {r['ari_mean']:.3f} | "
            f"{r['jaccard_min']:.3f} / {r['jaccard_mean']:.3f} |"
        )
    clv = result["clv"]
    baseline, foresight = clv["rankings"]["baseline: top past revenue"], clv["rankings"]["perfect foresight"]
    lines += [
        "",
        f"## 2: rankings for the backtest (cut-off {clv['cutoff']}, {clv['horizon_days']} days)",
        "",
        f"Share of all the window's revenue ({clv['window_revenue']:,.0f}, new customers included) brought by the "
        f"top of {clv['eligible']:,} eligible customers; model rankings put guest invoices last. BG/NBD "
        f"parameters: {clv['bgnbd']}.",
        "",
        "| ranking | top 5% | top 10% | top 20% |",
        "|---|---:|---:|---:|",
    ]
    for name, shares in clv["rankings"].items():
        cells = []
        for key, value in shares.items():
            gap = foresight[key] - baseline[key]
            closed = (
                ""
                if name in ("baseline: top past revenue", "perfect foresight")
                else f" ({(value - baseline[key]) / gap:+.0%} of gap)"
            )
            cells.append(f"{value:.1%}{closed}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = study_parser("offline_alternatives", __doc__)
    args = parser.parse_args(argv)
    start_study()
    started = time.perf_counter()
    path = input_path(args)
    config = load_config(env="local")
    features, _ = compute_features(path, config)
    result = {
        "date": dt.date.today().isoformat(),
        "input": path,
        "bagging": bagging_study(features, config),
        "clv": clv_study(Path(path), config),
    }
    result["minutes"] = round((time.perf_counter() - started) / 60, 1)
    write_study(args.out, result, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
