"""The estimator and its model (``model.segmentation``): what the fit measures on its leaf table is
what Spark measures per customer, and a saved model (``model.store``) scores as it was trained."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.errors import ModelFormatError, ModelNotFoundError
from insiders_spark.core.names import CLUSTER, CUSTOMER_ID, IS_INSIDER, SEGMENT
from insiders_spark.core.schemas import ASSIGNMENT_SCHEMA
from insiders_spark.model.clustering import KMEANS_CLUSTER
from insiders_spark.model.leaves import summarise_leaves
from insiders_spark.model.profiles import PROFILED_FEATURES, summarise_clusters
from insiders_spark.model.segmentation import fit_segmentation, silhouette_of
from insiders_spark.model.silhouette import silhouette
from insiders_spark.model.store import (
    current_version,
    describe,
    list_versions,
    load,
    new_version,
    save,
    use_version,
)
from tests import support

GROUPS = [(70, 10, 1.0), (50, 20, 2.0), (90, 400, 4.0), (60, 900, 6.0)]
CUSTOMERS = sum(size for size, _, _ in GROUPS)


@pytest.fixture(scope="module")
def fitted(spark, test_config):
    features = support.grouped_features(spark, GROUPS, noise=True, seed=3)
    config = support.small_tree_config(test_config, max_depth=3, min_leaf_share=0.03)
    model, clustered = fit_segmentation(features, config=config, customers=CUSTOMERS, k=4, seed=5)
    yield features, model, clustered
    clustered.unpersist()
    features.unpersist()


def test_the_fit_measures_profiles_and_silhouette_on_its_leaf_table_as_spark_does_per_customer(fitted):
    """The fit's profiles and silhouette come from its leaf table (one row per leaf); each is
    checked against the per-customer computation: Spark's mean per cluster, MLlib's
    ClusteringEvaluator. A score run's leaf table of the same customers is the fit's own."""
    features, model, clustered = fitted
    per_customer = {s["kmeans_cluster"]: s for s in summarise_clusters(clustered, cluster_col=KMEANS_CLUSTER)}
    assert sorted(per_customer) == sorted(p.kmeans_cluster for p in model.profiles)
    for profile in model.profiles:
        spark_means = per_customer[profile.kmeans_cluster]
        assert profile.customers == spark_means["customers"]
        assert profile.revenue_total == pytest.approx(spark_means["revenue_total"], rel=1e-12)
        for name in PROFILED_FEATURES:
            assert getattr(profile, f"{name}_mean") == pytest.approx(spark_means[f"{name}_mean"], rel=1e-12), name
    assert silhouette_of(model) == pytest.approx(silhouette(clustered), abs=1e-9)
    scored = summarise_leaves(model.embed(features))
    assert sorted(scored) == sorted(model.leaf_sums)
    for leaf, sums in scored.items():
        assert sums == pytest.approx(model.leaf_sums[leaf], rel=1e-12)


def test_the_model_assigns_every_customer_one_ranked_cluster(fitted):
    """Invariants, not ids: k clusters of every customer, numbered by mean revenue from 1, the
    Insiders flag on cluster 1 alone, each cluster's name its profile's."""
    features, model, _ = fitted
    segments = model.transform(features)
    assert segments.columns == [f.name for f in ASSIGNMENT_SCHEMA.fields]
    assert segments.count() == CUSTOMERS and segments.select(CUSTOMER_ID).distinct().count() == CUSTOMERS
    by_cluster = {
        r[CLUSTER]: r
        for r in segments.groupBy(CLUSTER, SEGMENT, IS_INSIDER)
        .agg(F.count(F.lit(1)).alias("n"), F.avg("gross_revenue").alias("mean"))
        .collect()
    }
    assert sorted(by_cluster) == [1, 2, 3, 4] == [p.cluster for p in model.profiles]
    means = [by_cluster[c]["mean"] for c in sorted(by_cluster)]
    assert means == sorted(means, reverse=True)
    for profile in model.profiles:
        row = by_cluster[profile.cluster]
        assert (row[SEGMENT], row[IS_INSIDER], row["n"]) == (profile.segment, profile.cluster == 1, profile.customers)


def test_one_occupied_cluster_has_a_silhouette_of_zero_not_an_error(fitted, caplog):
    _, model, _ = fitted
    assert silhouette_of(model, occupied_clusters=1) == 0.0
    assert "silhouette is undefined, recorded as 0" in caplog.text
    assert silhouette_of(model, occupied_clusters=4) == silhouette_of(model)


# --- the model store -------------------------------------------------------------------------

AS_OF = dt.date(2011, 12, 9)


@pytest.fixture(scope="module")
def stored(spark, fitted, tmp_path_factory):
    """The fitted model saved as a version of an output and made current."""
    _, model, _ = fitted
    output = tmp_path_factory.mktemp("store")
    version = new_version(AS_OF, "2011-12-09_20111210T020000Z_0123abcd")
    description = describe(model, version=version, as_of=AS_OF, run_date=AS_OF, config_hash="c0ffee")
    save(model, str(output / "models" / version), description)
    use_version(spark, str(output), version)
    return output, version


def test_a_saved_model_scores_as_it_was_trained(spark, fitted, stored, tmp_path):
    features, model, _ = fitted
    output, version = stored
    assert version == "20111209-20111210T020000Z-0123abcd"
    loaded, description = load(spark, str(output))  # the current version
    assert description["version"] == version and description["config_hash"] == "c0ffee"
    assert (description["label"], description["encoding"], description["format"]) == ("log1p", "path", 2)
    assert loaded.profiles == model.profiles and loaded.kmeans.leaf_clusters == model.kmeans.leaf_clusters
    # the save keeps every node's value (a fitted tree's debug text has none for internal nodes)
    assert loaded.embedding.tree == model.embedding.with_node_values(str(tmp_path / "tree")).tree
    assert loaded.leaf_sums is None  # a loaded model has no training customers
    assert_df_equality(loaded.transform(features), model.transform(features), ignore_row_order=True)
    assert (output / "models" / version / "pipeline" / "metadata").is_dir()  # MLlib's own save format


def test_versions_are_listed_and_a_rollback_names_one(spark, stored, tmp_path):
    output, version = stored
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    later = new_version(AS_OF, "2011-12-09_20111211T020000Z_00000000")
    shutil.copytree(copy / "models" / version, copy / "models" / later)
    description = json.loads((copy / "models" / later / "segmentation.json").read_text())
    (copy / "models" / later / "segmentation.json").write_text(json.dumps({**description, "version": later}))
    assert [info.version for info in list_versions(spark, str(copy))] == [version, later]  # sorted: oldest first
    use_version(spark, str(copy), later)
    assert current_version(spark, str(copy)) == later
    use_version(spark, str(copy), version)
    assert current_version(spark, str(copy)) == version
    with pytest.raises(ModelNotFoundError, match=rf"'no-such-version' not found .*\(known: {version}, {later}\)"):
        use_version(spark, str(copy), "no-such-version")
    assert current_version(spark, str(copy)) == version


def test_model_versions_of_one_as_of_date_sort_in_training_order():
    earlier = new_version(AS_OF, "2011-12-09_20261129T020000Z_ffffffff")
    later = new_version(AS_OF, "2011-12-09_20261129T030000Z_00000000")
    assert earlier < later and earlier.startswith("20111209-")


def test_no_model_and_an_unknown_version_are_clear_errors(spark, stored, tmp_path):
    output, _ = stored
    with pytest.raises(ModelNotFoundError, match=r"no trained model under .*: run with --mode train"):
        load(spark, str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"model version 'nope' not found under"):
        load(spark, str(output), "nope")


def test_a_damaged_model_is_a_clear_error_and_does_not_block_the_others(spark, stored, tmp_path, caplog):
    output, good = stored
    copy = tmp_path / "out"
    shutil.copytree(output / "models", copy / "models")
    damaged = "2011-01-01_damaged"
    shutil.copytree(copy / "models" / good, copy / "models" / damaged)
    description = json.loads((copy / "models" / damaged / "segmentation.json").read_text())
    del description["kmeans"]
    (copy / "models" / damaged / "segmentation.json").write_text(json.dumps({**description, "version": damaged}))
    # a hand edit (or a broken disk) took a part of it away
    with pytest.raises(ModelFormatError, match=rf"model version '{damaged}' .* cannot be read \(KeyError: 'kmeans'\)"):
        load(spark, str(copy), damaged)
    for version, change, match in [
        ("2011-01-02_future", {"format": 99}, "format 99, this job reads format 1 or 2"),
        ("2011-01-04_onehot", {"encoding": "onehot"}, r"embedding options this version does not have .*studies/"),
        ("2011-01-05_grid", {"split_grid": "1-2-5"}, r"split grid '1-2-5'"),
    ]:
        (copy / "models" / version).mkdir()
        (copy / "models" / version / "segmentation.json").write_text(
            json.dumps({**description, "version": version, **change})
        )
        with pytest.raises(ModelFormatError, match=match):
            load(spark, str(copy), version)
    (copy / "models" / "2011-01-03_empty").mkdir()
    (copy / "models" / "2011-01-03_empty" / "segmentation.json").write_text("{}")
    listed = [info.version for info in list_versions(spark, str(copy))]
    assert good in listed and "2011-01-03_empty" not in listed  # skipped with a warning, not fatal
    assert "2011-01-03_empty" in caplog.text
    use_version(spark, str(copy), good)  # a rollback still works beside the bad folder
    assert current_version(spark, str(copy)) == good
