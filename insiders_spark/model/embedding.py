"""A tree-based embedding of customers: where each customer's leaf sits in a revenue tree.

A decision tree (MLlib, distributed) learns gross revenue from the other features; every customer
lands in one leaf. One-hot leaf ids would put every pair of leaves at the same distance, so KMeans
would have nothing to learn from. Instead each leaf is encoded by its *root-to-leaf path*: one
dimension per internal node, ``+w`` where the path goes right (feature above the threshold), ``-w``
where it goes left, 0 off the path. Two leaves then differ only from the node where their paths
part: leaves in the same subtree are close, leaves separated near the root are far apart.

Every split counts the same (``w = 1``): the squared distance of two leaves is 4 plus the
number of further splits below the node where they part.

The tree learns ``log1p(gross_revenue)``: revenue is heavy-tailed, and a variance
criterion on raw revenue spends its splits isolating a handful of the largest spenders, while on
the log scale the splits follow the whole value ladder. ``min_leaf_share`` keeps every leaf to at
least that share of the customers. docs/method.md has the measured alternatives (other labels
and weights, split grids).

The encoding is two of MLlib's own stages after the tree, so the fitted embedding is one
``PipelineModel`` that any Spark user can load (no Python class of ours): an ``SQLTransformer``
turns the leaf index into one column per internal node (MLlib numbers leaves in preorder, so the
leaves below a node's left child, and those below its right child, are each a range of indices),
and a ``VectorAssembler`` gathers those columns into the ``embedding`` vector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.linalg import SparseVector, Vectors
from pyspark.ml.regression import DecisionTreeRegressionModel, DecisionTreeRegressor
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import EmbeddingConfig
from insiders_spark.core.names import CUSTOMER_ID, LABEL_COLUMN, LEAF, MODEL_INPUT_COLUMNS
from insiders_spark.model.tree import Tree, read_saved_tree, read_tree, with_node_values

TREE_FEATURES = "tree_features"
TREE_LABEL = "tree_label"
PREDICTED_LABEL = "predicted_label"  # the tree's prediction, on the label's scale
EMBEDDING = "embedding"
PATH_PREFIX = "leaf_path_"  # the encoding's columns, one per internal node (dropped by ``transform``)


def tree_inputs(columns: Sequence[str]) -> tuple[str, ...]:
    """The tree's inputs: the model inputs among ``columns`` (a log without product ids gives no
    qty_products), in the order of ``MODEL_INPUT_COLUMNS``."""
    present = set(columns)
    return tuple(name for name in MODEL_INPUT_COLUMNS if name in present)


LABEL = "log1p"  # what the tree learns, as the model and the manifest name it
ENCODING = "path"  # how a leaf becomes a point, likewise


def tree_label(gross_revenue: Column) -> Column:
    """What the tree learns: ``log1p(gross_revenue)``."""
    return F.log1p(gross_revenue)


def min_instances_per_leaf(customers: int, share: float) -> int:
    return max(1, math.ceil(share * customers))


def tree_regressor(
    config: EmbeddingConfig, *, seed: int, customers: int, features_col: str, label_col: str, prediction_col: str
) -> DecisionTreeRegressor:
    """MLlib's regression tree with the configured depth, bins, minimum leaf share and gain."""
    return DecisionTreeRegressor(
        featuresCol=features_col,
        labelCol=label_col,
        predictionCol=prediction_col,
        maxDepth=config.max_depth,
        maxBins=config.max_bins,
        minInstancesPerNode=min_instances_per_leaf(customers, config.min_leaf_share),
        minInfoGain=config.min_info_gain,
        seed=seed,
    )


def fit_revenue_tree(features: DataFrame, *, config: EmbeddingConfig, seed: int, customers: int) -> PipelineModel:
    """Fit the assembler and the revenue tree on the customer features.

    ``customers`` (counted upstream) turns ``min_leaf_share`` into MLlib's ``minInstancesPerNode``.
    """
    assembler = VectorAssembler(inputCols=list(tree_inputs(features.columns)), outputCol=TREE_FEATURES)
    regressor = tree_regressor(
        config,
        seed=seed,
        customers=customers,
        features_col=TREE_FEATURES,
        label_col=TREE_LABEL,
        prediction_col=PREDICTED_LABEL,
    ).setLeafCol(LEAF)
    labelled = in_sampling_order(features, max_bins=config.max_bins, customers=customers).withColumn(
        TREE_LABEL, tree_label(F.col(LABEL_COLUMN))
    )
    return Pipeline(stages=[assembler, regressor]).fit(labelled)


def sampled_rows_above(max_bins: int) -> int:
    """MLlib draws a tree's split candidates from a sample of the rows past max(maxBins², 10,000)."""
    return max(max_bins * max_bins, 10_000)


def in_sampling_order(features: DataFrame, *, max_bins: int, customers: int) -> DataFrame:
    """The customers in an order that does not depend on how they were computed, where it matters.

    Past ``sampled_rows_above(max_bins)`` rows, MLlib samples them to find the split candidates,
    row by row in each partition: which rows it draws depends on each row's partition and position,
    which a rerun's shuffle (and a range sort's sampled bounds) need not repeat. Hash-partitioned and
    sorted by customer id, the same customers give the same sample, hence the same tree; below that
    size every row is used and the order does not matter, so no shuffle is added.
    """
    if customers <= sampled_rows_above(max_bins):
        return features
    partitions = int(features.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return features.repartition(partitions, CUSTOMER_ID).sortWithinPartitions(CUSTOMER_ID)


def leaf_path_vectors(tree: Tree) -> dict[int, SparseVector]:
    """Leaf index -> its root-to-leaf path vector (one dimension per internal node, +1 where the
    path goes right, -1 where it goes left, 0 off the path)."""
    dimension = {n.node_id: i for i, n in enumerate(tree.internal_nodes)}
    vectors = {}
    for leaf_index, steps in tree.paths().items():
        entries = {dimension[step.node_id]: 1.0 if step.went_right else -1.0 for step in steps}
        vectors[leaf_index] = Vectors.sparse(len(dimension), entries)
    return vectors


def path_columns(tree: Tree) -> list[str]:
    return [f"{PATH_PREFIX}{i}" for i in range(len(tree.internal_nodes))]


def _leaf_range(leaves: list[int]) -> tuple[int, int]:
    low, high = min(leaves), max(leaves)
    if high - low + 1 != len(leaves):
        raise ValueError(f"leaves {sorted(leaves)} below one node are not consecutive: not MLlib's preorder")
    return low, high


def path_encoding_sql(tree: Tree) -> str:
    """The ``SQLTransformer`` statement that adds each internal node's component of the leaf's
    path vector (``leaf_path_vectors``): -1 for the leaves of its left subtree, +1 for those of its
    right subtree, 0 for the others."""
    below: dict[tuple[int, bool], list[int]] = {}
    for leaf, steps in tree.paths().items():
        for step in steps:
            below.setdefault((step.node_id, step.went_right), []).append(leaf)
    components = []
    for node, column in zip(tree.internal_nodes, path_columns(tree), strict=True):
        (left_low, left_high), (right_low, right_high) = (
            _leaf_range(below[(node.node_id, side)]) for side in (False, True)
        )
        components.append(
            f"CASE WHEN {LEAF} BETWEEN {left_low} AND {left_high} THEN -1.0D "
            f"WHEN {LEAF} BETWEEN {right_low} AND {right_high} THEN 1.0D ELSE 0.0D END AS {column}"
        )
    return f"SELECT *, {', '.join(components)} FROM __THIS__"


def path_encoding_stages(tree: Tree) -> list[Any]:
    """The leaf -> path vector encoding as MLlib stages: leaf index -> components -> ``embedding``."""
    return [
        SQLTransformer(statement=path_encoding_sql(tree)),
        VectorAssembler(inputCols=path_columns(tree), outputCol=EMBEDDING),
    ]


@dataclass(frozen=True)
class LeafEmbedding:
    """A fitted revenue tree, its leaf encoding, and the tree as plain data.

    ``model``: assembler -> tree (``leafCol``) -> the path encoding (``path_encoding_stages``).
    """

    model: PipelineModel
    tree: Tree

    @property
    def regressor(self) -> DecisionTreeRegressionModel:
        return self.model.stages[TREE_STAGE]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The features the tree splits on, in the order of its feature indices."""
        return tuple(self.model.stages[0].getInputCols())

    def leaf_vectors(self) -> dict[int, SparseVector]:
        return leaf_path_vectors(self.tree)

    def with_node_values(self, folder: str) -> LeafEmbedding:
        """This embedding with every node's value (Saabas' contributions need them), read back
        from its tree saved under ``folder`` (a run's model version does this on its own save)."""
        self.regressor.write().overwrite().save(folder)
        saved = read_saved_tree(SparkSession.active(), folder)
        return replace(self, tree=with_node_values(self.tree, saved))

    def describe(self) -> dict:
        return {
            "model": "decision_tree",
            "label": LABEL,
            "encoding": ENCODING,
            "depth": self.tree.depth,
            "nodes": len(self.tree.nodes),
            "leaves": len(self.tree.leaves),
            "dimensions": len(self.tree.internal_nodes),
        }

    def transform(self, features: DataFrame) -> DataFrame:
        """Add ``leaf``, the tree's prediction and the leaf's ``embedding`` vector."""
        scored = self.model.transform(features)
        helpers = {LEAF, TREE_FEATURES, EMBEDDING, *path_columns(self.tree)}
        kept = [name for name in scored.columns if name not in helpers]
        return scored.select(F.col(LEAF).cast(T.IntegerType()).alias(LEAF), *kept, EMBEDDING)


TREE_STAGE = 1  # the tree's position among the embedding's stages (after the assembler)


def embedding_from_stages(tree_stages: list[Any], tree: Tree) -> LeafEmbedding:
    """The embedding of a fitted assembler and tree whose structure is ``tree``."""
    return LeafEmbedding(model=PipelineModel(stages=[*tree_stages, *path_encoding_stages(tree)]), tree=tree)


def fit_embedding(features: DataFrame, *, config: EmbeddingConfig, seed: int, customers: int) -> LeafEmbedding:
    model = fit_revenue_tree(features, config=config, seed=seed, customers=customers)
    return embedding_from_stages(model.stages, read_tree(model.stages[TREE_STAGE]))
