"""Choosing k (``evaluation.kselection``): every k of a grid scored by every target on one set
of stability runs, and the documented rule: the smallest k that meets them all, else the configured
k (or, when the tree cannot hold it, the closest)."""

import dataclasses

import pytest

from insiders_spark.evaluation.kselection import KScore, choose_k, score_grid, select_k
from insiders_spark.evaluation.stability import fit_stability_runs
from tests import support
from tests.evaluation.groups import FOUR_GROUPS, THREE_TIERS


@pytest.fixture(scope="module")
def four_groups(spark):
    return support.grouped_features(spark, FOUR_GROUPS)


def test_select_k_picks_the_obvious_k(spark, test_config):
    """Three revenue tiers (``THREE_TIERS``), the top one cut in two by noise: k=2 leaves the low and
    middle tiers together (a silhouette below 0.75), k=3 is one cluster per tier and stable, k=4
    cuts the top tier along its noise. With the Insiders allowed 40% of the customers (the top tier
    is 38.5%), the rule takes 3."""
    features = support.grouped_features(spark, THREE_TIERS, noise=True)
    config = support.small_tree_config(test_config)
    config = dataclasses.replace(
        config,
        quality=dataclasses.replace(config.quality, insiders_max_share=0.4),
        segments=dataclasses.replace(config.segments, programme_share=0.4),  # the programme takes the whole tier
    )
    selection = select_k(features, config=config, customers=260, seed=3, grid=[2, 3, 4], seeds=0, bootstraps=2)
    assert selection.chosen == 3 and not selection.fallback
    assert selection.leaves == 4 and (selection.seeds, selection.bootstraps) == (0, 2)
    by_k = {s.k: s for s in selection.scores}
    assert not by_k[2].qualifies and [f.split()[0] for f in by_k[2].failures] == ["silhouette"]
    assert by_k[3].qualifies and by_k[3].insiders_share == pytest.approx(100 / 260)
    assert by_k[3].smallest_cluster_share == pytest.approx(60 / 260)
    assert by_k[3].stability.ari_min == 1.0 and selection.stability is by_k[3].stability
    assert selection.reason == (
        "k=3 is the smallest k that meets every target"
        + (" (also qualifying: 4)" if by_k[4].qualifies else " (the only one that does)")
    )
    manifest = selection.to_dict()
    assert [g["k"] for g in manifest["grid"]] == [2, 3, 4] and manifest["chosen"] == 3
    assert manifest["targets"]["insiders_max_share"] == 0.4 and manifest["rule"].startswith("the smallest k")


def test_a_k_beyond_the_leaves_is_recorded_not_fatal(spark, test_config, four_groups):
    config = support.small_tree_config(test_config)
    runs = fit_stability_runs(four_groups, config=config, customers=300, seed=7, seeds=1, bootstraps=0)
    config = dataclasses.replace(config, quality=dataclasses.replace(config.quality, insiders_max_share=0.5))
    selection = score_grid(runs, grid=[3, 5], config=config)
    assert selection.score(5).error and "only 4 distinct points" in selection.score(5).error
    assert selection.chosen == 3


def _score(k, *failures):
    return KScore(k=k, silhouette=0.9, failures=tuple(failures))


def test_the_rule_takes_the_smallest_k_that_meets_every_target():
    scores = [
        _score(4, "Insiders 20.0% of customers > 10%"),
        _score(5),
        _score(6),
        _score(7, "stability ARI 0.5 < 0.9"),
    ]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (5, False)
    assert "smallest" in reason and "also qualifying: 6" in reason


def test_the_rule_falls_back_to_the_configured_k_and_says_why():
    scores = [
        _score(8, "Insiders 20.3% of customers > 10%", "stability ARI 0.605 < 0.9"),
        _score(9, "stability ARI 0.556 < 0.9"),
        KScore(k=17, error="only 16 distinct points", failures=("cannot fit",)),
    ]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (9, True)
    assert reason == (
        "no k in 8..17 meets every target; closest: k=9 (stability ARI 0.556 < 0.9); kept the configured k=9"
    )


def test_the_fallback_never_picks_a_k_the_tree_cannot_hold():
    scores = [
        _score(6, "stability ARI 0.7 < 0.9"),
        _score(7, "Insiders 20.0% of customers > 10%", "stability ARI 0.6 < 0.9"),
        KScore(k=9, error="only 8 distinct points", failures=("cannot fit: only 8 distinct points",)),
    ]
    chosen, fallback, reason = choose_k(scores, fallback_k=9)
    assert (chosen, fallback) == (6, True)
    assert reason.endswith("the configured k=9 cannot be fitted (only 8 distinct points): took the closest")
