"""Stability (``evaluation.stability``): would another seed, or another sample of the same
customers, name other Insiders? Measured on hand-built customers whose groups a revenue tree
separates without doubt, and checked against the job's own path customer by customer."""

import math

import pytest
from pyspark.sql import functions as F
from sklearn.metrics import adjusted_rand_score

from insiders_spark.core.names import CLUSTER, CUSTOMER_ID
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    SEED,
    bootstrap_resample,
    fit_stability_runs,
    measure_stability,
    poisson_one_cdf,
)
from insiders_spark.model.segmentation import fit_segmentation
from insiders_spark.model.silhouette import leaf_silhouette, silhouette
from tests import support
from tests.evaluation.groups import FOUR_GROUPS, NOISY_GROUPS


@pytest.fixture(scope="module")
def four_groups(spark):
    return support.grouped_features(spark, FOUR_GROUPS)


def test_a_perfectly_separated_table_is_perfectly_stable(spark, test_config, four_groups):
    config = support.small_tree_config(test_config)
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


def test_the_leaf_tables_give_what_the_job_gives(spark, test_config):
    """The shortcut (every k from the runs' leaf tables) against the job's own path: fit_segmentation
    on all customers and on the bootstrap resample, then SegmentationModel.transform of every
    customer, compared customer by customer."""
    features = support.grouped_features(spark, NOISY_GROUPS, noise=True, seed=3)
    config = support.small_tree_config(test_config, max_depth=3, min_leaf_share=0.03)
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
    other, other_clustered = fit_segmentation(
        resample, config=config, customers=bootstrap.training_customers, k=4, seed=5
    )
    pairs = (
        reference.transform(features)
        .select(CUSTOMER_ID, CLUSTER)
        .join(
            other.transform(features).select(CUSTOMER_ID, F.col(CLUSTER).alias("other")),
            on=CUSTOMER_ID,
            how="inner",
        )
        .collect()
    )
    assert len(pairs) == 270
    assert run.ari == pytest.approx(
        adjusted_rand_score([r[CLUSTER] for r in pairs], [r["other"] for r in pairs]), abs=1e-12
    )
    ref_insiders = {r[CUSTOMER_ID] for r in pairs if r[CLUSTER] == 1}
    other_insiders = {r[CUSTOMER_ID] for r in pairs if r["other"] == 1}
    assert run.insiders == len(other_insiders)
    assert run.insiders_jaccard == pytest.approx(
        len(ref_insiders & other_insiders) / len(ref_insiders | other_insiders)
    )
    for frame in (reference_clustered, other_clustered, resample):
        frame.unpersist()
