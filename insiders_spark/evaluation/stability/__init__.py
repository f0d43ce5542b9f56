"""Stability: would another seed, or another sample of the same customers, name other Insiders?

* ``runs``: the reference (the job's fit), the seed runs and the bootstrap refits (one random
  forest), each reduced to bounded leaf tables;
* ``clusters``: one run clustered at one k as the job clusters its fit (programme size included);
* ``measure``: every run against the reference over every customer (ARI, Insiders Jaccard), the
  bootstrap runs summarised by min, p10 and median, and the targets;
* ``revenue_cut``: the reference for what the data allows, customers cut on revenue alone;
* ``resample``: hash-keyed Poisson(1) resamples.
"""

from insiders_spark.evaluation.stability.clusters import KMeansFit, RunClusters, cluster_run, rank_leaf_clusters
from insiders_spark.evaluation.stability.measure import (
    DEFAULT_BOOTSTRAPS,
    DEFAULT_SEEDS,
    REVENUE_CUT,
    RunAgreement,
    Stability,
    StabilityRuns,
    fit_stability_runs,
    measure_stability,
    spread,
    summary,
)
from insiders_spark.evaluation.stability.resample import bootstrap_resample, poisson_copies, poisson_one_cdf
from insiders_spark.evaluation.stability.revenue_cut import RevenueCut
from insiders_spark.evaluation.stability.runs import (
    BOOTSTRAP,
    REFERENCE,
    REFERENCE_LEAF,
    SEED,
    LeafRun,
    LeafRuns,
    with_reference_leaf,
)

__all__ = [
    "BOOTSTRAP",
    "DEFAULT_BOOTSTRAPS",
    "DEFAULT_SEEDS",
    "REFERENCE",
    "REFERENCE_LEAF",
    "REVENUE_CUT",
    "SEED",
    "KMeansFit",
    "LeafRun",
    "LeafRuns",
    "RevenueCut",
    "RunAgreement",
    "RunClusters",
    "Stability",
    "StabilityRuns",
    "bootstrap_resample",
    "cluster_run",
    "fit_stability_runs",
    "measure_stability",
    "poisson_copies",
    "poisson_one_cdf",
    "rank_leaf_clusters",
    "spread",
    "summary",
    "with_reference_leaf",
]
