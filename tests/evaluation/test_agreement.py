"""Agreement of two clusterings from their contingency table: ARI and one cluster's Jaccard."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from insiders_spark.evaluation.agreement import Contingency, adjusted_rand_index


def test_ari_of_a_hand_computed_table():
    # reference [0,0,0,1,1,1] against [0,0,1,1,2,2]: cells [[2,1,0],[0,1,2]]
    # sum C(n_ij,2) = 2; rows 3,3 -> 6; columns 2,2,2 -> 3; C(6,2) = 15
    # expected = 6*3/15 = 1.2; max = (6+3)/2 = 4.5; ARI = (2-1.2)/(4.5-1.2)
    assert adjusted_rand_index([[2, 1, 0], [0, 1, 2]]) == pytest.approx(0.8 / 3.3)


def test_the_same_partition_under_other_labels_agrees_perfectly():
    table = Contingency.from_labels([1, 1, 2, 2, 3], ["b", "b", "a", "a", "c"])
    assert table.adjusted_rand_index() == 1.0


def test_degenerate_partitions_follow_sklearn():
    assert adjusted_rand_index([[5]]) == 1.0  # one cluster on both sides
    assert adjusted_rand_index(np.eye(4, dtype=int)) == 1.0  # all singletons on both sides
    assert adjusted_rand_index([[1, 1, 1, 1]]) == adjusted_rand_score([0, 0, 0, 0], [0, 1, 2, 3]) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_ari_equals_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    reference = rng.integers(0, rng.integers(1, 10), n)
    other = reference.copy() if seed % 4 == 0 else rng.integers(0, rng.integers(1, 10), n)
    other[: n // 3] = rng.integers(0, 3, n // 3)  # partly agreeing
    table = Contingency.from_labels(reference.tolist(), other.tolist())
    assert table.adjusted_rand_index() == pytest.approx(adjusted_rand_score(reference, other), abs=1e-12)


def test_ari_is_exact_where_pair_counts_overflow_64_bits():
    # two million customers: n^2 * n^2 products exceed int64; Python integers keep it exact
    table = [[900_000, 100_000], [50_000, 950_000]]
    labels_ref = np.repeat([0, 0, 1, 1], [900_000, 100_000, 50_000, 950_000])
    labels_other = np.repeat([0, 1, 0, 1], [900_000, 100_000, 50_000, 950_000])
    assert adjusted_rand_index(table) == pytest.approx(adjusted_rand_score(labels_ref, labels_other), abs=1e-12)


def test_from_pairs_adds_repeated_pairs():
    table = Contingency.from_pairs([(1, 1, 3), (1, 2, 1), (1, 1, 2), (2, 2, 4)])
    assert table.counts == {(1, 1): 5, (1, 2): 1, (2, 2): 4}
    assert table.total == 10
    assert table.reference_sizes() == {1: 6, 2: 4}
    assert table.other_sizes() == {1: 5, 2: 5}


def test_jaccard_by_hand():
    # reference Insiders {a, b, c, d}; other Insiders {c, d, e}: |A & B| = 2, |A | B| = 5
    reference = [1, 1, 1, 1, 2, 2]  # customers a..f
    other = [2, 2, 1, 1, 1, 2]
    table = Contingency.from_labels(reference, other)
    assert table.jaccard(1, 1) == pytest.approx(2 / 5)
    assert table.jaccard(2, 2) == pytest.approx(1 / 4)  # {e, f} vs {a, b, f}
    assert Contingency.from_labels([1, 2], [1, 2]).jaccard(1, 1) == 1.0
    assert Contingency.from_labels([1, 2], [2, 1]).jaccard(1, 1) == 0.0


def test_invalid_tables_fail():
    with pytest.raises(ValueError, match="empty"):
        adjusted_rand_index([[0, 0]])
    with pytest.raises(ValueError, match="counts"):
        adjusted_rand_index([[3, -1]])
