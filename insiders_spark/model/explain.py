"""Why is this customer an Insider: the tree's rules per cluster, and each customer's reasons.

**Rules.** Every leaf of the revenue tree is reached by one conjunction of splits; repeated bounds
on one feature collapse into an interval (``37.5 < recency_days ≤ 120``), and integer features are
shown on whole numbers (``qty_invoices ≤ 3.5`` reads ``qty_invoices ≤ 3``). Each rule is also a
Spark SQL predicate that selects exactly the leaf's customers (MLlib goes left when
``feature <= threshold``). A cluster is the union of its leaves' rules, so the rules *are* the
cluster's definition. Per rule, the rules table gives its support (customers, share of all and of
its cluster), its precision (the share of the rule's customers in that cluster: 1.0 with a single
tree, as every leaf belongs to one cluster; computed, not assumed) and its revenue.

**Reasons per customer** (Saabas' decomposition of a tree's prediction): walking from the root to
the leaf, each split moves the prediction from the node's value to its child's; that change is
attributed to the split's feature, so ``prediction = root value + Σ contributions``. On the
default label a contribution is in log(1 + revenue) units: +0.69 doubles the predicted revenue.
Contributions are a property of the leaf, so they are computed once per leaf on the driver (the
tree is bounded by its depth) and reach customers through a broadcast join on ``leaf``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.names import CLUSTER, GROSS_REVENUE, LEAF, MODEL_INPUT_COLUMNS, TOP_FEATURES
from insiders_spark.core.schemas import CONTRIBUTION_TYPE, CUSTOMER_FEATURES_SCHEMA
from insiders_spark.model.leaves import CUSTOMERS, LeafSums
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.tree import Tree
from insiders_spark.spark.literals import literal_frame

INTEGER_FEATURES: frozenset[str] = frozenset(
    f.name for f in CUSTOMER_FEATURES_SCHEMA.fields if isinstance(f.dataType, (T.IntegerType, T.LongType))
)
RULES_SCHEMA = T.StructType(
    [
        T.StructField(CLUSTER, T.IntegerType(), False),
        T.StructField("segment", T.StringType(), False),
        T.StructField(LEAF, T.IntegerType(), False),
        T.StructField("rule", T.StringType(), False),
        T.StructField("predicate", T.StringType(), False),
        T.StructField("conditions", T.IntegerType(), False),
        T.StructField("customers", T.LongType(), False),
        T.StructField("customer_share", T.DoubleType(), False),
        T.StructField("cluster_coverage", T.DoubleType(), False),
        T.StructField("precision", T.DoubleType(), False),
        T.StructField("revenue_total", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        T.StructField("gross_revenue_mean", T.DoubleType(), False),
        T.StructField("predicted_label", T.DoubleType(), False),
    ]
)


def _number(value: float) -> str:
    """A threshold as people read it — no trailing zeros, thousands separated — with as many
    significant digits as it takes to be the threshold itself (up to float noise, relative 1e-12).

    MLlib's thresholds are midpoints between neighbouring values: rounded to a fixed precision
    (17.855 shown as 17.86) the text can put a customer on the wrong side of its own rule. The
    ``predicate`` column is exact either way.
    """
    if value == int(value):
        return f"{int(value):,}"
    for digits in range(4, 18):
        shown = f"{value:,.{digits}g}"
        if "e" not in shown and abs(float(shown.replace(",", "")) - value) <= 1e-12 * abs(value):
            return shown
    return repr(value)


@dataclass(frozen=True)
class Condition:
    """``low < feature <= high`` (either bound may be absent), as the tree's splits say."""

    feature: str
    low: float | None = None
    high: float | None = None
    integer: bool = False

    @property
    def text(self) -> str:
        if self.integer:  # x > 3.5 <=> x >= 4 ; x <= 3.5 <=> x <= 3
            low = None if self.low is None else math.floor(self.low) + 1
            high = None if self.high is None else math.floor(self.high)
            if low is not None and high is not None:
                return f"{self.feature} = {low}" if low == high else f"{low} ≤ {self.feature} ≤ {high}"
            return f"{self.feature} ≥ {low}" if low is not None else f"{self.feature} ≤ {high}"
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)} < {self.feature} ≤ {_number(self.high)}"
        return (
            f"{self.feature} > {_number(self.low)}"
            if self.low is not None
            else f"{self.feature} ≤ {_number(self.high)}"
        )

    @property
    def predicate(self) -> str:
        """Spark SQL with the exact thresholds (double literals, as MLlib compares them)."""
        parts = []
        if self.low is not None:
            parts.append(f"`{self.feature}` > {self.low!r}D")
        if self.high is not None:
            parts.append(f"`{self.feature}` <= {self.high!r}D")
        return " AND ".join(parts)


@dataclass(frozen=True)
class LeafRule:
    leaf: int
    conditions: tuple[Condition, ...]
    prediction: float  # the leaf's value, on the tree's label scale

    @property
    def text(self) -> str:
        return " AND ".join(c.text for c in self.conditions) or "every customer"

    @property
    def predicate(self) -> str:
        return " AND ".join(f"({c.predicate})" for c in self.conditions) or "TRUE"


def leaf_rules(
    tree: Tree,
    *,
    feature_names: Sequence[str] = MODEL_INPUT_COLUMNS,
    integer_features: frozenset[str] = INTEGER_FEATURES,
) -> dict[int, LeafRule]:
    """Leaf index -> its rule, one interval per feature, features in the order of first use."""
    by_id = {n.node_id: n for n in tree.nodes}
    leaf_node = {n.leaf_index: n for n in tree.leaves}
    rules = {}
    for leaf, steps in tree.paths().items():
        bounds: dict[int, list[float | None]] = {}
        for step in steps:
            low, high = bounds.setdefault(step.feature, [None, None])
            if step.went_right:
                bounds[step.feature][0] = step.threshold if low is None else max(low, step.threshold)
            else:
                bounds[step.feature][1] = step.threshold if high is None else min(high, step.threshold)
        conditions = tuple(
            Condition(
                feature=feature_names[index], low=low, high=high, integer=feature_names[index] in integer_features
            )
            for index, (low, high) in bounds.items()
        )
        rules[leaf] = LeafRule(leaf=leaf, conditions=conditions, prediction=by_id[leaf_node[leaf].node_id].prediction)
    return rules


def leaf_contributions(
    tree: Tree, *, feature_names: Sequence[str] = MODEL_INPUT_COLUMNS
) -> dict[int, dict[str, float]]:
    """Leaf index -> feature -> the change in prediction its splits made on the way to the leaf.

    Needs every node's value: a tree read from a saved model (``model.store.save`` returns one).
    """
    if not tree.has_node_values:
        raise ValueError("the tree has no values for its internal nodes: read it from the saved model")
    by_id = {n.node_id: n for n in tree.nodes}
    leaf_node = {n.leaf_index: n.node_id for n in tree.leaves}
    result: dict[int, dict[str, float]] = {}
    for leaf, steps in tree.paths().items():
        contributions: dict[str, float] = {}
        for i, step in enumerate(steps):
            child = steps[i + 1].node_id if i + 1 < len(steps) else leaf_node[leaf]
            change = by_id[child].prediction - by_id[step.node_id].prediction
            name = feature_names[step.feature]
            contributions[name] = contributions.get(name, 0.0) + change
        result[leaf] = contributions
    return result


def top_contributions(contributions: Mapping[str, float], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest contributions by absolute value (ties: feature name)."""
    return sorted(contributions.items(), key=lambda item: (-abs(item[1]), item[0]))[:top]


PUBLISHED_DIGITS = 9  # node values carry floating-point noise from the tree's distributed sums


def with_top_contributions(
    scored: DataFrame, tree: Tree, *, top: int = 3, feature_names: Sequence[str] = MODEL_INPUT_COLUMNS
) -> DataFrame:
    """Add ``top_features``: the ``top`` features that moved the customer's prediction the most.

    Contributions are rounded to 1e-9: MLlib sums each node's label statistics across partitions
    in no fixed order, so two fits of the same tree can differ in the last bits of a node value,
    and a rerun must publish the same rows.
    """
    schema = T.StructType(
        [
            T.StructField(LEAF, T.IntegerType(), False),
            T.StructField(TOP_FEATURES, T.ArrayType(CONTRIBUTION_TYPE, False), False),
        ]
    )
    rows = [
        (leaf, [(name, round(value, PUBLISHED_DIGITS)) for name, value in top_contributions(c, top)])
        for leaf, c in leaf_contributions(tree, feature_names=feature_names).items()
    ]
    lookup = literal_frame(scored.sparkSession, rows, schema)
    return scored.join(F.broadcast(lookup), on=LEAF, how="left")


# --- the rules table -------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRow:
    cluster: int
    segment: str
    leaf: int
    rule: str
    predicate: str
    conditions: int
    customers: int
    customer_share: float
    cluster_coverage: float  # the rule's share of its cluster's customers
    precision: float  # the rule's customers that are in its cluster
    revenue_total: float
    revenue_share: float
    gross_revenue_mean: float
    predicted_label: float


def to_rule_rows(
    leaf_sums: LeafSums,
    tree: Tree,
    leaf_clusters: Mapping[int, int],
    profiles: Sequence[ClusterProfile],
    *,
    feature_names: Sequence[str] = MODEL_INPUT_COLUMNS,
) -> list[RuleRow]:
    """Each leaf's rule with its cluster, support, precision and revenue, from the leaf table of the
    segmented customers (``leaves``; the model's training customers or a score run's).

    ``leaf_clusters`` maps a leaf to its KMeans cluster, as ``FittedKMeans.leaf_clusters``; a
    customer's cluster is its leaf's, so a rule's precision is 1 for any leaf that holds customers.
    """
    by_kmeans = {p.kmeans_cluster: p for p in profiles}
    customers = sum(s[CUSTOMERS] for s in leaf_sums.values())
    revenue = sum(s[GROSS_REVENUE] for s in leaf_sums.values())
    cluster_sizes: dict[int, float] = {}
    for leaf, sums in leaf_sums.items():
        cluster = by_kmeans[leaf_clusters[leaf]].cluster
        cluster_sizes[cluster] = cluster_sizes.get(cluster, 0) + sums[CUSTOMERS]
    rows = []
    for leaf, rule in leaf_rules(tree, feature_names=feature_names).items():
        if leaf not in leaf_clusters:
            continue
        profile = by_kmeans[leaf_clusters[leaf]]
        sums = leaf_sums.get(leaf)
        matched = int(sums[CUSTOMERS]) if sums else 0
        in_cluster = matched  # the leaf's customers are all in its cluster
        total_revenue = float(sums[GROSS_REVENUE]) if sums else 0.0
        rows.append(
            RuleRow(
                cluster=profile.cluster,
                segment=profile.segment,
                leaf=leaf,
                rule=rule.text,
                predicate=rule.predicate,
                conditions=len(rule.conditions),
                customers=matched,
                customer_share=matched / customers if customers else 0.0,
                cluster_coverage=in_cluster / cluster_sizes[profile.cluster]
                if cluster_sizes.get(profile.cluster)
                else 0.0,
                precision=in_cluster / matched if matched else 0.0,
                revenue_total=total_revenue,
                revenue_share=total_revenue / revenue if revenue else 0.0,
                gross_revenue_mean=total_revenue / matched if matched else 0.0,
                predicted_label=round(rule.prediction, PUBLISHED_DIGITS),
            )
        )
    return sorted(rows, key=lambda r: (r.cluster, -r.customers, r.leaf))


def to_rules_frame(spark: SparkSession, rows: Sequence[RuleRow]) -> DataFrame:
    return literal_frame(spark, [tuple(asdict(r).values()) for r in rows], RULES_SCHEMA)
