"""The segmentation as one MLlib pipeline: the tree read through public APIs, the path encoding as
built-in stages, a KMeansModel with the solver's centres, and the saved model a Spark user loads."""

import dataclasses
import json
import random
import shutil

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.linalg import Vectors
from pyspark.ml.regression import DecisionTreeRegressor
from pyspark.sql import functions as F

from insiders_spark.core.config import load_config
from insiders_spark.core.errors import ModelFormatError
from insiders_spark.core.names import CLUSTER, CUSTOMER_ID, LEAF, MODEL_INPUT_COLUMNS, SCORE
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.model import store
from insiders_spark.model.clustering import KMEANS_CLUSTER, FittedKMeans
from insiders_spark.model.embedding import EMBEDDING, leaf_path_vectors
from insiders_spark.model.kmeans_model import predict_leaves, to_kmeans_model
from insiders_spark.model.segmentation import fit_segmentation
from insiders_spark.model.tree import Tree, TreeNode, read_saved_tree, read_tree
from insiders_spark.runs.runner import run
from insiders_spark.storage import filesystem
from tests.jobs import LINES

pytestmark = pytest.mark.spark


def jvm_walk(tree_model) -> Tree:
    """The tree as the job read it before (its JVM objects through py4j): the reference."""
    nodes: list = []
    leaf_counter = 0

    def visit(jnode, depth):
        nonlocal leaf_counter
        node_id = len(nodes)
        nodes.append(None)
        common = dict(
            node_id=node_id,
            depth=depth,
            prediction=float(jnode.prediction()),
            impurity=float(jnode.impurity()),
            count=float(jnode.impurityStats().count()),
        )
        if jnode.getClass().getSimpleName() == "LeafNode":
            nodes[node_id] = TreeNode(**common, leaf_index=leaf_counter)
            leaf_counter += 1
            return node_id
        split = jnode.split()
        left = visit(jnode.leftChild(), depth + 1)
        right = visit(jnode.rightChild(), depth + 1)
        nodes[node_id] = TreeNode(
            **common,
            feature=int(split.featureIndex()),
            threshold=float(split.threshold()),
            gain=float(jnode.gain()),
            left=left,
            right=right,
        )
        return node_id

    visit(tree_model._java_obj.rootNode(), 0)
    return Tree(nodes=tuple(nodes))


@pytest.fixture(scope="module")
def fitted_trees(spark):
    """Trees on awkward numbers: tiny, negative, huge and heavy-tailed features, a skewed label."""
    rng = random.Random(3)
    rows = [
        (
            Vectors.dense(
                [
                    rng.random() * 100,
                    rng.lognormvariate(0, 3),
                    float(rng.randint(0, 9)),
                    rng.uniform(-1e-5, 1e-5),
                    rng.uniform(-1e9, 1e9),
                ]
            ),
            rng.lognormvariate(1, 1),
        )
        for _ in range(1_500)
    ]
    frame = spark.createDataFrame(rows, ["features", "label"]).cache()
    settings = [(2, 32, 1, 1), (4, 256, 20, 2), (7, 128, 3, 3)]
    return [
        DecisionTreeRegressor(maxDepth=d, maxBins=b, minInstancesPerNode=m, seed=s, leafCol="leaf").fit(frame)
        for d, b, m, s in settings
    ]


def test_the_debug_string_gives_the_jvm_trees_structure_and_leaf_values_exactly(fitted_trees):
    for tree_model in fitted_trees:
        parsed, reference = read_tree(tree_model), jvm_walk(tree_model)
        assert len(parsed.leaves) == tree_model.numNodes - len(parsed.internal_nodes)
        assert parsed.structure() == reference.structure()  # thresholds and leaf values compared with ==
        assert parsed.paths() == reference.paths()


def test_the_saved_node_data_gives_the_jvm_tree_whole(spark, fitted_trees, tmp_path):
    for i, tree_model in enumerate(fitted_trees):
        tree_model.write().save(str(tmp_path / f"tree{i}"))
        assert read_saved_tree(spark, str(tmp_path / f"tree{i}")) == jvm_walk(tree_model)  # values, counts, gains


def _features(spark, n=600):
    rows = []
    for i in range(n):
        items = 1 + (i * 37) % 997
        invoices = 1 + i % 9
        revenue = 2.0 * items + 15.0 * invoices
        rows.append(
            (i, revenue, i % 300, invoices, items, 1 + i % 50, 0.1 + (i % 7) / 10, i % 5, revenue / (1 + i % 20))
        )
    return spark.createDataFrame(rows, ["customer_id", "gross_revenue", *MODEL_INPUT_COLUMNS])


@pytest.fixture(scope="module")
def segmentation(spark, test_config):
    config = dataclasses.replace(
        test_config, embedding=dataclasses.replace(test_config.embedding, max_depth=4, min_leaf_share=0.02)
    )
    features = _features(spark).cache()
    model, clustered = fit_segmentation(features, config=config, customers=600, k=5, seed=7)
    return features, model, clustered


def test_the_encoding_stages_give_each_customer_its_leafs_path_vector(segmentation):
    features, model, _ = segmentation
    vectors = leaf_path_vectors(model.embedding.tree)
    rows = model.embedding.transform(features).select(LEAF, EMBEDDING).collect()
    assert len(rows) == 600
    for row in rows:
        assert np.array_equal(row[EMBEDDING].toArray(), vectors[row[LEAF]].toArray())


def test_the_kmeans_model_holds_the_solvers_centres_and_assigns_every_leaf_and_customer_as_it_does(spark, segmentation):
    _, model, clustered = segmentation
    assert np.array_equal(np.array(model.kmeans_model.clusterCenters()), model.kmeans.centers)  # same order, exact
    vectors = model.embedding.leaf_vectors()
    assert set(model.kmeans.leaf_clusters) == set(vectors)  # every leaf of the tree
    assert predict_leaves(spark, model.kmeans_model, vectors) == model.kmeans.leaf_clusters
    by_leaf = {(r[LEAF], r[KMEANS_CLUSTER]) for r in clustered.select(LEAF, KMEANS_CLUSTER).distinct().collect()}
    assert by_leaf == set(model.kmeans.leaf_clusters.items())


@pytest.mark.parametrize(("k", "seed"), [(9, 0), (16, 5)])
def test_the_kmeans_model_numbers_its_clusters_as_the_solver_does(spark, k, seed):
    centers = np.random.default_rng(seed).normal(size=(k, 7))
    fitted = FittedKMeans(
        centers=centers, leaf_clusters=dict(enumerate(range(k))), cost=0.0, solver="local", runs=1, points=k
    )
    model, renumbered = to_kmeans_model(spark, fitted, seed=seed)
    assert renumbered == fitted
    assert np.array_equal(np.array(model.clusterCenters()), centers)
    points = {i: Vectors.dense(centers[i]) for i in range(k)}
    assert predict_leaves(spark, model, points) == {i: i for i in range(k)}


@pytest.fixture(scope="module")
def trained(base_run):
    """The suite's base run (tests/jobs.py): its output (not to be written to), model version, result."""
    return base_run.output, base_run.manifest()["model_version"], base_run.result


def _published_segments(spark, output, run_date):
    return spark.read.parquet(str(output / "segments")).where(F.col("run_date") == run_date).drop("run_date")


def test_any_spark_user_gets_the_runs_clusters_from_the_saved_pipeline(spark, trained):
    output, version, result = trained
    segments = _published_segments(spark, output, result.run_date.isoformat()).cache()
    folder = output / "models" / version
    description = json.loads((folder / store.DESCRIPTION).read_text())
    assert description["format"] == 2 and description["inputs"]
    number = {p["kmeans_cluster"]: p["cluster"] for p in description["profiles"]}

    customers = segments.select(*[f.name for f in CUSTOMER_FEATURES_SCHEMA.fields])
    scored = PipelineModel.load(str(folder / store.PIPELINE)).transform(customers)
    predicted = {
        r[CUSTOMER_ID]: number[r[KMEANS_CLUSTER]] for r in scored.select(CUSTOMER_ID, KMEANS_CLUSTER).collect()
    }
    published = {r[CUSTOMER_ID]: r[CLUSTER] for r in segments.select(CUSTOMER_ID, CLUSTER).collect()}
    assert len(published) == segments.count() > 0
    assert predicted == published


def test_a_score_run_with_the_saved_model_gives_the_same_segments(spark, trained, tmp_path):
    published, version, result = trained
    output = shutil.copytree(published, tmp_path / "out")  # the shared run's output stays as it is
    config = load_config(env="test", overrides={"output.path": str(output), "synthetic.lines": LINES}, environ={})
    again = run(spark, config, mode=SCORE, run_date=result.run_date.replace(year=result.run_date.year + 1))
    assert again.metrics["model_version"] == version
    columns = [CUSTOMER_ID, LEAF, CLUSTER, "segment", "top_features"]
    trained_rows = _published_segments(spark, output, result.run_date.isoformat()).select(*columns).collect()
    scored_rows = _published_segments(spark, output, again.run_date.isoformat()).select(*columns).collect()
    assert sorted(map(tuple, scored_rows)) == sorted(map(tuple, trained_rows))


def _as_format_1(spark, output, version, target):
    """The version laid out as the job saved it before: tree/ (assembler + tree) and the KMeans
    result in segmentation.json."""
    model, description = store.load(spark, str(output), version)
    folder = f"{target}/models/{version}"
    PipelineModel(stages=model.embedding.model.stages[:2]).write().save(f"{folder}/tree")
    old = {k: v for k, v in description.items() if k not in ("pipeline", "inputs", "columns")}
    old["format"] = 1
    old["kmeans"] = {
        **description["kmeans"],
        "centers": model.kmeans.centers.tolist(),
        "leaf_clusters": {str(leaf): c for leaf, c in model.kmeans.leaf_clusters.items()},
    }
    filesystem.write_text(spark, f"{folder}/{store.DESCRIPTION}", json.dumps(old))
    filesystem.write_text(spark, f"{target}/models/{store.CURRENT}", version + "\n")
    return model


def test_a_model_saved_by_the_previous_format_still_scores_its_customers_the_same(spark, trained, tmp_path):
    output, version, result = trained
    original = _as_format_1(spark, output, version, tmp_path)
    loaded, description = store.load(spark, str(tmp_path))
    assert description["format"] == 1
    assert loaded.kmeans.leaf_clusters == original.kmeans.leaf_clusters
    assert [p.kmeans_cluster for p in loaded.profiles] == [p.kmeans_cluster for p in original.profiles]
    assert loaded.embedding.tree == original.embedding.tree
    customers = _published_segments(spark, output, result.run_date.isoformat()).select(
        *[f.name for f in CUSTOMER_FEATURES_SCHEMA.fields]
    )
    got = loaded.transform(customers).select(CUSTOMER_ID, CLUSTER).collect()
    want = original.transform(customers).select(CUSTOMER_ID, CLUSTER).collect()
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))


def test_a_model_of_an_unknown_format_is_refused_saying_what_to_do(spark, trained, tmp_path):
    output, version, _ = trained
    folder = f"{tmp_path}/models/{version}"
    description = json.loads((output / "models" / version / store.DESCRIPTION).read_text())
    filesystem.write_text(spark, f"{folder}/{store.DESCRIPTION}", json.dumps({**description, "format": 99}))
    with pytest.raises(ModelFormatError, match="--mode train"):
        store.load(spark, str(tmp_path), version)


def test_a_train_run_keeps_the_trees_node_values_for_the_reasons(spark, trained):
    output, version, _ = trained
    model, _ = store.load(spark, str(output), version)
    assert model.embedding.tree.has_node_values
    assert read_tree(model.embedding.regressor).structure() == model.embedding.tree.structure()
    assert jvm_walk(model.embedding.regressor) == model.embedding.tree


def test_a_fitted_embedding_reads_its_node_values_back_from_a_save(segmentation, tmp_path):
    _, model, _ = segmentation
    assert not model.embedding.tree.has_node_values  # toDebugString has none for internal nodes
    completed = model.embedding.with_node_values(str(tmp_path / "tree"))
    assert completed.tree == jvm_walk(model.embedding.regressor)
