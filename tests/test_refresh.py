"""The nightly refresh: as-of runs, atomic outputs, persisted models, score runs, churn, identity."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import ModelFormatError, ModelNotFoundError, OutputInUseError, RunFailedError
from insiders_spark.core.grids import grid_values
from insiders_spark.model.store import current_version, list_versions, load, new_version, use_version
from insiders_spark.runs.runner import run
from insiders_spark.segments.continuity import churn_counts, with_insider_history
from insiders_spark.storage import filesystem
from insiders_spark.storage.lock import LOCK, output_lock
from insiders_spark.storage.outputs import JOURNAL, RunOutputs, read_partition, recover_interrupted_commits

SYNTHETIC_LINES = 40_000


def _config(output: Path, **overrides):
    values = {"output.path": str(output), "synthetic.lines": SYNTHETIC_LINES, "synthetic.chunk_lines": 10_000}
    values.update(overrides)
    return load_config(env="test", overrides=values, environ={})


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rows(spark, path: Path):
    return sorted(spark.read.parquet(str(path)).collect())


# --- as-of runs on the real log --------------------------------------------------------------


@pytest.mark.real_data
def test_two_as_of_runs_and_an_identical_rerun(spark, real_log_parquet, tmp_path):
    config = _config(tmp_path, **{"input.path": str(real_log_parquet)})
    september = run(spark, config, as_of=dt.date(2011, 9, 9))
    assert september.run_date == dt.date(2011, 9, 9)
    assert september.metrics["rows"]["after_as_of"] > 0  # the autumn's lines wait for later runs
    first = tmp_path / "segments" / "run_date=2011-09-09"
    before = _tree_digest(first)
    september_rows = _rows(spark, first)

    december = run(spark, config, as_of=dt.date(2011, 12, 9))
    assert _tree_digest(first) == before  # the earlier partition is untouched, byte for byte
    assert {p.name for p in (tmp_path / "segments").iterdir() if p.is_dir()} == {
        "run_date=2011-09-09",
        "run_date=2011-12-09",
    }
    assert december.metrics["churn"]["previous_run_date"] == "2011-09-09"
    # churn as the two published partitions say it: Insiders in December and not in September...
    def insiders(date):
        frame = read_partition(spark, str(tmp_path), "segments", date).where(F.col("is_insider"))
        return {r.customer_id for r in frame.select("customer_id").collect()}

    then, now = insiders("2011-09-09"), insiders("2011-12-09")
    churn = december.metrics["churn"]
    assert (churn["insiders"], churn["entered"], churn["left"], churn["stayed"]) == (
        len(now), len(now - then), len(then - now), len(now & then)
    )
    assert churn["entered"] > 0 and churn["left"] > 0 and churn["stayed"] > 0
    last_purchase = spark.read.parquet(str(first)).agg(F.max("last_purchase_date")).first()[0]
    assert last_purchase <= dt.date(2011, 9, 9)

    run(spark, config, as_of=dt.date(2011, 9, 9))  # the same date again
    assert _rows(spark, first) == september_rows


# --- models: train, score, rollback ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_once(spark, tmp_path_factory):
    output = tmp_path_factory.mktemp("refresh")
    result = run(spark, _config(output), as_of=dt.date(2011, 9, 9), mode="train")
    return output, result


@pytest.fixture
def trained(trained_once, tmp_path):
    """The trained output as a train run left it, copied for each test: the tests that score,
    retrain or roll back on it do not change what the others see, in any order."""
    output, result = trained_once
    copy = tmp_path / "trained"
    shutil.copytree(output, copy)
    return copy, result


def test_train_persists_a_model_and_writes_no_segments(spark, trained):
    output, result = trained
    version = result.metrics["model_version"]
    assert current_version(spark, str(output)) == version
    assert (output / "models" / version / "tree" / "metadata").is_dir()  # MLlib's own save format
    assert json.loads((output / "models" / version / "segmentation.json").read_text())["trained_as_of"] == "2011-09-09"
    assert not (output / "segments").exists()
    manifest = json.loads((output / "runs" / "run_date=2011-09-09" / "manifest.json").read_text())
    assert manifest["mode"] == "train" and manifest["model_version"] == version
    assert (output / "runs" / "run_date=2011-09-09" / "_SUCCESS").exists()


def test_score_uses_the_persisted_model_without_refitting(spark, trained):
    output, trained_result = trained
    version = trained_result.metrics["model_version"]
    before = _tree_digest(output / "models")
    scored = run(spark, _config(output), as_of=dt.date(2011, 12, 9), mode="score")
    assert _tree_digest(output / "models") == before  # not a byte of any model changed
    assert scored.metrics["model_version"] == version and current_version(spark, str(output)) == version
    segments = read_partition(spark, str(output), "segments", "2011-12-09")
    assert segments.where(F.col("cluster").isNull()).count() == 0
    newcomers = segments.where(F.col("first_purchase_date") > dt.date(2011, 9, 9))
    assert newcomers.count() > 0 and newcomers.select("cluster").distinct().count() > 1
    # the clusters are the trained ones: same numbers and names as the model's profiles
    trained_names = {p.cluster: p.segment for p in trained_result.profiles}
    scored_names = {r.cluster: r.segment for r in segments.select("cluster", "segment").distinct().collect()}
    assert scored_names.items() <= trained_names.items()
    # the published profiles are today's sizes and means of those clusters, not the trained ones
    today = {
        r.cluster: r
        for r in segments.groupBy("cluster").agg(
            F.count(F.lit(1)).alias("customers"), F.sum("gross_revenue").alias("revenue"),
            F.avg("recency_days").alias("recency"),
        ).collect()
    }
    profiles = {r.cluster: r for r in _rows(spark, output / "profiles" / "run_date=2011-12-09")}
    assert set(profiles) == set(trained_names)
    total = sum(r.customers for r in today.values())
    for cluster, profile in profiles.items():
        seen = today.get(cluster)
        assert profile.customers == (seen.customers if seen else 0), cluster
        assert profile.customer_share == pytest.approx(profile.customers / total)
        if seen:
            assert profile.revenue_total == pytest.approx(seen.revenue)
            assert profile.recency_days_mean == pytest.approx(seen.recency)
    assert sum(p.customers for p in scored.profiles) == segments.count() != sum(p.customers for p in trained_result.profiles)


def test_models_use_rolls_back_to_an_older_version(spark, trained, tmp_path):
    output, trained_result = trained
    first = trained_result.metrics["model_version"]
    second = run(spark, _config(output, **{"job.seed": 3}), as_of=dt.date(2011, 10, 9), mode="train")
    assert current_version(spark, str(output)) == second.metrics["model_version"] != first
    use_version(spark, str(output), first)
    assert current_version(spark, str(output)) == first
    with pytest.raises(ModelNotFoundError, match="not found"):
        use_version(spark, str(output), "no-such-version")
    assert [info.version for info in list_versions(spark, str(output))] == sorted([first, second.metrics["model_version"]])


def test_the_models_command_lists_and_rolls_back_as_an_operator_types_it(spark, trained):
    output, trained_result = trained
    first = trained_result.metrics["model_version"]
    second = run(spark, _config(output, **{"job.seed": 3}), as_of=dt.date(2011, 10, 9), mode="train")
    second = second.metrics["model_version"]

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "insiders_spark.cli", "models", *args, "--output", str(output), "--env", "test"],
            capture_output=True, text=True, timeout=300, env={**os.environ},
        )

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    marked = {line[2:].split()[0]: line.startswith("*") for line in listed.stdout.splitlines()}
    assert marked == {first: False, second: True}
    rolled_back = cli("use", first)
    assert (rolled_back.returncode, rolled_back.stdout.strip()) == (0, f"current model: {first}")
    assert current_version(spark, str(output)) == first
    unknown = cli("use", "no-such-version")
    assert unknown.returncode == 1 and "not found" in unknown.stderr and "Traceback" not in unknown.stderr
    assert cli("use").returncode == 2  # no version: a usage error
    # a run holding the output: the switch waits for it, naming the holder
    (output / LOCK).write_text(json.dumps({"token": "t", "purpose": "insiders-spark run (score)",
                                              "host": "another-machine", "pid": 1}))
    busy = cli("use", second)
    assert busy.returncode == 1 and "another-machine" in busy.stderr and "Traceback" not in busy.stderr
    assert current_version(spark, str(output)) == first


def test_score_without_a_model_is_a_clear_error(spark, tmp_path):
    with pytest.raises(RunFailedError, match="no trained model under"):
        run(spark, _config(tmp_path), mode="score")
    assert not (tmp_path / "segments").exists()


def test_retraining_with_another_seed_keeps_cluster_numbers_and_names(spark, tmp_path):
    first = run(spark, _config(tmp_path), run_date=dt.date(2011, 12, 1))
    second = run(spark, _config(tmp_path, **{"job.seed": 99}), run_date=dt.date(2011, 12, 2))
    matches = second.metrics["lineage"]["matches"]
    assert len(matches) == 9
    for match in matches:
        assert (match["previous_cluster"], match["previous_segment"]) == (match["cluster"], match["segment"])
        assert match["jaccard"] >= 0.99
    assert second.metrics["lineage"]["previous_clusters_without_successor"] == []
    assert second.metrics["previous_model_version"] == first.metrics["model_version"]


def test_a_model_retrained_on_more_data_keeps_the_numbers_and_names_of_its_matched_clusters(spark, tmp_path):
    first = run(spark, _config(tmp_path), as_of=dt.date(2011, 6, 30))
    second = run(spark, _config(tmp_path), as_of=dt.date(2011, 12, 9))
    lineage = second.metrics["lineage"]
    previous = {p.cluster: p.segment for p in first.profiles}
    carried = [m for m in lineage["matches"] if m["previous_cluster"] not in (None, 1)]
    assert carried, lineage  # six more months of data, and still groups to carry over
    # ranked by revenue alone, some of them would have taken other numbers: the carry-over did work
    assert any(m["revenue_rank"] != m["cluster"] for m in carried), lineage
    for match in carried:
        assert (match["cluster"], match["segment"]) == (match["previous_cluster"], previous[match["previous_cluster"]])
    # the published tables use the carried numbers and names, and cluster 1 is still the top revenue
    published = {(r.cluster, r.segment) for r in _rows(spark, tmp_path / "profiles" / "run_date=2011-12-09")}
    assert published == {(p.cluster, p.segment) for p in second.profiles}
    segments = read_partition(spark, str(tmp_path), "segments", "2011-12-09").select("cluster", "segment").distinct()
    assert {(r.cluster, r.segment) for r in segments.collect()} <= published
    assert sorted(p.cluster for p in second.profiles) == list(range(1, len(second.profiles) + 1))
    assert second.profiles[0].gross_revenue_mean == max(p.gross_revenue_mean for p in second.profiles)
    assert {m["previous_cluster"] for m in lineage["matches"] if m["previous_cluster"]} | {
        g["previous_cluster"] for g in lineage["previous_clusters_without_successor"]
    } == set(previous)


def test_a_split_grid_model_is_saved_with_its_grid_and_scores_as_it_trained(spark, tmp_path):
    # every input on 1-2-5 but qty_items, on its own grid (3, 30, 300, ...: none of them on 1-2-5)
    grid = {"embedding.split_grid": "1-2-5", "embedding.split_grid_by_feature": {"qty_items": "3"}}
    trained = run(spark, _config(tmp_path, **grid), run_date=dt.date(2011, 12, 1))
    version = trained.metrics["model_version"]
    description = json.loads((tmp_path / "models" / version / "segmentation.json").read_text())
    assert description["split_grid"] == "1-2-5" and description["split_grid_by_feature"] == {"qty_items": "3"}
    assert trained.metrics["embedding"]["split_grid_by_feature"] == {"qty_items": "3"}
    # scored by the saved pipeline (its snapping stage included), under a config without the grid
    run(spark, _config(tmp_path), run_date=dt.date(2011, 12, 2), mode="score")
    columns = ["customer_id", "cluster", "segment"]
    assert_df_equality(
        read_partition(spark, str(tmp_path), "segments", "2011-12-02").select(columns),
        read_partition(spark, str(tmp_path), "segments", "2011-12-01").select(columns),
        ignore_row_order=True,
    )
    # the published rules are stated on the raw features, each in its own grid's values
    rules = read_partition(spark, str(tmp_path), "rules", "2011-12-01").collect()
    assert rules and all("<=" not in r.predicate and " > " not in r.predicate for r in rules)
    bounds = [(f, float(n)) for r in rules for f, n in re.findall(r"`(\w+)` [<>]=? ([0-9.eE+-]+)D", r.predicate)]
    assert {f for f, _ in bounds} >= {"qty_items"}, bounds  # the tree used the input with its own grid
    expected = {f: set(grid_values("3" if f == "qty_items" else "1-2-5")) for f, _ in bounds}
    assert all(n in expected[f] for f, n in bounds), bounds
    # and the report says how the tree's inputs were snapped
    report = (tmp_path / "report" / "run_date=2011-12-01" / "report.md").read_text()
    assert "`qty_returns`, `avg_ticket` on 1, 2, 5, …; `qty_items` on 3, 30, 300, …)" in report


# --- churn on a hand-built case --------------------------------------------------------------

SEGMENT_DDL = "customer_id long, cluster int, segment string, is_insider boolean"
HISTORY_DDL = "customer_id long, is_insider boolean, insider_since date, runs_outside_insiders int"


def test_churn_by_hand(spark):
    previous = spark.createDataFrame(
        [(1, True, dt.date(2011, 1, 1), 0), (2, True, dt.date(2011, 6, 1), 0), (3, True, dt.date(2011, 2, 1), 0), (4, False, None, None)],
        HISTORY_DDL,
    )
    current = spark.createDataFrame(
        [(1, 1, "Insiders", True), (2, 3, "Loyal", False), (4, 1, "Insiders", True), (5, 2, "Loyal", False)],
        SEGMENT_DDL,
    )
    run_date = dt.date(2011, 12, 9)
    history = with_insider_history(current, previous, run_date=run_date, hysteresis_runs=1)
    expected = spark.createDataFrame(
        [
            (1, 1, "Insiders", True, dt.date(2011, 1, 1), 0),  # stayed: keeps the start of its spell
            (2, 3, "Loyal", False, None, None),  # left
            (4, 1, "Insiders", True, run_date, 0),  # entered today
            (5, 2, "Loyal", False, None, None),
        ],
        SEGMENT_DDL + ", insider_since date, runs_outside_insiders int",
    )
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)
    counts = churn_counts(history, previous, dt.date(2011, 9, 9))
    # 3 was an Insider and is gone from today's customers altogether: it left too
    assert (counts.insiders, counts.entered, counts.left, counts.stayed, counts.in_grace) == (2, 1, 2, 1, 0)


def test_with_hysteresis_an_insider_who_drops_out_stays_one_run_through_the_pipeline(spark, tmp_path):
    config = _config(tmp_path, **{"refresh.insider_hysteresis_runs": 2})
    run(spark, config, as_of=dt.date(2011, 9, 9))
    december = run(spark, config, as_of=dt.date(2011, 12, 9))
    before = read_partition(spark, str(tmp_path), "segments", "2011-09-09").where(F.col("is_insider"))
    now = read_partition(spark, str(tmp_path), "segments", "2011-12-09")
    was = {r.customer_id for r in before.select("customer_id").collect()}
    rows = now.select("customer_id", "cluster", "is_insider", "runs_outside_insiders").collect()
    dropped = {r.customer_id for r in rows if r.customer_id in was and r.cluster != 1}
    assert dropped  # the six months moved some September Insiders out of cluster 1...
    for row in rows:  # ...and they stay Insiders for this run, counted once outside
        in_grace = row.customer_id in dropped
        assert row.is_insider == (row.cluster == 1 or in_grace), row
        assert row.runs_outside_insiders == (1 if in_grace else 0 if row.cluster == 1 else None), row
    churn = december.metrics["churn"]
    assert churn["in_grace"] == len(dropped)
    assert churn["left"] == len(was - {r.customer_id for r in rows if r.is_insider}) == 0


def test_hysteresis_keeps_an_insider_for_n_runs_outside(spark):
    previous = spark.createDataFrame([(2, True, dt.date(2011, 6, 1), 0)], HISTORY_DDL)
    outside = spark.createDataFrame([(2, 3, "Loyal", False)], SEGMENT_DDL)
    first = with_insider_history(outside, previous, run_date=dt.date(2011, 10, 1), hysteresis_runs=2).first()
    assert first.is_insider and first.insider_since == dt.date(2011, 6, 1) and first.runs_outside_insiders == 1
    state = spark.createDataFrame([(2, True, dt.date(2011, 6, 1), 1)], HISTORY_DDL)
    second = with_insider_history(outside, state, run_date=dt.date(2011, 11, 1), hysteresis_runs=2).first()
    assert not second.is_insider and second.insider_since is None


def test_a_previous_partition_from_before_the_history_columns_still_continues(spark):
    """Segments published before insider_since and runs_outside_insiders existed: the first run
    after an upgrade continues from them (the start of a spell is unknown: null), not fails."""
    older = spark.createDataFrame([(1, 1, "Insiders", True), (2, 2, "Loyal", False)], SEGMENT_DDL)
    current = spark.createDataFrame([(1, 1, "Insiders", True), (2, 1, "Insiders", True)], SEGMENT_DDL)
    run_date = dt.date(2011, 12, 9)
    history = with_insider_history(current, older, run_date=run_date, hysteresis_runs=2)
    expected = spark.createDataFrame(
        [(1, 1, "Insiders", True, None, 0), (2, 1, "Insiders", True, run_date, 0)],
        SEGMENT_DDL + ", insider_since date, runs_outside_insiders int",
    )
    assert_df_equality(history, expected, ignore_row_order=True, ignore_nullable=True)


def test_a_damaged_model_is_a_clear_error_and_does_not_block_the_others(spark, trained, tmp_path, caplog):
    output, trained_result = trained
    copy = tmp_path / "out"
    shutil.copytree(output / "models", copy / "models")
    good = trained_result.metrics["model_version"]
    damaged = "2011-01-01_damaged"
    shutil.copytree(copy / "models" / good, copy / "models" / damaged)
    description = json.loads((copy / "models" / damaged / "segmentation.json").read_text())
    del description["kmeans"]
    (copy / "models" / damaged / "segmentation.json").write_text(json.dumps({**description, "version": damaged}))
    # edited beside its Hadoop checksum: what a disk or a hand edit does to a model
    with pytest.raises(ModelFormatError, match=rf"model version '{damaged}' .* cannot be read .*[Cc]hecksum"):
        load(spark, str(copy), damaged)
    (copy / "models" / damaged / ".segmentation.json.crc").unlink()
    with pytest.raises(ModelFormatError, match=rf"model version '{damaged}' .* cannot be read \(KeyError: 'kmeans'\)"):
        load(spark, str(copy), damaged)
    other_format = {**description, "version": "2011-01-02_future", "format": 99}
    (copy / "models" / "2011-01-02_future").mkdir()
    (copy / "models" / "2011-01-02_future" / "segmentation.json").write_text(json.dumps(other_format))
    with pytest.raises(ModelFormatError, match="format 99, this job reads format 1"):
        load(spark, str(copy), "2011-01-02_future")
    (copy / "models" / "2011-01-03_empty").mkdir()
    (copy / "models" / "2011-01-03_empty" / "segmentation.json").write_text("{}")
    listed = [info.version for info in list_versions(spark, str(copy))]
    assert good in listed and "2011-01-03_empty" not in listed  # skipped with a warning, not fatal
    assert "2011-01-03_empty" in caplog.text
    use_version(spark, str(copy), good)  # a rollback still works beside the bad folder
    assert current_version(spark, str(copy)) == good


# --- atomicity -------------------------------------------------------------------------------


def _published_then_staged(spark, tmp_path) -> RunOutputs:
    """Run one publishes segments, profiles and runs for 2011-12-09; run two stages its own."""
    first = RunOutputs(spark, str(tmp_path), "2011-12-09", "run-one")
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "segments")
    first.write_table(spark.createDataFrame([(1, "old")], "id long, v string"), "profiles")
    first.write_file("runs", "metrics.json", "{}")
    first.commit(last="runs")
    second = RunOutputs(spark, str(tmp_path), "2011-12-09", "run-two")
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "segments")
    second.write_table(spark.createDataFrame([(2, "new")], "id long, v string"), "profiles")
    second.write_file("runs", "metrics.json", '{"new": true}')
    return second


def test_a_commit_that_finished_before_the_kill_is_kept_by_the_next_run(spark, tmp_path, monkeypatch):
    """Killed after its _SUCCESS marker but before it removed its journal: the night's output was
    published whole, and the next run must clean up after it, not roll it back."""
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    real_delete = filesystem.delete_path

    def killed_at_cleanup(spark_, path):
        if path.endswith(JOURNAL):
            raise KeyboardInterrupt("killed")
        real_delete(spark_, path)

    monkeypatch.setattr(filesystem, "delete_path", killed_at_cleanup)
    with pytest.raises(KeyboardInterrupt):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "delete_path", real_delete)
    published = {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")}
    assert [(r.id, r.v) for r in published["segments"]] == [(r.id, r.v) for r in published["profiles"]] == [(2, "new")]
    assert (tmp_path / "_staging" / "run-two" / JOURNAL).exists()
    assert recover_interrupted_commits(spark, output) == ["run-two"]
    assert {t: _rows(spark, tmp_path / t) for t in published} == published  # run two's, still live
    assert json.loads((tmp_path / "runs" / "run_date=2011-12-09" / "metrics.json").read_text()) == {"new": True}
    assert (tmp_path / "runs" / "run_date=2011-12-09" / "_SUCCESS").exists()
    assert not (tmp_path / "_staging" / "run-two").exists()


def test_an_interrupted_commit_is_rolled_back_by_the_next_run(spark, tmp_path, monkeypatch):
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    before = {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")}  # run one's, still live
    real_rename, calls = filesystem.rename, []

    def crash_after_three(source, target):  # the process dies in the middle of publishing
        calls.append(source)
        if len(calls) > 3:
            raise KeyboardInterrupt("killed")
        real_rename(spark, source, target)

    monkeypatch.setattr(filesystem, "rename", lambda _spark, s, t: crash_after_three(s, t))
    with pytest.raises(KeyboardInterrupt):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert _rows(spark, tmp_path / "segments") != before["segments"]  # half published...

    assert recover_interrupted_commits(spark, output) == ["run-two"]
    assert {t: _rows(spark, tmp_path / t) for t in ("segments", "profiles")} == before  # ...and rolled back
    assert (tmp_path / "runs" / "run_date=2011-12-09" / "metrics.json").read_text() == "{}"


def test_a_run_killed_mid_write_leaves_the_previous_outputs(spark, tmp_path):
    output = tmp_path / "out"
    config_args = ["--env", "test", "--output", str(output), "--synthetic-lines", "150000", "--run-date", "2011-12-09"]
    run(spark, _config(output), run_date=dt.date(2011, 12, 9))
    published = {t: _tree_digest(output / t) for t in ("segments", "profiles", "runs", "report", "models")}

    process = subprocess.Popen(
        [sys.executable, "-m", "insiders_spark.cli", "run", *config_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
        start_new_session=True,
    )
    staging = output / "_staging"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:  # wait until the new run has staged some output
            if staging.exists() and any(p.name == "quarantine" for run in staging.iterdir() for p in run.iterdir()):
                break
            assert process.poll() is None, "the run finished before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("the run never started writing")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert {t: _tree_digest(output / t) for t in published} == published
    assert spark.read.parquet(str(output / "segments")).count() > 0  # readable as a table
    assert json.loads((output / LOCK).read_text())["pid"] == process.pid  # the killed run's lock is left
    with output_lock(spark, str(output), "the next run"):  # and taken over: its holder is gone
        assert recover_interrupted_commits(spark, str(output))  # the next run clears the debris
    assert not any(staging.iterdir()) and not (output / LOCK).exists()


def test_a_commit_that_fails_part_way_is_rolled_back_at_once(spark, tmp_path, monkeypatch):
    output = str(tmp_path)
    second = _published_then_staged(spark, tmp_path)
    published = {t: _tree_digest(tmp_path / t) for t in ("segments", "profiles", "runs")}
    real_rename, calls = filesystem.rename, []

    def refuse_the_fourth(spark_, source, target):  # e.g. an object store's copy failing mid-commit
        calls.append(source)
        if len(calls) == 4:
            raise OSError(f"could not move {source} to {target}")
        real_rename(spark_, source, target)

    monkeypatch.setattr(filesystem, "rename", refuse_the_fourth)
    with pytest.raises(OSError, match="could not move"):
        second.commit(last="runs")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert len(calls) > 4  # the roll-back moved things back
    assert {t: _tree_digest(tmp_path / t) for t in published} == published  # as it was, with no later run
    assert not (tmp_path / "_staging" / "run-two" / JOURNAL).exists()
    kept = Path(second.fail().removeprefix("file:"))  # the staged outputs go aside for inspection, whole
    assert _rows(spark, kept / "segments") == _rows(spark, kept / "profiles") != _rows(spark, tmp_path / "segments")
    assert json.loads((kept / "runs" / "run_date=2011-12-09" / "metrics.json").read_text()) == {"new": True}
    assert recover_interrupted_commits(spark, output) == []


def test_a_model_switch_killed_between_its_moves_still_names_a_model(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "CURRENT")
    filesystem.replace_text(spark, path, "v1\n")
    real_rename = filesystem.rename

    def die_on_the_second(spark_, source, target):
        if source.endswith(".tmp"):
            raise KeyboardInterrupt("killed")  # after the old file moved aside, before the new one moved in
        real_rename(spark_, source, target)

    monkeypatch.setattr(filesystem, "rename", die_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        filesystem.replace_text(spark, path, "v2\n")
    monkeypatch.setattr(filesystem, "rename", real_rename)
    assert not (tmp_path / "CURRENT").exists() and filesystem.read_replaced_text(spark, path) == "v1\n"
    filesystem.replace_text(spark, path, "v2\n")
    assert filesystem.read_replaced_text(spark, path) == "v2\n" and sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["CURRENT"]


# --- one run per output -----------------------------------------------------------------------


def _written_json(path):
    """The file's JSON once it is all there; None while it is missing, empty or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_a_second_run_on_an_output_in_use_stops_before_touching_it(spark, tmp_path):
    output = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "insiders_spark.cli", "run", "--env", "test", "--output", str(output),
         "--synthetic-lines", str(SYNTHETIC_LINES), "--run-date", "2011-12-09"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    lock = output / LOCK
    try:
        deadline = time.monotonic() + 120
        # the lock exists before its holder has written it (create, then write): wait for the whole of it
        while (holder := _written_json(lock)) is None:
            assert process.poll() is None and time.monotonic() < deadline, "the first run never took the output"
            time.sleep(0.1)
        assert holder["pid"] == process.pid and holder["purpose"] == "insiders-spark run (train-and-score)"
        with pytest.raises(OutputInUseError, match=rf"pid {process.pid}\).*delete {re.escape(str(lock))}"):
            run(spark, _config(output), run_date=dt.date(2011, 12, 10))
        _, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert not lock.exists()  # released at the end
    assert (output / "runs" / "run_date=2011-12-09" / "_SUCCESS").exists()
    assert not (output / "runs" / "run_date=2011-12-10").exists()  # the refused run wrote nothing


def test_a_lock_left_by_a_dead_process_here_is_taken_over_but_not_one_from_elsewhere(spark, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = output / LOCK
    here = {"token": "t", "purpose": "insiders-spark run (score)", "host": socket.gethostname(), "pid": gone.pid}
    lock.write_text(json.dumps({**here, "host": "another-machine"}))
    with pytest.raises(OutputInUseError, match="another-machine"):
        with output_lock(spark, str(output), "test"):
            pass
    assert json.loads(lock.read_text())["host"] == "another-machine"  # not ours to take
    lock.write_text(json.dumps(here))
    with output_lock(spark, str(output), "test") as mine:
        assert json.loads(lock.read_text())["token"] == mine["token"] != "t"
        with pytest.raises(OutputInUseError, match=rf"test on .* \(pid {os.getpid()}\)"):
            with output_lock(spark, str(output), "a second holder"):
                pass
    assert not lock.exists()


def test_a_train_run_refuses_a_run_date_with_published_segments(spark, trained):
    output, _ = trained
    run(spark, _config(output), as_of=dt.date(2011, 11, 9), mode="score")
    published = {t: _tree_digest(output / t) for t in ("segments", "profiles", "rules", "runs", "models")}
    with pytest.raises(RunFailedError, match="run date 2011-11-09 already has published segments"):
        run(spark, _config(output), as_of=dt.date(2011, 11, 9), mode="train")
    assert {t: _tree_digest(output / t) for t in published} == published
    assert not (output / LOCK).exists()


def test_a_score_run_whose_customers_all_land_in_one_cluster_reports_the_miss_not_a_crash(spark, trained, tmp_path):
    """MLlib refuses a silhouette over one cluster; a small score run (one customer here) must
    still publish, with the silhouette recorded as 0 and the miss in the quality verdict."""
    output, trained_result = trained
    scored = tmp_path / "out"
    shutil.copytree(output / "models", scored / "models")
    log = tmp_path / "one_customer.csv"
    log.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART,6,2011-03-01 10:00:00,2.55,17850,United Kingdom\n"
        "536366,71053,WHITE METAL LANTERN,2,2011-05-02 11:00:00,3.39,17850,United Kingdom\n"
    )
    result = run(spark, _config(scored, **{"input.path": str(log)}), mode="score")
    segments = read_partition(spark, str(scored), "segments", result.run_date.isoformat())
    assert [r.customer_id for r in segments.select("customer_id").collect()] == [17850]
    assert result.metrics["clustering"]["silhouette"] == 0.0
    assert any(f.startswith("silhouette") for f in result.metrics["quality"]["failures"])
    assert result.metrics["model_version"] == trained_result.metrics["model_version"]


def test_a_date_run_again_without_quarantined_lines_drops_its_earlier_quarantine(spark, trained, tmp_path):
    output, _ = trained
    scored = tmp_path / "out"
    shutil.copytree(output / "models", scored / "models")
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    good = "536365,85123A,WHITE HANGING HEART,6,2011-03-01 10:00:00,2.55,17850,United Kingdom\n"
    dirty, clean = tmp_path / "dirty.csv", tmp_path / "clean.csv"
    dirty.write_text(header + good + "536366,POST,POSTAGE,1,2011-03-01 10:00:00,18.00,17850,United Kingdom\n")
    clean.write_text(header + good)
    tolerant = {"quarantine.max_share": 1.0, "quarantine.max_share_by_reason": {"non_product_code": 1.0}}
    first = run(spark, _config(scored, **{"input.path": str(dirty), **tolerant}), mode="score")
    partition = scored / "quarantine" / f"run_date={first.run_date}"
    assert first.metrics["rows"]["quarantined"] == {"non_product_code": 1} and partition.is_dir()
    again = run(spark, _config(scored, **{"input.path": str(clean)}), mode="score", run_date=first.run_date)
    assert again.metrics["rows"]["quarantined_total"] == 0
    assert not partition.exists()  # yesterday's reject list is not left next to today's clean run


def test_model_versions_of_one_as_of_date_sort_in_training_order():
    as_of = dt.date(2011, 12, 9)
    earlier = new_version(as_of, "2011-12-09_20261129T020000Z_ffffffff")
    later = new_version(as_of, "2011-12-09_20261129T030000Z_00000000")
    assert earlier < later and earlier.startswith("20111209-")


def test_a_score_run_with_another_model_than_the_previous_segments_says_so(spark, trained, tmp_path, caplog):
    output, trained_result = trained
    scored = tmp_path / "out"
    shutil.copytree(output / "models", scored / "models")
    first = trained_result.metrics["model_version"]
    use_version(spark, str(scored), first)
    run(spark, _config(scored), as_of=dt.date(2011, 10, 9), mode="score")
    retrained = run(spark, _config(scored, **{"job.seed": 3}), as_of=dt.date(2011, 11, 9), mode="train")
    result = run(spark, _config(scored), as_of=dt.date(2011, 12, 9), mode="score")
    second = retrained.metrics["model_version"]
    assert result.metrics["model_version"] == second != first
    assert result.metrics["previous_segments"] == {"run_date": "2011-10-09", "model_version": first}
    assert f"were assigned by model {first}, today's by model {second}" in caplog.text
