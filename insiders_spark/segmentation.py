"""From customer features to segments: the revenue tree, KMeans on leaf positions, profiles.

``fit_segmentation`` is the estimator (features -> ``SegmentationModel``); the model's
``transform`` assigns any customer table to the fitted clusters. The pipeline, the stability study
and the backtest all go through these two calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame

from insiders_spark.clustering import (
    KMEANS_CLUSTER,
    FittedKMeans,
    fit_kmeans,
    silhouette,
    with_kmeans_clusters,
)
from insiders_spark.config import Config
from insiders_spark.embedding import EMBEDDING, LeafEmbedding, fit_embedding
from insiders_spark.profiles import ClusterProfile, build_profiles, summarise_clusters, with_clusters
from insiders_spark.schemas import ASSIGNMENT_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentationModel:
    embedding: LeafEmbedding
    kmeans: FittedKMeans
    profiles: list[ClusterProfile]

    @property
    def k(self) -> int:
        return len(self.profiles)

    def embed(self, features: DataFrame) -> DataFrame:
        """Features + leaf + embedding vector + KMeans' own cluster index."""
        return with_kmeans_clusters(self.embedding.transform(features), self.kmeans)

    def transform(self, features: DataFrame) -> DataFrame:
        """The segments contract: features, leaf, cluster (1 = Insiders), segment, is_insider."""
        return to_segments(self.embed(features), self.profiles)

    def describe(self) -> dict:
        return {"embedding": self.embedding.describe(), "kmeans": self.kmeans.describe()}


def to_segments(embedded: DataFrame, profiles: list[ClusterProfile]) -> DataFrame:
    return with_clusters(embedded, profiles, cluster_col=KMEANS_CLUSTER).select(
        *[field.name for field in ASSIGNMENT_SCHEMA.fields]
    )


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
        kmeans = fit_kmeans(embedded, config=config.clustering, k=k, seed=seed)
        clustered = with_kmeans_clusters(embedded, kmeans).cache()
    finally:
        embedded.unpersist()
    profiles = build_profiles(
        summarise_clusters(clustered, cluster_col=KMEANS_CLUSTER),
        insiders_name=config.segments.insiders_name,
    )
    return SegmentationModel(embedding=embedding, kmeans=kmeans, profiles=profiles), clustered


def silhouette_of(clustered: DataFrame, *, occupied_clusters: int | None = None) -> float:
    """MLlib's silhouette over the customers of a clustered (embedded) table.

    With one occupied cluster (a score run whose few customers all land in one of the model's
    clusters) the silhouette is undefined and MLlib refuses it: it is then recorded as 0, which
    the quality verdict reports as a miss, with a warning, instead of failing the run.
    """
    if occupied_clusters is not None and occupied_clusters < 2:
        log.warning("only %d cluster holds customers: the silhouette is undefined, recorded as 0", occupied_clusters)
        return 0.0
    return silhouette(clustered.select(EMBEDDING, KMEANS_CLUSTER))
