"""The segmentation's research variants that left the job, rebuilt here from its public API.

The job fits one revenue tree on ``log1p(gross_revenue)``, encodes each leaf by its root-to-leaf
path with every split weighted 1, and clusters the leaf points with its local solver (``N_INIT``
starts). The studies compare it with what it was chosen over; a :class:`Variant` holds one choice
of each, the job's by default:

* **label** ``gross_revenue``: the tree learns the raw revenue (the job's ``tree_regressor`` behind
  a ``VectorAssembler``, read back with ``read_tree``, as the job fits its own);
* **encoding** ``path_depth`` (a split weighs ``2^(-depth/2)``) or ``path_gain`` (the square root
  of the share of the label's variance the split explains: MLlib's gain × the instances at the
  node, normalised), from the nodes of the fitted ``Tree``;
* **split grid**: every tree input snapped down to a fixed grid in the feature table, before any
  tree sees it (``studies.split_grids``: ``"1-2-5"``, ``"decades"``, ``"r5"``, ``"r10"``,
  ``"decades/qty_items=2"``, ...);
* **born-again tree**: the tree learns a bagged forest's prediction of the label (:class:`BornAgain`);
* **solver** ``mllib``: MLlib's KMeans (k-means||, ``weightCol``) on the same weighted leaf points,
  one fit per seed from ``seed`` to ``seed + starts - 1``, the cheapest kept; or the local solver
  with other ``starts``.

Whatever a variant leaves as the job's runs through the job's own code (``fit_embedding``,
``fit_kmeans_to_points``); ``studies.variant_runs`` does the same for the stability runs and the
k grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pyspark.ml import Pipeline
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.linalg import SparseVector, Vectors, VectorUDT
from pyspark.ml.regression import RandomForestRegressor
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import EmbeddingConfig
from insiders_spark.core.errors import ClusteringError
from insiders_spark.core.names import LABEL_COLUMN, LEAF, MODEL_INPUT_COLUMNS
from insiders_spark.model import EmbeddingPoints, FittedKMeans, LeafEmbedding, fit_embedding, fit_kmeans_to_points
from insiders_spark.model.clustering import N_INIT, nearest_center, weighted_cost
from insiders_spark.model.embedding import (
    PREDICTED_LABEL,
    TREE_FEATURES,
    TREE_LABEL,
    in_sampling_order,
    min_instances_per_leaf,
    tree_label,
    tree_regressor,
)
from insiders_spark.model.tree import Tree, read_tree
from insiders_spark.spark import literal_frame
from studies.split_grids import NO_GRID, input_grids, with_split_grid

LOG1P, RAW = "log1p", "gross_revenue"  # what the tree learns
PATH, PATH_DEPTH, PATH_GAIN = "path", "path_depth", "path_gain"  # how a leaf becomes a point
LOCAL, MLLIB = "local", "mllib"  # the KMeans solver

# --- leaf encodings -------------------------------------------------------------------------------


def node_weights(tree: Tree, encoding: str) -> dict[int, float]:
    """The weight of each internal node's dimension under ``encoding``."""
    internal = tree.internal_nodes
    if encoding == PATH:
        return {n.node_id: 1.0 for n in internal}
    if encoding == PATH_DEPTH:
        return {n.node_id: 2.0 ** (-n.depth / 2) for n in internal}
    explained = {n.node_id: max(n.gain or 0.0, 0.0) * n.count for n in internal}
    total = sum(explained.values()) or 1.0
    return {node_id: math.sqrt(value / total) for node_id, value in explained.items()}


def leaf_vectors(tree: Tree, encoding: str) -> dict[int, SparseVector]:
    """Leaf index -> its root-to-leaf path vector, each step ±(its node's weight)."""
    weights = node_weights(tree, encoding)
    dimension = {n.node_id: i for i, n in enumerate(tree.internal_nodes)}
    vectors = {}
    for leaf_index, steps in tree.paths().items():
        entries = {dimension[s.node_id]: (1.0 if s.went_right else -1.0) * weights[s.node_id] for s in steps}
        vectors[leaf_index] = Vectors.sparse(len(dimension), entries)
    return vectors


# --- trees ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BornAgain:
    """The bagged forest whose prediction a born-again tree learns instead of the label."""

    trees: int = 50
    max_depth: int = 8
    feature_subset: str = "all"  # every feature at every split
    min_leaf_share: float = 0.002

    def describe(self) -> dict:
        return {
            "trees": self.trees,
            "max_depth": self.max_depth,
            "feature_subset": self.feature_subset,
            "min_leaf_share": self.min_leaf_share,
        }


FOREST_INPUTS = "forest_inputs"
FOREST_PREDICTION = "forest_prediction"  # the born-again tree's label


def with_forest_prediction(
    labelled: DataFrame, forest: BornAgain, *, config: EmbeddingConfig, seed: int, customers: int
) -> DataFrame:
    """``labelled`` (holding ``TREE_LABEL``) with a bagged forest's prediction of the label."""
    fitted = Pipeline(
        stages=[
            VectorAssembler(inputCols=list(MODEL_INPUT_COLUMNS), outputCol=FOREST_INPUTS),
            RandomForestRegressor(
                featuresCol=FOREST_INPUTS,
                labelCol=TREE_LABEL,
                predictionCol=FOREST_PREDICTION,
                numTrees=forest.trees,
                maxDepth=forest.max_depth,
                featureSubsetStrategy=forest.feature_subset,
                maxBins=config.max_bins,
                minInstancesPerNode=min_instances_per_leaf(customers, forest.min_leaf_share),
                seed=seed,
            ),
        ]
    ).fit(labelled)
    return fitted.transform(labelled).drop(FOREST_INPUTS)


@dataclass(frozen=True)
class VariantEmbedding(LeafEmbedding):
    """A revenue tree fitted as a variant says, its leaves encoded as it says."""

    label: str = LOG1P
    encoding: str = PATH
    born_again: BornAgain | None = None

    def leaf_vectors(self) -> dict[int, SparseVector]:
        return leaf_vectors(self.tree, self.encoding)

    def describe(self) -> dict:
        described = {**super().describe(), "label": self.label, "encoding": self.encoding}
        return {**described, "born_again": self.born_again.describe()} if self.born_again else described


# --- KMeans ---------------------------------------------------------------------------------------

POINT = "point"
POINT_WEIGHT = "point_customers"
MLLIB_MAX_ITER, MLLIB_TOL, MLLIB_INIT_STEPS = 100, 1e-6, 2  # as the job's MLlib solver had them


def fit_mllib_kmeans(spark: SparkSession, points: EmbeddingPoints, *, k: int, seed: int, runs: int) -> FittedKMeans:
    """MLlib's KMeans (k-means||, ``weightCol``) on the weighted leaf points, one fit per seed from
    ``seed`` to ``seed + runs - 1``; the lowest within-cluster cost over customers wins."""
    if len(points.leaves) < k:
        raise ClusteringError(
            f"the embedding has only {len(points.leaves)} distinct points (occupied tree leaves) for k={k} clusters"
        )
    schema = T.StructType(
        [T.StructField(POINT, VectorUDT(), False), T.StructField(POINT_WEIGHT, T.DoubleType(), False)]
    )
    rows = [(Vectors.dense(v), float(w)) for v, w in zip(points.vectors, points.customers, strict=True)]
    table = literal_frame(spark, rows, schema).cache()
    try:
        centers = {}
        for run_seed in range(seed, seed + runs):
            model = KMeans(
                featuresCol=POINT,
                weightCol=POINT_WEIGHT,
                k=k,
                seed=run_seed,
                maxIter=MLLIB_MAX_ITER,
                tol=MLLIB_TOL,
                initSteps=MLLIB_INIT_STEPS,
            ).fit(table)
            centers[run_seed] = np.array(model.clusterCenters())
    finally:
        table.unpersist()
    best = min(centers, key=lambda s: (weighted_cost(points, centers[s]), s))
    labels = nearest_center(points.vectors, centers[best])
    if len(set(labels.tolist())) < k:
        raise ClusteringError(f"KMeans left {k - len(set(labels.tolist()))} of {k} clusters empty; lower --k")
    return FittedKMeans(
        centers=centers[best],
        leaf_clusters={leaf: int(label) for leaf, label in zip(points.leaves, labels, strict=True)},
        cost=weighted_cost(points, centers[best]),
        solver=MLLIB,
        runs=runs,
        points=len(points.leaves),
    )


# --- the variant ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """What a study changes in the job's segmentation; every default is the job's."""

    label: str = LOG1P  # or RAW
    encoding: str = PATH  # or PATH_DEPTH, PATH_GAIN
    split_grid: str = NO_GRID  # a grid of every tree input, optionally "/input=grid" for some
    born_again: BornAgain | None = None
    solver: str = LOCAL  # or MLLIB
    starts: int = N_INIT  # local: k-means++ starts; mllib: seeds

    def __post_init__(self) -> None:
        choices: Mapping[str, tuple[str, ...]] = {
            "label": (LOG1P, RAW),
            "encoding": (PATH, PATH_DEPTH, PATH_GAIN),
            "solver": (LOCAL, MLLIB),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        input_grids(self.split_grid)
        if self.starts < 1:
            raise ValueError(f"starts = {self.starts}: at least one is needed")

    @property
    def job_tree(self) -> bool:
        """The tree is the job's (``fit_embedding``); the encoding may still differ."""
        return self.label == LOG1P and self.born_again is None

    @property
    def job_clustering(self) -> bool:
        return self.solver == LOCAL and self.starts == N_INIT

    def describe(self) -> str:
        forest = "none" if self.born_again is None else f"{self.born_again.trees} trees"
        return (
            f"label {self.label}, encoding {self.encoding}, split_grid {self.split_grid}, born-again forest "
            f"{forest}, {self.solver} solver ({self.starts} starts)"
        )

    def inputs(self, features: DataFrame) -> DataFrame:
        """The feature table the variant's trees learn from: its split grid applied."""
        return with_split_grid(features, self.split_grid)

    def fit_embedding(
        self, features: DataFrame, *, config: EmbeddingConfig, seed: int, customers: int
    ) -> LeafEmbedding:
        """The variant's tree on ``features`` (already through :meth:`inputs`) and its leaf vectors."""
        if self.job_tree:
            fitted = fit_embedding(features, config=config, seed=seed, customers=customers)
            return fitted if self.encoding == PATH else self.encoded(fitted)
        labelled = in_sampling_order(features, max_bins=config.max_bins, customers=customers).withColumn(
            TREE_LABEL, variant_label(F.col(LABEL_COLUMN), self.label)
        )
        label_col = TREE_LABEL
        if self.born_again is not None:
            labelled = with_forest_prediction(labelled, self.born_again, config=config, seed=seed, customers=customers)
            label_col = FOREST_PREDICTION
        regressor = tree_regressor(
            config,
            seed=seed,
            customers=customers,
            features_col=TREE_FEATURES,
            label_col=label_col,
            prediction_col=PREDICTED_LABEL,
        ).setLeafCol(LEAF)
        assembler = VectorAssembler(inputCols=list(MODEL_INPUT_COLUMNS), outputCol=TREE_FEATURES)
        model = Pipeline(stages=[assembler, regressor]).fit(labelled)
        return VariantEmbedding(
            model=model,
            tree=read_tree(model.stages[-1]),
            label=self.label,
            encoding=self.encoding,
            born_again=self.born_again,
        )

    def encoded(self, embedding: LeafEmbedding) -> LeafEmbedding:
        """The same tree with its leaves encoded as the variant says."""
        return VariantEmbedding(model=embedding.model, tree=embedding.tree, encoding=self.encoding)

    def fit_kmeans(self, points: EmbeddingPoints, *, k: int, seed: int, spark: SparkSession) -> FittedKMeans:
        if self.solver == MLLIB:
            return fit_mllib_kmeans(spark, points, k=k, seed=seed, runs=self.starts)
        return fit_kmeans_to_points(points, k=k, seed=seed, starts=self.starts)


def variant_label(gross_revenue: Column, label: str) -> Column:
    """What a variant's tree learns: the job's ``log1p(gross_revenue)`` or the raw revenue."""
    return tree_label(gross_revenue) if label == LOG1P else gross_revenue.cast(T.DoubleType())
