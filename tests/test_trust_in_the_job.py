"""Issue 7 through the job's own command line: --k auto, stability, rules, reasons, control group,
backtest; what lands in the outputs and the manifest (the pieces are tested in their own files)."""

import json

import pytest
from pyspark.sql import functions as F

from insiders_spark.cli import EXIT_OK, main
from insiders_spark.core.schemas import SEGMENTS_SCHEMA
from insiders_spark.model.explain import RULES_SCHEMA

LINES = 40_000
GRID = (7, 8, 9)


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("trust")
    env = {
        "INSIDERS_SPARK__SYNTHETIC__CHUNK_LINES": "10000",
        "INSIDERS_SPARK__CLUSTERING__K_GRID": "[7, 8, 9]",
        "INSIDERS_SPARK__QUALITY__STABILITY_SEEDS": "1",
        "INSIDERS_SPARK__QUALITY__STABILITY_BOOTSTRAPS": "2",
        "INSIDERS_SPARK__CONTROL__SCOPE": "all",
        "INSIDERS_SPARK__CONTROL__SHARE": "0.25",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        status = main(
            [
                "run", "--env", "test", "--output", str(output), "--synthetic-lines", str(LINES),
                "--k", "auto", "--backtest-horizon", "60",
            ]
        )
    assert status == EXIT_OK
    (manifest_path,) = output.glob("runs/run_date=*/manifest.json")
    return output, json.loads(manifest_path.read_text())


def _table(spark, output, name):
    return spark.read.parquet(str(output / name)).drop("run_date")


def test_k_auto_scores_the_grid_and_fits_the_chosen_k(auto_run):
    _, manifest = auto_run
    selection = manifest["k_selection"]
    assert [row["k"] for row in selection["grid"]] == list(GRID)
    assert selection["seeds"] == 1 and selection["bootstraps"] == 2
    qualifying = [row["k"] for row in selection["grid"] if row["meets_targets"]]
    # the rule: the smallest qualifying k, else the configured k (9)
    assert selection["chosen"] == (min(qualifying) if qualifying else 9)
    assert selection["fallback"] == (not qualifying)
    assert manifest["clustering"]["k"] == selection["chosen"]
    assert len(manifest["clusters"]) == selection["chosen"]


def test_the_manifest_holds_the_quality_verdict_and_the_stability(auto_run):
    _, manifest = auto_run
    quality = manifest["quality"]
    stability = quality["stability"]
    assert stability is not None and stability["k"] == manifest["clustering"]["k"]
    chosen = next(r for r in manifest["k_selection"]["grid"] if r["k"] == manifest["clustering"]["k"])
    assert stability["ari"]["min"] == pytest.approx(chosen["ari_min"], abs=1e-4)
    silhouette = quality["silhouette"]
    assert silhouette["distance"] == "squaredEuclidean"
    assert silhouette["mllib"] == pytest.approx(manifest["clustering"]["silhouette"], abs=1e-4)
    assert 0 < silhouette["sample_rows"] <= 2_000 and silhouette["sample"] is not None
    # the verdict lists exactly the misses, and meets_targets is their absence
    assert quality["meets_targets"] == (not quality["failures"])
    insiders = manifest["insiders"]
    too_many = insiders["customer_share"] > quality["targets"]["insiders_max_share"]
    assert too_many == any("of customers >" in f for f in quality["failures"])


def test_segments_carry_reasons_and_a_stable_control_flag(spark, auto_run):
    output, _ = auto_run
    segments = _table(spark, output, "segments")
    assert [f.name for f in segments.schema.fields] == [f.name for f in SEGMENTS_SCHEMA.fields]
    counts = segments.agg(
        F.count(F.lit(1)).alias("customers"),
        F.count_if(F.size("top_features") < 1).alias("without_reasons"),
        F.count_if(F.size("top_features") > 3).alias("too_many_reasons"),
        F.count_if("is_control").alias("control"),
    ).first()
    assert counts["without_reasons"] == 0 and counts["too_many_reasons"] == 0
    # scope "all", share 25%: a hash draw, so about a quarter (binomial, > 6 sigma margin)
    assert abs(counts["control"] / counts["customers"] - 0.25) < 0.1


def test_every_customer_matches_exactly_one_rule_and_it_is_its_leafs(spark, auto_run):
    output, _ = auto_run
    rules = _table(spark, output, "rules")
    assert [f.name for f in rules.schema.fields] == [f.name for f in RULES_SCHEMA.fields]
    rows = rules.collect()  # one row per leaf: bounded by the tree
    segments = _table(spark, output, "segments")
    matched = segments.select(
        "leaf",
        "cluster",
        *[F.when(F.expr(r["predicate"]), F.lit(r["leaf"])).alias(f"rule_{r['leaf']}") for r in rows],
    )
    rule_columns = [c for c in matched.columns if c.startswith("rule_")]
    checked = matched.select(
        "leaf",
        "cluster",
        F.size(F.filter(F.array(*rule_columns), lambda x: x.isNotNull())).alias("matches"),
        F.coalesce(*rule_columns).alias("rule_leaf"),
    )
    wrong = checked.where((F.col("matches") != 1) | (F.col("rule_leaf") != F.col("leaf"))).count()
    assert wrong == 0
    by_leaf = {r["leaf"]: r for r in rows}
    for row in segments.groupBy("leaf", "cluster").count().collect():
        assert by_leaf[row["leaf"]]["cluster"] == row["cluster"]
        assert by_leaf[row["leaf"]]["customers"] == row["count"]


def test_the_backtest_lands_in_its_table_the_manifest_and_the_report(spark, auto_run):
    output, manifest = auto_run
    backtest = manifest["backtest"]
    assert backtest["horizon_days"] == 60
    assert backtest["insiders"]["k"] == manifest["k_selection"]["chosen"]  # the k the run chose, not the configured one
    curve = _table(spark, output, "backtest")
    shares = {(r["scorer"], round(r["head_count_share"], 4)): r["revenue_share"] for r in curve.collect()}  # bounded
    for share in (0.05, 0.10, 0.20):
        baseline, foresight = shares[("baseline", share)], shares[("foresight", share)]
        assert baseline <= foresight + 1e-12  # nothing beats perfect foresight
        assert shares[("segments", share)] <= foresight + 1e-12
    (report,) = output.glob("report/run_date=*/report.md")
    text = report.read_text()
    for heading in ("## Quality targets", "## Stability", "## Choice of k", "## Why a customer is in a cluster",
                    "## Proof of value (backtest)"):
        assert heading in text
    assert list(output.glob("report/run_date=*/backtest_capture.png"))
