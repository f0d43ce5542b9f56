"""The programme's size: the Insiders never exceed segments.programme_share of the customers.

The rule on the driver (which leaves, where to cut), as Spark applies it (the boundary customer,
the rule as one expression), on a fitted model, and through a whole run on a log where it binds.
"""

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import ConfigError
from insiders_spark.core.names import CLUSTER, CUSTOMER_ID, GROSS_REVENUE, INSIDER_CONFIDENCE, IS_INSIDER, LEAF, SEGMENT
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA, SEGMENTS_SCHEMA
from insiders_spark.model.embedding import PREDICTED_LABEL
from insiders_spark.model.programme import (
    CUT,
    CUT_KEY,
    FITS,
    CutPlan,
    InsiderRule,
    find_boundaries,
    insider_rule,
    plan_cut,
    programme_cap,
)
from insiders_spark.model.programme_size import size_programme
from insiders_spark.model.segmentation import fit_segmentation
from insiders_spark.runs.runner import run
from insiders_spark.segments.assignment import to_published_segments, waiting_list_name

DAY = dt.date(2011, 12, 9)


# --- the rule on the driver -----------------------------------------------------------------------


def test_the_cap_is_the_share_of_the_customers_rounded_down():
    assert programme_cap(5_695, 0.10) == 569
    assert programme_cap(300, 0.10) == 30  # 0.1 * 300 is 30.000000000000004 in floating point
    assert programme_cap(9, 0.10) == 0


def test_a_top_cluster_within_the_cap_is_not_cut():
    assert plan_cut({1: 10, 2: 20, 3: 5}, {1: 3.0, 2: 2.0, 3: 1.0}, [1, 2], cap=30) is None


def test_leaves_go_in_by_predicted_value_and_the_first_that_overflows_is_split():
    customers = {1: 10, 2: 20, 3: 15, 4: 40}
    values = {1: 5.0, 2: 7.0, 3: 6.0, 4: 9.0}
    # by value: 4 (40), 2 (20), 3 (15), 1 (10); the cap of 66 takes 4 and 2 whole, 6 of leaf 3
    assert plan_cut(customers, values, [1, 2, 3, 4], cap=66) == CutPlan(frozenset({4, 2}), 3, 6)
    # whole leaves that fill it exactly: no boundary leaf
    assert plan_cut(customers, values, [1, 2, 3, 4], cap=60) == CutPlan(frozenset({4, 2}), None, 0)
    # the most valuable leaf alone is larger than the cap: it is split
    assert plan_cut(customers, values, [1, 2, 3, 4], cap=12) == CutPlan(frozenset(), 4, 12)
    # equal values: the lower leaf index first
    assert plan_cut({1: 5, 2: 5}, {1: 1.0, 2: 1.0}, [2, 1], cap=7) == CutPlan(frozenset({1}), 2, 2)


def test_the_share_is_checked_at_start_up():
    with pytest.raises(ConfigError, match=r"segments\.programme_share = 1\.5: expected a share between 0 and 1"):
        load_config(env="test", overrides={"segments.programme_share": 1.5})
    with pytest.raises(ConfigError, match=r"segments\.programme_share = 0\.0: the programme needs room"):
        load_config(env="test", overrides={"segments.programme_share": 0.0})
    assert load_config(env="test").segments.programme_share == 0.10


# --- as Spark applies it --------------------------------------------------------------------------


@pytest.mark.spark
def test_the_boundary_is_found_by_revenue_then_id_and_the_rule_admits_exactly_those(spark):
    rows = [  # (customer, leaf, revenue): leaf 3 has a tie at 50.0
        (1, 3, 90.0),
        (2, 3, 50.0),
        (3, 3, 50.0),
        (4, 3, 20.0),
        (5, 7, 500.0),
        (6, 7, 400.0),
        (7, 1, 999.0),
    ]
    frame = spark.createDataFrame(rows, f"{CUSTOMER_ID} long, {LEAF} int, {GROSS_REVENUE} double")
    keyed = frame.select(F.lit(0).alias(CUT_KEY), LEAF, GROSS_REVENUE, CUSTOMER_ID)
    found = find_boundaries(keyed, {0: CutPlan(frozenset({7}), 3, 2)}, flag=f"{CUSTOMER_ID} = 2")
    assert (found[0].revenue, found[0].customer_id) == (50.0, 2)  # the tie goes to the lower id
    assert found[0].admitted_revenue == 140.0 and found[0].admitted_flagged == 1
    rule = insider_rule([3, 7], CutPlan(frozenset({7}), 3, 2), found[0])
    assert rule == InsiderRule(frozenset({7}), 3, 50.0, 2)
    admitted = {r[CUSTOMER_ID] for r in frame.where(rule.contains(f"`{LEAF}`")).collect()}
    assert admitted == {5, 6, 1, 2}
    assert {r[CUSTOMER_ID] for r in frame.where(InsiderRule(frozenset({1})).contains(LEAF)).collect()} == {7}
    assert frame.where(InsiderRule(frozenset()).contains(LEAF)).count() == 0


def _tiers(spark):
    """Three revenue tiers, the top one 40% of the customers, with revenue spread inside it."""
    rows, customer = [], 0
    for tier, (size, items, revenue) in enumerate([(60, 10, 20.0), (60, 100, 300.0), (80, 1000, 5000.0)]):
        for i in range(size):
            spend = revenue * (1 + i / size)
            rows.append((customer, None, False, spend, 10, tier + 1, items, 5, 0.5, 0, 1.0, DAY, DAY))
            customer += 1
    return spark.createDataFrame(rows, CUSTOMER_FEATURES_SCHEMA).cache()


@pytest.mark.spark
def test_the_programme_takes_cluster_1s_most_valuable_customers(spark, test_config, tmp_path):
    config = dataclasses.replace(
        test_config,
        embedding=dataclasses.replace(test_config.embedding, max_depth=2, min_leaf_share=0.05),
        segments=dataclasses.replace(test_config.segments, programme_share=0.10),
    )
    features = _tiers(spark)
    model, clustered = fit_segmentation(features, config=config, customers=200, k=3, seed=1)
    assert model.profiles[0].customers == 80  # cluster 1: 40% of the customers
    programme = size_programme(model, clustered, insiders_cluster=model.profiles[0].kmeans_cluster, share=0.10)
    assert programme.binding and programme.step == CUT and programme.cap == 20
    assert programme.insiders.customers == 20 and programme.cluster.customers == 80
    assert programme.insiders.revenue_share < programme.cluster.revenue_share
    described = programme.describe()
    assert described["cost"]["silhouette"] == 0.0
    assert described["cost"]["insiders_revenue_share"] == pytest.approx(
        programme.cluster.revenue_share - programme.insiders.revenue_share, abs=1e-4
    )

    model = dataclasses.replace(model, embedding=model.embedding.with_node_values(str(tmp_path / "tree")))  # as saved
    segments = to_published_segments(
        clustered, model, model.profiles, None, run_date=DAY, config=config, insiders=programme.rule
    )
    assert [(f.name, f.dataType) for f in segments.schema] == [(f.name, f.dataType) for f in SEGMENTS_SCHEMA]
    rows = segments.join(
        model.embedding.transform(features).select(CUSTOMER_ID, PREDICTED_LABEL), on=CUSTOMER_ID, how="inner"
    ).collect()
    insiders = [r for r in rows if r[IS_INSIDER]]
    waiting = [r for r in rows if r[CLUSTER] == 1 and not r[IS_INSIDER]]
    assert len(insiders) == 20 and len(waiting) == 60
    assert {r[SEGMENT] for r in waiting} == {waiting_list_name(config.segments.insiders_name)}
    assert all(r[INSIDER_CONFIDENCE] is None for r in rows)  # no refits: no confidence
    # the 20 admitted are the first of cluster 1 by predicted value, then revenue, then id
    ranked = sorted(
        (r for r in rows if r[CLUSTER] == 1), key=lambda r: (-r[PREDICTED_LABEL], -r[GROSS_REVENUE], r[CUSTOMER_ID])
    )
    assert {r[CUSTOMER_ID] for r in ranked[:20]} == {r[CUSTOMER_ID] for r in insiders}
    revenue = sum(r[GROSS_REVENUE] for r in rows)
    assert programme.insiders.revenue_share == pytest.approx(sum(r[GROSS_REVENUE] for r in insiders) / revenue)

    fits = size_programme(model, clustered, insiders_cluster=model.profiles[0].kmeans_cluster, share=0.5)
    assert fits.step == FITS and not fits.binding and fits.insiders == fits.cluster
    clustered.unpersist()


# --- a whole run on a log where it binds ------------------------------------------------------------


@pytest.mark.spark
def test_a_run_keeps_the_insiders_within_the_programme_where_cluster_1_is_larger(spark, tmp_path: Path):
    """The synthetic log of 40,000 lines as of 2011-06-30: cluster 1 holds 12% of the customers.
    The run publishes at most 10% as Insiders, says the bound bit and what it cost, gives every
    customer its confidence from 20 bootstrap refits, and reports the programme."""
    output = tmp_path / "out"
    config = load_config(
        env="test",
        overrides={
            "output.path": str(output),
            "synthetic.lines": 40_000,
            "quality.stability": True,
            "quality.stability_seeds": 1,
        },
    )
    result = run(spark, config, as_of=dt.date(2011, 6, 30))
    programme = result.metrics["programme"]
    assert programme["binding"] and programme["step"] == CUT
    customers = result.metrics["customers"]["segmented"]
    assert programme["insiders"]["customers"] == math.floor(0.10 * customers) < programme["cluster_1"]["customers"]
    assert result.metrics["insiders"]["customers"] == programme["insiders"]["customers"]
    assert result.metrics["insiders"]["customer_share"] <= 0.10
    assert programme["cost"]["insiders_revenue_share"] > 0 and programme["cost"]["silhouette"] == 0.0
    stability = result.metrics["quality"]["stability"]
    assert stability["bootstrap"]["runs"] == 20 and stability["reference_revenue_cut"]["runs"] == 20

    segments = spark.read.parquet(result.outputs["segments"])
    assert segments.where(F.col(IS_INSIDER)).count() == programme["insiders"]["customers"]
    bounds = segments.agg(F.min(INSIDER_CONFIDENCE), F.max(INSIDER_CONFIDENCE), F.count(INSIDER_CONFIDENCE)).first()
    assert 0.0 <= bounds[0] <= bounds[1] <= 1.0 and bounds[2] == customers
    confidence = result.metrics["insiders"]["confidence"]
    assert confidence["core"] + confidence["borderline"] == programme["insiders"]["customers"]

    manifest = json.loads(Path(result.outputs["runs"]).read_text())
    assert manifest["programme"] == programme
    page = next((output / "report").rglob("report.md")).read_text()
    assert "## Programme size" in page and "The bound bit." in page
    assert "## How certain the Insiders are" in page and "revenue cut (reference)" in page
