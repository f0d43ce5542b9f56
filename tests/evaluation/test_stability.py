"""Stability (``evaluation.stability``): would another seed, or another sample of the same
customers, name other Insiders? Measured on hand-built customers whose groups a revenue tree
separates without doubt, and checked against the job's own path customer by customer."""

import math

import pytest

from insiders_spark.core.names import CUSTOMER_ID
from insiders_spark.evaluation.stability import (
    bootstrap_resample,
    poisson_one_cdf,
)
from tests import support
from tests.evaluation.groups import FOUR_GROUPS


@pytest.fixture(scope="module")
def four_groups(spark):
    return support.grouped_features(spark, FOUR_GROUPS)


def test_a_bootstrap_resample_depends_on_the_customers_and_the_seed_only(spark):
    customers = spark.range(20_000).withColumnRenamed("id", CUSTOMER_ID)

    def copies(frame):
        return sorted((r[CUSTOMER_ID], r["count"]) for r in frame.groupBy(CUSTOMER_ID).count().collect())

    one = copies(bootstrap_resample(customers.repartition(1), seed=4))
    assert one == copies(bootstrap_resample(customers.repartition(5), seed=4))
    assert one != copies(bootstrap_resample(customers, seed=5))
    drawn = dict(one)
    # Poisson(1): about e^-1 of the customers left out, one copy per customer on average
    assert 1 - len(drawn) / 20_000 == pytest.approx(math.exp(-1), abs=0.015)
    assert sum(drawn.values()) / 20_000 == pytest.approx(1.0, abs=0.03)
    assert max(drawn.values()) <= 10
    assert poisson_one_cdf(3) == pytest.approx((math.exp(-1), 2 * math.exp(-1), 2.5 * math.exp(-1)))
