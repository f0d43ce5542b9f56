"""Optional MLflow tracking: a training run logged to a local sqlite store, the registered model's
alias following models/CURRENT, and tracking failures that never fail a run."""

import logging

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")

from insiders_spark.core.config import load_config  # noqa: E402
from insiders_spark.model.store import load, use_version  # noqa: E402
from insiders_spark.runs.runner import run  # noqa: E402
from insiders_spark.runs.tracking import CURRENT_ALIAS, VERSION_TAG, mirror_current, track_training  # noqa: E402

pytestmark = pytest.mark.spark

EXPERIMENT = "insiders-spark-test"


def _config(tmp_path, uri, **overrides):
    values = {
        "output.path": str(tmp_path / "out"),
        "synthetic.lines": 30_000,
        "tracking.mlflow_uri": uri,
        "tracking.experiment": EXPERIMENT,
        "quality.stability": True,
        "quality.stability_seeds": 1,
        "quality.stability_bootstraps": 1,
        **overrides,
    }
    return load_config(env="test", overrides=values, environ={})


@pytest.fixture(scope="module")
def tracked(spark, tmp_path_factory):
    """Two training runs into one output, tracked in a sqlite store with artifacts in a tmp folder."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    config = _config(tmp_path, uri)
    first = run(spark, config)
    versions_after_first = client.search_model_versions(f"name = '{EXPERIMENT}'")
    alias_after_first = client.get_model_version_by_alias(EXPERIMENT, CURRENT_ALIAS).version
    second = run(spark, config)
    return client, config, first, second, versions_after_first, alias_after_first


def test_a_training_run_logs_its_params_metrics_artifacts_and_model(tracked):
    client, config, first, _, versions, alias = tracked
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    logged = runs[0]
    assert logged.data.tags[VERSION_TAG] == first.metrics["model_version"]
    params = logged.data.params
    assert params["embedding.max_depth"] == str(config.embedding.max_depth)
    assert params["clustering.k"] == str(config.clustering.k)
    assert params["quality.stability_seeds"] == "1"
    assert not any(name.startswith("tracking.") for name in params)
    metrics = logged.data.metrics
    assert metrics["silhouette"] == pytest.approx(first.metrics["clustering"]["silhouette"])
    assert metrics["insiders.customer_share"] == pytest.approx(first.metrics["insiders"]["customer_share"])
    assert metrics["insiders.revenue_share"] == pytest.approx(first.metrics["insiders"]["revenue_share"])
    for group in ("seed", "bootstrap", "reference_revenue_cut"):
        for measure in ("ari", "insiders_jaccard"):
            assert {f"stability.{group}.{measure}_{s}" for s in ("min", "p10", "median")} <= metrics.keys()
    assert metrics["stability.seed.ari_min"] == first.metrics["quality"]["stability"]["seed"]["ari"]["min"]
    assert metrics["duration_s.total"] > 0 and "duration_s.segmentation" in metrics
    assert sum(v for k, v in metrics.items() if k.endswith(".customer_share") and k.startswith("cluster_")) == (
        pytest.approx(1.0, abs=1e-3)
    )
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id, "runs")} | {
        a.path for a in client.list_artifacts(logged.info.run_id, "report")
    }
    assert {"runs/manifest.json", "report/report.md"} <= artifacts

    assert [str(v.version) for v in versions] == ["1"] and str(alias) == "1"
    assert versions[0].run_id == logged.info.run_id
    assert versions[0].tags[VERSION_TAG] == first.metrics["model_version"]


def test_the_logged_model_is_the_saved_pipeline(spark, tracked):
    _, config, _, second, _, _ = tracked
    mlflow.set_tracking_uri(config.tracking.mlflow_uri)
    mlflow.set_registry_uri(config.tracking.mlflow_uri)
    logged = mlflow.spark.load_model(f"models:/{EXPERIMENT}@{CURRENT_ALIAS}")
    saved, _ = load(spark, config.output.path, second.metrics["model_version"])
    assert [type(s).__name__ for s in logged.stages] == [type(s).__name__ for s in saved.pipeline.stages]
    assert np.array_equal(np.array(logged.stages[-1].clusterCenters()), saved.kmeans.centers)


def test_a_second_training_run_moves_the_alias_and_a_rollback_moves_it_back(spark, tracked):
    client, config, first, second, _, _ = tracked
    current = client.get_model_version_by_alias(EXPERIMENT, CURRENT_ALIAS)
    assert str(current.version) == "2" and current.tags[VERSION_TAG] == second.metrics["model_version"]

    use_version(spark, config.output.path, first.metrics["model_version"])
    assert mirror_current(config, first.metrics["model_version"])
    assert str(client.get_model_version_by_alias(EXPERIMENT, CURRENT_ALIAS).version) == "1"
    assert not mirror_current(config, "20000101-never-logged")
    assert str(client.get_model_version_by_alias(EXPERIMENT, CURRENT_ALIAS).version) == "1"


def test_a_tracking_failure_is_a_warning(spark, tracked, tmp_path, caplog):
    _, config, first, _, _, _ = tracked
    broken = _config(tmp_path, "nosuchstore://tracking")  # a store MLflow does not know
    model, _ = load(spark, config.output.path, first.metrics["model_version"])
    with caplog.at_level(logging.WARNING, logger="insiders_spark.runs.tracking"):
        assert track_training(spark, broken, model, first.metrics, first.outputs) is None
    assert "MLflow tracking failed" in caplog.text


def test_tracking_off_logs_nothing(spark, tracked, tmp_path):
    _, _, first, _, _, _ = tracked
    off = _config(tmp_path, "")
    assert track_training(spark, off, None, first.metrics, first.outputs) is None
    assert not mirror_current(off, first.metrics["model_version"])


def test_where_a_run_is_tracked_does_not_change_the_configuration_hash(tmp_path):
    tracked_config = _config(tmp_path, "sqlite:///somewhere/mlflow.db")
    assert tracked_config.fingerprint() == _config(tmp_path, "").fingerprint()
