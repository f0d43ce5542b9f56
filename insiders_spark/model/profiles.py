"""Cluster profiles, the revenue ranking that makes cluster 1 the Insiders, and segment names.

Only k rows (one per cluster) reach the driver. Ranking and naming are plain Python on those rows,
so the rules are easy to read and to test.

Naming rule (from what a cluster *is*, never from its id). Every comparison is with the
population's customer-weighted means (all clusters together), so the rule adapts to the log:

* rank 1 by mean gross revenue -> ``Insiders`` (``segments.insiders_name``);
* a returns rate (mean returned items / (mean bought + mean returned items)) at least three times
  the population's and at least 10% -> ``Frequent returners``;
* otherwise three traits: **value** (mean gross revenue at or above the population's), **recency
  tier** (mean days since the last purchase: *recent* up to the population's mean, *lapsing* up to
  1.5 times it, *gone* beyond) and **repeat** (at least 2 invoices on average):

  =====  ============  ==========================  ==================
  value  recency tier  repeat (≥ 2 invoices)        one-off (< 2)
  =====  ============  ==========================  ==================
  high   recent        Loyal                        Loyal
  high   lapsing/gone  At risk                      At risk
  low    recent        Promising                    New
  low    lapsing       Need attention               About to sleep
  low    gone          Hibernating                  Lost
  =====  ============  ==========================  ==================

* clusters that earn the same name are told apart by the trait that differs most between them
  (largest max/min ratio among spend, basket breadth, ticket size, orders, recency), in words:
  two clusters get the two ends (``Promising (broad baskets)``, ``Promising (narrow baskets)``),
  three the two ends and the middle (``mid baskets``); four or more are split into that trait's
  higher, middle and lower third (by position), and two or three clusters in one third are told
  apart by the trait that differs most among them (``About to sleep (higher spend, large
  tickets)``, ``About to sleep (higher spend, small tickets)``, ``About to sleep (mid spend)``);
  clusters no trait tells apart are numbered (``Lost (higher spend, 2)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import (
    AVG_TICKET,
    CLUSTER,
    FREQUENCY,
    FREQUENT_RETURNERS,
    GROSS_REVENUE,
    IS_INSIDER,
    NAMES,
    PRODUCT_FEATURES,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    QTY_RETURNS,
    RECENCY_DAYS,
    SEGMENT,
)
from insiders_spark.spark.literals import literal_frame

PROFILED_FEATURES: tuple[str, ...] = (
    GROSS_REVENUE,
    RECENCY_DAYS,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    FREQUENCY,
    QTY_RETURNS,
    AVG_TICKET,
)

PROFILE_SCHEMA = T.StructType(
    [
        T.StructField(CLUSTER, T.IntegerType(), False),
        T.StructField(SEGMENT, T.StringType(), False),
        T.StructField(IS_INSIDER, T.BooleanType(), False),
        T.StructField("customers", T.LongType(), False),
        T.StructField("customer_share", T.DoubleType(), False),
        T.StructField("revenue_total", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        *[T.StructField(f"{name}_mean", T.DoubleType(), name in PRODUCT_FEATURES) for name in PROFILED_FEATURES],
        T.StructField("kmeans_cluster", T.IntegerType(), False),
    ]
)


@dataclass(frozen=True)
class ClusterProfile:
    cluster: int
    segment: str
    is_insider: bool
    customers: int
    customer_share: float
    revenue_total: float
    revenue_share: float
    gross_revenue_mean: float
    recency_days_mean: float
    qty_invoices_mean: float
    qty_items_mean: float
    qty_products_mean: float | None  # None: the log has no product ids
    frequency_mean: float
    qty_returns_mean: float
    avg_ticket_mean: float
    kmeans_cluster: int


def summarise_clusters(scored: DataFrame, *, cluster_col: str) -> list[dict]:
    """Per KMeans cluster: size, revenue and the mean of every feature (k rows to the driver)."""
    rows = (
        scored.groupBy(cluster_col)
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum(GROSS_REVENUE).alias("revenue_total"),
            *[
                (F.avg(name) if name in scored.columns else F.lit(None).cast("double")).alias(f"{name}_mean")
                for name in PROFILED_FEATURES
            ],
        )
        .collect()
    )
    return [{**row.asDict(), "kmeans_cluster": int(row[cluster_col])} for row in rows]


RETURNER_FACTOR = 3.0  # returns rate at least this many times the population's ...
RETURNER_MIN_RATE = 0.10  # ... and at least this high
LAPSING_FACTOR = 1.5  # recency up to this many times the population's mean is lapsing, beyond is gone
REPEAT_INVOICES = 2.0  # mean invoices of a cluster of repeat buyers

# Traits that tell same-named clusters apart: profile mean, then words for its high, middle, low end.
TRAITS: tuple[tuple[str, str, str, str], ...] = (
    ("gross_revenue_mean", "higher spend", "mid spend", "lower spend"),
    ("qty_products_mean", "broad baskets", "mid baskets", "narrow baskets"),
    ("avg_ticket_mean", "large tickets", "mid tickets", "small tickets"),
    ("qty_invoices_mean", "more orders", "mid orders", "fewer orders"),
    ("recency_days_mean", "longer gone", "mid recency", "more recent"),
)
POPULATION_MEANS: tuple[str, ...] = (
    "gross_revenue_mean",
    "recency_days_mean",
    "qty_items_mean",
    "qty_returns_mean",
)


def returns_rate(profile: dict) -> float:
    """Returned items as a share of the items a cluster's customers bought and returned."""
    moved = profile["qty_items_mean"] + profile["qty_returns_mean"]
    return profile["qty_returns_mean"] / moved if moved > 0 else 0.0


def recency_tier(recency: float, typical: float) -> str:
    if recency <= typical:
        return "recent"
    return "lapsing" if recency <= LAPSING_FACTOR * typical else "gone"


def segment_base_name(profile: dict, population: dict) -> str:
    """The name a (non-Insider) cluster's profile earns against the population (module docstring)."""
    rate = returns_rate(profile)
    if rate >= RETURNER_MIN_RATE and rate >= RETURNER_FACTOR * returns_rate(population):
        return FREQUENT_RETURNERS
    valuable = profile["gross_revenue_mean"] >= population["gross_revenue_mean"]
    tier = recency_tier(profile["recency_days_mean"], population["recency_days_mean"])
    return NAMES[(valuable, tier, profile["qty_invoices_mean"] >= REPEAT_INVOICES)]


def _spread(values: Sequence[float]) -> float:
    """How far apart values are, as log(max / min) (values floored at a small positive number)."""
    floored = [max(v, 1e-9) for v in values]
    return math.log(max(floored) / min(floored))


def _most_different(
    members: Sequence[dict], traits: Sequence[tuple[str, str, str, str]]
) -> tuple[tuple[str, str, str, str], list[int]]:
    """The trait that differs most among ``members``, and the members' indices from its high end down
    (a trait the log does not give, such as basket breadth without product ids, is left out)."""
    known = [t for t in traits if all(m[t[0]] is not None for m in members)]
    trait = max(known, key=lambda t: _spread([m[t[0]] for m in members]))
    return trait, sorted(range(len(members)), key=lambda i: -members[i][trait[0]])


def _trait_words(members: Sequence[dict], traits: Sequence[tuple[str, str, str, str]]) -> list[str] | None:
    """Each of two or three members' word for the trait that differs most among them: the two
    ends, or the ends and the middle (``None`` when no trait differs at all)."""
    (key, high, middle, low), order = _most_different(members, traits)
    if _spread([m[key] for m in members]) == 0.0:
        return None
    words = [high, low] if len(members) == 2 else [high, middle, low]
    named = [""] * len(members)
    for position, index in enumerate(order):
        named[index] = words[position]
    return named


def _numbered(label: str, count: int) -> list[str]:
    """``count`` clusters nothing tells apart: ``label``, ``label, 2``, ``label, 3``, ..."""
    return [label] + [f"{label}, {i}" for i in range(2, count + 1)]


def disambiguated_names(base: str, members: Sequence[dict]) -> list[str]:
    """Names for clusters (in revenue order) that earned the same ``base`` name, in that order.

    Two or three: the words of the trait that differs most. Four or more: that trait's tier
    (its higher, middle and lower third, by position), then within a tier of two or three the
    words of the trait that differs most among them; a tier of more, or one whose members no
    other trait tells apart, is numbered within the tier.
    """
    n = len(members)
    if n == 1:
        return [base]
    if n <= 3:
        words = _trait_words(members, TRAITS)
        return [f"{base} ({w})" for w in words] if words else [base] + [f"{base} ({i})" for i in range(2, n + 1)]
    trait, order = _most_different(members, TRAITS)
    tiers: dict[str, list[int]] = {}
    for position, index in enumerate(order):
        tiers.setdefault(trait[1 + 3 * position // n], []).append(index)
    others = [t for t in TRAITS if t is not trait]
    names = [""] * n
    for tier, indices in tiers.items():
        words = _trait_words([members[i] for i in indices], others) if 2 <= len(indices) <= 3 else None
        labels = [f"{tier}, {w}" for w in words] if words else _numbered(tier, len(indices))
        for index, label in zip(indices, labels, strict=True):
            names[index] = f"{base} ({label})"
    return names


def build_profiles(summaries: Sequence[dict], *, insiders_name: str = "Insiders") -> list[ClusterProfile]:
    """Rank clusters by mean gross revenue (1 = highest), name them, add shares."""
    if not summaries:
        raise ValueError("no clusters to profile")
    ordered = sorted(summaries, key=lambda s: (-s["gross_revenue_mean"], s["kmeans_cluster"]))
    customers = sum(s["customers"] for s in ordered)
    revenue = sum(s["revenue_total"] for s in ordered)
    population = {name: sum(s[name] * s["customers"] for s in ordered) / customers for name in POPULATION_MEANS}
    names = _names(ordered, population, insiders_name=insiders_name)
    profiles = []
    for rank, (summary, name) in enumerate(zip(ordered, names, strict=True), start=1):
        profiles.append(
            ClusterProfile(
                cluster=rank,
                segment=name,
                is_insider=rank == 1,
                customers=int(summary["customers"]),
                customer_share=summary["customers"] / customers,
                revenue_total=float(summary["revenue_total"]),
                revenue_share=float(summary["revenue_total"]) / revenue if revenue else 0.0,
                **{f"{n}_mean": _number(summary[f"{n}_mean"]) for n in PROFILED_FEATURES},
                kmeans_cluster=int(summary["kmeans_cluster"]),
            )
        )
    return profiles


def _names(ordered: Sequence[dict], population: dict, *, insiders_name: str) -> list[str]:
    """Each cluster's name, in revenue order: rank 1 the Insiders, the rest by the rule."""
    bases = [insiders_name] + [segment_base_name(summary, population) for summary in ordered[1:]]
    groups: dict[str, list[int]] = {}
    for index, base in enumerate(bases):
        groups.setdefault(base, []).append(index)
    names = list(bases)
    for base, indices in groups.items():
        for index, name in zip(indices, disambiguated_names(base, [ordered[i] for i in indices]), strict=True):
            names[index] = name
    return names


def carry_over_identity(
    profiles: Sequence[ClusterProfile], matches: Mapping[int, tuple[int, str]]
) -> list[ClusterProfile]:
    """A retrained model's profiles, with each cluster that matched one of the previous model's
    taking that cluster's number and name, so that downstream tables keep meaning the same group.

    ``matches``: this model's cluster number -> (the previous cluster's number, its name), for the
    pairs above ``refresh.match_min_jaccard``. Cluster 1 stays the highest mean revenue — the
    Insiders are defined by it — whatever it matched, so a previous number 1 is not carried over;
    nor is a number beyond this model's k (numbers stay 1..k). The other clusters take the numbers
    left, in revenue order, and keep their own names unless a carried-over name is already taken
    (then their number tells them apart: ``Promising (cluster 7)``).
    """
    k = len(profiles)
    carried: dict[int, tuple[int, str]] = {}
    taken = {1}
    for profile in sorted(profiles, key=lambda p: p.cluster):
        match = matches.get(profile.cluster)
        if profile.cluster != 1 and match is not None and 1 < match[0] <= k and match[0] not in taken:
            carried[profile.cluster] = match
            taken.add(match[0])
    free = iter(sorted(set(range(2, k + 1)) - taken))
    carried_names = {name for _, name in carried.values()}
    relabelled = []
    for profile in sorted(profiles, key=lambda p: p.cluster):
        if profile.cluster == 1:
            number, name = 1, profile.segment
        elif profile.cluster in carried:
            number, name = carried[profile.cluster]
        else:
            number = next(free)
            name = profile.segment
            if name in carried_names:  # "About to sleep (2)" is another group's now: "About to sleep (cluster 4)"
                name = f"{re.sub(r' [(][0-9]+[)]$', '', name)} (cluster {number})"
        relabelled.append(replace(profile, cluster=number, segment=name))
    return sorted(relabelled, key=lambda p: p.cluster)


def to_profiles_frame(spark: SparkSession, profiles: Sequence[ClusterProfile]) -> DataFrame:
    return literal_frame(spark, [tuple(asdict(p).values()) for p in profiles], PROFILE_SCHEMA)


def with_clusters(scored: DataFrame, profiles: Sequence[ClusterProfile], *, cluster_col: str) -> DataFrame:
    """Replace KMeans' cluster index by the revenue rank, and add the segment and Insider flag."""
    spark = scored.sparkSession
    schema = T.StructType(
        [
            T.StructField(cluster_col, T.IntegerType(), False),
            T.StructField(CLUSTER, T.IntegerType(), False),
            T.StructField(SEGMENT, T.StringType(), False),
            T.StructField(IS_INSIDER, T.BooleanType(), False),
        ]
    )
    mapping = literal_frame(spark, [(p.kmeans_cluster, p.cluster, p.segment, p.is_insider) for p in profiles], schema)
    return scored.join(F.broadcast(mapping), on=cluster_col, how="inner").drop(cluster_col)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)
