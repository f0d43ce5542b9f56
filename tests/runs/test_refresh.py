"""The nightly refresh, on one output (``nightly``, tests/jobs.py): a model trained as of
2011-09-09, a retrain with another seed on more data (2011-11-09), a score run with the older,
persisted model (2011-12-09), and a train run refused on a date with published segments. Each
step's outputs are checked against the ones before it and against the partitions themselves."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.names import FEATURE_COLUMNS
from tests import support
from tests.jobs import STORY_HYSTERESIS


def _files(digest: dict[str, str], prefix: str) -> dict[str, str]:
    return {path: sha for path, sha in digest.items() if path.startswith(prefix)}


def _segments(spark, nightly, step):
    return spark.read.parquet(str(support.partition(nightly.output, "segments", nightly.date(step))))


def _insiders(spark, nightly, step) -> set[int]:
    frame = _segments(spark, nightly, step).where(F.col("is_insider")).select("customer_id")
    return {r.customer_id for r in frame.collect()}


# --- train, then score with the persisted model ----------------------------------------------


def test_a_train_run_persists_a_model_and_publishes_no_segments(nightly):
    manifest, digest = nightly.manifests["train"], nightly.digests["train"]
    version = manifest["model_version"]
    assert manifest["mode"] == "train" and manifest["model_trained_as_of"] == "2011-09-09"
    assert (nightly.output / "models" / version / "pipeline" / "metadata").is_dir()  # MLlib's own save format
    description = json.loads((nightly.output / "models" / version / "segmentation.json").read_text())
    assert (description["trained_as_of"], description["run_date"]) == ("2011-09-09", "2011-09-09")
    assert not _files(digest, "segments/") and not _files(digest, "backtest/")
    assert "runs/run_date=2011-09-09/_SUCCESS" in digest and "models/CURRENT" in digest
    assert {"profiles/run_date=2011-09-09", "rules/run_date=2011-09-09", "report/run_date=2011-09-09"} <= {
        path.rsplit("/", 1)[0] for path in digest
    }


def test_a_score_run_uses_the_persisted_model_without_refitting(spark, nightly):
    trained, scored = nightly.manifests["train"], nightly.manifests["score"]
    assert _files(nightly.digests["score"], "models/") == _files(nightly.digests["retrain"], "models/")
    assert scored["mode"] == "score" and scored["model_version"] == trained["model_version"]
    segments = _segments(spark, nightly, "score")
    trained_names = {c["cluster"]: c["segment"] for c in trained["clusters"]}
    published = {(r.cluster, r.segment) for r in segments.select("cluster", "segment").distinct().collect()}
    assert published <= set(trained_names.items())  # the model's own numbers and names
    newcomers = segments.where(F.col("first_purchase_date") > F.lit("2011-09-09").cast("date"))
    assert newcomers.count() > 0 and newcomers.select("cluster").distinct().count() > 1


def test_a_score_runs_profiles_are_todays_customers_in_the_models_clusters(spark, nightly):
    segments = _segments(spark, nightly, "score")
    today = {
        r.cluster: r
        for r in segments.groupBy("cluster")
        .agg(
            F.count(F.lit(1)).alias("customers"),
            F.sum("gross_revenue").alias("revenue"),
            *[F.avg(name).alias(name) for name in FEATURE_COLUMNS],
        )
        .collect()
    }
    profiles = {
        r.cluster: r
        for r in spark.read.parquet(str(support.partition(nightly.output, "profiles", "2011-12-09"))).collect()
    }
    trained = {c["cluster"]: c for c in nightly.manifests["train"]["clusters"]}
    assert set(profiles) == set(trained)  # every trained cluster has a profile, even one nobody is in today
    total = sum(r.customers for r in today.values())
    for cluster, profile in profiles.items():
        seen = today.get(cluster)
        assert profile.segment == trained[cluster]["segment"]
        assert profile.customers == (seen.customers if seen else 0), cluster
        assert profile.customer_share == pytest.approx(profile.customers / total)
        if seen:
            assert profile.revenue_total == pytest.approx(seen.revenue, rel=1e-9)
            for name in FEATURE_COLUMNS:
                assert getattr(profile, f"{name}_mean") == pytest.approx(seen[name], rel=1e-9), name
    assert (
        total == nightly.manifests["score"]["customers"]["segmented"] != sum(c["customers"] for c in trained.values())
    )


# --- retraining: the same groups keep their numbers and names --------------------------------


def test_a_retrained_model_keeps_the_numbers_and_names_of_its_matched_clusters(spark, nightly):
    first, second = nightly.manifests["train"], nightly.manifests["retrain"]
    lineage = second["lineage"]
    assert second["previous_model_version"] == first["model_version"] != second["model_version"]
    previous = {c["cluster"]: c["segment"] for c in first["clusters"]}
    carried = [m for m in lineage["matches"] if m["previous_cluster"] not in (None, 1)]
    assert carried, lineage  # two more months of data and another seed, and still groups to carry over
    for match in carried:
        assert (match["cluster"], match["segment"]) == (match["previous_cluster"], previous[match["previous_cluster"]])
        assert match["jaccard"] >= 0.5
    # the published tables use the carried numbers and names; cluster 1 is still the top revenue
    profiles = spark.read.parquet(str(support.partition(nightly.output, "profiles", "2011-11-09"))).collect()
    assert {(p.cluster, p.segment) for p in profiles} == {(c["cluster"], c["segment"]) for c in second["clusters"]}
    assert sorted(p.cluster for p in profiles) == list(range(1, len(profiles) + 1))
    assert max(profiles, key=lambda p: p.gross_revenue_mean).cluster == 1
    published = {
        (r.cluster, r.segment)
        for r in _segments(spark, nightly, "retrain").select("cluster", "segment").distinct().collect()
    }
    waiting = {(1, f"{p.segment} (waiting list)") for p in profiles if p.cluster == 1}  # beyond the programme's size
    assert published <= {(p.cluster, p.segment) for p in profiles} | waiting
    matched = {m["previous_cluster"] for m in lineage["matches"] if m["previous_cluster"]}
    ended = {g["previous_cluster"] for g in lineage["previous_clusters_without_successor"]}
    assert matched | ended == set(previous) and not matched & ended


def test_a_score_with_another_model_than_the_previous_segments_says_so(nightly):
    retrained, scored = nightly.manifests["retrain"], nightly.manifests["score"]
    first, second = nightly.manifests["train"]["model_version"], retrained["model_version"]
    assert (nightly.output / "models" / "CURRENT").read_text().strip() == second
    assert scored["model_version"] == first  # --model-version, not CURRENT
    assert scored["previous_segments"] == {"run_date": "2011-11-09", "model_version": second}
    assert f"were assigned by model {second}, today's by model {first}" in nightly.runs["score"].stderr


# --- as-of runs: each date its own partition, churn between them -------------------------------


def test_later_runs_leave_earlier_partitions_byte_for_byte(nightly):
    for table in ("segments", "profiles", "rules", "report", "runs"):
        november = _files(nightly.digests["retrain"], f"{table}/run_date=2011-11-09/")
        assert november and _files(nightly.digests["score"], f"{table}/run_date=2011-11-09/") == november, table
    september = _files(nightly.digests["train"], "profiles/run_date=2011-09-09/")
    assert september and _files(nightly.digests["score"], "profiles/run_date=2011-09-09/") == september
    dates = {path.split("/")[1] for path in _files(nightly.digests["score"], "segments/")}
    assert dates == {"run_date=2011-11-09", "run_date=2011-12-09"}


def test_each_runs_lines_are_those_up_to_its_as_of_date(spark, nightly):
    for step in ("train", "retrain", "score"):
        expected, rows = nightly.outcomes(nightly.date(step)), nightly.manifests[step]["rows"]
        assert rows["input"] == len(nightly.raw) + len(nightly.bad), step
        assert (rows["kept"], rows["after_as_of"], rows["quarantined"]) == (
            expected.kept, expected.after_as_of, expected.quarantined,
        ), step  # fmt: skip
        assert nightly.manifests[step]["customers"]["segmented"] == expected.segmented, step
    last = _segments(spark, nightly, "retrain").agg(F.max("last_purchase_date")).first()[0]
    assert last.isoformat() <= "2011-11-09"


def test_a_first_run_with_segments_counts_every_insider_as_entered(spark, nightly):
    churn = nightly.manifests["retrain"]["churn"]  # the train run before it published no segments
    insiders = _insiders(spark, nightly, "retrain")
    assert churn == {"previous_run_date": None, "insiders": len(insiders), "entered": len(insiders), "left": 0,
                     "stayed": 0, "in_grace": 0}  # fmt: skip


@pytest.mark.parametrize(("step", "before"), [("score", "retrain")])
def test_churn_is_what_the_two_partitions_say(spark, nightly, step, before):
    now, then = _insiders(spark, nightly, step), _insiders(spark, nightly, before)
    churn = nightly.manifests[step]["churn"]
    assert churn["previous_run_date"] == nightly.date(before)
    assert (churn["insiders"], churn["entered"], churn["left"], churn["stayed"]) == (
        len(now), len(now - then), len(then - now), len(now & then),
    )  # fmt: skip
    in_grace = _segments(spark, nightly, step).where(F.col("is_insider") & (F.col("cluster") != 1)).count()
    assert churn["in_grace"] == in_grace


def test_an_insider_leaves_after_the_hysteresis_runs_outside_cluster_one(spark, nightly):
    """Recomputed from the partitions: with two runs of hysteresis an Insider who drops out of
    cluster 1 stays an Insider for one run (counted), and leaves on the second."""
    dropped = _check_hysteresis(spark, nightly, "score", "retrain")
    assert dropped > 0  # the older model puts some of the retrained model's Insiders outside cluster 1


def _check_hysteresis(spark, nightly, step: str, before: str) -> int:
    previous = {r.customer_id: r for r in _segments(spark, nightly, before).collect()}
    dropped = 0
    for row in (
        _segments(spark, nightly, step)
        .select("customer_id", "cluster", "is_insider", "insider_since", "runs_outside_insiders")
        .collect()
    ):
        earlier = previous.get(row.customer_id)
        was = bool(earlier and earlier.is_insider)
        outside = 0 if row.cluster == 1 else (earlier.runs_outside_insiders or 0) + 1 if was else 1
        expected = row.cluster == 1 or (was and outside < STORY_HYSTERESIS)
        assert row.is_insider == expected, row
        assert row.runs_outside_insiders == (outside if expected else None), row
        if expected:
            since = earlier.insider_since if was else dt.date.fromisoformat(nightly.date(step))
            assert row.insider_since == since, row
        dropped += was and row.cluster != 1
    return dropped


# --- a train run on a date whose segments another model assigned --------------------------------


def test_a_train_run_refuses_a_run_date_with_published_segments(nightly):
    refused = nightly.runs["refused"]
    assert refused.status == 1
    assert "run date 2011-12-09 already has published segments" in refused.stderr
    assert "Traceback" not in refused.stderr

    def published(digest):
        return {path: sha for path, sha in digest.items() if not path.startswith("failed_runs/")}

    assert published(nightly.digests["refused"]) == published(nightly.digests["score"])
    assert "_RUNNING.json" not in nightly.digests["refused"]


# --- the export's dirty lines ---------------------------------------------------------------


def test_every_bad_line_is_quarantined_with_its_text_file_and_reason(spark, nightly):
    quarantine = spark.read.parquet(str(support.partition(nightly.output, "quarantine", "2011-11-09")))
    rows = quarantine.where(
        F.col("invoice_id").rlike("^(BAD|ACC)") | F.col("raw_line").isNotNull() | F.col("invoice_id").isNull()
        | (F.col("invoice_id") == "InvoiceNo")
    ).collect()  # fmt: skip
    for marker, line, reason in nightly.bad:
        found = [r for r in rows if marker in " ".join(str(v) for v in (r.invoice_id, r.description, r.raw_line))]
        assert [r.reason for r in found] == [reason], marker
        assert found[0].source_file.endswith("/online_retail.dat")
        if found[0].raw_line is not None:  # a line that did not split into fields is kept whole
            assert found[0].raw_line == line
    by_invoice = {r.invoice_id: r for r in rows if r.invoice_id}
    assert by_invoice["BAD04"].unit_price == "1,25"  # the raw text, not a parsed number
    assert by_invoice["ACC01"].description == "THÉ POSTAGE"  # decoded as ISO-8859-1
    assert quarantine.count() == nightly.manifests["retrain"]["rows"]["quarantined_total"]


# --- a date run again ----------------------------------------------------------------------------


def test_a_date_run_again_replaces_only_its_own_partitions(spark, nightly, tmp_path):
    """Two score runs of one small drop on the same date, beside the nightly runs' dates: the first
    sets a line aside and has one customer (a silhouette over one cluster is undefined: recorded as
    0, a miss, not a crash); the second, clean, drops that date's quarantine. The other dates'
    partitions do not move a byte."""
    output = tmp_path / "out"
    shutil.copytree(nightly.output, output)
    before = {p: sha for p, sha in support.tree_digest(output).items() if "run_date=2011-03-01" not in p}
    good = [
        support.csv_line("536365", when="2011-03-01 10:00:00"),
        support.csv_line("536366", code="71053", quantity="2", when="2011-02-01 11:00:00", price="3.39"),
    ]
    dirty = support.write_csv(tmp_path / "dirty.csv", [*good, support.csv_line("536367", code="POST", price="18.0")])
    clean = support.write_csv(tmp_path / "clean.csv", good[:1])
    tolerant = {"INSIDERS_SPARK__QUARANTINE__MAX_SHARE": "1.0",
                "INSIDERS_SPARK__QUARANTINE__MAX_SHARE_BY_REASON": "{ non_product_code = 1.0 }"}  # fmt: skip

    def score(source):
        done = support.run_cli(
            ["run", "--env", "test", "--input", str(source), "--output", str(output), "--mode", "score"],
            environ=tolerant,
        )
        assert done.status == 0, done.stderr
        return support.read_json(support.partition(output, "runs", "2011-03-01") / "manifest.json")

    first = score(dirty)
    assert first["run_date"] == "2011-03-01" and first["rows"]["quarantined"] == {"non_product_code": 1}
    assert support.partition(output, "quarantine", "2011-03-01").is_dir()
    assert first["clustering"]["silhouette"] == 0.0 and first["quality"]["failures"][0].startswith("silhouette")
    assert first["model_version"] == nightly.manifests["retrain"]["model_version"]  # CURRENT
    again = score(clean)
    assert again["rows"]["quarantined_total"] == 0
    assert not support.partition(output, "quarantine", "2011-03-01").exists()  # not left beside a clean run
    segments = spark.read.parquet(str(support.partition(output, "segments", "2011-03-01"))).collect()
    assert [(r.customer_id, r.qty_invoices, r.gross_revenue) for r in segments] == [(17850, 1, 15.3)]
    after = {p: sha for p, sha in support.tree_digest(output).items() if "run_date=2011-03-01" not in p}
    assert after == before
