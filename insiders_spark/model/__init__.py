"""The segmentation model: the revenue tree and its leaf embedding, KMeans, profiles, rules, storage."""

from insiders_spark.model.clustering import EmbeddingPoints, FittedKMeans, fit_kmeans_to_points
from insiders_spark.model.embedding import LeafEmbedding, fit_embedding
from insiders_spark.model.profiles import ClusterProfile, build_profiles
from insiders_spark.model.segmentation import SegmentationModel, fit_segmentation, silhouette_of
from insiders_spark.model.silhouette import leaf_silhouette
from insiders_spark.model.store import load, save

__all__ = [
    "ClusterProfile",
    "EmbeddingPoints",
    "FittedKMeans",
    "LeafEmbedding",
    "SegmentationModel",
    "build_profiles",
    "fit_embedding",
    "fit_kmeans_to_points",
    "fit_segmentation",
    "leaf_silhouette",
    "load",
    "save",
    "silhouette_of",
]
