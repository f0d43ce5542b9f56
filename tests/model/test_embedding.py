"""The revenue tree as plain data (``model.tree``), and the geometry of its leaf-path embedding
(``model.embedding``): log1p(revenue) learned, every split counting the same."""

import itertools
import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from insiders_spark.core.config import EmbeddingConfig
from insiders_spark.core.names import LEAF, MODEL_INPUT_COLUMNS
from insiders_spark.model.embedding import (
    EMBEDDING,
    PREDICTED_LABEL,
    TREE_LABEL,
    fit_embedding,
    leaf_path_vectors,
    min_instances_per_leaf,
    sampled_rows_above,
    tree_label,
)
from insiders_spark.model.tree import Tree, TreeNode


def _features(spark, n=400):
    """Revenue driven mostly by items, a little by invoices; every model input present."""
    rows = []
    for i in range(n):
        items = 1 + (i * 37) % 997
        invoices = 1 + i % 9
        revenue = 2.0 * items + 15.0 * invoices
        rows.append(
            (i, revenue, i % 300, invoices, items, 1 + i % 50, 0.1 + (i % 7) / 10, i % 5, revenue / (1 + i % 20))
        )
    columns = ["customer_id", "gross_revenue", *MODEL_INPUT_COLUMNS]
    return spark.createDataFrame(rows, columns)


@pytest.fixture(scope="module")
def fitted(spark):
    features = _features(spark).cache()
    config = EmbeddingConfig(max_depth=3, min_leaf_share=0.02, max_bins=32)
    embedding = fit_embedding(features, config=config, seed=7, customers=features.count())
    return features, embedding


def test_leaf_indices_from_mllib_match_the_walked_tree(fitted):
    features, embedding = fitted
    leaves = {leaf.leaf_index: leaf for leaf in embedding.tree.leaves}
    rows = embedding.transform(features).select(LEAF, PREDICTED_LABEL, *MODEL_INPUT_COLUMNS).collect()
    paths = embedding.tree.paths()
    for row in rows:
        leaf = leaves[row[LEAF]]
        assert row[PREDICTED_LABEL] == pytest.approx(leaf.prediction)
        # the row really satisfies every decision on its leaf's path
        for step in paths[row[LEAF]]:
            value = row[MODEL_INPUT_COLUMNS[step.feature]]
            assert (value > step.threshold) == step.went_right


def test_every_leaf_holds_at_least_the_minimum_share(fitted):
    features, embedding = fitted
    counts = [r["count"] for r in embedding.transform(features).groupBy(LEAF).count().collect()]
    assert min(counts) >= min_instances_per_leaf(features.count(), 0.02) == 8


def test_same_seed_same_tree(spark, fitted):
    features, embedding = fitted
    again = fit_embedding(
        features, config=EmbeddingConfig(max_depth=3, min_leaf_share=0.02, max_bins=32), seed=7, customers=400
    )
    assert again.tree == embedding.tree


def test_a_sampled_tree_does_not_depend_on_the_order_of_its_customers(spark):
    """Past max(maxBins², 10,000) customers MLlib finds split candidates on a sample of the rows;
    the same customers, shuffled and partitioned another way, must still give the same tree."""
    n = 12_000
    assert n > sampled_rows_above(16)
    rows = []
    for i in range(n):
        items = 1 + (i * 7919) % 20011
        invoices = 1 + (i * 31) % 97
        revenue = 1.7 * items + 23.0 * invoices + (i * 13) % 101
        rows.append(
            (i, revenue, i % 365, invoices, items, 1 + i % 500, ((i * 17) % 100) / 100, i % 11, revenue / invoices)
        )
    features = (
        spark.createDataFrame(rows, ["customer_id", "gross_revenue", *MODEL_INPUT_COLUMNS]).repartition(2).cache()
    )
    shuffled = features.orderBy(F.xxhash64("customer_id", F.lit("another order"))).repartition(3).cache()
    config = EmbeddingConfig(max_depth=4, min_leaf_share=0.01, max_bins=16)
    trees = [fit_embedding(frame, config=config, seed=7, customers=n).tree for frame in (features, shuffled)]
    assert trees[0] == trees[1]
    assert len(trees[0].leaves) > 8  # a real tree, with thresholds for the sample to move
    for frame in (features, shuffled):
        frame.unpersist()


def _toy_tree():
    """root(x0<=5) -> left leaf 0 | right node(x1<=2) -> leaves 1, 2."""
    return Tree(
        nodes=(
            TreeNode(0, 0, 5.0, 4.0, 100, feature=0, threshold=5.0, gain=3.0, left=1, right=2),
            TreeNode(1, 1, 1.0, 0.0, 60, leaf_index=0),
            TreeNode(2, 1, 9.0, 1.0, 40, feature=1, threshold=2.0, gain=0.5, left=3, right=4),
            TreeNode(3, 2, 8.0, 0.0, 30, leaf_index=1),
            TreeNode(4, 2, 12.0, 0.0, 10, leaf_index=2),
        )
    )


def test_path_vectors_follow_the_tree():
    vectors = {leaf: v.toArray() for leaf, v in leaf_path_vectors(_toy_tree()).items()}
    np.testing.assert_array_equal(vectors[0], [-1.0, 0.0])
    np.testing.assert_array_equal(vectors[1], [1.0, -1.0])
    np.testing.assert_array_equal(vectors[2], [1.0, 1.0])

    def sq(a, b):
        return float(((vectors[a] - vectors[b]) ** 2).sum())

    # siblings (parted one level down) are closer than leaves parted at the root
    assert sq(1, 2) == 4.0
    assert sq(0, 1) == sq(0, 2) == 5.0


def test_the_tree_learns_log1p_of_gross_revenue_and_reports_it(spark, fitted):
    features, embedding = fitted
    labelled = features.select(tree_label(F.col("gross_revenue")).alias(TREE_LABEL), "gross_revenue").collect()
    assert all(row[TREE_LABEL] == pytest.approx(math.log1p(row["gross_revenue"])) for row in labelled)
    # every prediction is a mean of log1p(revenue) over a leaf: within the label's range
    predictions = [r[PREDICTED_LABEL] for r in embedding.transform(features).select(PREDICTED_LABEL).collect()]
    low, high = min(r[TREE_LABEL] for r in labelled), max(r[TREE_LABEL] for r in labelled)
    assert all(low <= p <= high for p in predictions)
    assert embedding.describe() == {
        "model": "decision_tree",
        "label": "log1p",
        "encoding": "path",
        "depth": embedding.tree.depth,
        "nodes": len(embedding.tree.nodes),
        "leaves": len(embedding.tree.leaves),
        "dimensions": len(embedding.tree.internal_nodes),
    }
    assert embedding.tree.depth <= 3 and len(embedding.tree.nodes) == 2 * len(embedding.tree.leaves) - 1


def test_the_smallest_leaf_is_a_share_of_the_customers_rounded_up():
    assert min_instances_per_leaf(5_695, 0.01) == 57
    assert min_instances_per_leaf(100, 0.01) == 1 and min_instances_per_leaf(100, 0.0) == 1
    assert sampled_rows_above(256) == 65_536 and sampled_rows_above(16) == 10_000


def test_embedding_is_one_vector_per_leaf(fitted):
    features, embedding = fitted
    per_leaf = (
        embedding.transform(features).groupBy(LEAF).agg(F.count_distinct(F.col(EMBEDDING).cast("string")).alias("n"))
    )
    assert {r.n for r in per_leaf.collect()} == {1}
    vectors = embedding.leaf_vectors()
    assert len(vectors) == len(embedding.tree.leaves)
    assert all(len(v) == len(embedding.tree.internal_nodes) for v in vectors.values())
    distinct = {tuple(v.toArray()) for v in vectors.values()}
    assert len(distinct) == len(vectors)
    for a, b in itertools.combinations(vectors.values(), 2):
        assert float(((a.toArray() - b.toArray()) ** 2).sum()) >= 4.0
