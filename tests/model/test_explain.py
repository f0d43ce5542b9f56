"""Rules per leaf and cluster, checked against the tree's own leaves; per-customer contributions."""

import dataclasses

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.names import CLUSTER, LEAF, MODEL_INPUT_COLUMNS, TOP_FEATURES
from insiders_spark.model.clustering import KMEANS_CLUSTER
from insiders_spark.model.embedding import PREDICTED_LABEL
from insiders_spark.model.explain import (
    RULES_SCHEMA,
    Condition,
    leaf_contributions,
    leaf_rules,
    to_rule_rows,
    to_rules_frame,
    with_top_contributions,
)
from insiders_spark.model.profiles import with_clusters
from insiders_spark.model.segmentation import fit_segmentation
from insiders_spark.model.tree import Tree, TreeNode

RECENCY, INVOICES = MODEL_INPUT_COLUMNS.index("recency_days"), MODEL_INPUT_COLUMNS.index("qty_invoices")
FREQUENCY = MODEL_INPUT_COLUMNS.index("frequency")


def _toy_tree():
    """recency <= 30 ? (recency <= 10 ? leaf0 : leaf1) : (invoices <= 3.5 ? leaf2 : (recency > 90 ? leaf4 : leaf3))."""
    node = TreeNode
    return Tree(
        nodes=(
            node(0, 0, 5.0, 1.0, 100, feature=RECENCY, threshold=30.0, gain=1.0, left=1, right=4),
            node(1, 1, 7.0, 1.0, 40, feature=RECENCY, threshold=10.0, gain=1.0, left=2, right=3),
            node(2, 2, 8.0, 0.0, 20, leaf_index=0),
            node(3, 2, 6.0, 0.0, 20, leaf_index=1),
            node(4, 1, 3.0, 1.0, 60, feature=INVOICES, threshold=3.5, gain=1.0, left=5, right=6),
            node(5, 2, 2.0, 0.0, 30, leaf_index=2),
            node(6, 2, 4.0, 1.0, 30, feature=RECENCY, threshold=90.0, gain=1.0, left=7, right=8),
            node(7, 3, 4.5, 0.0, 20, leaf_index=3),
            node(8, 3, 3.0, 0.0, 10, leaf_index=4),
        )
    )


def test_repeated_bounds_collapse_into_one_interval():
    rules = leaf_rules(_toy_tree())
    assert rules[0].text == "recency_days ≤ 10"
    assert rules[1].text == "11 ≤ recency_days ≤ 30"
    assert rules[2].text == "recency_days ≥ 31 AND qty_invoices ≤ 3"
    assert rules[3].text == "31 ≤ recency_days ≤ 90 AND qty_invoices ≥ 4"
    assert rules[4].text == "recency_days ≥ 91 AND qty_invoices ≥ 4"
    assert rules[3].predicate == "(`recency_days` > 30.0D AND `recency_days` <= 90.0D) AND (`qty_invoices` > 3.5D)"


def test_continuous_features_keep_their_thresholds():
    assert Condition("frequency", low=0.25, high=None).text == "frequency > 0.25"
    assert Condition("avg_ticket", low=12.5, high=1500.0).text == "12.5 < avg_ticket ≤ 1,500"
    assert Condition("qty_items", low=9.5, high=10.0, integer=True).text == "qty_items = 10"


def test_contributions_add_up_to_the_leaf_value():
    tree = _toy_tree()
    root = tree.nodes[0].prediction
    for leaf, contributions in leaf_contributions(tree).items():
        node = next(n for n in tree.leaves if n.leaf_index == leaf)
        assert root + sum(contributions.values()) == pytest.approx(node.prediction)
    # leaf 4: recency 5 -> 3 (-2), invoices 3 -> 4 (+1), recency again 4 -> 3 (-1)
    assert leaf_contributions(tree)[4] == pytest.approx({"recency_days": -3.0, "qty_invoices": 1.0})


def _features(spark, n=600):
    rows = []
    for i in range(n):
        items = 1 + (i * 37) % 997
        invoices = 1 + i % 9
        revenue = 2.0 * items + 15.0 * invoices
        rows.append(
            (i, revenue, i % 300, invoices, items, 1 + i % 50, 0.1 + (i % 7) / 10, i % 5, revenue / (1 + i % 20))
        )
    return spark.createDataFrame(rows, ["customer_id", "gross_revenue", *MODEL_INPUT_COLUMNS])


@pytest.fixture(scope="module")
def fitted(spark, test_config, tmp_path_factory):
    config = dataclasses.replace(
        test_config,
        embedding=dataclasses.replace(test_config.embedding, max_depth=3, min_leaf_share=0.02, max_bins=32),
    )
    features = _features(spark).cache()
    model, clustered = fit_segmentation(features, config=config, customers=600, k=3, seed=7)
    # the internal nodes' values (the contributions need them) come back from a save, as in a run
    embedding = model.embedding.with_node_values(str(tmp_path_factory.mktemp("explain") / "tree"))
    model = dataclasses.replace(model, embedding=embedding)
    segmented = with_clusters(clustered, model.profiles, cluster_col=KMEANS_CLUSTER).cache()
    return model, segmented


def test_every_customer_matches_exactly_the_rule_of_its_leaf(fitted):
    model, segmented = fitted
    rules = leaf_rules(model.embedding.tree)
    matches = F.filter(
        F.array(*[F.when(F.expr(rule.predicate), F.lit(leaf)) for leaf, rule in rules.items()]),
        lambda leaf: leaf.isNotNull(),
    )
    checked = segmented.select(LEAF, matches.alias("matched"))
    assert checked.where((F.size("matched") != 1) | (F.col("matched")[0] != F.col(LEAF))).count() == 0
    # and each predicate, run as Spark SQL, selects exactly its leaf's customers
    for leaf, rule in rules.items():
        selected = segmented.where(rule.predicate)
        assert selected.where(F.col(LEAF) != leaf).count() == 0
        assert selected.count() == segmented.where(F.col(LEAF) == leaf).count()


def test_rule_rows_cover_every_customer_and_cluster(spark, fitted):
    model, segmented = fitted
    rows = to_rule_rows(model.leaf_sums, model.embedding.tree, model.kmeans.leaf_clusters, model.profiles)
    assert sum(r.customers for r in rows) == 600
    # each rule's support, cluster and revenue, counted on the segmented customers themselves
    counted = {
        (r[LEAF], r[CLUSTER]): (r["customers"], r["revenue"])
        for r in segmented.groupBy(LEAF, CLUSTER)
        .agg(F.count(F.lit(1)).alias("customers"), F.sum("gross_revenue").alias("revenue"))
        .collect()
    }
    assert set(counted) == {(r.leaf, r.cluster) for r in rows if r.customers}
    for r in rows:
        if r.customers:
            assert r.customers == counted[(r.leaf, r.cluster)][0]
            assert r.revenue_total == pytest.approx(counted[(r.leaf, r.cluster)][1], rel=1e-12)
    assert all(r.precision == 1.0 for r in rows)
    for profile in model.profiles:
        mine = [r for r in rows if r.cluster == profile.cluster]
        assert sum(r.customers for r in mine) == profile.customers
        assert sum(r.cluster_coverage for r in mine) == pytest.approx(1.0)
        assert {r.segment for r in mine} == {profile.segment}
    assert sum(r.revenue_share for r in rows) == pytest.approx(1.0)
    frame = to_rules_frame(spark, rows)
    assert frame.count() == len(rows) and frame.schema == RULES_SCHEMA


def test_top_features_are_the_leaf_path_contributions(fitted):
    model, segmented = fitted
    tree = model.embedding.tree
    root = tree.nodes[0].prediction
    explained = with_top_contributions(segmented, tree, top=2).select(LEAF, PREDICTED_LABEL, TOP_FEATURES, CLUSTER)
    assert explained.count() == 600
    for row in explained.dropDuplicates([LEAF]).collect():
        top = row[TOP_FEATURES]
        assert 1 <= len(top) <= 2
        assert [abs(t["contribution"]) for t in top] == sorted((abs(t["contribution"]) for t in top), reverse=True)
        everything = leaf_contributions(tree)[row[LEAF]]
        assert root + sum(everything.values()) == pytest.approx(row[PREDICTED_LABEL])
        # the customer's own leaf's largest moves, not another leaf's
        largest = sorted(everything.items(), key=lambda item: -abs(item[1]))[: len(top)]
        assert [t["feature"] for t in top] == [name for name, _ in largest]
        assert [t["contribution"] for t in top] == pytest.approx([value for _, value in largest], abs=1e-9)


def test_top_features_of_each_leaf_of_a_hand_built_tree(spark):
    # by hand from _toy_tree's node values: each split's change of prediction, summed per feature
    expected = {
        0: [("recency_days", 3.0)],  # 5 -> 7 -> 8
        1: [("recency_days", 1.0)],  # 5 -> 7 -> 6
        2: [("recency_days", -2.0), ("qty_invoices", -1.0)],  # 5 -> 3 -> 2
        3: [("recency_days", -1.5), ("qty_invoices", 1.0)],  # 5 -> 3 -> 4 -> 4.5
        4: [("recency_days", -3.0), ("qty_invoices", 1.0)],  # 5 -> 3 -> 4 -> 3
    }
    customers = spark.createDataFrame([(c, c % 5) for c in range(10)], f"customer_id long, {LEAF} int")
    rows = with_top_contributions(customers, _toy_tree(), top=2).collect()
    assert len(rows) == 10
    for row in rows:
        got = [(t["feature"], t["contribution"]) for t in row[TOP_FEATURES]]
        assert got == expected[row[LEAF]], row.customer_id
    one = with_top_contributions(customers.where(F.col(LEAF) == 3), _toy_tree(), top=1).first()
    assert [(t["feature"], t["contribution"]) for t in one[TOP_FEATURES]] == [("recency_days", -1.5)]


@pytest.mark.parametrize(
    ("below", "above"),
    [(17.85, 17.86), (2.99, 3.0), (0.99995, 1.0), (1234.56, 1234.57), (123456789.2, 123456789.3), (0.0999, 0.1)],
)
def test_a_rule_shows_its_threshold_on_the_same_side_of_every_value_as_the_tree(below, above):
    """MLlib splits halfway between neighbouring values; the text must keep them on their sides
    (rounded to two decimals, 17.855 read 17.86 and put a customer at 17.86 on both sides)."""
    threshold = (below + above) / 2
    left = Condition("avg_ticket", high=threshold).text
    right = Condition("avg_ticket", low=threshold).text
    shown = float(left.rsplit(" ", 1)[1].replace(",", ""))
    assert below <= shown < above
    assert right == f"avg_ticket > {left.rsplit(' ', 1)[1]}"
