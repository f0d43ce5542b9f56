"""A tree-based embedding of customers: where each customer's leaf sits in a revenue tree.

A decision tree (MLlib, distributed) learns gross revenue from the other features; every customer
lands in one leaf. One-hot leaf ids would put every pair of leaves at the same distance, so KMeans
would have nothing to learn from. Instead each leaf is encoded by its *root-to-leaf path*: one
dimension per internal node, ``+w`` where the path goes right (feature above the threshold), ``-w``
where it goes left, 0 off the path. Two leaves then differ only from the node where their paths
part: leaves in the same subtree are close, leaves separated near the root are far apart.

The weight ``w`` of a node sets how much a split matters:

* ``path`` (default): every split counts the same (``w = 1``): the squared distance of two leaves
  is 4 plus the number of further splits below the node where they part;
* ``path_depth``: ``w = 2^(-depth/2)``, so a split's squared weight halves with each level;
* ``path_gain``: ``w = sqrt(share of the label variance the split explains)`` (MLlib's impurity
  gain times the instances at the node, normalised).

The tree learns ``log1p(gross_revenue)`` by default: revenue is heavy-tailed, and a variance
criterion on raw revenue spends its splits isolating a handful of the largest spenders, while on
the log scale the splits follow the whole value ladder. ``min_leaf_share`` keeps every leaf to at
least that share of the customers. The measured comparison is in docs/embedding_study.md.

``split_grid = "1-2-5"`` snaps every tree input down to a fixed grid (0, then 1, 2, 5 times the
powers of ten from 0.001 to 5e9) before the tree sees it. A split can then only fall between two
grid values, whatever the sample: refitted on more days or on a resample, the same split gives the
same customers, and the rules read in round numbers (``200 ≤ qty_items < 500``). The snapping is
a stage of the saved pipeline, so scoring applies it too. ``split_grid = "decades"`` is the
coarsest grid: 0, then the powers of ten alone. ``split_grid_by_feature`` gives one input its own
grid (``{ qty_items = "2" }``: 0, 2, 20, 200, 2,000, ...); grids.py names them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import SQLTransformer, VectorAssembler
from pyspark.ml.linalg import SparseVector, Vectors, VectorUDT
from pyspark.ml.regression import DecisionTreeRegressionModel, DecisionTreeRegressor
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.config import EmbeddingConfig
from insiders_spark.grids import SplitGrid
from insiders_spark.literals import literal_frame
from insiders_spark.schemas import CUSTOMER_ID, LABEL_COLUMN, LEAF, MODEL_INPUT_COLUMNS
from insiders_spark.tree import Tree, read_tree

TREE_FEATURES = "tree_features"
TREE_LABEL = "tree_label"
PREDICTED_LABEL = "predicted_label"  # the tree's prediction, on the label's scale
EMBEDDING = "embedding"

GRID_PREFIX = "grid_"  # the snapped copy of a tree input, inside the pipeline only


def configured_grid(config: EmbeddingConfig) -> SplitGrid:
    """The split grid of ``[embedding]``: ``split_grid`` for every input, ``split_grid_by_feature`` for some."""
    return SplitGrid.of(config.split_grid, config.split_grid_by_feature)


def snapped_sql(column: str, values: tuple[float, ...]) -> str:
    """Spark SQL: the largest grid value at or below ``column`` (0 below the first positive one)."""
    cases = " ".join(f"WHEN `{column}` >= {v!r}D THEN {v!r}D" for v in reversed(values[1:]))
    return f"CASE {cases} ELSE 0.0D END AS `{GRID_PREFIX}{column}`"


def snapping_stages(grid: SplitGrid) -> list[SQLTransformer]:
    """The pipeline stage that adds the snapped copy of every snapped tree input (none without a grid)."""
    if not grid.snapped:
        return []
    columns = ", ".join(snapped_sql(c, grid.values(c)) for c in grid.snapped)
    return [SQLTransformer(statement=f"SELECT *, {columns} FROM __THIS__")]


def snapped_columns(grid: SplitGrid) -> list[str]:
    """The snapped copies the grid stage adds (none without a grid)."""
    return [f"{GRID_PREFIX}{c}" for c in grid.snapped]


def tree_inputs(grid: SplitGrid) -> list[str]:
    """The tree's input columns, in the order of ``MODEL_INPUT_COLUMNS``: snapped copies where snapped."""
    snapped = set(grid.snapped)
    return [f"{GRID_PREFIX}{c}" if c in snapped else c for c in MODEL_INPUT_COLUMNS]


def tree_label(gross_revenue: Column, label: str) -> Column:
    """What the tree learns: ``log1p(gross_revenue)`` (default) or the raw revenue."""
    return F.log1p(gross_revenue) if label == "log1p" else gross_revenue.cast(T.DoubleType())


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


def fit_revenue_tree(
    features: DataFrame, *, config: EmbeddingConfig, seed: int, customers: int
) -> PipelineModel:
    """Fit the assembler and the revenue tree on the customer features.

    ``customers`` (counted upstream) turns ``min_leaf_share`` into MLlib's ``minInstancesPerNode``.
    """
    grid = configured_grid(config)
    assembler = VectorAssembler(inputCols=tree_inputs(grid), outputCol=TREE_FEATURES)
    regressor = tree_regressor(
        config, seed=seed, customers=customers, features_col=TREE_FEATURES, label_col=TREE_LABEL,
        prediction_col=PREDICTED_LABEL,
    ).setLeafCol(LEAF)
    labelled = in_sampling_order(features, max_bins=config.max_bins, customers=customers).withColumn(
        TREE_LABEL, tree_label(F.col(LABEL_COLUMN), config.label)
    )
    return Pipeline(stages=[*snapping_stages(grid), assembler, regressor]).fit(labelled)


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


def node_weights(tree: Tree, encoding: str) -> dict[int, float]:
    """Weight of each internal node's dimension under ``encoding``."""
    internal = tree.internal_nodes
    if encoding == "path":
        return {n.node_id: 1.0 for n in internal}
    if encoding == "path_depth":
        return {n.node_id: 2.0 ** (-n.depth / 2) for n in internal}
    explained = {n.node_id: max(n.gain or 0.0, 0.0) * n.count for n in internal}
    total = sum(explained.values()) or 1.0
    return {node_id: math.sqrt(value / total) for node_id, value in explained.items()}


def leaf_path_vectors(tree: Tree, encoding: str) -> dict[int, SparseVector]:
    """Leaf index -> its root-to-leaf path vector (one dimension per internal node)."""
    weights = node_weights(tree, encoding)
    dimension = {n.node_id: i for i, n in enumerate(tree.internal_nodes)}
    vectors = {}
    for leaf_index, steps in tree.paths().items():
        entries = {
            dimension[step.node_id]: (1.0 if step.went_right else -1.0) * weights[step.node_id]
            for step in steps
        }
        vectors[leaf_index] = Vectors.sparse(len(dimension), entries)
    return vectors


@dataclass(frozen=True)
class LeafEmbedding:
    """A fitted revenue tree and the vector each of its leaves stands for."""

    model: PipelineModel
    tree: Tree
    encoding: str
    label: str
    split_grid: SplitGrid = SplitGrid()

    @property
    def regressor(self) -> DecisionTreeRegressionModel:
        return self.model.stages[-1]

    def leaf_vectors(self) -> dict[int, SparseVector]:
        return leaf_path_vectors(self.tree, self.encoding)

    def describe(self) -> dict:
        return {
            "model": "decision_tree",
            "label": self.label,
            "encoding": self.encoding,
            "depth": self.tree.depth,
            "nodes": len(self.tree.nodes),
            "leaves": len(self.tree.leaves),
            "dimensions": len(self.tree.internal_nodes),
            **self.split_grid.describe(),
        }

    def transform(self, features: DataFrame) -> DataFrame:
        """Add ``leaf``, the tree's prediction and the leaf's ``embedding`` vector."""
        spark = features.sparkSession
        schema = T.StructType(
            [T.StructField(LEAF, T.IntegerType(), False), T.StructField(EMBEDDING, VectorUDT(), False)]
        )
        lookup = literal_frame(spark, self.leaf_vectors().items(), schema)
        scored = self.model.transform(features).drop(TREE_FEATURES, *snapped_columns(self.split_grid))
        return scored.withColumn(LEAF, F.col(LEAF).cast(T.IntegerType())).join(
            F.broadcast(lookup), on=LEAF, how="inner"
        )


def fit_embedding(
    features: DataFrame, *, config: EmbeddingConfig, seed: int, customers: int
) -> LeafEmbedding:
    model = fit_revenue_tree(features, config=config, seed=seed, customers=customers)
    return LeafEmbedding(
        model=model, tree=read_tree(model.stages[-1]._java_obj), encoding=config.encoding, label=config.label,
        split_grid=configured_grid(config),
    )
