"""The programme's size: the Insiders never hold more than ``segments.programme_share`` of the customers.

A loyalty programme is budgeted for a number of members, so the Insiders are bounded on any log:

* when cluster 1 (KMeans' optimum's top cluster by mean revenue) holds at most the share of the
  customers, the Insiders are cluster 1, as before;
* when it is larger, the programme admits its most valuable customers: ranked by the tree's
  predicted value, then gross revenue, then customer id (ties), the first
  ``floor(share × customers)`` are the Insiders. The rest stay in cluster 1 as its waiting list
  (``is_insider`` false, segment "Insiders (waiting list)").

The clusters, profiles, rules and silhouette stay KMeans' optimum's: only the Insiders flag is cut,
so the bound costs the Insiders part of cluster 1's revenue share and nothing in the silhouette.
(Taking instead the cheapest partition whose top cluster fits, ``clustering.capped_partition``,
changes every cluster for one bound and can shrink the programme far below its size: on the
synthetic log of 40,000 lines as of 2011-06-30 it kept 11 Insiders, 4.1% of the customers with
29.1% of the revenue, where cluster 1 held 12.0% with 55.1%; docs/method.md.)

The cut runs wherever customers are assigned, on the customers assigned (train and score runs
alike), so the bound holds with any model on any log. Every customer of a leaf has the leaf's
predicted value, so the cut admits whole leaves, highest value first, and splits at most one leaf
(the boundary) by revenue: the Insiders are an :class:`InsiderRule` (leaves, plus a threshold in
one leaf), which Spark applies as one expression. :func:`plan_cut` finds the leaves from the leaf
counts on the driver; :func:`find_boundaries` finds the threshold with one small Spark job (a
window over the boundary leaf's customers only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE, LEAF
from insiders_spark.spark.literals import literal_frame

FITS, CUT = "fits", "cut"  # cluster 1 within the programme, or cut to it (the manifest's programme.step)
CUT_KEY = "cut_key"  # find_boundaries: which cut a row belongs to (a tree, or the job's model)
_POSITION, _ADMITTED = "_position", "_admitted"


def programme_cap(customers: int, share: float) -> int:
    """The most Insiders a programme of ``share`` takes among ``customers``."""
    return math.floor(share * customers + 1e-9)


@dataclass(frozen=True)
class CutPlan:
    """The cut on the driver: the leaves admitted whole, and how many of the boundary leaf's
    customers are admitted (none when the whole leaves fill the programme exactly)."""

    whole: frozenset[int]
    boundary_leaf: int | None
    admitted_at_boundary: int


def plan_cut(
    leaf_customers: Mapping[int, float], leaf_values: Mapping[int, float], insider_leaves: Iterable[int], *, cap: int
) -> CutPlan | None:
    """Where to cut the top cluster (its ``insider_leaves``), or None when it holds at most ``cap``
    customers. Leaves go in by predicted value (highest first; ties by leaf index) while they fit."""
    leaves = sorted(insider_leaves, key=lambda leaf: (-leaf_values[leaf], leaf))
    if sum(int(leaf_customers.get(leaf, 0)) for leaf in leaves) <= cap:
        return None
    whole: list[int] = []
    taken = 0
    for leaf in leaves:
        customers = int(leaf_customers.get(leaf, 0))
        if taken + customers > cap:
            admitted = cap - taken
            return CutPlan(frozenset(whole), leaf if admitted > 0 else None, admitted)
        whole.append(leaf)
        taken += customers
    raise AssertionError("unreachable: the leaves hold more than the cap")


@dataclass(frozen=True)
class InsiderRule:
    """Who is an Insider, as a function of the customer's leaf (and, in one leaf, of its revenue
    and id): every customer of ``leaves``, and those of ``boundary_leaf`` ranked at or before
    (``boundary_revenue``, ``boundary_customer``) by revenue (descending) then id."""

    leaves: frozenset[int]
    boundary_leaf: int | None = None
    boundary_revenue: float | None = None
    boundary_customer: int | None = None

    @property
    def is_cut(self) -> bool:
        return self.boundary_leaf is not None

    def sql(self, leaf: str, *, revenue: str = f"`{GROSS_REVENUE}`", customer_id: str = f"`{CUSTOMER_ID}`") -> str:
        """The rule as a Spark SQL condition on the SQL expressions ``leaf`` (e.g. ``bootstrap_leaves[3]``),
        ``revenue`` and ``customer_id``: text, so that many rules make one call to the JVM."""
        whole = f"{leaf} IN ({', '.join(str(int(x)) for x in sorted(self.leaves))})" if self.leaves else "false"
        if self.boundary_leaf is not None:
            threshold, last = f"{float(self.boundary_revenue)!r}D", int(self.boundary_customer)
            ranked_before = f"{revenue} > {threshold} OR ({revenue} = {threshold} AND {customer_id} <= {last})"
            whole = f"{whole} OR ({leaf} = {int(self.boundary_leaf)} AND ({ranked_before}))"
        return f"coalesce({whole}, false)"

    def contains(self, leaf: str) -> Column:
        """:meth:`sql` as a Column (``leaf``: an SQL expression, e.g. a column's name in backticks)."""
        return F.expr(self.sql(leaf))

    def describe(self) -> dict:
        return {
            "leaves": sorted(self.leaves),
            **(
                {
                    "boundary_leaf": self.boundary_leaf,
                    "boundary_revenue": self.boundary_revenue,
                    "boundary_customer_id": self.boundary_customer,
                }
                if self.is_cut
                else {}
            ),
        }


@dataclass(frozen=True)
class Boundary:
    """The last customer admitted at a boundary leaf, and the revenue of those admitted there."""

    revenue: float
    customer_id: int
    admitted_revenue: float
    admitted_flagged: int = 0  # those admitted there with ``flag`` (find_boundaries)


def find_boundaries(rows: DataFrame, plans: Mapping[int, CutPlan], *, flag: str | None = None) -> dict[int, Boundary]:
    """For each key's plan with a boundary leaf, its ``admitted_at_boundary``-th customer there by
    revenue (descending) then id, with one window over the boundary leaves' customers only.

    ``rows``: one row per (key, customer) with ``cut_key``, ``leaf``, gross revenue and customer id
    (e.g. a key per bootstrap tree, each customer's leaf in it); ``flag``: an SQL condition on them
    to count among the admitted (e.g. "is an Insider of the reference").
    """
    wanted = [
        (key, plan.boundary_leaf, plan.admitted_at_boundary)
        for key, plan in plans.items()
        if plan.boundary_leaf is not None
    ]
    if not wanted:
        return {}
    schema = T.StructType(
        [
            T.StructField(CUT_KEY, T.IntegerType(), False),
            T.StructField(LEAF, T.IntegerType(), False),
            T.StructField(_ADMITTED, T.LongType(), False),
        ]
    )
    targets = literal_frame(rows.sparkSession, wanted, schema)
    # a key's rows are its boundary leaf's; the leaf in the partition keeps a constant key (one cut) from
    # being optimised away into a window over no partition
    order = Window.partitionBy(CUT_KEY, LEAF).orderBy(F.col(GROSS_REVENUE).desc(), F.col(CUSTOMER_ID).asc())
    found = (
        rows.join(F.broadcast(targets), on=[CUT_KEY, LEAF], how="inner")
        .withColumn(_POSITION, F.row_number().over(order))
        .where(F.col(_POSITION) <= F.col(_ADMITTED))
        .groupBy(CUT_KEY)
        .agg(
            F.max_by(F.struct(GROSS_REVENUE, CUSTOMER_ID), F.col(_POSITION)).alias("last"),
            F.sum(GROSS_REVENUE).alias("admitted_revenue"),
            F.expr(f"count_if({flag or 'false'})").alias("admitted_flagged"),
        )
        .collect()
    )
    return {
        int(row[CUT_KEY]): Boundary(
            revenue=float(row["last"][GROSS_REVENUE]),
            customer_id=int(row["last"][CUSTOMER_ID]),
            admitted_revenue=float(row["admitted_revenue"]),
            admitted_flagged=int(row["admitted_flagged"]),
        )
        for row in found
    }


def insider_rule(insider_leaves: Iterable[int], plan: CutPlan | None, boundary: Boundary | None) -> InsiderRule:
    """The Insiders: the top cluster's leaves when it fits (no ``plan``), else the cut."""
    if plan is None:
        return InsiderRule(frozenset(insider_leaves))
    if plan.boundary_leaf is None:
        return InsiderRule(plan.whole)
    if boundary is None:
        raise ValueError(f"the cut at leaf {plan.boundary_leaf} needs its boundary customer (find_boundaries)")
    return InsiderRule(plan.whole, plan.boundary_leaf, boundary.revenue, boundary.customer_id)
