"""Bootstrap refits of the revenue tree in one distributed pass: MLlib's random forest as a bag.

A ``RandomForestRegressor`` with ``bootstrap=True``, ``subsamplingRate=1.0`` and
``featureSubsetStrategy="all"`` grows each of its trees as ``DecisionTreeRegressor`` grows the
job's tree (the same label, depth, split candidates and smallest leaf), each on its own Poisson(1)
resample of the customers, and grows all of them level by level in the same passes over the data.
Twenty bootstrap trees cost about one tree fit instead of twenty.

How a forest tree differs from a tree fitted on an exploded resample:

* **split candidates**: the forest takes them once, from every customer (up to
  max(maxBins², 10,000) rows MLlib uses every row); a tree fitted on a resample takes them from it.
  Each bootstrap tree chooses its splits on its resample among the full table's candidates;
* **the resamples**: MLlib draws each row's Poisson counts per partition, seeded by the forest's
  seed and the partition's index, in row order, and does not expose them. The forest's input is put
  in a fixed order first (:func:`in_bagging_order`), so the same customers and seed give the same
  trees however the table was computed;
* **what each tree knows of its resample**: every node keeps the (Poisson-weighted) count of the
  resample's rows that reached it, so ``Tree`` leaves carry the resample's customers per leaf: the
  weights KMeans gives a tree's leaves.

Each tree is read into a :class:`~insiders_spark.model.tree.Tree` (MLlib numbers the leaves it
reports through ``leafCol`` in the same preorder for every tree of a forest); ``transform`` gives
every customer's leaf in each tree as one array column.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import SparseVector
from pyspark.ml.regression import RandomForestRegressionModel, RandomForestRegressor
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import EmbeddingConfig
from insiders_spark.core.names import CUSTOMER_ID, INSIDER_CONFIDENCE, LABEL_COLUMN
from insiders_spark.model.embedding import (
    TREE_FEATURES,
    TREE_LABEL,
    leaf_path_vectors,
    min_instances_per_leaf,
    tree_inputs,
    tree_label,
)
from insiders_spark.model.programme import InsiderRule
from insiders_spark.model.tree import Tree, read_saved_forest
from insiders_spark.storage.filesystem import delete_path

BOOTSTRAP_LEAVES = "bootstrap_leaves"  # array<int>: the customer's leaf in each bootstrap tree
_LEAF_VECTOR = "_bootstrap_leaf_vector"
_SAVED_FOREST = "bootstrap_forest"
ROWS_PER_PARTITION = 100_000  # the forest's input partitions: a function of the customers only


def in_bagging_order(features: DataFrame, *, customers: int) -> DataFrame:
    """The customers hash-partitioned by id into a number of partitions that depends on their
    count only, each sorted by id: MLlib's per-partition Poisson draws then fall on the same rows
    whatever the profile, the shuffle or the read that produced ``features``."""
    partitions = max(1, math.ceil(customers / ROWS_PER_PARTITION))
    return features.repartition(partitions, CUSTOMER_ID).sortWithinPartitions(CUSTOMER_ID)


@dataclass(frozen=True)
class BootstrapForest:
    """The bootstrap trees, fitted together; tree ``t`` is the ``t``-th bootstrap refit."""

    model: PipelineModel  # the assembler and the forest (leafCol set, no prediction column)
    trees: tuple[Tree, ...]
    seed: int

    @property
    def size(self) -> int:
        return len(self.trees)

    def leaf_vectors(self, index: int) -> dict[int, SparseVector]:
        """Tree ``index``'s leaf -> its root-to-leaf path vector, as the job embeds its own tree."""
        return leaf_path_vectors(self.trees[index])

    def resample_counts(self, index: int) -> dict[int, float]:
        """Tree ``index``'s leaf -> the rows of its resample that reached it (Poisson-weighted)."""
        return {leaf.leaf_index: leaf.count for leaf in self.trees[index].leaves}

    def leaf_values(self, index: int) -> dict[int, float]:
        """Tree ``index``'s leaf -> its prediction (log1p of revenue, the resample's mean)."""
        return {leaf.leaf_index: leaf.prediction for leaf in self.trees[index].leaves}

    def transform(self, frame: DataFrame) -> DataFrame:
        """``frame`` with ``bootstrap_leaves``: the customer's leaf in every tree (narrow: no shuffle)."""
        scored = self.model.transform(frame)
        leaves = vector_to_array(F.col(_LEAF_VECTOR)).cast(T.ArrayType(T.IntegerType(), False))
        return scored.select(*[F.col(name) for name in frame.columns], leaves.alias(BOOTSTRAP_LEAVES))

    def describe(self) -> dict:
        return {
            "model": "random_forest",
            "trees": self.size,
            "bootstrap": "Poisson(1) per row and tree (MLlib's, seeded)",
            "seed": self.seed,
            "leaves": [len(tree.leaves) for tree in self.trees],
        }


def fit_bootstrap_forest(
    features: DataFrame,
    *,
    config: EmbeddingConfig,
    trees: int,
    seed: int,
    customers: int,
    scratch: str | None = None,
) -> BootstrapForest:
    """``trees`` bootstrap refits of the revenue tree (``embedding.fit_revenue_tree``'s settings) in
    one forest. ``customers`` (the rows of ``features``) sets the smallest leaf, as for the job's tree.

    The trees are read back from the forest saved under ``scratch`` (a folder every executor and
    the driver see, removed afterwards; by default a local temporary folder, right for local
    mode): only the saved nodes carry each leaf's count of the resample, which KMeans weighs."""
    if trees < 1:
        raise ValueError(f"trees = {trees}: at least one bootstrap tree is needed")
    assembler = VectorAssembler(inputCols=list(tree_inputs(features.columns)), outputCol=TREE_FEATURES)
    forest = RandomForestRegressor(
        featuresCol=TREE_FEATURES,
        labelCol=TREE_LABEL,
        leafCol=_LEAF_VECTOR,
        numTrees=trees,
        bootstrap=True,
        subsamplingRate=1.0,
        featureSubsetStrategy="all",
        maxDepth=config.max_depth,
        maxBins=config.max_bins,
        minInstancesPerNode=min_instances_per_leaf(customers, config.min_leaf_share),
        minInfoGain=config.min_info_gain,
        seed=seed,
    )
    labelled = in_bagging_order(features, customers=customers).withColumn(TREE_LABEL, tree_label(F.col(LABEL_COLUMN)))
    model = Pipeline(stages=[assembler, forest]).fit(labelled)
    fitted: RandomForestRegressionModel = model.stages[-1]
    fitted.setPredictionCol("")  # transform gives the leaves only
    parsed = _saved_trees(fitted, scratch)
    if len(parsed) != trees:
        raise ValueError(f"the saved forest holds {len(parsed)} trees, not {trees}")
    return BootstrapForest(model=model, trees=parsed, seed=seed)


def _saved_trees(fitted: RandomForestRegressionModel, scratch: str | None) -> tuple[Tree, ...]:
    folder = scratch or tempfile.mkdtemp(prefix="insiders-forest-")
    path = f"{folder.rstrip('/')}/{_SAVED_FOREST}"
    spark = SparkSession.active()
    try:
        fitted.write().overwrite().save(path)
        return read_saved_forest(spark, path)
    finally:
        if scratch is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            delete_path(spark, path)


@dataclass(frozen=True)
class InsiderVotes:
    """Each bootstrap tree's Insiders (``rules[t]``, on tree ``t``'s leaves), to count per customer
    how many of the refits place the customer among their Insiders."""

    forest: BootstrapForest
    rules: tuple[InsiderRule, ...]

    def confidence_sql(self) -> str:
        """The share of the trees whose Insiders hold the customer, from its ``bootstrap_leaves``, as
        one SQL expression over the trees: no shuffle, no join, one call to the JVM."""
        votes = " + ".join(
            f"CAST({rule.sql(f'`{BOOTSTRAP_LEAVES}`[{t}]')} AS INT)" for t, rule in enumerate(self.rules)
        )
        return f"CAST(({votes}) / {float(len(self.rules))!r}D AS DOUBLE)"

    def with_confidence(self, frame: DataFrame) -> DataFrame:
        """``frame`` (customers with the tree's input features) with ``insider_confidence``."""
        scored = self.forest.transform(frame)
        return scored.withColumn(INSIDER_CONFIDENCE, F.expr(self.confidence_sql())).drop(BOOTSTRAP_LEAVES)


def with_no_confidence(frame: DataFrame) -> DataFrame:
    """``insider_confidence`` as null: no bootstrap refits were made (``--no-stability``, score runs)."""
    return frame.withColumn(INSIDER_CONFIDENCE, F.lit(None).cast(T.DoubleType()))
