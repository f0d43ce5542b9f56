"""Stability on the forest's bootstrap refits, and the revenue cut it is judged against.

Hand-built customers: groups the revenue tree separates without doubt (each its own items and
revenue level), with optional noise the tree may split on.
"""

import dataclasses
import datetime as dt
import math
import random

import numpy as np
import pytest
from pyspark.sql import functions as F
from sklearn.metrics import adjusted_rand_score

from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.evaluation.kselection import select_k
from insiders_spark.evaluation.stability import (
    BOOTSTRAP,
    SEED,
    RevenueCut,
    cluster_run,
    fit_stability_runs,
    measure_stability,
    poisson_copies,
    spread,
)
from insiders_spark.model.embedding import fit_embedding
from insiders_spark.model.forest import BOOTSTRAP_LEAVES, fit_bootstrap_forest

pytestmark = pytest.mark.spark

DAY = dt.date(2011, 12, 9)
SHAPE = {"runs", "ari", "insiders_jaccard"}
SPREAD = {"min", "p10", "median"}


def _groups(spark, spec, *, noise=False, seed=0):
    """One row per customer; spec: (customers, items, log revenue) per group."""
    rng = random.Random(seed)
    rows, customer = [], 0
    for group, (size, items, log_revenue) in enumerate(spec):
        for _ in range(size):
            revenue = math.exp(log_revenue + (rng.uniform(-0.3, 0.3) if noise else 0.0))
            ticket = rng.uniform(0, 100) if noise else 1.0
            rows.append(
                (customer, None, False, revenue, 10, group + 1, items, 5 * (group + 1), 0.5, 0, ticket, DAY, DAY)
            )
            customer += 1
    return spark.createDataFrame(rows, CUSTOMER_FEATURES_SCHEMA).cache()


def _config(test_config, *, share=0.5, **embedding):
    return dataclasses.replace(
        test_config,
        embedding=dataclasses.replace(test_config.embedding, **{"max_depth": 2, "min_leaf_share": 0.05, **embedding}),
        segments=dataclasses.replace(test_config.segments, programme_share=share),
    )


FOUR_GROUPS = [(60, 10, 1.0), (40, 20, 1.5), (80, 1000, 5.0), (120, 2000, 5.5)]
NOISY = [(70, 10, 1.0), (50, 20, 2.0), (90, 400, 4.0), (60, 900, 6.0)]


@pytest.fixture(scope="module")
def four_groups(spark):
    return _groups(spark, FOUR_GROUPS)


@pytest.fixture(scope="module")
def noisy(spark):
    return _groups(spark, NOISY, noise=True, seed=3)


# --- the forest -----------------------------------------------------------------------------------


def test_the_forest_grows_one_resampled_tree_per_refit(spark, test_config, noisy):
    config = _config(test_config, max_depth=3, min_leaf_share=0.03)
    forest = fit_bootstrap_forest(noisy, config=config.embedding, trees=4, seed=11, customers=270)
    assert forest.size == 4
    sizes = [sum(forest.resample_counts(t).values()) for t in range(4)]
    assert all(size == int(size) for size in sizes)  # Poisson counts, each tree its own resample
    assert len(set(sizes)) > 1 and all(abs(size - 270) < 80 for size in sizes)
    leaves = forest.transform(noisy).select(CUSTOMER_ID, BOOTSTRAP_LEAVES).collect()
    assert len(leaves) == 270
    for t in range(4):
        known = {leaf.leaf_index for leaf in forest.trees[t].leaves}
        assert {row[BOOTSTRAP_LEAVES][t] for row in leaves} <= known

    again = fit_bootstrap_forest(noisy.repartition(3), config=config.embedding, trees=4, seed=11, customers=270)
    assert again.trees == forest.trees  # the same customers and seed: the same trees, however partitioned
    other = fit_bootstrap_forest(noisy, config=config.embedding, trees=4, seed=12, customers=270)
    assert other.trees != forest.trees


def test_below_the_sampling_size_the_tree_does_not_depend_on_the_seed(spark, test_config, noisy):
    """MLlib finds splits on every row up to max(maxBins^2, 10,000) rows: the seed runs reuse the
    reference tree and rerun KMeans only, and give what a refit with their seed gives."""
    config = _config(test_config, max_depth=3, min_leaf_share=0.03)
    assert fit_embedding(noisy, config=config.embedding, seed=1, customers=270).tree == (
        fit_embedding(noisy, config=config.embedding, seed=2, customers=270).tree
    )
    runs = fit_stability_runs(noisy, config=config, customers=270, seed=5, seeds=2, bootstraps=0)
    assert [r.kind for r in runs.perturbed] == [SEED, SEED]
    assert all(r.tree is runs.reference.tree and r.embedding is runs.reference.embedding for r in runs.perturbed)
    assert [r.seed for r in runs.perturbed] == [6, 7]
    stability = runs.stability(4, config=config)
    assert all(r.ari == 1.0 and r.insiders_jaccard == 1.0 for r in stability.runs)
    assert stability.revenue_cut == () and stability.votes is None


def test_a_perfectly_separated_table_is_perfectly_stable(spark, test_config, four_groups):
    config = _config(test_config)
    stability = measure_stability(four_groups, config=config, customers=300, k=3, seed=7, seeds=1, bootstraps=4)
    assert [r.kind for r in stability.runs] == [SEED] + [BOOTSTRAP] * 4
    assert [r.tree_index for r in stability.of_kind(BOOTSTRAP)] == [0, 1, 2, 3]
    assert all(r.ari == 1.0 and r.insiders_jaccard == 1.0 for r in stability.runs)
    assert stability.reference_insiders == 120 and all(r.insiders == 120 for r in stability.runs)
    manifest = stability.to_dict()
    for key in ("bootstrap", "reference_revenue_cut"):
        assert set(manifest[key]) == SHAPE and manifest[key]["runs"] == 4
        assert set(manifest[key]["ari"]) == SPREAD and set(manifest[key]["insiders_jaccard"]) == SPREAD
    assert manifest["bootstrap"]["ari"] == {"min": 1.0, "p10": 1.0, "median": 1.0}
    assert [r["seed"] for r in manifest["revenue_cut_runs"]] == [8, 9, 10, 11]  # seed + 1 ... seed + B
    # the revenue cut splits customers of equal revenue by id: a resample moves its boundaries in them
    assert all(0.0 < r.ari <= 1.0 and 0.0 < r.insiders_jaccard <= 1.0 for r in stability.revenue_cut)
    assert stability.meets_targets == (not stability.failures())


def test_spread_is_the_minimum_the_10th_percentile_and_the_median():
    assert spread([float(v) for v in range(20, 0, -1)]) == {"min": 1.0, "p10": 2.9, "median": 10.5}
    assert spread([]) == {}


# --- the revenue cut ------------------------------------------------------------------------------


def _revenue_cut_by_hand(rows, seeds, sizes, insiders):
    """The definition, customer by customer: sort, cut every resample's draws at the full data's
    shares, give every customer the group of the boundary customers around it."""
    order = sorted(rows, key=lambda r: (-r[GROSS_REVENUE], r[CUSTOMER_ID]))
    n = len(order)
    full = np.repeat(np.arange(len(sizes)), sizes)
    results = []
    for b in range(len(seeds)):
        draws = np.array([r["copies"][b] for r in order])
        running = draws.cumsum()

        def boundary(position, running=running):
            target = math.floor(position / n * running[-1] + 0.5)
            return 0 if target == 0 else int(np.searchsorted(running, target)) + 1

        cuts = [boundary(p) for p in np.cumsum(sizes)[:-1]]
        labels = np.searchsorted(np.array(cuts), np.arange(n), side="right")
        theirs = boundary(insiders)
        results.append((adjusted_rand_score(full, labels), min(insiders, theirs) / max(insiders, theirs), theirs))
    return results


def test_the_revenue_cut_is_exact(spark):
    rng = random.Random(5)
    # ties in revenue (whole units), a long tail, and customer ids out of revenue order
    rows = [(c * 7 % 1000 + 1, float(int(math.exp(rng.gauss(5, 1.5))))) for c in range(600)]
    features = spark.createDataFrame(rows, f"{CUSTOMER_ID} long, {GROSS_REVENUE} double").repartition(3)
    seeds = [43, 44, 45, 46, 47]
    cut = RevenueCut(features, customers=600, seeds=seeds)
    sizes, insiders = [50, 120, 200, 230], 40
    got = cut.agreements(sizes, insiders)

    copies = F.array(*[poisson_copies(CUSTOMER_ID, seed=s) for s in seeds]).alias("copies")
    collected = features.select(CUSTOMER_ID, GROSS_REVENUE, copies).collect()
    expected = _revenue_cut_by_hand(collected, seeds, sizes, insiders)
    assert cut.draws() == tuple(sum(r["copies"][b] for r in collected) for b in range(5))
    for (ari, jaccard, theirs), (ari_hand, jaccard_hand, theirs_hand) in zip(got, expected, strict=True):
        assert theirs == theirs_hand
        assert ari == pytest.approx(ari_hand, abs=1e-12)
        assert jaccard == pytest.approx(jaccard_hand, abs=1e-12)
    assert len({theirs for _, _, theirs in got}) > 1  # the resamples do move the boundary


# --- the programme's cut in the refits, and insider_confidence --------------------------------------


def test_refits_cut_to_the_programme_count_their_insiders_as_spark_does(spark, test_config, noisy):
    """A share smaller than the top cluster makes every run cut inside a leaf: the Insiders counted
    from the leaf tables and the boundaries equal those counted customer by customer."""
    config = _config(test_config, share=0.15, max_depth=3, min_leaf_share=0.03)
    runs = fit_stability_runs(noisy, config=config, customers=270, seed=5, seeds=1, bootstraps=6)
    ref = runs.reference_clusters(3, config=config)
    others = [cluster_run(run, config=config, k=3) for run in runs.perturbed]
    assert ref.cut is not None and sum(o.cut_inside_a_leaf for o in others) >= 3
    rules, counts = runs._insiders(ref, others)
    by_customer = runs._count_insiders(runs.leaf_runs.with_leaves(noisy), rules)
    assert counts == by_customer
    assert all(size == math.floor(0.15 * 270) for _, size in counts if size)  # every run at the cap

    stability = runs.stability(3, config=config)
    scored = stability.votes.with_confidence(noisy).select(CUSTOMER_ID, GROSS_REVENUE, "insider_confidence")
    confidence = {row[CUSTOMER_ID]: row["insider_confidence"] for row in scored.collect()}
    assert set(confidence.values()) <= {i / 6 for i in range(7)}
    # every refit's Insiders, counted customer by customer, add up to the share of votes
    assert sum(confidence.values()) * 6 == pytest.approx(sum(size for _, size in counts[2:]))


def test_insider_confidence_is_certain_where_the_refits_agree(spark, test_config, four_groups):
    config = _config(test_config)
    stability = measure_stability(four_groups, config=config, customers=300, k=3, seed=7, seeds=0, bootstraps=5)
    rows = stability.votes.with_confidence(four_groups).select(CUSTOMER_ID, "insider_confidence").collect()
    top = set(range(180, 300))  # the highest revenue group
    assert {r["insider_confidence"] for r in rows if r[CUSTOMER_ID] in top} == {1.0}
    assert {r["insider_confidence"] for r in rows if r[CUSTOMER_ID] not in top} == {0.0}


# --- --k auto on the new runs ---------------------------------------------------------------------


def test_k_auto_scores_the_grid_on_the_forest_runs(spark, test_config, four_groups):
    config = _config(test_config)
    config = dataclasses.replace(config, quality=dataclasses.replace(config.quality, insiders_max_share=0.5))
    selection = select_k(four_groups, config=config, customers=300, seed=3, grid=[2, 3, 4, 5], seeds=1, bootstraps=3)
    by_k = {s.k: s for s in selection.scores}
    assert by_k[5].error and "only 4 distinct points" in by_k[5].error
    assert by_k[3].stability.bootstrap["ari"]["p10"] == 1.0
    assert by_k[3].stability.reference_revenue_cut["runs"] == 3
    assert selection.chosen in (2, 3, 4) and selection.bootstraps == 3 and selection.seeds == 1
    grid = selection.to_dict()["grid"]
    assert {g["k"] for g in grid} == {2, 3, 4, 5}
    assert set(next(g for g in grid if g["k"] == 3)["bootstrap"]) == SHAPE
