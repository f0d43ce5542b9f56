"""How much two clusterings of the same customers agree, from their contingency table alone.

A contingency table counts the customers in each (reference cluster, other cluster) pair. Spark
computes it with one ``groupBy(ref, other).count()`` (at most k x k' rows), so the agreement of two
clusterings of any number of customers is exact and only those few rows reach the driver:

* **adjusted Rand index** (Hubert & Arabie 1985): pair counting corrected for chance; 1 for the
  same partition (whatever the labels), about 0 for independent ones. The arithmetic is on Python
  integers, so it stays exact where n^2 overflows 64 bits;
* **Jaccard of one cluster** (e.g. the Insiders): |A & B| / |A | B| from the (a, b) cell, the row
  total of a and the column total of b.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def adjusted_rand_index(table: Iterable[Iterable[int]]) -> float:
    """ARI of a contingency table (rows: one clustering, columns: the other; cells: counts).

    Same convention as ``sklearn.metrics.adjusted_rand_score``: two partitions that are both a
    single cluster, or both all singletons, agree perfectly (1.0).
    """
    cells = [[int(c) for c in row] for row in table]
    if any(c < 0 for row in cells for c in row):
        raise ValueError("a contingency table holds counts (>= 0)")
    n = sum(sum(row) for row in cells)
    if n == 0:
        raise ValueError("an empty contingency table has no agreement to measure")
    rows = [sum(row) for row in cells]
    columns = [sum(column) for column in zip(*cells, strict=True)] if cells else []
    together_both = sum(_pairs(c) for row in cells for c in row)  # pairs together in both
    together_ref = sum(_pairs(r) for r in rows)
    together_other = sum(_pairs(c) for c in columns)
    # the pair confusion matrix, as sklearn's pair_confusion_matrix (ordered pairs, hence x2)
    tp = 2 * together_both
    fp = 2 * (together_ref - together_both)  # together in the reference only
    fn = 2 * (together_other - together_both)  # together in the other only
    tn = n * (n - 1) - tp - fp - fn
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


@dataclass(frozen=True)
class Contingency:
    """Customers per (reference label, other label); labels are any hashable values."""

    counts: Mapping[tuple[Hashable, Hashable], int]

    @classmethod
    def from_labels(cls, reference: Iterable[Hashable], other: Iterable[Hashable]) -> Contingency:
        """From two aligned label sequences (small, driver-side data: tests and bounded tables)."""
        counts: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
        for ref, oth in zip(reference, other, strict=True):
            counts[(ref, oth)] += 1
        return cls(dict(counts))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[Hashable, Hashable, int]]) -> Contingency:
        """From (reference label, other label, count) rows, e.g. a collected ``groupBy().count()``;
        repeated pairs are added up."""
        counts: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
        for ref, oth, count in pairs:
            counts[(ref, oth)] += int(count)
        return cls(dict(counts))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def table(self) -> list[list[int]]:
        """The dense table: reference labels as rows, other labels as columns (sorted by repr)."""
        refs = sorted({r for r, _ in self.counts}, key=repr)
        others = sorted({o for _, o in self.counts}, key=repr)
        return [[self.counts.get((r, o), 0) for o in others] for r in refs]

    def adjusted_rand_index(self) -> float:
        return adjusted_rand_index(self.table())

    def jaccard(self, reference_label: Hashable, other_label: Hashable) -> float:
        """Jaccard of the reference's ``reference_label`` cluster and the other's ``other_label``."""
        both = self.counts.get((reference_label, other_label), 0)
        in_ref = sum(c for (r, _), c in self.counts.items() if r == reference_label)
        in_other = sum(c for (_, o), c in self.counts.items() if o == other_label)
        union = in_ref + in_other - both
        return both / union if union else 1.0

    def reference_sizes(self) -> dict[Hashable, int]:
        sizes: dict[Hashable, int] = defaultdict(int)
        for (ref, _), count in self.counts.items():
            sizes[ref] += count
        return dict(sizes)

    def other_sizes(self) -> dict[Hashable, int]:
        sizes: dict[Hashable, int] = defaultdict(int)
        for (_, other), count in self.counts.items():
            sizes[other] += count
        return dict(sizes)
