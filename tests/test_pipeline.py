"""The whole job on a small synthetic log: outputs, contracts, invariants, partition overwrite."""

import datetime as dt
import json

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import RunFailedError
from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from insiders_spark.features.table import prepare_customers
from insiders_spark.model.profiles import PROFILE_SCHEMA
from insiders_spark.runs.runner import run
from insiders_spark.storage import filesystem
from insiders_spark.storage.outputs import FAILED_RUNS, STAGING

LINES = 40_000


def _config(output, **overrides):
    values = {"output.path": str(output), "synthetic.lines": LINES, "synthetic.chunk_lines": 10_000}
    values.update(overrides)
    return load_config(env="test", overrides=values, environ={})


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    output = tmp_path_factory.mktemp("job")
    result = run(spark, _config(output))
    return output, result


def _segments(spark, output, run_date):
    return spark.read.parquet(str(output / "segments")).where(F.col("run_date") == run_date).drop("run_date")


def test_outputs_and_their_contracts(spark, first_run):
    output, result = first_run
    run_date = result.run_date.isoformat()
    assert (output / "segments" / f"run_date={run_date}").is_dir()
    assert (output / "profiles" / f"run_date={run_date}").is_dir()
    assert (output / "quarantine" / f"run_date={run_date}").is_dir()
    for name in ("report.md", "revenue_by_cluster.png", "profiles.csv"):
        assert (output / "report" / f"run_date={run_date}" / name).stat().st_size > 0
    segments = _segments(spark, output, run_date)
    assert [(f.name, f.dataType) for f in segments.schema.fields] == [(f.name, f.dataType) for f in SEGMENTS_SCHEMA.fields]
    profiles = spark.read.parquet(str(output / "profiles")).drop("run_date")
    assert [f.name for f in profiles.schema.fields] == [f.name for f in PROFILE_SCHEMA.fields]
    assert profiles.count() == 9


def test_metrics_account_for_every_row_and_customer(spark, first_run):
    output, result = first_run
    metrics = json.loads((output / "runs" / f"run_date={result.run_date}" / "metrics.json").read_text())
    rows = metrics["rows"]
    assert rows["input"] == LINES
    assert rows["kept"] + rows["after_as_of"] + sum(rows["quarantined"].values()) == LINES
    segments = _segments(spark, output, result.run_date.isoformat())
    assert segments.count() == metrics["customers"]["segmented"] == sum(c["customers"] for c in metrics["clusters"])
    assert metrics["customers"]["with_kept_lines"] == metrics["customers"]["segmented"] + metrics["customers"]["returns_only"]
    total = segments.agg(F.sum("gross_revenue")).first()[0]
    assert metrics["features"]["gross_revenue_total"] == pytest.approx(total, abs=0.01)
    assert -1.0 <= metrics["clustering"]["silhouette"] <= 1.0
    assert metrics["clustering"]["silhouette_distance"] == "squaredEuclidean"
    assert set(metrics["durations_s"]) >= {"read and aggregate", "segmentation", "silhouette", "write"}
    assert metrics["spark"]["master"].startswith("local") and metrics["spark"]["executors"]
    assert metrics["versions"]["spark"] == spark.version


def test_insiders_are_cluster_one_with_the_highest_mean_revenue(spark, first_run):
    output, result = first_run
    segments = _segments(spark, output, result.run_date.isoformat())
    means = {r.cluster: r.mean for r in segments.groupBy("cluster").agg(F.avg("gross_revenue").alias("mean")).collect()}
    assert sorted(means) == list(range(1, 10))
    assert [means[c] for c in sorted(means)] == sorted(means.values(), reverse=True)
    flags = segments.groupBy("cluster", "is_insider").count().collect()
    assert {(r.cluster == 1) == r.is_insider for r in flags} == {True}
    assert segments.select("customer_id").distinct().count() == segments.count()


def test_same_seed_same_segments(spark, first_run, tmp_path):
    """Also with every stage one after another (``output.overlap_writes`` off): the same outputs."""
    output, result = first_run
    again = run(spark, _config(tmp_path, **{"output.overlap_writes": False}))
    assert again.run_date == result.run_date
    key = ["customer_id", "cluster", "segment", "is_insider", "gross_revenue"]
    assert_df_equality(
        _segments(spark, output, result.run_date.isoformat()).select(*key),
        _segments(spark, tmp_path, result.run_date.isoformat()).select(*key),
        ignore_row_order=True,
    )
    for table in ("profiles", "rules", "quarantine"):
        first, second = (spark.read.parquet(str(where / table)) for where in (output, tmp_path))
        assert_df_equality(first, second, ignore_row_order=True, ignore_nullable=True)
    assert list(result.outputs) == list(again.outputs)


def test_a_run_date_replaces_only_its_own_partition(spark, tmp_path):
    run(spark, _config(tmp_path), run_date=dt.date(2020, 1, 1))
    run(spark, _config(tmp_path), run_date=dt.date(2020, 1, 2))
    before = _segments(spark, tmp_path, "2020-01-02").collect()
    run(spark, _config(tmp_path, **{"clustering.k": 4}), run_date=dt.date(2020, 1, 1))
    after_other = _segments(spark, tmp_path, "2020-01-02").collect()
    assert sorted(before) == sorted(after_other)
    assert _segments(spark, tmp_path, "2020-01-01").select("cluster").distinct().count() == 4
    dates = {r.run_date for r in spark.read.parquet(str(tmp_path / "segments")).select("run_date").distinct().collect()}
    assert {str(d) for d in dates} == {"2020-01-01", "2020-01-02"}


def test_a_run_that_fails_late_releases_what_it_cached(spark, tmp_path, monkeypatch):
    """A notebook's session outlives a failed run: the customers, features and clustered tables the
    run cached (and used) must not stay cached. This run fails at its very end, half-way through
    its commit (the file system refuses the third move), which the run rolls back."""

    real_rename, moves = filesystem.rename, []

    def refuse_the_third(spark_, source, target):
        moves.append(source)
        if len(moves) == 3:
            raise OSError("the output's file system refused the commit")
        real_rename(spark_, source, target)

    persistent = spark.sparkContext._jsc.getPersistentRDDs
    before = persistent().size()
    monkeypatch.setattr(filesystem, "rename", refuse_the_third)
    with pytest.raises(RunFailedError, match="refused the commit"):
        run(spark, _config(tmp_path / "out", **{"quality.stability": False}))
    assert len(moves) > 3  # the commit had started, and was rolled back
    assert persistent().size() == before
    published = [p for p in (tmp_path / "out").iterdir() if p.name not in (STAGING, FAILED_RUNS)]
    assert [p.name for p in published if any(p.rglob("*.parquet"))] == []  # nothing was published


def test_a_backtest_that_cannot_be_measured_is_reported_not_fatal(spark, tmp_path):
    """The backtest measures the segments; a log too short for its windows must not stop them.
    Run again on a date whose backtest was measured, the old curve must not stay next to the new
    segments as if it measured them."""
    output = tmp_path / "out"
    measured = run(
        spark, _config(output, **{"backtest.horizon_days": 90, "quality.stability": False}), run_date=dt.date(2011, 12, 9)
    )
    assert measured.metrics["backtest"]["measured"] is True
    assert (output / "backtest" / "run_date=2011-12-09").is_dir()
    config = _config(output, **{"backtest.horizon_days": 400, "quality.stability": False})
    result = run(spark, config, run_date=dt.date(2011, 12, 9))
    backtest = result.metrics["backtest"]
    assert backtest["measured"] is False and "no customer bought anything up to the cut-off" in backtest["error"]
    assert (output / "segments" / "run_date=2011-12-09").is_dir()
    assert not (output / "backtest" / "run_date=2011-12-09").exists()  # the earlier curve went with its run
    report = (output / "report" / "run_date=2011-12-09" / "report.md").read_text()
    assert "## Proof of value (backtest)" in report and "Not measured on this run" in report


def test_the_backtest_window_ends_on_the_last_sales_day_up_to_the_as_of_date(spark, tmp_path):
    """A nightly run on a day without sales (as-of two days after the log's last invoice): the
    window ends on the last invoice date, not past the log."""
    config = _config(tmp_path / "out", **{"backtest.horizon_days": 60, "quality.stability": False})
    table = prepare_customers(spark, config)
    last = table.summary.last_kept_date
    table.unpersist()
    result = run(spark, config, as_of=last + dt.timedelta(days=2))
    assert result.metrics["backtest"]["window"][1] == last.isoformat()
    assert result.metrics["backtest"]["cutoff"] == (last - dt.timedelta(days=60)).isoformat()
