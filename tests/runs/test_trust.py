"""Issue 7 through the job's own command line (``trust_run``, tests/jobs.py): ``--k auto`` with
stability, the control group over everyone, a backtest, and the Insiders named "VIP"; what lands
in the outputs, the manifest and the report. Then the same date scored again with a backtest the
log cannot support: reported, not fatal, and the earlier curve goes with the run it measured."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from tests import support
from tests.jobs import LINES, TRUST_CONTROL_SHARE, TRUST_GRID, TRUST_HORIZON, TRUST_INSIDERS


def _table(spark, trust_run, name):
    return spark.read.parquet(str(support.partition(trust_run.output, name, trust_run.as_of)))


def test_k_auto_scores_the_grid_and_fits_the_chosen_k(trust_run):
    manifest = trust_run.manifest
    selection = manifest["k_selection"]
    assert [row["k"] for row in selection["grid"]] == list(TRUST_GRID)
    assert (selection["seeds"], selection["bootstraps"]) == (1, 2)
    qualifying = [row["k"] for row in selection["grid"] if row["meets_targets"]]
    # the rule: the smallest qualifying k, else the configured k (9)
    assert selection["chosen"] == (min(qualifying) if qualifying else 9)
    assert selection["fallback"] == (not qualifying)
    for row in selection["grid"]:
        assert row["meets_targets"] == (not row["failures"])
    assert manifest["clustering"]["k"] == selection["chosen"] == len(manifest["clusters"])


def test_the_manifest_holds_the_quality_verdict_and_the_stability(trust_run):
    manifest = trust_run.manifest
    quality = manifest["quality"]
    stability = quality["stability"]
    assert stability is not None and stability["k"] == manifest["clustering"]["k"]
    assert (stability["seed"]["runs"], stability["bootstrap"]["runs"]) == (1, 2) and len(stability["runs"]) == 3
    by_kind = {kind: [run["ari"] for run in stability["runs"] if run["kind"] == kind] for kind in ("seed", "bootstrap")}
    for kind, ari in by_kind.items():  # each kind's spread is that of its own runs
        assert len(ari) == stability[kind]["runs"] and stability[kind]["ari"]["min"] == min(ari), kind
    silhouette = quality["silhouette"]
    assert silhouette["distance"] == "squaredEuclidean"
    assert silhouette["mllib"] == pytest.approx(manifest["clustering"]["silhouette"], abs=1e-4)
    assert 0 < silhouette["sample_rows"] <= 2_000 and silhouette["sample"] is not None
    # the verdict lists exactly the misses, and meets_targets is their absence
    assert quality["meets_targets"] == (not quality["failures"])
    too_many = manifest["insiders"]["customer_share"] > quality["targets"]["insiders_max_share"]
    assert too_many == any("of customers >" in f for f in quality["failures"])
    # the stability targets: every seed run, and the bootstrap refits' 10th percentile
    unstable = stability["bootstrap"]["ari"]["p10"] < quality["targets"]["ari"]
    assert unstable == any(f.startswith("bootstrap ARI p10") for f in quality["failures"])
    unsteady = stability["seed"]["ari"]["min"] < quality["targets"]["ari"]
    assert unsteady == any(f.startswith("seed runs: stability ARI") for f in quality["failures"])


def test_the_custom_insiders_name_reaches_every_output(spark, trust_run):
    segments = _table(spark, trust_run, "segments")
    names = {(r.cluster, r.segment) for r in segments.select("cluster", "segment").distinct().collect()}
    waiting = f"{TRUST_INSIDERS} (waiting list)"  # cluster 1 beyond the programme's size, under the same name
    assert (1, TRUST_INSIDERS) in names and not any(
        s.startswith("Insiders") or (s in (TRUST_INSIDERS, waiting)) != (c == 1) for c, s in names
    )
    profiles = _table(spark, trust_run, "profiles").where(F.col("is_insider")).collect()
    assert [(p.cluster, p.segment) for p in profiles] == [(1, TRUST_INSIDERS)]
    rules = _table(spark, trust_run, "rules").where(F.col("cluster") == 1).select("segment").distinct().collect()
    assert [r.segment for r in rules] == [TRUST_INSIDERS]
    assert trust_run.manifest["insiders"]["segment"] == TRUST_INSIDERS
    report = support.partition(trust_run.output, "report", trust_run.as_of)
    assert f"| 1 | {TRUST_INSIDERS} |" in (report / "report.md").read_text()
    assert f'\n1,"{TRUST_INSIDERS}",True,' in (report / "profiles.csv").read_text()


def test_segments_carry_reasons_and_a_control_flag_drawn_from_everyone(spark, trust_run):
    segments = _table(spark, trust_run, "segments")
    assert [f.name for f in segments.schema.fields] == [f.name for f in SEGMENTS_SCHEMA.fields]
    counts = segments.agg(
        F.count(F.lit(1)).alias("customers"),
        F.count_if((F.size("top_features") < 1) | (F.size("top_features") > 3)).alias("wrong_reasons"),
        F.count_if("is_control").alias("control"),
        F.count_if(F.col("is_control") & ~F.col("is_insider")).alias("control_outside_insiders"),
    ).first()
    assert counts["wrong_reasons"] == 0
    # scope "all", share 25%: a hash draw, so about a quarter (binomial: 6 sigma is ~0.11 here)
    assert abs(counts["control"] / counts["customers"] - TRUST_CONTROL_SHARE) < 0.12
    assert counts["control_outside_insiders"] > 0


def test_the_backtest_lands_in_its_table_the_manifest_and_the_report(spark, trust_run):
    manifest = trust_run.manifest
    backtest = manifest["backtest"]
    assert backtest["measured"] is True and backtest["horizon_days"] == TRUST_HORIZON
    assert backtest["insiders"]["k"] == manifest["k_selection"]["chosen"]  # the k the run chose
    shares = {
        (r["scorer"], round(r["head_count_share"], 4)): r["revenue_share"]
        for r in _table(spark, trust_run, "backtest").collect()  # bounded: a few hundred curve points
    }
    scorers = {scorer for scorer, _ in shares}
    assert scorers == {"baseline", "baseline_registered", "foresight", "segments", "future_revenue_tree",
                       "future_revenue_tree_trend", "clv"}  # fmt: skip
    for share in (0.05, 0.10, 0.20):
        foresight = shares[("foresight", share)]
        for scorer in scorers:
            assert shares[(scorer, share)] <= foresight + 1e-12, (scorer, share)  # nothing beats foresight
    report = support.partition(trust_run.output, "report", trust_run.as_of)
    text = (report / "report.md").read_text()
    for heading in ("## Quality targets", "## Stability", "## Choice of k", "## Why a customer is in a cluster",
                    "## Proof of value (backtest)"):  # fmt: skip
        assert heading in text
    assert (report / "backtest_capture.png").read_bytes().startswith(b"\x89PNG")


def test_the_backtest_window_ends_on_the_last_sales_day_up_to_the_as_of_date(trust_run):
    """A nightly run on a day without sales (two days after the log's last invoice): the window
    ends on the last invoice date, not past the log."""
    backtest = trust_run.manifest["backtest"]
    cutoff = trust_run.last_sale - dt.timedelta(days=TRUST_HORIZON)
    assert backtest["window"] == [(cutoff + dt.timedelta(days=1)).isoformat(), trust_run.last_sale.isoformat()]
    assert backtest["cutoff"] == cutoff.isoformat()
    assert trust_run.manifest["as_of"] == trust_run.as_of.isoformat() == trust_run.manifest["run_date"]
    assert trust_run.manifest["as_of_source"] == "given"


def test_a_backtest_that_cannot_be_measured_is_reported_not_fatal(spark, trust_run, tmp_path):
    """The same date scored again with a 400-day horizon (longer than the log): the segments are
    published, the backtest reported as not measured, and the earlier curve of that date goes
    with the run it measured."""
    output = tmp_path / "out"
    shutil.copytree(trust_run.output, output)
    date = trust_run.as_of.isoformat()
    assert support.partition(output, "backtest", date).is_dir()
    done = support.run_cli(
        ["run", "--env", "test", "--output", str(output), "--synthetic-lines", str(LINES), "--as-of", date,
         "--mode", "score", "--backtest-horizon", "400"],
        environ={"INSIDERS_SPARK__SEGMENTS__INSIDERS_NAME": TRUST_INSIDERS},
    )  # fmt: skip
    assert done.status == 0, done.stderr
    assert "backtest not measured: no customer bought anything up to the cut-off" in done.stderr
    manifest = support.read_json(support.partition(output, "runs", date) / "manifest.json")
    assert manifest["backtest"]["measured"] is False
    assert manifest["backtest"]["error"].startswith("no customer bought anything up to the cut-off")
    assert not support.partition(output, "backtest", date).exists()
    assert support.partition(output, "segments", date).is_dir() and manifest["mode"] == "score"
    report = (support.partition(output, "report", date) / "report.md").read_text()
    assert "## Proof of value (backtest)" in report and "Not measured on this run" in report
    assert not (support.partition(output, "report", date) / "backtest_capture.png").exists()
