"""The A/B control flag: deterministic, salted, independent of partitioning, within its scope."""

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.control import IS_CONTROL, control_bucket, with_control_flag

CUSTOMERS = 4_000


@pytest.fixture(scope="module")
def segments(spark):
    """Every fourth customer an Insider; one null id (a flag is still defined for it)."""
    rows = [(i, i % 4 == 0) for i in range(12_000, 12_000 + CUSTOMERS)] + [(None, True)]
    return spark.createDataFrame(rows, "customer_id long, is_insider boolean")


def test_flag_is_the_same_across_partitionings_and_runs(segments):
    flagged = with_control_flag(segments, salt="loyalty-2024", share=0.1)
    again = with_control_flag(segments.repartition(7), salt="loyalty-2024", share=0.1)
    reordered = with_control_flag(segments.orderBy(F.desc("customer_id")).coalesce(1), salt="loyalty-2024", share=0.1)
    assert_df_equality(flagged, again, ignore_row_order=True)
    assert_df_equality(flagged, reordered, ignore_row_order=True)


def test_only_insiders_are_drawn_and_the_share_is_honoured(segments):
    counts = (
        with_control_flag(segments, salt="loyalty-2024", share=0.1)
        .groupBy("is_insider")
        .agg(F.count_if(F.col(IS_CONTROL)).alias("control"), F.count(F.lit(1)).alias("customers"))
        .collect()
    )
    by_group = {row["is_insider"]: row for row in counts}
    assert by_group[False]["control"] == 0
    insiders = by_group[True]
    # 1,001 insiders, 10% expected: a binomial's 4 standard deviations is about 38
    assert abs(insiders["control"] - 0.1 * insiders["customers"]) < 40


def test_scope_all_draws_from_everyone_and_the_flag_is_never_null(segments):
    flagged = with_control_flag(segments, salt="s", share=0.5, scope="all")
    row = flagged.agg(
        F.count_if(F.col(IS_CONTROL) & ~F.col("is_insider")).alias("non_insiders"),
        F.count_if(F.col(IS_CONTROL).isNull()).alias("nulls"),
    ).first()
    assert row["non_insiders"] > 0 and row["nulls"] == 0


def test_the_salt_draws_a_different_group_and_shares_nest(segments):
    def drawn(salt, share):
        frame = with_control_flag(segments, salt=salt, share=share, scope="all")
        return {r["customer_id"] for r in frame.where(F.col(IS_CONTROL)).select("customer_id").collect()}

    first, other = drawn("a", 0.2), drawn("b", 0.2)
    assert first != other
    assert drawn("a", 0.1) <= first  # a smaller share keeps a subset of the same customers


def test_bucket_matches_spark_sql_xxhash64(spark):
    frame = spark.createDataFrame([(17850,), (19000,)], "customer_id long")
    got = frame.select(control_bucket(F.col("customer_id"), "salt").alias("bucket")).collect()
    expected = spark.sql(
        "SELECT pmod(xxhash64('salt:17850'), 10000) AS bucket UNION ALL SELECT pmod(xxhash64('salt:19000'), 10000)"
    ).collect()
    assert [r["bucket"] for r in got] == [r["bucket"] for r in expected]


@pytest.mark.parametrize(("kwargs", "message"), [({"share": 1.5}, "share"), ({"scope": "vip"}, "scope"), ({"salt": ""}, "salt")])
def test_bad_arguments_are_refused(segments, kwargs, message):
    arguments = {"salt": "s", "share": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        with_control_flag(segments, **arguments)
