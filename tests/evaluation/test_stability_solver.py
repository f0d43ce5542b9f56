"""Stability with another KMeans solver (``kmeans=``): every run clustered by it, measured as the job's."""

import dataclasses
import datetime as dt
import math

import pytest

from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.evaluation.stability import cluster_run, fit_stability_runs
from insiders_spark.model.clustering import fit_kmeans_to_points

pytestmark = pytest.mark.spark

DAY = dt.date(2011, 12, 9)
GROUPS = [(60, 10, 1.0), (40, 20, 1.5), (80, 1000, 5.0), (120, 2000, 5.5)]  # customers, items, log revenue
CUSTOMERS = sum(size for size, _, _ in GROUPS)


@pytest.fixture(scope="module")
def four_groups(spark):
    rows, customer = [], 0
    for group, (size, items, log_revenue) in enumerate(GROUPS):
        for _ in range(size):
            rows.append(
                (
                    customer,
                    None,
                    False,
                    math.exp(log_revenue),
                    10,
                    group + 1,
                    items,
                    5 * (group + 1),
                    0.5,
                    0,
                    1.0,
                    DAY,
                    DAY,
                )
            )
            customer += 1
    return spark.createDataFrame(rows, CUSTOMER_FEATURES_SCHEMA).cache()


def test_every_run_is_clustered_by_the_solver_given(spark, test_config, four_groups):
    config = dataclasses.replace(
        test_config,
        embedding=dataclasses.replace(test_config.embedding, max_depth=2, min_leaf_share=0.05),
        segments=dataclasses.replace(test_config.segments, programme_share=0.5),
    )
    runs = fit_stability_runs(four_groups, config=config, customers=CUSTOMERS, seed=7, seeds=2, bootstraps=0)
    calls = []

    def counting(points, *, k, seed):
        calls.append(seed)
        return fit_kmeans_to_points(points, k=k, seed=seed, starts=3)

    stability = runs.stability(3, config=config, kmeans=counting)
    assert calls == [7, 8, 9]  # the reference and the two seed runs, each with its seed
    assert all(r.ari == 1.0 and r.insiders_jaccard == 1.0 for r in stability.runs)

    default = runs.stability(3, config=config)
    assert [(r.ari, r.insiders) for r in default.runs] == [(r.ari, r.insiders) for r in stability.runs]
    mine = cluster_run(runs.reference, config=config, k=3, kmeans=counting)
    assert mine.leaf_clusters == runs.reference_clusters(3, config=config).leaf_clusters
