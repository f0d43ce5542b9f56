"""The quality targets and the verdict (``evaluation.quality``), and the silhouette's sample
cross-check: seeded, bounded, the same rows however the customers are partitioned."""

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from insiders_spark.core.config import QualityConfig
from insiders_spark.core.names import CUSTOMER_ID
from insiders_spark.evaluation.quality import (
    bounded_sample,
    check_silhouette,
    profile_failures,
    quality_verdict,
    segmentation_failures,
    stability_failures,
    targets_dict,
)
from insiders_spark.model.clustering import EmbeddingPoints, fit_kmeans_to_points, with_kmeans_clusters
from insiders_spark.model.embedding import EMBEDDING
from insiders_spark.model.profiles import build_profiles

MEANS = {
    f"{n}_mean": 1.0
    for n in ("recency_days", "qty_invoices", "qty_items", "qty_products", "frequency", "qty_returns", "avg_ticket")
}


def _profiles(*clusters):
    """(customers, revenue) per cluster, the first the Insiders to be (highest mean revenue)."""
    return build_profiles(
        [
            {"kmeans_cluster": i, "customers": n, "revenue_total": r, "gross_revenue_mean": r / n, **MEANS}
            for i, (n, r) in enumerate(clusters)
        ]
    )


def test_the_targets_are_recorded_under_the_manifests_names():
    targets = QualityConfig(min_silhouette=0.7, min_ari=0.8)
    assert targets_dict(targets) == {
        "silhouette": 0.7,
        "min_cluster_share": 0.01,
        "insiders_max_share": 0.10,
        "insiders_min_revenue_share": 0.50,
        "ari": 0.8,
        "insiders_jaccard": 0.90,
    }


def test_targets_name_what_is_missed():
    targets = QualityConfig()
    met = dict(silhouette=0.8, smallest_cluster_share=0.02, insiders_share=0.08, insiders_revenue_share=0.55)
    assert segmentation_failures(targets, **met) == []
    missed = dict(silhouette=0.7, smallest_cluster_share=0.005, insiders_share=0.2, insiders_revenue_share=0.4)
    assert segmentation_failures(targets, **missed) == [
        "silhouette 0.700 < 0.75",
        "smallest cluster 0.50% < 1%",
        "Insiders 20.0% of customers > 10%",
        "Insiders 40.0% of revenue < 50%",
    ]
    # the edges are met: a target is a bound, not a strict inequality
    edges = dict(silhouette=0.75, smallest_cluster_share=0.01, insiders_share=0.10, insiders_revenue_share=0.50)
    assert segmentation_failures(targets, **edges) == []
    assert stability_failures(targets, ari_min=0.95, jaccard_min=0.89) == ["Insiders Jaccard 0.890 < 0.9"]
    assert stability_failures(targets, ari_min=0.5, jaccard_min=0.9) == ["stability ARI 0.500 < 0.9"]


def test_profile_failures_read_the_insiders_and_the_smallest_cluster_from_the_profiles():
    profiles = _profiles((8, 600.0), (92, 300.0), (900, 100.0))  # Insiders: 0.8% of customers, 60% of revenue
    assert profile_failures(QualityConfig(), profiles, silhouette=0.9) == ["smallest cluster 0.80% < 1%"]
    assert profile_failures(QualityConfig(min_cluster_share=0.005), profiles, silhouette=0.9) == []


def test_the_verdict_lists_every_missed_target():
    profiles = _profiles((8, 600.0), (92, 400.0))
    verdict = quality_verdict(profiles=profiles, silhouette=0.8, stability_failures=[], targets=QualityConfig())
    assert verdict == {"targets": targets_dict(QualityConfig()), "meets_targets": True, "failures": []}
    missed = quality_verdict(profiles=profiles, silhouette=0.8, stability_failures=None, targets=QualityConfig())
    assert missed == {**verdict, "meets_targets": False, "failures": ["stability not measured"]}
    both = quality_verdict(
        profiles=profiles, silhouette=0.6, stability_failures=["stability ARI 0.500 < 0.9"], targets=QualityConfig()
    )
    assert both["failures"] == ["silhouette 0.600 < 0.75", "stability ARI 0.500 < 0.9"]


# --- the sample cross-check ------------------------------------------------------------------

POINTS = {0: ([0.0, 0.0], 30), 1: ([0.0, 1.0], 10), 2: ([10.0, 0.0], 25), 3: ([10.0, 1.0], 5), 4: ([0.0, 20.0], 12)}


@pytest.fixture(scope="module")
def clustered(spark):
    rows = [(leaf, Vectors.dense(vector)) for leaf, (vector, count) in POINTS.items() for _ in range(count)]
    rows = [(customer, leaf, vector) for customer, (leaf, vector) in enumerate(rows, start=1)]
    embedded = spark.createDataFrame(rows, [CUSTOMER_ID, "leaf", EMBEDDING])
    table = EmbeddingPoints(
        leaves=tuple(POINTS),
        vectors=np.array([v for v, _ in POINTS.values()]),
        customers=np.array([float(c) for _, c in POINTS.values()]),
    )
    return with_kmeans_clusters(embedded, fit_kmeans_to_points(table, k=3, seed=1, starts=2)).cache()


def test_the_sample_silhouette_is_mllibs_when_the_sample_is_everyone(clustered):
    check = check_silhouette(clustered, customers=82, seed=3, max_rows=1_000)
    assert check.sample_rows == 82
    assert check.sample == pytest.approx(check.mllib, abs=1e-9) and check.difference == pytest.approx(0, abs=1e-9)
    described = check.to_dict()
    assert described["distance"] == "squaredEuclidean" and described["sample_seed"] == 3
    assert described["sample_metric"] == "sklearn.metrics.silhouette_score(metric='sqeuclidean')"
    bounded = check_silhouette(clustered, customers=82, seed=3, max_rows=20, mllib=0.5)
    assert bounded.mllib == 0.5 and bounded.sample_rows == 20 and bounded.sample is not None


def test_a_sample_of_one_cluster_has_no_cross_check(clustered):
    one = clustered.where(F.col("leaf") == 0)  # 30 customers at one point, one cluster
    check = check_silhouette(one, customers=30, seed=3, max_rows=100, mllib=0.0)
    assert check.sample is None and check.difference is None and check.to_dict()["difference"] is None


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
