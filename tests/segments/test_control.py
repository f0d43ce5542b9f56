"""The A/B control flag: deterministic, salted, independent of partitioning, within its scope."""

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.core.names import IS_CONTROL
from insiders_spark.segments.control import control_bucket, with_control_flag

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


# XXH64 as published (github.com/Cyan4973/xxHash, doc/xxhash_spec.md), written out here so the
# buckets are checked against the algorithm itself, not against Spark: if a Spark upgrade changed
# its xxhash64, every control group would be redrawn, and this says so. Spark hashes a string's
# UTF-8 bytes with seed 42 and returns the 64 bits as a signed long.
_M = (1 << 64) - 1
_P1, _P2, _P3, _P4, _P5 = (
    11400714785074694791,
    14029467366897019727,
    1609587929392839161,
    9650029242287828579,
    2870177450012600261,
)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc, lane):
    return (_rotl((acc + lane * _P2) & _M, 31) * _P1) & _M


def _xxh64(data: bytes, seed: int = 42) -> int:
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed & _M, (seed - _P1) & _M]
        while i + 32 <= n:
            v = [_round(v[j], int.from_bytes(data[i + 8 * j : i + 8 * j + 8], "little")) for j in range(4)]
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for lane in v:
            h = ((h ^ _round(0, lane)) * _P1 + _P4) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        h = ((_rotl(h ^ _round(0, int.from_bytes(data[i : i + 8], "little")), 27) * _P1) + _P4) & _M
        i += 8
    if i + 4 <= n:
        h = ((_rotl(h ^ (int.from_bytes(data[i : i + 4], "little") * _P1 & _M), 23) * _P2) + _P3) & _M
        i += 4
    for byte in data[i:]:
        h = (_rotl(h ^ (byte * _P5 & _M), 11) * _P1) & _M
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h - (1 << 64) if h >= 1 << 63 else h


def test_buckets_are_xxh64_of_salt_and_id_as_published(spark):
    # keys of 9 to 48 bytes: the short-input path and the 32-byte stripes, 8-, 4- and 1-byte tails
    cases = [
        ("salt", 17850),
        ("salt", 19000),
        ("loyalty-2024", 12345),
        ("ünïcode-salt", 1),
        ("a-salt-long-enough-for-one-stripe", 18287),
        ("s" * 40, 2**53 - 1),
    ]
    frame = spark.createDataFrame(cases, "salt string, customer_id long")
    got = [
        frame.where((F.col("salt") == salt) & (F.col("customer_id") == customer))
        .select(control_bucket(F.col("customer_id"), salt).alias("bucket"))
        .first()["bucket"]
        for salt, customer in cases
    ]
    expected = [_xxh64(f"{salt}:{customer}".encode()) % 10_000 for salt, customer in cases]
    assert got == expected


def test_share_zero_draws_nobody_and_share_one_draws_the_whole_scope(segments):
    def counts(share, scope):
        row = (
            with_control_flag(segments, salt="loyalty-2024", share=share, scope=scope)
            .agg(
                F.count_if(F.col(IS_CONTROL)).alias("control"),
                F.count_if(F.col("is_insider")).alias("insiders"),
                F.count_if(F.col(IS_CONTROL) & ~F.col("is_insider")).alias("outside_scope"),
                F.count(F.lit(1)).alias("customers"),
            )
            .first()
        )
        return row["control"], row["insiders"], row["outside_scope"], row["customers"]

    assert counts(0.0, "insiders")[0] == 0 and counts(0.0, "all")[0] == 0
    control, insiders, outside, _ = counts(1.0, "insiders")
    assert control == insiders == 1_001 and outside == 0  # every Insider, the one without an id too
    control, _, _, customers = counts(1.0, "all")
    assert control == customers == CUSTOMERS + 1


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"share": 1.5}, "share"), ({"scope": "vip"}, "scope"), ({"salt": ""}, "salt")]
)
def test_bad_arguments_are_refused(segments, kwargs, message):
    arguments = {"salt": "s", "share": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        with_control_flag(segments, **arguments)
