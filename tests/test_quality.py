"""Quality measures on hand-built customers: silhouette check, stability, choice of k.

The feature tables are groups of customers the revenue tree separates without doubt: each group
has its own number of items and its own revenue level, so a bootstrap resample of the customers
finds the same split thresholds (between the groups' distinct values) and the same leaves.
"""

import dataclasses
import datetime as dt
import math
import random

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F
from sklearn.metrics import adjusted_rand_score, silhouette_score

from insiders_spark.core.config import ClusteringConfig, QualityConfig
from insiders_spark.core.names import CLUSTER, CUSTOMER_ID
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.evaluation.kselection import KScore, choose_k, score_grid, select_k
from insiders_spark.evaluation.quality import (
    bounded_sample,
    check_silhouette,
    quality_verdict,
    segmentation_failures,
    stability_failures,
)
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    SEED,
    bootstrap_resample,
    fit_stability_runs,
    measure_stability,
    poisson_one_cdf,
)
from insiders_spark.model.clustering import (
    KMEANS_CLUSTER,
    EmbeddingPoints,
    fit_kmeans,
    with_kmeans_clusters,
)
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.model.leaves import summarise_leaves
from insiders_spark.model.profiles import PROFILED_FEATURES, summarise_clusters
from insiders_spark.model.segmentation import fit_segmentation, silhouette_of
from insiders_spark.model.silhouette import leaf_silhouette, silhouette

DAY = dt.date(2011, 12, 9)


def _groups(spark, spec, *, noise=False, seed=0):
    """One row per customer; spec: (customers, items, log revenue) per group."""
    rng = random.Random(seed)
    rows, customer = [], 0
    for group, (size, items, log_revenue) in enumerate(spec):
        for _ in range(size):
            revenue = math.exp(log_revenue + (rng.uniform(-0.3, 0.3) if noise else 0.0))
            ticket = rng.uniform(0, 100) if noise else 1.0  # noise the tree may split on
            rows.append((customer, False, revenue, 10, group + 1, items, 5 * (group + 1), 0.5, 0, ticket, DAY, DAY))
            customer += 1
    return spark.createDataFrame(rows, CUSTOMER_FEATURES_SCHEMA).cache()


def _config(test_config, **embedding):
    return dataclasses.replace(
        test_config,
        embedding=dataclasses.replace(test_config.embedding, **{"max_depth": 2, "min_leaf_share": 0.05, **embedding}),
        clustering=dataclasses.replace(test_config.clustering, n_init=5),
    )


FOUR_GROUPS = [(60, 10, 1.0), (40, 20, 1.5), (80, 1000, 5.0), (120, 2000, 5.5)]


@pytest.fixture(scope="module")
def four_groups(spark):
    return _groups(spark, FOUR_GROUPS)


# --- silhouette -------------------------------------------------------------------------------


def _embedded(spark):
    points = {0: ([0.0, 0.0], 30), 1: ([0.0, 1.0], 10), 2: ([10.0, 0.0], 25), 3: ([10.0, 1.0], 5), 4: ([0.0, 20.0], 12)}
    rows = [(leaf, Vectors.dense(vector)) for leaf, (vector, count) in points.items() for _ in range(count)]
    rows = [(customer, leaf, vector) for customer, (leaf, vector) in enumerate(rows, start=1)]
    return spark.createDataFrame(rows, [CUSTOMER_ID, "leaf", EMBEDDING]), points


def test_leaf_silhouette_equals_mllib_and_sklearn(spark):
    embedded, points = _embedded(spark)
    fitted = fit_kmeans(embedded, config=ClusteringConfig(n_init=2), k=3, seed=1)
    clustered = with_kmeans_clusters(embedded, fitted)
    table = EmbeddingPoints(
        leaves=tuple(points),
        vectors=np.array([v for v, _ in points.values()]),
        customers=np.array([float(c) for _, c in points.values()]),
    )
    exact = leaf_silhouette(table, fitted.leaf_clusters)
    assert exact == pytest.approx(silhouette(clustered), abs=1e-9)
    vectors = np.repeat(table.vectors, table.customers.astype(int), axis=0)
    labels = np.repeat([fitted.leaf_clusters[leaf] for leaf in table.leaves], table.customers.astype(int))
    assert exact == pytest.approx(silhouette_score(vectors, labels, metric="sqeuclidean"), abs=1e-9)


def test_leaf_silhouette_scores_a_lone_customer_zero():
    # one customer alone in its cluster scores 0; the two at the other point score 1
    table = EmbeddingPoints(leaves=(0, 1), vectors=np.array([[0.0], [1.0]]), customers=np.array([1.0, 2.0]))
    assert leaf_silhouette(table, {0: 0, 1: 1}) == pytest.approx(2 / 3)


def test_check_silhouette_matches_mllib_when_the_sample_is_everyone(spark):
    embedded, _ = _embedded(spark)
    clustered = with_kmeans_clusters(embedded, fit_kmeans(embedded, config=ClusteringConfig(n_init=2), k=3, seed=1))
    check = check_silhouette(clustered, customers=82, seed=3, max_rows=1_000)
    assert check.sample_rows == 82
    assert check.sample == pytest.approx(check.mllib, abs=1e-9)
    assert check.to_dict()["distance"] == "squaredEuclidean"
    bounded = check_silhouette(clustered, customers=82, seed=3, max_rows=20, mllib=0.5)
    assert bounded.mllib == 0.5 and 0 < bounded.sample_rows <= 20


def test_bounded_sample_draws_its_bound_and_the_same_rows_however_partitioned(spark):
    frame = spark.range(1_000).withColumnRenamed("id", CUSTOMER_ID)
    draws = []
    for seed in range(3):
        rows = {r[CUSTOMER_ID] for r in bounded_sample(frame, key=CUSTOMER_ID, max_rows=100, seed=seed).collect()}
        moved = frame.repartition(7, F.col(CUSTOMER_ID) % 13)
        again = {r[CUSTOMER_ID] for r in bounded_sample(moved, key=CUSTOMER_ID, max_rows=100, seed=seed).collect()}
        assert len(rows) == 100 and rows == again
        draws.append(rows)
    assert draws[0] != draws[1] != draws[2]  # another seed, another sample
    # spread over the ids, as a uniform draw is: 100 of 1,000 put about 50 in each half
    assert 25 <= sum(1 for customer in draws[0] if customer < 500) <= 75
    assert bounded_sample(frame, key=CUSTOMER_ID, max_rows=5_000, seed=1).count() == 1_000
    with pytest.raises(ValueError, match="at least one row"):
        bounded_sample(frame, key=CUSTOMER_ID, max_rows=0, seed=1)


def test_targets_name_what_is_missed():
    targets = QualityConfig()
    assert segmentation_failures(
        targets,
        silhouette=0.8, smallest_cluster_share=0.02, insiders_share=0.08, insiders_revenue_share=0.55
    ) == []
    missed = segmentation_failures(
        targets,
        silhouette=0.7, smallest_cluster_share=0.005, insiders_share=0.2, insiders_revenue_share=0.4
    )
    assert [m.split()[0] for m in missed] == ["silhouette", "smallest", "Insiders", "Insiders"]
    assert stability_failures(targets, ari_min=0.95, jaccard_min=0.89) == ["Insiders Jaccard 0.890 < 0.9"]


def test_the_verdict_lists_every_missed_target():
    from insiders_spark.model.profiles import build_profiles

    means = {f"{n}_mean": 1.0 for n in ("recency_days", "qty_invoices", "qty_items", "qty_products", "frequency", "qty_returns", "avg_ticket")}
    profiles = build_profiles([
        {"kmeans_cluster": 0, "customers": 8, "revenue_total": 600.0, "gross_revenue_mean": 75.0, **means},
        {"kmeans_cluster": 1, "customers": 92, "revenue_total": 400.0, "gross_revenue_mean": 400 / 92, **means},
    ])
    verdict = quality_verdict(profiles=profiles, silhouette=0.8, stability_failures=[], targets=QualityConfig())
    assert verdict["meets_targets"] and verdict["failures"] == [] and verdict["targets"]["ari"] == 0.9
    missed = quality_verdict(profiles=profiles, silhouette=0.8, stability_failures=None, targets=QualityConfig())
    assert missed == {**verdict, "meets_targets": False, "failures": ["stability not measured"]}


# --- stability --------------------------------------------------------------------------------


def test_a_perfectly_separated_table_is_perfectly_stable(spark, test_config, four_groups):
    config = _config(test_config)
    stability = measure_stability(four_groups, config=config, customers=300, k=3, seed=7, seeds=1, bootstraps=2)
    assert [r.kind for r in stability.runs] == [SEED, BOOTSTRAP, BOOTSTRAP]
    assert [r.seed for r in stability.runs] == [8, 7, 7]
    assert [r.sample_seed for r in stability.runs] == [None, 8, 9]
    assert all(r.ari == 1.0 and r.insiders_jaccard == 1.0 for r in stability.runs)
    assert stability.reference_insiders == 120 and all(r.insiders == 120 for r in stability.runs)
    assert stability.meets_targets
    assert all(r.training_customers != 300 for r in stability.of_kind(BOOTSTRAP))  # resampled
    manifest = stability.to_dict()
    assert manifest["bootstrap"]["runs"] == 2 and manifest["ari"] == {"min": 1.0, "mean": 1.0}


def test_a_bootstrap_resample_depends_on_the_customers_and_the_seed_only(spark):
    customers = spark.range(20_000).withColumnRenamed("id", CUSTOMER_ID)

    def copies(frame):
        return sorted((r[CUSTOMER_ID], r["count"]) for r in frame.groupBy(CUSTOMER_ID).count().collect())

    one = copies(bootstrap_resample(customers.repartition(1), seed=4))
    assert one == copies(bootstrap_resample(customers.repartition(5), seed=4))
    assert one != copies(bootstrap_resample(customers, seed=5))
    drawn = dict(one)
    # Poisson(1): about e^-1 of the customers left out, one copy per customer on average
    assert 1 - len(drawn) / 20_000 == pytest.approx(math.exp(-1), abs=0.015)
    assert sum(drawn.values()) / 20_000 == pytest.approx(1.0, abs=0.03)
    assert max(drawn.values()) <= 10
    assert poisson_one_cdf(3) == pytest.approx((math.exp(-1), 2 * math.exp(-1), 2.5 * math.exp(-1)))


def test_the_fit_measures_profiles_and_silhouette_on_its_leaf_table_as_spark_does_per_customer(spark, test_config):
    """The fit's profiles and silhouette come from its leaf table (one row per leaf); each is
    checked against the per-customer computation: Spark's mean per cluster, MLlib's
    ClusteringEvaluator. A score run's leaf table of the same customers is the fit's own."""
    features = _groups(spark, [(70, 10, 1.0), (50, 20, 2.0), (90, 400, 4.0), (60, 900, 6.0)], noise=True, seed=3)
    config = _config(test_config, max_depth=3, min_leaf_share=0.03)
    model, clustered = fit_segmentation(features, config=config, customers=270, k=4, seed=5)
    per_customer = {s["kmeans_cluster"]: s for s in summarise_clusters(clustered, cluster_col=KMEANS_CLUSTER)}
    assert sorted(per_customer) == sorted(p.kmeans_cluster for p in model.profiles)
    for profile in model.profiles:
        spark_means = per_customer[profile.kmeans_cluster]
        assert profile.customers == spark_means["customers"]
        assert profile.revenue_total == pytest.approx(spark_means["revenue_total"], rel=1e-12)
        for name in PROFILED_FEATURES:
            assert getattr(profile, f"{name}_mean") == pytest.approx(spark_means[f"{name}_mean"], rel=1e-12), name
    assert silhouette_of(model) == pytest.approx(silhouette(clustered), abs=1e-9)
    scored = summarise_leaves(model.embed(features))
    assert sorted(scored) == sorted(model.leaf_sums)
    for leaf, sums in scored.items():
        assert sums == pytest.approx(model.leaf_sums[leaf], rel=1e-12)


def test_the_leaf_tables_give_what_the_job_gives(spark, test_config):
    """The shortcut (every k from the runs' leaf tables) against the job's own path: fit_segmentation
    on all customers and on the bootstrap resample, then SegmentationModel.transform of every
    customer, compared customer by customer."""
    features = _groups(spark, [(70, 10, 1.0), (50, 20, 2.0), (90, 400, 4.0), (60, 900, 6.0)], noise=True, seed=3)
    config = _config(test_config, max_depth=3, min_leaf_share=0.03)
    runs = fit_stability_runs(features, config=config, customers=270, seed=5, seeds=0, bootstraps=1)
    (bootstrap,) = runs.perturbed
    mine = runs.reference_clusters(4, config=config)
    (run,) = runs.stability(4, config=config, reference=mine).runs

    reference, reference_clustered = fit_segmentation(features, config=config, customers=270, k=4, seed=5)
    assert [p.customers for p in mine.profiles] == [p.customers for p in reference.profiles]
    assert [p.revenue_total for p in mine.profiles] == pytest.approx([p.revenue_total for p in reference.profiles])
    assert [p.segment for p in mine.profiles] == [p.segment for p in reference.profiles]
    assert leaf_silhouette(runs.reference.points(), mine.kmeans.leaf_clusters) == pytest.approx(
        silhouette(reference_clustered), abs=1e-9
    )

    resample = bootstrap_resample(features, seed=6).cache()  # the run's sample seed
    assert bootstrap.sample_seed == 6 and bootstrap.training_customers == resample.count()
    other, other_clustered = fit_segmentation(resample, config=config, customers=bootstrap.training_customers, k=4, seed=5)
    pairs = (
        reference.transform(features).select(CUSTOMER_ID, CLUSTER)
        .join(
            other.transform(features).select(CUSTOMER_ID, F.col(CLUSTER).alias("other")),
            on=CUSTOMER_ID,
            how="inner",
        )
        .collect()
    )
    assert len(pairs) == 270
    assert run.ari == pytest.approx(adjusted_rand_score([r[CLUSTER] for r in pairs], [r["other"] for r in pairs]), abs=1e-12)
    ref_insiders = {r[CUSTOMER_ID] for r in pairs if r[CLUSTER] == 1}
    other_insiders = {r[CUSTOMER_ID] for r in pairs if r["other"] == 1}
    assert run.insiders == len(other_insiders)
    assert run.insiders_jaccard == pytest.approx(len(ref_insiders & other_insiders) / len(ref_insiders | other_insiders))
    for frame in (reference_clustered, other_clustered, resample):
        frame.unpersist()


# --- choice of k ------------------------------------------------------------------------------


def test_select_k_picks_the_obvious_k(spark, test_config):
    """Three revenue tiers, the lowest split by noise into two leaves. With gain-weighted paths:
    k=2 lumps the two upper tiers into 50% "Insiders"; k=3 is one cluster per tier; k=4 cuts the
    lowest tier along its noise split, which moves from resample to resample."""
    features = _groups(spark, [(100, 10, 1.0), (60, 1000, 5.0), (40, 5000, 9.0)], noise=True)
    config = _config(test_config, encoding="path_gain")
    config = dataclasses.replace(config, quality=dataclasses.replace(config.quality, insiders_max_share=0.25))
    selection = select_k(features, config=config, customers=200, seed=3, grid=[2, 3, 4], seeds=0, bootstraps=2)
    assert selection.chosen == 3 and not selection.fallback
    assert selection.leaves == 4
    by_k = {s.k: s for s in selection.scores}
    assert by_k[2].failures == ("Insiders 50.0% of customers > 25%",)
    assert by_k[3].qualifies and by_k[3].insiders_share == pytest.approx(0.2)
    assert by_k[3].stability.ari_min == 1.0 and selection.stability is by_k[3].stability
    assert not by_k[4].qualifies
    manifest = selection.to_dict()
    assert [g["k"] for g in manifest["grid"]] == [2, 3, 4] and manifest["chosen"] == 3


def test_a_k_beyond_the_leaves_is_recorded_not_fatal(spark, test_config, four_groups):
    config = _config(test_config)
    runs = fit_stability_runs(four_groups, config=config, customers=300, seed=7, seeds=1, bootstraps=0)
    config = dataclasses.replace(config, quality=dataclasses.replace(config.quality, insiders_max_share=0.5))
    selection = score_grid(runs, grid=[3, 5], config=config)
    assert selection.score(5).error and "only 4 distinct points" in selection.score(5).error
    assert selection.chosen == 3


def _score(k, *failures):
    return KScore(k=k, silhouette=0.9, failures=tuple(failures))


def test_the_rule_takes_the_smallest_k_that_meets_every_target():
    scores = [_score(4, "Insiders 20.0% of customers > 10%"), _score(5), _score(6), _score(7, "stability ARI 0.5 < 0.9")]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (5, False)
    assert "smallest" in reason and "also qualifying: 6" in reason


def test_the_rule_falls_back_to_the_configured_k_and_says_why():
    scores = [
        _score(8, "Insiders 20.3% of customers > 10%", "stability ARI 0.605 < 0.9"),
        _score(9, "stability ARI 0.556 < 0.9"),
        KScore(k=17, error="only 16 distinct points", failures=("cannot fit",)),
    ]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (9, True)
    assert reason == (
        "no k in 8..17 meets every target; closest: k=9 (stability ARI 0.556 < 0.9); kept the configured k=9"
    )


def test_the_fallback_never_picks_a_k_the_tree_cannot_hold():
    scores = [
        _score(6, "stability ARI 0.7 < 0.9"),
        _score(7, "Insiders 20.0% of customers > 10%", "stability ARI 0.6 < 0.9"),
        KScore(k=9, error="only 8 distinct points", failures=("cannot fit: only 8 distinct points",)),
    ]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (6, True)
    assert reason.endswith("the configured k=9 cannot be fitted (only 8 distinct points): took the closest")


# --- training with stability and --k auto, when the leaves run short -----------------------------


def _training_config(test_config, *, k, select_k, bootstraps, seeds=0):
    config = _config(test_config)
    return dataclasses.replace(
        config,
        clustering=dataclasses.replace(config.clustering, k=k, select_k=select_k, k_grid=(3, 4, 5)),
        quality=dataclasses.replace(
            config.quality, stability=True, stability_seeds=seeds, stability_bootstraps=bootstraps
        ),
    )


def test_k_auto_chooses_among_the_k_the_tree_allows_when_the_configured_one_is_beyond_it(spark, test_config, four_groups):
    from insiders_spark.runs.train import train_segmentation

    config = _training_config(test_config, k=9, select_k=True, bootstraps=0, seeds=1)
    training = train_segmentation(four_groups, config, customers=300)
    assert training.selection.score(9) is None and training.selection.score(5).error  # 4 leaves
    assert training.selection.chosen == training.model.k == 3 and training.selection.fallback
    assert training.stability is not None and training.stability.k == 3
    training.clustered.unpersist()


def test_a_resample_with_fewer_leaves_than_k_makes_stability_unmeasurable_not_the_run_fail(spark, test_config):
    """A 16-customer group is just above the smallest leaf (5% of 300 = 15 customers): the
    reference tree gives it a leaf, a resample that draws fewer of it cannot."""
    from insiders_spark.runs.train import train_segmentation

    features = _groups(spark, [(100, 10, 1.0), (16, 20, 1.5), (84, 1000, 5.0), (100, 2000, 5.5)])
    config = _training_config(test_config, k=4, select_k=False, bootstraps=5)
    training = train_segmentation(features, config, customers=300)
    assert training.model.k == 4 and len(training.model.profiles) == 4  # the run itself is fine
    assert training.stability is None and "bootstrap run" in training.stability_unmeasurable
    assert "only 3 distinct points (occupied tree leaves) for k=4" in training.stability_unmeasurable
    assert training.stability_failures() == [f"stability not measurable: {training.stability_unmeasurable}"]
    training.clustered.unpersist()
    features.unpersist()
