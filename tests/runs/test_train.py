"""Training a run's model (``runs.train``): stability and ``--k auto`` on the tree's leaves, when
the leaves run short of the k asked for."""

import dataclasses

import pytest

from insiders_spark.runs.train import train_segmentation
from tests import support
from tests.evaluation.groups import FOUR_GROUPS


@pytest.fixture(scope="module")
def four_groups(spark):
    return support.grouped_features(spark, FOUR_GROUPS)


def _training_config(test_config, *, k, select_k, bootstraps, seeds=0):
    config = support.small_tree_config(test_config)
    return dataclasses.replace(
        config,
        clustering=dataclasses.replace(config.clustering, k=k, select_k=select_k, k_grid=(3, 4, 5)),
        quality=dataclasses.replace(
            config.quality, stability=True, stability_seeds=seeds, stability_bootstraps=bootstraps
        ),
    )


def test_k_auto_chooses_among_the_k_the_tree_allows_when_the_configured_one_is_beyond_it(
    spark, test_config, four_groups
):
    config = _training_config(test_config, k=9, select_k=True, bootstraps=0, seeds=1)
    training = train_segmentation(four_groups, config, customers=300)
    assert training.selection.score(9) is None and training.selection.score(5).error  # 4 leaves
    assert training.selection.chosen == training.model.k == 3 and training.selection.fallback
    assert training.stability is not None and training.stability.k == 3
    training.clustered.unpersist()


def test_a_resample_that_draws_fewer_of_a_small_leaf_is_still_measured(spark, test_config):
    """A 16-customer group is just above the smallest leaf (5% of 300 = 15 customers): a resample
    draws fewer of it. The bootstrap refits (one random forest) are compared over every customer,
    not refitted on the resample alone, so the run measures its stability instead of giving up."""
    features = support.grouped_features(spark, [(100, 10, 1.0), (16, 20, 1.5), (84, 1000, 5.0), (100, 2000, 5.5)])
    config = _training_config(test_config, k=4, select_k=False, bootstraps=5)
    training = train_segmentation(features, config, customers=300)
    assert training.model.k == 4 and len(training.model.profiles) == 4  # the run itself is fine
    assert training.stability_unmeasurable is None and training.stability is not None
    bootstrap = [run for run in training.stability.runs if run.kind == "bootstrap"]
    assert len(bootstrap) == 5 and all(0.0 <= run.ari <= 1.0 for run in bootstrap)
    assert not any("not measurable" in failure for failure in training.stability_failures())
    training.clustered.unpersist()
    features.unpersist()
