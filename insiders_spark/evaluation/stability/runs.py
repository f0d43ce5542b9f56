"""The stability runs: the reference, the seed runs and the bootstrap refits, each reduced to the
bounded tables every k needs.

* **reference**: the job's own tree, on every customer;
* **seed runs** (``seed + 1 ... seed + S``): the luck of the algorithm. Up to
  max(maxBins², 10,000) customers MLlib finds the splits from every row, so the tree does not
  depend on the seed: a seed run is the reference tree with KMeans rerun from its seed, exactly
  what a refit would give. Above that size each seed run fits its own tree, as the job would;
* **bootstrap runs**: the luck of the sample. ``bootstraps`` refits of the tree on Poisson(1)
  resamples of the customers, fitted together as one random forest (``model.forest``).

A customer's cluster is a function of its leaf, so each run is reduced to two tables:

* the leaf table of the customers it learned from: KMeans' weighted points and the profiles that
  rank its clusters, for any k. A forest tree knows its resample's customers per leaf (MLlib keeps
  the count in every node), not their features: its leaves are weighted by those counts, and each
  leaf's feature means are those of every customer the tree places there;
* every customer per (reference leaf, run's leaf): at most leaves² rows.

One aggregation gives both for the reference and every bootstrap tree (the forest's leaves as an
array, exploded); nothing the size of the customer table reaches the driver.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pyspark.ml.linalg import Vector
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.config import Config
from insiders_spark.core.names import CUSTOMER_ID, LEAF
from insiders_spark.model.clustering import EmbeddingPoints
from insiders_spark.model.embedding import LeafEmbedding, fit_embedding, leaf_path_vectors, sampled_rows_above
from insiders_spark.model.forest import BOOTSTRAP_LEAVES, BootstrapForest, fit_bootstrap_forest
from insiders_spark.model.leaves import CUSTOMERS, leaf_aggregates, leaf_points, leaf_sums, profiled_features
from insiders_spark.model.tree import Tree

log = logging.getLogger(__name__)

REFERENCE_LEAF = "reference_leaf"
TREE = "tree"
REFERENCE, SEED, BOOTSTRAP = "reference", "seed", "bootstrap"


@dataclass(frozen=True)
class LeafRun:
    """One tree (the reference, a seed run's or a bootstrap tree), reduced to the tables every k needs."""

    kind: str  # reference | seed | bootstrap
    seed: int  # KMeans' seed (and a fitted tree's)
    tree: Tree
    training_customers: float  # rows the tree learned from (a resample: its Poisson-weighted size)
    leaf_sums: Mapping[int, Mapping[str, float | None]]  # training leaf -> customers and feature sums
    overlap: Mapping[tuple[int, int], int]  # (reference leaf, this run's leaf) -> every customer
    seconds: float
    tree_index: int | None = None  # bootstrap: the forest's tree
    embedding: LeafEmbedding | None = None  # a tree fitted on its own (the reference; seed runs)

    def describe(self) -> str:
        which = f", tree {self.tree_index}" if self.tree_index is not None else ""
        return f"{self.kind} run (seed {self.seed}{which})"

    def vectors(self) -> dict[int, Vector]:
        return leaf_path_vectors(self.tree)

    def points(self) -> EmbeddingPoints:
        """KMeans' input, as the job's fit builds it from its training customers' leaf table."""
        return leaf_points(self.leaf_sums, self.vectors())

    def customers_per_leaf(self) -> dict[int, int]:
        """Every customer (not only the training ones) per leaf of this run's tree."""
        counts: dict[int, int] = defaultdict(int)
        for (_, leaf), count in self.overlap.items():
            counts[leaf] += count
        return dict(counts)

    def leaf_values(self) -> dict[int, float]:
        """Each leaf's predicted value (what the programme's cut ranks leaves by)."""
        return {leaf.leaf_index: leaf.prediction for leaf in self.tree.leaves}


@dataclass(frozen=True)
class LeafRuns:
    """The reference and the perturbed runs, fitted once."""

    reference: LeafRun
    perturbed: tuple[LeafRun, ...]
    forest: BootstrapForest | None
    seconds: float

    def with_leaves(self, features: DataFrame) -> DataFrame:
        """Every customer of ``features`` with its leaf in the reference tree, in each bootstrap
        tree and, for seed runs that fitted their own tree, ``seed_leaf_<i>``: for the measures the
        leaf tables cannot give (a programme cut inside a leaf)."""
        frame = with_reference_leaf(features, self.reference.embedding)
        for i, run in enumerate(self.perturbed):
            if run.kind == SEED and run.embedding is not self.reference.embedding:
                leaf = F.col(LEAF).cast(T.IntegerType()).alias(seed_leaf(i))
                frame = run.embedding.model.transform(frame).select(*frame.columns, leaf)
        return self.forest.transform(frame) if self.forest is not None else frame

    def leaf_sql(self, index: int | None) -> str:
        """In :meth:`with_leaves`, the leaf of perturbed run ``index`` (None: the reference), as SQL."""
        run = self.reference if index is None else self.perturbed[index]
        if run.kind == BOOTSTRAP:
            return f"`{BOOTSTRAP_LEAVES}`[{run.tree_index}]"
        if run.embedding is self.reference.embedding:
            return f"`{REFERENCE_LEAF}`"
        return f"`{seed_leaf(index)}`"


def seed_leaf(index: int) -> str:
    return f"seed_leaf_{index}"


def with_reference_leaf(features: DataFrame, reference: LeafEmbedding) -> DataFrame:
    """The id and profiled features of every customer, and its leaf in the reference tree."""
    return reference.model.transform(features).select(
        CUSTOMER_ID, *profiled_features(features.columns), F.col(LEAF).cast(T.IntegerType()).alias(REFERENCE_LEAF)
    )


def _overlap(rows: list) -> dict[tuple[int, int], int]:
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for row in rows:
        pairs[(int(row[REFERENCE_LEAF]), int(row[LEAF]))] += int(row[CUSTOMERS])
    return dict(pairs)


def _fitted_seed_run(referenced: DataFrame, *, config: Config, seed: int, customers: int) -> LeafRun:
    """A seed run past MLlib's sampling size: its own tree, and every customer in it."""
    started = time.perf_counter()
    embedding = fit_embedding(referenced, config=config.embedding, seed=seed, customers=customers)
    rows = (
        embedding.model.transform(referenced)
        .groupBy(REFERENCE_LEAF, F.col(LEAF).cast(T.IntegerType()).alias(LEAF))
        .agg(*leaf_aggregates(referenced.columns))
        .collect()
    )
    return LeafRun(
        kind=SEED,
        seed=seed,
        tree=embedding.tree,
        training_customers=customers,
        leaf_sums=leaf_sums(rows),
        overlap=_overlap(rows),
        seconds=round(time.perf_counter() - started, 3),
        embedding=embedding,
    )


def _bootstrap_run(forest: BootstrapForest, index: int, rows: list, *, seed: int, seconds: float) -> LeafRun:
    """Bootstrap tree ``index``: its leaves weighted by its resample's customers, each leaf's
    feature means those of every customer it holds."""
    everyone = leaf_sums(rows)
    counts = forest.resample_counts(index)
    training = {
        leaf: {
            name: (None if value is None else value * counts[leaf] / sums[CUSTOMERS])
            if name != CUSTOMERS
            else counts[leaf]
            for name, value in sums.items()
        }
        for leaf, sums in everyone.items()
    }
    return LeafRun(
        kind=BOOTSTRAP,
        seed=seed,
        tree=forest.trees[index],
        training_customers=sum(counts.values()),
        leaf_sums=training,
        overlap=_overlap(rows),
        seconds=seconds,
        tree_index=index,
    )


def fit_leaf_runs(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    seed: int,
    seeds: int,
    bootstraps: int,
    reference: LeafEmbedding | None = None,
    scratch: str | None = None,
) -> LeafRuns:
    """Fit the reference (or reuse the job's fitted ``reference`` embedding) and the perturbed runs.

    Seed run i (1..seeds) uses ``seed + i``; the bootstrap trees are one forest seeded with
    ``seed``. ``customers`` is the row count of ``features``.
    """
    started = time.perf_counter()
    embedding = reference or fit_embedding(features, config=config.embedding, seed=seed, customers=customers)
    referenced = with_reference_leaf(features, embedding)
    forest = None
    if bootstraps:
        forest = fit_bootstrap_forest(
            referenced, config=config.embedding, trees=bootstraps, seed=seed, customers=customers, scratch=scratch
        )
        log.info("stability: %d bootstrap trees fitted in %.1f s", bootstraps, time.perf_counter() - started)
        exploded = forest.transform(referenced).select(
            REFERENCE_LEAF, *profiled_features(referenced.columns), F.posexplode(BOOTSTRAP_LEAVES).alias(TREE, LEAF)
        )
        rows = exploded.groupBy(TREE, REFERENCE_LEAF, LEAF).agg(*leaf_aggregates(referenced.columns)).collect()
        by_tree: dict[int, list] = defaultdict(list)
        for row in rows:
            by_tree[int(row[TREE])].append(row)
        reference_rows = by_tree[0]  # summed over tree 0's leaves: the reference's leaf table
    else:
        reference_rows = referenced.groupBy(REFERENCE_LEAF).agg(*leaf_aggregates(referenced.columns)).collect()
    ref = _reference_run(embedding, reference_rows, seed=seed, customers=customers, started=started)
    seconds = round(time.perf_counter() - started, 3)
    perturbed = []
    for i in range(1, seeds + 1):
        if customers <= sampled_rows_above(config.embedding.max_bins):
            perturbed.append(replace(ref, kind=SEED, seed=seed + i, seconds=0.0))  # the same tree (module docstring)
        else:
            perturbed.append(_fitted_seed_run(referenced, config=config, seed=seed + i, customers=customers))
    if forest is not None:
        perturbed += [
            _bootstrap_run(forest, t, by_tree[t], seed=seed, seconds=round(seconds / bootstraps, 3))
            for t in range(bootstraps)
        ]
    runs = LeafRuns(
        reference=ref, perturbed=tuple(perturbed), forest=forest, seconds=round(time.perf_counter() - started, 3)
    )
    log.info("stability: reference, %d seed runs and %d bootstrap trees in %.1f s", seeds, bootstraps, runs.seconds)
    return runs


def _reference_run(embedding: LeafEmbedding, rows: list, *, seed: int, customers: int, started: float) -> LeafRun:
    """The reference's leaf table, from rows keyed by the reference leaf (possibly split by another tree's leaf)."""
    sums = leaf_sums(Row(**{**row.asDict(), LEAF: row[REFERENCE_LEAF]}) for row in rows)
    return LeafRun(
        kind=REFERENCE,
        seed=seed,
        tree=embedding.tree,
        training_customers=customers,
        leaf_sums=sums,
        overlap={(leaf, leaf): int(s[CUSTOMERS]) for leaf, s in sums.items()},
        seconds=round(time.perf_counter() - started, 3),
        embedding=embedding,
    )
