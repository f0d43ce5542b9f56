"""The whole job once on its embedded synthetic log (``base_run``): every output, its contract, and
its numbers against independent expectations: the pandas oracle of the log, and the published
segments aggregated again by Spark (profiles, shares and the report come from the leaf table)."""

from __future__ import annotations

import csv
import io
import subprocess

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.names import FEATURE_COLUMNS, WAITING_LIST
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA, QUARANTINE_SCHEMA, SEGMENTS_SCHEMA
from insiders_spark.model.explain import RULES_SCHEMA
from insiders_spark.model.profiles import PROFILE_SCHEMA
from insiders_spark.model.silhouette import silhouette
from insiders_spark.model.store import load
from tests import support
from tests.jobs import LINES

K = 9  # the study's k, the test profile's


@pytest.fixture(scope="module")
def segments(spark, base_run):
    return base_run.table(spark, "segments").cache()


@pytest.fixture(scope="module")
def clusters(segments) -> dict:
    """Per cluster, from the published segments: customers, revenue and every feature's mean, its
    segment (cluster 1's waiting list counted in it, under cluster 1's name) and whether its
    customers are Insiders (any of them: the programme may take only part of cluster 1)."""
    rows = (
        segments.groupBy("cluster")
        .agg(
            F.min(F.when(~F.col("segment").endswith(f"({WAITING_LIST})"), F.col("segment"))).alias("segment"),
            F.max("is_insider").alias("is_insider"),
            F.count(F.lit(1)).alias("customers"),
            F.sum("gross_revenue").alias("revenue_total"),
            *[F.avg(name).alias(f"{name}_mean") for name in FEATURE_COLUMNS],
        )
        .collect()
    )
    return {row["cluster"]: row.asDict() for row in rows}


@pytest.fixture(scope="module")
def insiders(segments) -> dict:
    """The programme's members, from the published segments: customers and revenue."""
    row = segments.where("is_insider").agg(F.count(F.lit(1)).alias("customers"), F.sum("gross_revenue")).first()
    return {"customers": row[0], "revenue_total": row[1]}


def test_every_output_is_published_with_its_contract(spark, base_run):
    output, date = base_run.output, base_run.run_date
    for table, schema in (
        ("segments", SEGMENTS_SCHEMA), ("profiles", PROFILE_SCHEMA), ("rules", RULES_SCHEMA),
        ("quarantine", QUARANTINE_SCHEMA),
    ):  # fmt: skip
        frame = base_run.table(spark, table)
        assert [f.name for f in frame.schema.fields] == [f.name for f in schema.fields], table
        assert [f.dataType for f in frame.schema.fields] == [f.dataType for f in schema.fields], table
    for name in ("report.md", "revenue_by_cluster.png", "profiles.csv"):
        assert (support.partition(output, "report", date) / name).stat().st_size > 0
    assert sorted(p.name for p in support.partition(output, "runs", date).iterdir() if not p.name.startswith(".")) == [
        "_SUCCESS", "manifest.json", "metrics.json",
    ]  # fmt: skip
    version = base_run.manifest()["model_version"]
    assert (output / "models" / "CURRENT").read_text().strip() == version
    assert not (output / "backtest").exists()  # no backtest asked for
    assert not (output / "_RUNNING.json").exists() and not (output / "_staging").exists()
    assert base_run.manifest()["outputs"] == {
        name: str(path)
        for name, path in {
            "quarantine": support.partition(output, "quarantine", date),
            "model": output / "models" / version,
            "segments": support.partition(output, "segments", date),
            "profiles": support.partition(output, "profiles", date),
            "rules": support.partition(output, "rules", date),
            "report": support.partition(output, "report", date),
            "runs": support.partition(output, "runs", date) / "manifest.json",
        }.items()
    }


def test_every_line_and_customer_is_accounted_for_as_the_oracle_counts(base_run, synthetic_outcomes):
    expected, manifest = synthetic_outcomes, base_run.manifest()
    rows = manifest["rows"]
    assert (rows["input"], rows["kept"], rows["after_as_of"]) == (LINES, expected.kept, 0)
    assert rows["quarantined"] == expected.quarantined and rows["quarantined_total"] == sum(
        expected.quarantined.values()
    )
    assert manifest["customers"] == {
        "with_kept_lines": expected.customers_with_kept_lines,
        "segmented": expected.segmented,
        "returns_only": expected.returns_only,
        "guests": expected.guests,
    }
    assert manifest["features"]["gross_revenue_total"] == pytest.approx(expected.revenue, abs=0.01)
    assert manifest["as_of"] == manifest["run_date"] == expected.last_kept_date.isoformat()
    assert manifest["as_of_source"] == "last invoice date in the cleaned log"
    assert manifest["input"] == {
        "description": f"synthetic(lines={LINES},seed=42)", "format": "synthetic", "files": 0,
        "dataset": {"name": "online_retail", "chosen": "detected from the input's columns"},
        "columns": {
            "invoice_id": "InvoiceNo", "product_id": "StockCode", "description": "Description",
            "quantity": "Quantity", "invoice_date": "InvoiceDate", "unit_price": "UnitPrice",
            "customer_id": "CustomerID", "country": "Country",
        },
        "absent": {"line_amount": "the revenue is unit_price x quantity"},
        "customer_ids": "number", "unused_columns": [], "empty_files": [],
    }  # fmt: skip


def test_the_segments_are_every_segmented_customer_once(segments, synthetic_outcomes):
    counts = segments.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("customer_id").alias("customers"),
        F.sum("gross_revenue").alias("revenue"),
        F.count_if(F.col("cluster").isNull() | F.col("segment").isNull()).alias("unassigned"),
    ).first()
    assert counts["rows"] == counts["customers"] == synthetic_outcomes.segmented
    assert counts["revenue"] == pytest.approx(synthetic_outcomes.revenue, abs=0.01)
    assert counts["unassigned"] == 0


def test_the_insiders_are_cluster_one_with_the_highest_mean_revenue(segments, clusters, insiders, base_run):
    assert sorted(clusters) == list(range(1, K + 1))
    means = [clusters[c]["gross_revenue_mean"] for c in sorted(clusters)]
    assert means == sorted(means, reverse=True)
    assert {c: row["is_insider"] for c, row in clusters.items()} == {c: c == 1 for c in clusters}
    assert clusters[1]["segment"] == "Insiders" and len({row["segment"] for row in clusters.values()}) == K
    total = sum(row["customers"] for row in clusters.values())
    revenue = sum(row["revenue_total"] for row in clusters.values())
    # the programme: cluster 1's customers up to 10% of everyone (segments.programme_share), no more
    cap = int(base_run.config.segments.programme_share * total)
    assert insiders["customers"] == min(clusters[1]["customers"], cap)
    assert segments.where("is_insider AND cluster != 1").count() == 0
    waiting = segments.where(F.col("segment") == f"Insiders ({WAITING_LIST})")
    assert waiting.where("is_insider OR cluster != 1").count() == 0
    assert waiting.count() == clusters[1]["customers"] - insiders["customers"]
    published = base_run.manifest()["insiders"]
    assert published["customers"] == insiders["customers"]
    assert published["customer_share"] == pytest.approx(insiders["customers"] / total, abs=5e-5)
    assert published["revenue_share"] == pytest.approx(insiders["revenue_total"] / revenue, abs=5e-5)
    # first run on this output: every Insider since today, none kept by hysteresis; nobody in
    # the control group outside the Insiders (scope insiders)
    history = segments.agg(
        F.count_if(F.col("is_insider") & (F.col("insider_since") != F.lit(base_run.run_date).cast("date"))),
        F.count_if(~F.col("is_insider") & F.col("insider_since").isNotNull()),
        F.count_if(F.col("is_insider") & (F.col("runs_outside_insiders") != 0)),
        F.count_if(F.col("is_control") & ~F.col("is_insider")),
    ).first()
    assert list(history) == [0, 0, 0, 0]


def test_the_profiles_are_the_segments_clusters(spark, base_run, clusters):
    profiles = {r.cluster: r for r in base_run.table(spark, "profiles").collect()}
    total = sum(row["customers"] for row in clusters.values())
    revenue = sum(row["revenue_total"] for row in clusters.values())
    assert sorted(profiles) == sorted(clusters)
    for cluster, expected in clusters.items():
        profile = profiles[cluster]
        assert (profile.segment, profile.is_insider, profile.customers) == (
            expected["segment"], expected["is_insider"], expected["customers"],
        )  # fmt: skip
        assert profile.customer_share == pytest.approx(expected["customers"] / total)
        assert profile.revenue_total == pytest.approx(expected["revenue_total"], rel=1e-9)
        assert profile.revenue_share == pytest.approx(expected["revenue_total"] / revenue, rel=1e-9)
        for name in FEATURE_COLUMNS:
            assert getattr(profile, f"{name}_mean") == pytest.approx(expected[f"{name}_mean"], rel=1e-9), name


def test_profiles_csv_is_the_segments_clusters(base_run, clusters):
    text = (support.partition(base_run.output, "report", base_run.run_date) / "profiles.csv").read_text()
    rows = {int(r["cluster"]): r for r in csv.DictReader(io.StringIO(text))}
    assert sorted(rows) == sorted(clusters)
    for cluster, expected in clusters.items():
        row = rows[cluster]
        assert (row["segment"], row["is_insider"], int(row["customers"])) == (
            expected["segment"], str(expected["is_insider"]), expected["customers"],
        )  # fmt: skip
        assert float(row["revenue_total"]) == pytest.approx(expected["revenue_total"], rel=1e-9)
        for name in FEATURE_COLUMNS:
            assert float(row[f"{name}_mean"]) == pytest.approx(expected[f"{name}_mean"], rel=1e-9), name


def test_the_report_page_states_the_runs_numbers(base_run, clusters, synthetic_outcomes):
    page = (support.partition(base_run.output, "report", base_run.run_date) / "report.md").read_text()
    expected = synthetic_outcomes
    set_aside = sum(expected.quarantined.values())
    assert page.startswith(f"# Insiders report, run date {base_run.run_date}\n")
    assert (
        f"from `synthetic(lines={LINES},seed=42)` ({LINES:,} lines read, {expected.kept:,} kept, "
        f"{set_aside:,} set aside, 0 after the as-of date)" in page
    )
    assert f"{expected.segmented:,} customers segmented ({expected.returns_only:,} with returns only left out)" in page
    total = sum(row["customers"] for row in clusters.values())
    for cluster, row in clusters.items():
        assert (
            f"| {cluster} | {row['segment']} | {row['customers']:,} | {row['customers'] / total:.1%} | "
            f"{row['gross_revenue_mean']:,.2f} | {row['recency_days_mean']:.1f} | {row['qty_products_mean']:.1f} |"
        ) in page, cluster
    for heading in ("## Segments", "## Quality targets", "## Silhouette", "## Why a customer is in a cluster"):
        assert heading in page
    assert "## Stability" not in page and "## Choice of k" not in page and "## Proof of value" not in page
    assert "| stability" not in page  # not measured: no row claims it


def test_every_customer_matches_exactly_one_rule_and_it_is_its_leafs(spark, base_run, segments):
    rules = base_run.table(spark, "rules").collect()  # one row per leaf: bounded by the tree
    matched = segments.select(
        "leaf", *[F.when(F.expr(r["predicate"]), F.lit(r["leaf"])).alias(f"rule_{r['leaf']}") for r in rules]
    )
    columns = [c for c in matched.columns if c.startswith("rule_")]
    checked = matched.select(
        "leaf",
        F.size(F.filter(F.array(*columns), lambda x: x.isNotNull())).alias("matches"),
        F.coalesce(*columns).alias("rule_leaf"),
    )
    assert checked.where((F.col("matches") != 1) | (F.col("rule_leaf") != F.col("leaf"))).count() == 0
    by_leaf = {r["leaf"]: r for r in rules}
    # a leaf's customers may be split between the Insiders and cluster 1's waiting list: its rule names the cluster
    for row in segments.groupBy("leaf", "cluster").agg(F.count(F.lit(1)).alias("count"), F.min("segment")).collect():
        rule = by_leaf[row["leaf"]]
        assert (rule["cluster"], rule["segment"], rule["customers"]) == (row["cluster"], row[3], row["count"])
    assert all(r["precision"] == 1.0 for r in rules)


def test_every_customer_carries_its_leafs_top_reasons(segments):
    per_leaf = segments.groupBy("leaf").agg(
        F.count_distinct(F.to_json("top_features")).alias("variants"),
        F.min(F.size("top_features")).alias("fewest"),
        F.max(F.size("top_features")).alias("most"),
    )
    for row in per_leaf.collect():
        assert row["variants"] == 1 and 1 <= row["fewest"] <= row["most"] <= 3, row


def test_the_recorded_silhouette_is_mllibs_over_every_customer(spark, base_run, segments):
    """Recomputed from the published segments and the saved model: MLlib's ClusteringEvaluator over
    every customer, where the run computed it exactly from its leaf table."""
    model, _ = load(spark, str(base_run.output))
    features = segments.select(*[f.name for f in CUSTOMER_FEATURES_SCHEMA.fields])
    measured = silhouette(model.embed(features))
    manifest = base_run.manifest()
    assert manifest["clustering"]["silhouette"] == pytest.approx(measured, abs=5e-5)
    assert manifest["quality"]["silhouette"]["mllib"] == pytest.approx(measured, abs=5e-5)


def test_the_quality_verdict_names_every_target_missed(base_run, clusters, insiders):
    """The verdict against the targets of base.toml, each measured again from the segments."""
    manifest = base_run.manifest()
    total = sum(row["customers"] for row in clusters.values())
    revenue = sum(row["revenue_total"] for row in clusters.values())
    measured = {
        "silhouette": (manifest["clustering"]["silhouette"] < 0.75),  # checked against MLlib above
        "smallest cluster": min(row["customers"] for row in clusters.values()) / total < 0.01,
        f"Insiders {insiders['customers'] / total:.1%} of customers": insiders["customers"] / total > 0.10,
        f"Insiders {insiders['revenue_total'] / revenue:.1%} of revenue": insiders["revenue_total"] / revenue < 0.50,
    }
    expected = [start for start, missed in measured.items() if missed] + ["stability not measured"]
    quality = manifest["quality"]
    assert [f[: len(start)] for f, start in zip(quality["failures"], expected, strict=True)] == expected
    assert quality["meets_targets"] is False and quality["stability"] is None  # the test profile: stability off
    assert quality["targets"]["insiders_max_share"] == 0.10


def test_the_manifest_says_where_and_with_what_it_ran(spark, base_run):
    manifest = base_run.manifest()
    assert manifest["mode"] == "train-and-score" and manifest["previous_model_version"] is None
    assert manifest["config"] == base_run.config.to_dict() and manifest["input_files"] == []
    assert manifest["spark"]["master"] == "local[2]" and manifest["spark"]["executor_ids"] == []
    assert manifest["versions"]["spark"] == spark.version
    assert set(manifest["durations_s"]) >= {"read and aggregate", "quarantine", "segmentation", "silhouette", "write"}
    head = subprocess.run(["git", "-C", str(support.PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert manifest["code_version"]["git_commit"] == head.stdout.strip()


def test_the_quarantine_holds_what_the_rules_set_aside(spark, base_run, synthetic_outcomes):
    quarantine = base_run.table(spark, "quarantine")
    by_reason = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()}
    assert by_reason == synthetic_outcomes.quarantined
    sources = {r["source_file"] for r in quarantine.select("source_file").distinct().collect()}
    assert sources == {f"synthetic(lines={LINES},seed=42)"}
