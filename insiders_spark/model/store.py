"""Persisted segmentation models: save, load, list, and which one is current.

A model version is a folder ``<output>/models/<version>/`` holding

* ``pipeline/``: the whole model as one MLlib ``PipelineModel``, written with MLlib's own ``save``:
  ``VectorAssembler`` -> ``DecisionTreeRegressionModel`` (``leafCol``) -> ``SQLTransformer`` and
  ``VectorAssembler`` (the leaf's path vector) -> ``KMeansModel`` (the solver's centres). Any Spark
  user can run it: ``PipelineModel.load(path).transform(customers)`` adds ``leaf``, ``embedding``
  and ``kmeans_cluster``;
* ``segmentation.json``: what MLlib does not hold: the profiles (``kmeans_cluster`` -> the cluster
  number, 1 = Insiders, and the segment name), the version, dates and configuration hash, the
  tree's input columns, and a record of the KMeans fit (solver, starts, cost).

Format 1 (``tree/``, the assembler and tree only, with the KMeans centres and each leaf's cluster
in ``segmentation.json``) still loads: its KMeans stage is rebuilt from the saved centres.

``<output>/models/CURRENT`` names the version score runs use by default; training runs move it
forward when they publish; ``insiders-spark models use VERSION`` moves it back (a rollback).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from insiders_spark.core.errors import ModelFormatError, ModelNotFoundError
from insiders_spark.core.names import LEAF
from insiders_spark.model.clustering import KMEANS_CLUSTER, FittedKMeans
from insiders_spark.model.embedding import EMBEDDING, ENCODING, LABEL, TREE_STAGE, LeafEmbedding, embedding_from_stages
from insiders_spark.model.kmeans_model import matched_to_model, predict_leaves, to_kmeans_model
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.model.tree import read_saved_tree, with_node_values
from insiders_spark.storage import filesystem
from insiders_spark.storage.lock import output_lock

MODELS = "models"
CURRENT = "CURRENT"
PIPELINE = "pipeline"
DESCRIPTION = "segmentation.json"
FORMAT = 2
FORMAT_1_TREE = "tree"  # format 1: the assembler and tree only
REBUILD_SEED = 42  # format 1: the seed of the fit that rebuilds its KMeans stage (any seed gives the same model)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    version: str
    trained_as_of: str
    run_date: str
    config_hash: str


def models_root(output: str) -> str:
    return f"{output.rstrip('/')}/{MODELS}"


def new_version(as_of: dt.date, run_id: str) -> str:
    """Sortable and unique: the training as-of date, then the training run's start (UTC) and its
    random suffix, so two models trained on one as-of date sort in the order they were trained."""
    started, suffix = run_id.rsplit("_", 2)[-2:]
    return f"{as_of:%Y%m%d}-{started}-{suffix}"


def describe(model: SegmentationModel, *, version: str, as_of: dt.date, run_date: dt.date, config_hash: str) -> dict:
    kmeans = model.kmeans
    return {
        "format": FORMAT,
        "version": version,
        "trained_as_of": as_of.isoformat(),
        "run_date": run_date.isoformat(),
        "config_hash": config_hash,
        "pipeline": PIPELINE,
        "inputs": list(model.embedding.inputs),
        "columns": {"leaf": LEAF, "embedding": EMBEDDING, "kmeans_cluster": KMEANS_CLUSTER},
        "encoding": ENCODING,
        "label": LABEL,
        "kmeans": {  # a record of the fit; the centres are the pipeline's KMeansModel
            "cost": kmeans.cost,
            "solver": kmeans.solver,
            "runs": kmeans.runs,
            "points": kmeans.points,
            "insiders_cap": kmeans.cap.describe() if kmeans.cap else None,
        },
        "profiles": [dataclasses.asdict(p) for p in model.profiles],
    }


def stage_path(pipeline_folder: str, pipeline: PipelineModel, index: int) -> str:
    """Where MLlib saves stage ``index`` of ``pipeline`` inside ``pipeline_folder``."""
    digits = len(str(len(pipeline.stages)))
    return f"{pipeline_folder.rstrip('/')}/stages/{index:0{digits}d}_{pipeline.stages[index].uid}"


def save(model: SegmentationModel, folder: str, description: dict) -> SegmentationModel:
    """Write one model version into ``folder`` (a staging folder; published by the run's commit).

    Returns the model with its tree read back from what was saved: every node's value (Saabas'
    contributions need the internal nodes'), which the fitted tree does not give.
    """
    spark = SparkSession.active()  # on a second driver thread too (classic: the default session)
    pipeline = model.pipeline
    pipeline.write().overwrite().save(f"{folder}/{PIPELINE}")
    filesystem.write_text(spark, f"{folder}/{DESCRIPTION}", json.dumps(description, indent=2) + "\n")
    saved = read_saved_tree(spark, stage_path(f"{folder}/{PIPELINE}", pipeline, TREE_STAGE))
    embedding = dataclasses.replace(model.embedding, tree=with_node_values(model.embedding.tree, saved))
    return dataclasses.replace(model, embedding=embedding)


def load(spark: SparkSession, output: str, version: str | None = None) -> tuple[SegmentationModel, dict]:
    """The model ``version`` (default: the current one) as a ready-to-use ``SegmentationModel``."""
    version = version or current_version(spark, output)
    if version is None:
        raise ModelNotFoundError(
            f"no trained model under {models_root(output)}: run with --mode train (or train-and-score) first"
        )
    folder = f"{models_root(output)}/{version}"
    if not filesystem.exists(spark, f"{folder}/{DESCRIPTION}"):
        raise ModelNotFoundError(f"model version {version!r} not found under {models_root(output)}")
    try:
        description = json.loads(filesystem.read_text(spark, f"{folder}/{DESCRIPTION}"))
        stored = description.get("format")
        if stored not in (1, FORMAT):
            raise ValueError(f"format {stored!r}, this job reads format 1 or {FORMAT}")
        _check_embedding(description)
        model = _load_format_1(spark, folder, description) if stored == 1 else _load(spark, folder, description)
        return model, description
    except Exception as error:  # a missing key, another format, a checksum error, an unreadable tree
        raise ModelFormatError(
            f"model version {version!r} under {models_root(output)} cannot be read ({_reason(error)}): written "
            "by another version of insiders-spark, or damaged. Score with another version (models list; "
            "models use VERSION) or train a new one (--mode train)"
        ) from error


def _reason(error: Exception) -> str:
    from insiders_spark.spark.messages import explain

    return f"{type(error).__name__}: {explain(error)}"


def _check_embedding(description: dict) -> None:
    trained = (description["encoding"], description["label"], description.get("split_grid", "none"))
    if trained != (ENCODING, LABEL, "none") or description.get("split_grid_by_feature"):
        raise ValueError(
            f"trained with embedding options this version does not have (encoding {trained[0]!r}, label "
            f"{trained[1]!r}, split grid {trained[2]!r}; studies/ has them)"
        )


def _fit_record(stored: dict, centers: np.ndarray, leaf_clusters: dict[int, int]) -> FittedKMeans:
    return FittedKMeans(
        centers=centers,
        leaf_clusters=leaf_clusters,
        cost=float(stored["cost"]),
        solver=stored["solver"],
        runs=int(stored["runs"]),
        points=int(stored["points"]),
    )


def _load(spark: SparkSession, folder: str, description: dict) -> SegmentationModel:
    path = f"{folder}/{description.get('pipeline', PIPELINE)}"
    pipeline = PipelineModel.load(path)
    *embedding_stages, kmeans_model = pipeline.stages
    tree = read_saved_tree(spark, stage_path(path, pipeline, TREE_STAGE))
    embedding = LeafEmbedding(model=PipelineModel(stages=embedding_stages), tree=tree)
    leaf_clusters = predict_leaves(spark, kmeans_model, embedding.leaf_vectors())
    centers = np.array([np.asarray(c) for c in kmeans_model.clusterCenters()])
    kmeans = _fit_record(description["kmeans"], centers, leaf_clusters)
    profiles = [ClusterProfile(**p) for p in description["profiles"]]
    return SegmentationModel(embedding=embedding, kmeans=kmeans, profiles=profiles, kmeans_model=kmeans_model)


def _load_format_1(spark: SparkSession, folder: str, description: dict) -> SegmentationModel:
    """A format 1 version: its tree, and a ``KMeansModel`` rebuilt from its centres."""
    path = f"{folder}/{FORMAT_1_TREE}"
    tree_model = PipelineModel.load(path)
    embedding = embedding_from_stages(tree_model.stages, read_saved_tree(spark, stage_path(path, tree_model, 1)))
    stored = description["kmeans"]
    kmeans = _fit_record(
        stored,
        np.array(stored["centers"], dtype=np.float64),
        {int(leaf): int(cluster) for leaf, cluster in stored["leaf_clusters"].items()},
    )
    kmeans_model, renumbered = to_kmeans_model(spark, kmeans, seed=REBUILD_SEED)
    renumber = {kmeans.leaf_clusters[leaf]: cluster for leaf, cluster in renumbered.leaf_clusters.items()}
    kmeans = matched_to_model(spark, renumbered, kmeans_model, embedding.leaf_vectors())
    profiles = [
        dataclasses.replace(ClusterProfile(**p), kmeans_cluster=renumber[p["kmeans_cluster"]])
        for p in description["profiles"]
    ]
    log.info(
        "model %s is in format 1 (tree/ and the KMeans centres in %s): its KMeans stage was rebuilt; "
        "a training run (--mode train) saves models as one MLlib pipeline",
        description["version"],
        DESCRIPTION,
    )
    return SegmentationModel(embedding=embedding, kmeans=kmeans, profiles=profiles, kmeans_model=kmeans_model)


def current_version(spark: SparkSession, output: str) -> str | None:
    text = filesystem.read_replaced_text(spark, f"{models_root(output)}/{CURRENT}")
    return (text or "").strip() or None


def list_versions(spark: SparkSession, output: str) -> list[ModelInfo]:
    infos = []
    for folder in filesystem.list_dirs(spark, models_root(output)):
        description_path = f"{folder}/{DESCRIPTION}"
        if filesystem.exists(spark, description_path):
            try:
                description = json.loads(filesystem.read_text(spark, description_path))
                infos.append(
                    ModelInfo(
                        version=description["version"],
                        trained_as_of=description["trained_as_of"],
                        run_date=description["run_date"],
                        config_hash=description["config_hash"],
                    )
                )
            except Exception as error:  # one bad folder must not block a rollback
                log.warning("skipping %s: its %s cannot be read (%s)", folder, DESCRIPTION, _reason(error))
    return sorted(infos, key=lambda info: info.version)


def use_version(spark: SparkSession, output: str, version: str) -> None:
    """Make ``version`` the current model (a rollback when it is an older one)."""
    known = {info.version for info in list_versions(spark, output)}
    if version not in known:
        raise ModelNotFoundError(
            f"model version {version!r} not found under {models_root(output)} "
            f"(known: {', '.join(sorted(known)) or 'none'})"
        )
    with output_lock(spark, output, f"insiders-spark models use {version}"):
        filesystem.replace_text(spark, f"{models_root(output)}/{CURRENT}", version + "\n")
