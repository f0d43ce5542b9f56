"""Bootstrap resamples keyed by a hash of the customer id: the same customers and seed give the
same resample on 2 cores or 200, after any repartitioning or another read of the same log."""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import CUSTOMER_ID

BOOTSTRAP_COPIES = "bootstrap_copies"
POISSON_MAX_COPIES = 10
HASH_RANGE = 1 << 53  # xxhash64 -> a uniform draw in [0, 1) with 53 bits, a double's precision


def poisson_one_cdf(upto: int = POISSON_MAX_COPIES) -> tuple[float, ...]:
    """P(N <= n) for N ~ Poisson(1), n = 0 .. upto - 1."""
    return tuple(sum(math.exp(-1.0) / math.factorial(i) for i in range(n + 1)) for n in range(upto))


def uniform_sql(key: str, *, seed: int) -> str:
    """A uniform draw in [0, 1) from a hash of (``key``, ``seed``), as Spark SQL."""
    return f"(pmod(xxhash64(`{key}`, {int(seed)}), {HASH_RANGE}L) / {float(HASH_RANGE)!r}D)"


def poisson_from_uniform_sql(uniform: str) -> str:
    """N ~ Poisson(1) by inverting its distribution function at the uniform draw ``uniform`` (an
    SQL expression, best a column: it is read up to ``POISSON_MAX_COPIES`` times), capped at
    ``POISSON_MAX_COPIES`` (P(N > 10) < 1e-8)."""
    steps = " ".join(f"WHEN {uniform} < {p!r}D THEN {n}" for n, p in enumerate(poisson_one_cdf()))
    return f"(CASE {steps} ELSE {POISSON_MAX_COPIES} END)"


def poisson_copies(key: str, *, seed: int) -> Column:
    """How many times the bootstrap resample of ``seed`` holds the row of ``key`` (a column's
    name): N ~ Poisson(1) drawn from a hash of the key and the seed."""
    return F.expr(poisson_from_uniform_sql(uniform_sql(key, seed=seed)))


def bootstrap_resample(frame: DataFrame, *, seed: int, key: str = CUSTOMER_ID) -> DataFrame:
    """A bootstrap resample: each row kept N ~ Poisson(1) times (:func:`poisson_copies`), as
    ``sample(withReplacement=True, fraction=1.0)`` does, but N depends on the row's ``key`` and the
    seed only, not on a per-partition random stream."""
    return (
        frame.withColumn(BOOTSTRAP_COPIES, poisson_copies(key, seed=seed))
        .where(F.col(BOOTSTRAP_COPIES) > 0)
        .withColumn(BOOTSTRAP_COPIES, F.explode(F.array_repeat(F.col(BOOTSTRAP_COPIES), F.col(BOOTSTRAP_COPIES))))
        .drop(BOOTSTRAP_COPIES)
    )
