"""Optional MLflow tracking: each training run, and which model is current, in an MLflow server.

Off unless ``[tracking] mlflow_uri`` (or ``--mlflow-uri``) names a tracking server or store; only
then is ``mlflow`` imported (the ``mlflow`` extra: ``pip install 'insiders-spark[mlflow]'``).
After a training run has committed, its MLflow run gets

* params: the effective configuration as dotted keys (``embedding.max_depth``, ...);
* metrics: the silhouette, the Insiders' and each cluster's shares, the stability's agreement,
  the KMeans cost and every stage's duration;
* artifacts: the published manifest and report, and the model itself (``mlflow.spark.log_model``,
  the same MLlib ``PipelineModel`` as ``models/<version>/pipeline``, with explicit pip
  requirements, so nothing is inferred over the network), registered as a version of the
  registered model named after the experiment, tagged with the job's model version.

The registered model's alias ``current`` mirrors ``models/CURRENT``: moved when a training run
publishes, and by ``insiders-spark models use VERSION`` when that version was logged. Tracking
only reports: a failure is a warning, never a failed run (the outputs are already published).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from insiders_spark.core.config import Config
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.storage import filesystem

log = logging.getLogger(__name__)

CURRENT_ALIAS = "current"
VERSION_TAG = "insiders_spark.model_version"
MODEL_ARTIFACT = "model"
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param's value


def params_of(config: Config) -> dict[str, str]:
    """The configuration as MLflow params: one dotted key per setting (``tracking`` itself left out)."""
    plain = {k: v for k, v in config.to_dict().items() if k != "tracking"}
    return {key: str(value)[:MAX_PARAM_CHARS] for key, value in _flatten(plain)}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def _metric_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.\-/]+", "_", text)


def metrics_of(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The run's numbers worth a chart across runs, from its manifest."""
    metrics: dict[str, float] = {}
    clustering = manifest.get("clustering", {})
    if clustering.get("silhouette") is not None:
        metrics["silhouette"] = clustering["silhouette"]
    if clustering.get("kmeans", {}).get("cost") is not None:
        metrics["kmeans_cost"] = clustering["kmeans"]["cost"]
    insiders = manifest.get("insiders", {})
    for name in ("customers", "customer_share", "revenue_share"):
        if insiders.get(name) is not None:
            metrics[f"insiders.{name}"] = insiders[name]
    for cluster in manifest.get("clusters", []):
        for name in ("customer_share", "revenue_share"):
            metrics[f"cluster_{cluster['cluster']}.{name}"] = cluster[name]
    stability = (manifest.get("quality") or {}).get("stability") or {}
    for measure in ("ari", "insiders_jaccard"):
        for statistic in ("min", "mean"):
            value = stability.get(measure, {}).get(statistic)
            if value is not None:
                metrics[f"stability.{measure}_{statistic}"] = value
    for stage, seconds in manifest.get("durations_s", {}).items():
        metrics[f"duration_s.{_metric_name(stage)}"] = seconds
    if manifest.get("total_s") is not None:
        metrics["duration_s.total"] = manifest["total_s"]
    return {name: float(value) for name, value in metrics.items()}


def pip_requirements() -> list[str]:
    """What loading the logged model needs: pyspark alone (its stages are MLlib's own)."""
    import pyspark

    return [f"pyspark=={pyspark.__version__}"]


def track_training(
    spark: SparkSession,
    config: Config,
    model: SegmentationModel,
    manifest: Mapping[str, Any],
    outputs: Mapping[str, str],
) -> str | None:
    """Log a committed training run to MLflow; returns the MLflow run id (None: not configured or
    failed, with a warning)."""
    if not config.tracking.mlflow_uri:
        return None
    try:
        return _log_training(spark, config, model, manifest, outputs)
    except Exception as error:  # tracking reports on a run that is already published
        log.warning("MLflow tracking failed, the run is published all the same: %s: %s", type(error).__name__, error)
        return None


def _log_training(
    spark: SparkSession,
    config: Config,
    model: SegmentationModel,
    manifest: Mapping[str, Any],
    outputs: Mapping[str, str],
) -> str:
    import mlflow
    import mlflow.spark

    tracking = config.tracking
    client = mlflow.MlflowClient(tracking_uri=tracking.mlflow_uri, registry_uri=tracking.mlflow_uri)
    mlflow.set_tracking_uri(tracking.mlflow_uri)
    mlflow.set_registry_uri(tracking.mlflow_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(tracking.experiment)
    version = manifest["model_version"]
    tags = {
        VERSION_TAG: version,
        "run_date": manifest["run_date"],
        "mode": manifest["mode"],
        "run_id": manifest["run_id"],
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=manifest["run_id"], tags=tags) as active:
        mlflow.log_params(params_of(config))
        mlflow.log_metrics(metrics_of(manifest))
        with tempfile.TemporaryDirectory(prefix="insiders-mlflow-") as scratch:
            for name in ("runs", "report"):
                if name in outputs:
                    mlflow.log_artifacts(str(_copy_to_local(spark, outputs[name], Path(scratch) / name)), name)
        logged = mlflow.spark.log_model(
            model.pipeline,
            MODEL_ARTIFACT,
            registered_model_name=tracking.experiment,
            pip_requirements=pip_requirements(),
        )
        registered = logged.registered_model_version
        client.set_model_version_tag(tracking.experiment, registered, VERSION_TAG, version)
        client.set_registered_model_alias(tracking.experiment, CURRENT_ALIAS, registered)
        log.info(
            "MLflow: run %s in experiment %r; model %s version %s is %r",
            active.info.run_id,
            tracking.experiment,
            tracking.experiment,
            registered,
            CURRENT_ALIAS,
        )
        return active.info.run_id


def _copy_to_local(spark: SparkSession, path: str, target: Path) -> Path:
    """A published file or folder (any path ``storage.filesystem`` reads) copied to the local
    ``target`` folder: a folder's files land in ``target`` itself, a file in ``target/<name>``."""
    filesystem.copy_to_local(spark, path, str(target))
    return target


def mirror_current(config: Config, version: str) -> bool:
    """Point the alias ``current`` at the MLflow model version logged for ``version`` (a rollback
    with ``models use``); False, with a warning, when tracking is off, the version was not
    logged, or MLflow cannot be reached."""
    tracking = config.tracking
    if not tracking.mlflow_uri:
        return False
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking.mlflow_uri, registry_uri=tracking.mlflow_uri)
        logged = [
            v
            for v in client.search_model_versions(f"name = '{tracking.experiment}'")
            if v.tags.get(VERSION_TAG) == version
        ]
        if not logged:
            log.warning(
                "model %s was not logged to MLflow model %r: its alias %r stays where it is",
                version,
                tracking.experiment,
                CURRENT_ALIAS,
            )
            return False
        client.set_registered_model_alias(tracking.experiment, CURRENT_ALIAS, logged[-1].version)
        return True
    except Exception as error:
        log.warning("MLflow: could not move the alias %r: %s: %s", CURRENT_ALIAS, type(error).__name__, error)
        return False
