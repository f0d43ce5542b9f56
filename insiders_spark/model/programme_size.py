"""The programme's size on the customers a run assigns: its Insiders, and what the bound cost.

``size_programme`` applies ``model.programme``'s rule to a fitted (or loaded) model and the
customers it placed: cluster 1, cut when it is larger than the programme, with a record of whether
the bound bit and what it cost in the Insiders' revenue share (the silhouette does not move: the
clusters are KMeans' optimum's either way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE, LEAF
from insiders_spark.model.leaves import CUSTOMERS, leaf_points
from insiders_spark.model.programme import (
    CUT,
    CUT_KEY,
    FITS,
    InsiderRule,
    find_boundaries,
    insider_rule,
    plan_cut,
    programme_cap,
)
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.model.silhouette import leaf_silhouette


@dataclass(frozen=True)
class Group:
    """A group of customers, as a share of the customers and of their revenue."""

    customers: int
    customer_share: float
    revenue_share: float

    def describe(self) -> dict:
        return {
            "customers": self.customers,
            "customer_share": round(self.customer_share, 4),
            "revenue_share": round(self.revenue_share, 4),
        }


@dataclass(frozen=True)
class ProgrammeSize:
    """The programme's Insiders on this run's customers and, when the bound bit, what it cost."""

    share: float  # segments.programme_share
    customers: int  # the customers assigned
    cap: int  # floor(share × customers)
    step: str  # fits | cut
    insiders: Group  # what the segments publish
    cluster: Group  # cluster 1: what the Insiders would have been without the bound
    silhouette: float  # of the clusters, the same with or without the bound
    rule: InsiderRule

    @property
    def binding(self) -> bool:
        return self.step != FITS

    def describe(self) -> dict:
        return {
            "share": self.share,
            "customers": self.customers,
            "cap": self.cap,
            "binding": self.binding,
            "step": self.step,
            "insiders": self.insiders.describe(),
            "cluster_1": self.cluster.describe(),
            "cost": {
                "insiders_revenue_share": round(self.cluster.revenue_share - self.insiders.revenue_share, 4),
                "silhouette": 0.0,  # the clusters do not change, only the Insiders flag
            },
            "silhouette": round(self.silhouette, 4),
            "rule": self.rule.describe(),
        }


def _group(
    sums: Mapping[int, Mapping[str, float | None]],
    leaves: Iterable[int],
    *,
    customers: int,
    revenue: float,
    extra: tuple[int, float] = (0, 0.0),
) -> Group:
    count = int(sum(sums[leaf][CUSTOMERS] for leaf in leaves)) + extra[0]
    money = sum(float(sums[leaf][GROSS_REVENUE]) for leaf in leaves) + extra[1]
    return Group(count, count / customers if customers else 0.0, money / revenue if revenue else 0.0)


def size_programme(
    model: SegmentationModel, clustered: DataFrame, *, insiders_cluster: int, share: float
) -> ProgrammeSize:
    """The rule (``model.programme``) on the customers of ``model.leaf_sums`` (the run's: training
    customers in a train run, today's in a score run), clustered by ``model`` (``clustered``: with
    their leaf, revenue and id). ``insiders_cluster``: KMeans' index of cluster 1."""
    sums = model.leaf_sums
    customers = int(sum(s[CUSTOMERS] for s in sums.values()))
    revenue = sum(float(s[GROSS_REVENUE]) for s in sums.values())
    labels = model.kmeans.leaf_clusters
    top = [leaf for leaf in sorted(sums) if labels[leaf] == insiders_cluster]
    cap = programme_cap(customers, share)
    values = {leaf.leaf_index: leaf.prediction for leaf in model.embedding.tree.leaves}
    plan = plan_cut({leaf: s[CUSTOMERS] for leaf, s in sums.items()}, values, top, cap=cap)
    boundary = None
    if plan is not None and plan.boundary_leaf is not None:
        rows = clustered.select(F.lit(0).alias(CUT_KEY), LEAF, GROSS_REVENUE, CUSTOMER_ID)
        boundary = find_boundaries(rows, {0: plan})[0]
    points = leaf_points(sums, model.embedding.leaf_vectors())
    silhouette = leaf_silhouette(points, labels) if len({labels[leaf] for leaf in sums}) > 1 else 0.0
    cluster = _group(sums, top, customers=customers, revenue=revenue)
    if plan is None:
        return ProgrammeSize(share, customers, cap, FITS, cluster, cluster, silhouette, insider_rule(top, None, None))
    extra = (plan.admitted_at_boundary, boundary.admitted_revenue) if boundary is not None else (0, 0.0)
    insiders = _group(sums, plan.whole, customers=customers, revenue=revenue, extra=extra)
    return ProgrammeSize(share, customers, cap, CUT, insiders, cluster, silhouette, insider_rule(top, plan, boundary))
