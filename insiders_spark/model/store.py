"""Persisted segmentation models: save, load, list, and which one is current.

A model version is a folder ``<output>/models/<version>/`` holding

* ``tree/``: the assembler + revenue tree ``PipelineModel``, written with MLlib's own ``save``;
* ``segmentation.json``: what the tree does not hold — the leaf encoding and label, the KMeans
  result over the leaf points (centres, each leaf's cluster; the default KMeans runs on the driver
  over the bounded leaf table, so it is not an MLlib model), and the cluster profiles with their
  revenue ranks and names as trained.

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
from insiders_spark.model.clustering import FittedKMeans
from insiders_spark.model.embedding import ENCODING, LABEL, LeafEmbedding
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.model.tree import read_tree
from insiders_spark.storage import filesystem
from insiders_spark.storage.lock import output_lock

MODELS = "models"
CURRENT = "CURRENT"
TREE = "tree"
DESCRIPTION = "segmentation.json"
FORMAT = 1

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
        "encoding": ENCODING,
        "label": LABEL,
        "kmeans": {
            "centers": kmeans.centers.tolist(),
            "leaf_clusters": {str(leaf): cluster for leaf, cluster in kmeans.leaf_clusters.items()},
            "cost": kmeans.cost,
            "solver": kmeans.solver,
            "runs": kmeans.runs,
            "points": kmeans.points,
            "insiders_cap": kmeans.cap.describe() if kmeans.cap else None,  # a record; scoring uses leaf_clusters
        },
        "profiles": [dataclasses.asdict(p) for p in model.profiles],
    }


def save(model: SegmentationModel, folder: str, description: dict) -> None:
    """Write one model version into ``folder`` (a staging folder; published by the run's commit)."""
    model.embedding.model.write().overwrite().save(f"{folder}/{TREE}")
    spark = SparkSession.getActiveSession()
    filesystem.write_text(spark, f"{folder}/{DESCRIPTION}", json.dumps(description, indent=2) + "\n")


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
        if description.get("format") != FORMAT:
            raise ValueError(f"format {description.get('format')!r}, this job reads format {FORMAT}")
        return _from_description(folder, description), description
    except Exception as error:  # a missing key, another format, a checksum error, an unreadable tree
        raise ModelFormatError(
            f"model version {version!r} under {models_root(output)} cannot be read ({_reason(error)}): written "
            "by another version of insiders-spark, or damaged. Score with another version (models list; "
            "models use VERSION) or train a new one"
        ) from error


def _reason(error: Exception) -> str:
    from insiders_spark.spark.messages import explain

    return f"{type(error).__name__}: {explain(error)}"


def _from_description(folder: str, description: dict) -> SegmentationModel:
    trained = (description["encoding"], description["label"], description.get("split_grid", "none"))
    if trained != (ENCODING, LABEL, "none") or description.get("split_grid_by_feature"):
        raise ValueError(
            f"trained with embedding options this version does not have (encoding {trained[0]!r}, label "
            f"{trained[1]!r}, split grid {trained[2]!r}; studies/ has them)"
        )
    pipeline_model = PipelineModel.load(f"{folder}/{TREE}")
    embedding = LeafEmbedding(model=pipeline_model, tree=read_tree(pipeline_model.stages[-1]._java_obj))
    stored = description["kmeans"]
    kmeans = FittedKMeans(
        centers=np.array(stored["centers"]),
        leaf_clusters={int(leaf): int(cluster) for leaf, cluster in stored["leaf_clusters"].items()},
        cost=float(stored["cost"]),
        solver=stored["solver"],
        runs=int(stored["runs"]),
        points=int(stored["points"]),
    )
    profiles = [ClusterProfile(**p) for p in description["profiles"]]
    return SegmentationModel(embedding=embedding, kmeans=kmeans, profiles=profiles)


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
