"""The reference for bootstrap stability: what cutting customers on gross revenue alone allows.

No tree, no KMeans: the customers in order of gross revenue (descending, then id), cut into groups
of the job's own cluster sizes, largest-revenue cluster first; the first group, of the Insiders'
size, is the revenue cut's Insiders. A resample's cut puts its boundaries at the same shares of
*its* draws, and every customer falls on either side of the boundary customer, as a refit assigns
every customer. Each resample's cut is compared with the cut of the full data, over every customer,
as the job's refits are compared with the job's fit: ARI and the Insiders' Jaccard.

The resamples are the hash-keyed Poisson(1) resamples of ``resample.poisson_copies`` (seeds
``seed + 1 ... seed + B``): the same law as the forest's bootstrap, but not the forest's own draws,
which MLlib does not expose. So the two sets of numbers are two independent samples of their
distributions, compared through their quantiles.

How it scales, exactly and without a sort: on the revenue order both cuts are intervals, so a
resample's cut is known from its boundary positions alone (the customers in front of each), and
the agreement follows from interval overlaps on the driver. The customers fall into fixed buckets
of log revenue, ordered as the revenue is. One aggregation gives each bucket's customers and
draws per resample; the driver finds the bucket each boundary falls in; one window over those
buckets' customers, on the driver, finds the boundary customer and its position. At most
buckets × resamples sums, and the draws of the few buckets the boundaries fall in, reach the
driver (the buckets are finer with more customers: about sqrt(customers) customers each).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import CUSTOMER_ID, GROSS_REVENUE
from insiders_spark.evaluation.agreement import Contingency
from insiders_spark.evaluation.stability.resample import poisson_from_uniform_sql, uniform_sql

_BUCKET = "_bucket"
_RESAMPLE, _DRAWS = "_resample", "_draws"
BUCKETS_PER_LOG_UNIT = 64  # for up to 65,536 customers; more with more customers (~sqrt)


def _target(position: int, customers: int, draws: int) -> int:
    """The draws in front of a boundary: the full data's share ``position / customers`` of ``draws``."""
    return math.floor(position / customers * draws + 0.5)


class RevenueCut:
    """The revenue cut of ``customers`` (``features``: customer id and gross revenue) and of each
    resample (``seeds``), for any group sizes; boundaries are found in batches and kept."""

    def __init__(self, features: DataFrame, *, customers: int, seeds: Sequence[int]) -> None:
        self._features = features.select(CUSTOMER_ID, GROSS_REVENUE)
        self.customers = customers
        self.seeds = tuple(seeds)
        self._draws: tuple[int, ...] | None = None  # each resample's size
        self._boundaries: dict[int, tuple[int, ...]] = {}  # full-data position -> each resample's

    @property
    def resamples(self) -> int:
        return len(self.seeds)

    def draws(self) -> tuple[int, ...]:
        if self._draws is None:
            self.prepare(())
        assert self._draws is not None
        return self._draws

    def _bucketed(self) -> DataFrame:
        """Every customer's bucket (higher revenue, higher bucket) and its draws, a row per resample.

        The draws are exploded into rows: a generator is a barrier the optimiser does not inline
        expressions through (reading an array of 20 draws 20 times had it build an expression of
        thousands of nodes)."""
        per_unit = BUCKETS_PER_LOG_UNIT * max(1, math.isqrt(self.customers) // 256)
        bucket = f"CAST(FLOOR({per_unit} * LN(1 + GREATEST(`{GROSS_REVENUE}`, 0D))) AS BIGINT)"
        # the uniform draws first, as columns: each is read by up to ten comparisons
        uniforms = [F.expr(uniform_sql(CUSTOMER_ID, seed=s)).alias(f"_u{b}") for b, s in enumerate(self.seeds)]
        draws = ", ".join(poisson_from_uniform_sql(f"_u{b}") for b in range(self.resamples))
        return self._features.select(CUSTOMER_ID, GROSS_REVENUE, F.expr(bucket).alias(_BUCKET), *uniforms).select(
            CUSTOMER_ID, GROSS_REVENUE, _BUCKET, F.posexplode(F.expr(f"array({draws})")).alias(_RESAMPLE, _DRAWS)
        )

    def prepare(self, positions: Iterable[int]) -> None:
        """Find every resample's boundary for each full-data ``position`` (customers in front of
        it) not found yet: one aggregation, and the rows of the buckets the boundaries fall in."""
        todo = sorted({p for p in positions if 0 < p < self.customers} - set(self._boundaries))
        if not self.seeds or (not todo and self._draws is not None):
            return
        bucketed = self._bucketed()
        rows = (
            bucketed.groupBy(_BUCKET, _RESAMPLE)
            .agg(F.count(F.lit(1)).alias("customers"), F.sum(_DRAWS).alias("draws"))
            .collect()
        )
        buckets = sorted({int(row[_BUCKET]) for row in rows}, reverse=True)  # highest revenue first
        index = {bucket: i for i, bucket in enumerate(buckets)}
        customers = np.zeros(len(buckets), dtype=np.int64)
        draws = np.zeros((len(buckets), self.resamples), dtype=np.int64)
        for row in rows:
            i = index[int(row[_BUCKET])]
            customers[i] = int(row["customers"])  # the same for every resample
            draws[i, int(row[_RESAMPLE])] = int(row["draws"])
        self._draws = tuple(int(d) for d in draws.sum(axis=0))
        found = self._find(bucketed, buckets, customers, draws, todo)
        for position in todo:
            self._boundaries[position] = tuple(found[(position, b)] for b in range(self.resamples))

    def _find(
        self,
        bucketed: DataFrame,
        buckets: list[int],
        customers: np.ndarray,
        draws: np.ndarray,
        positions: Sequence[int],
    ) -> dict[tuple[int, int], int]:
        """(position, resample) -> the resample's boundary: the customers up to and including the
        one whose draws reach the target (0 when the target is 0). The boundaries' buckets' rows
        come to the driver (their customers × resamples draws), where they are sorted."""
        draws_before = np.vstack([np.zeros((1, self.resamples), dtype=np.int64), draws.cumsum(axis=0)])
        customers_before = np.concatenate([[0], customers.cumsum()])
        found: dict[tuple[int, int], int] = {}
        wanted: dict[int, list[tuple[int, int, int]]] = {}  # bucket's index -> (position, resample, need)
        for position in positions:
            for b in range(self.resamples):
                target = _target(position, self.customers, int(draws_before[-1, b]))
                if target == 0:
                    found[(position, b)] = 0
                    continue
                index = int(np.searchsorted(draws_before[1:, b], target, side="left"))
                wanted.setdefault(index, []).append((position, b, target - int(draws_before[index, b])))
        if not wanted:
            return found
        rows = (
            bucketed.where(F.col(_BUCKET).isin([buckets[i] for i in wanted]))
            .select(_BUCKET, GROSS_REVENUE, CUSTOMER_ID, _RESAMPLE, _DRAWS)
            .collect()
        )
        by_bucket: dict[int, dict[tuple[float, int], list[int]]] = {}
        for row in rows:
            customer = by_bucket.setdefault(int(row[_BUCKET]), {}).setdefault(
                (-float(row[GROSS_REVENUE]), int(row[CUSTOMER_ID])), [0] * self.resamples
            )
            customer[int(row[_RESAMPLE])] = int(row[_DRAWS])
        for index, targets in wanted.items():
            ordered = np.array([d for _, d in sorted(by_bucket[buckets[index]].items())], dtype=np.int64)
            running = ordered.cumsum(axis=0)  # (customers in the bucket, resamples), in revenue order
            for position, b, need in targets:
                found[(position, b)] = int(customers_before[index]) + int(np.searchsorted(running[:, b], need)) + 1
        return found

    def agreements(self, sizes: Sequence[int], insiders: int) -> list[tuple[float, float, int]]:
        """Per resample, (ARI, Insiders Jaccard, Insiders) of its cut against the full data's, for
        groups of ``sizes`` (largest revenue first; they add up to the customers) whose Insiders
        are the first ``insiders``."""
        if sum(sizes) != self.customers:
            raise ValueError(f"group sizes add up to {sum(sizes)}, not the {self.customers} customers")
        positions = [int(p) for p in np.cumsum(sizes[:-1])]
        self.prepare([*positions, insiders])
        full = [0, *positions, self.customers]
        results = []
        for b in range(self.resamples):
            cuts = [0, *[self._boundary(p, b) for p in positions], self.customers]
            pairs = [
                (i, j, min(full[i + 1], cuts[j + 1]) - max(full[i], cuts[j]))
                for i in range(len(sizes))
                for j in range(len(sizes))
                if min(full[i + 1], cuts[j + 1]) > max(full[i], cuts[j])
            ]
            theirs = self._boundary(insiders, b)
            jaccard = min(insiders, theirs) / max(insiders, theirs) if max(insiders, theirs) else 1.0
            results.append((Contingency.from_pairs(pairs).adjusted_rand_index(), jaccard, theirs))
        return results

    def _boundary(self, position: int, b: int) -> int:
        if position <= 0:
            return 0
        if position >= self.customers:
            return self.customers
        return self._boundaries[position][b]
