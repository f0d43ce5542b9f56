"""From customer features to segments: the revenue tree, KMeans on leaf positions, profiles.

``fit_segmentation`` is the estimator (features -> ``SegmentationModel``); the model's
``transform`` assigns any customer table to the fitted clusters. The pipeline, the stability study
and the backtest all go through these two calls.

The fitted model is also one MLlib ``PipelineModel`` (``SegmentationModel.pipeline``): assembler ->
revenue tree -> path encoding -> ``KMeansModel`` with the solver's centres, whose prediction
(``kmeans_cluster``) is the index the profiles carry. It is what a model version saves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.ml import PipelineModel
from pyspark.ml.clustering import KMeansModel
from pyspark.sql import DataFrame

from insiders_spark.core.config import Config
from insiders_spark.core.schemas import ASSIGNMENT_SCHEMA
from insiders_spark.model.clustering import KMEANS_CLUSTER, FittedKMeans, fit_kmeans_to_points
from insiders_spark.model.embedding import LeafEmbedding, fit_embedding
from insiders_spark.model.kmeans_model import matched_to_model, to_kmeans_model
from insiders_spark.model.leaves import LeafSums, cluster_summaries, leaf_points, summarise_leaves
from insiders_spark.model.profiles import ClusterProfile, build_profiles, with_clusters
from insiders_spark.model.silhouette import leaf_silhouette
from insiders_spark.spark.frames import conform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationModel:
    embedding: LeafEmbedding
    kmeans: FittedKMeans
    profiles: list[ClusterProfile]
    kmeans_model: KMeansModel  # MLlib's, with ``kmeans``' centres and numbering
    # the training customers' leaf table (``leaves``): what the fit's silhouette and rules are
    # measured on; not part of the saved model (a loaded one has None)
    leaf_sums: LeafSums | None = field(default=None, compare=False, repr=False)

    @property
    def k(self) -> int:
        return len(self.profiles)

    @property
    def pipeline(self) -> PipelineModel:
        """The whole model as MLlib stages: features -> ``leaf``, ``embedding``, ``kmeans_cluster``."""
        return PipelineModel(stages=[*self.embedding.model.stages, self.kmeans_model])

    def embed(self, features: DataFrame) -> DataFrame:
        """Features + leaf + embedding vector + KMeans' own cluster index."""
        return self.kmeans_model.transform(self.embedding.transform(features))

    def transform(self, features: DataFrame) -> DataFrame:
        """The segments contract: features, leaf, cluster (1 = Insiders), segment, is_insider."""
        return to_segments(self.embed(features), self.profiles)

    def describe(self) -> dict:
        return {"embedding": self.embedding.describe(), "kmeans": self.kmeans.describe()}


def to_segments(embedded: DataFrame, profiles: list[ClusterProfile]) -> DataFrame:
    return conform(with_clusters(embedded, profiles, cluster_col=KMEANS_CLUSTER), ASSIGNMENT_SCHEMA)


def fit_segmentation(
    features: DataFrame,
    *,
    config: Config,
    customers: int,
    k: int,
    seed: int,
    embedding: LeafEmbedding | None = None,
) -> tuple[SegmentationModel, DataFrame]:
    """Fit tree and KMeans on ``features``; also return the embedded training customers (cached).

    ``embedding``: a tree already fitted on these features with this seed (e.g. to try another k);
    it is what ``fit_embedding`` would return again, as the tree's fit is deterministic.
    """
    embedding = embedding or fit_embedding(features, config=config.embedding, seed=seed, customers=customers)
    embedded = embedding.transform(features).cache()
    try:
        sums = summarise_leaves(embedded)
        vectors = embedding.leaf_vectors()
        kmeans = fit_kmeans_to_points(leaf_points(sums, vectors), k=k, seed=seed)
        kmeans_model, kmeans = to_kmeans_model(features.sparkSession, kmeans, seed=seed)
        kmeans = matched_to_model(features.sparkSession, kmeans, kmeans_model, vectors)
        clustered = kmeans_model.transform(embedded).cache()
    finally:
        embedded.unpersist()
    profiles = build_profiles(
        cluster_summaries(sums, kmeans.leaf_clusters), insiders_name=config.segments.insiders_name
    )
    model = SegmentationModel(
        embedding=embedding, kmeans=kmeans, profiles=profiles, kmeans_model=kmeans_model, leaf_sums=sums
    )
    return model, clustered


def silhouette_of(model: SegmentationModel, *, occupied_clusters: int | None = None) -> float:
    """The silhouette over the customers of ``model.leaf_sums`` (its training customers', or a
    score run's from ``summarise_leaves``) clustered by ``model``: exact, from at most
    2^max_depth leaf points (``quality.leaf_silhouette``, equal to MLlib's ``ClusteringEvaluator``
    over every customer; the tests check it).

    With one occupied cluster (a score run whose few customers all land in one of the model's
    clusters) the silhouette is undefined (MLlib refuses it): it is then recorded as 0, which the
    quality verdict reports as a miss, with a warning, instead of failing the run.
    """
    if occupied_clusters is not None and occupied_clusters < 2:
        log.warning("only %d cluster holds customers: the silhouette is undefined, recorded as 0", occupied_clusters)
        return 0.0
    return leaf_silhouette(leaf_points(model.leaf_sums, model.embedding.leaf_vectors()), model.kmeans.leaf_clusters)
