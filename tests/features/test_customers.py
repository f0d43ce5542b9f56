"""Customer features and guest numbering on tiny hand-computed logs (``features.customers``)."""

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import LineFormat, round_half_up, to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import CleaningConfig, dataset_columns
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.features.customers import (
    SHARED_GUEST_KEY,
    CustomerSummary,
    group_key,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)

RULES = CleaningConfig(
    min_unit_price=0.04, non_product_codes=("POST",), excluded_countries=(), excluded_customers=("16446",)
)
STUDY_FORMAT = LineFormat(columns=dataset_columns("online_retail"), timestamp_format="yyyy-MM-dd HH:mm:ss")
RAW_DDL = (
    "invoice_id string, product_id string, description string, quantity long, invoice_date string, "
    "unit_price double, line_amount double, customer_id double, country string, _corrupt_record string, "
    "source_file string"
)


def _line(invoice, code, qty, when, price, customer):
    return (invoice, code, "d", qty, when, price, None, customer, "United Kingdom", None, "test")


def _classified(raw, as_of=None):
    return raw.transform(to_parsed_lines, line_format=STUDY_FORMAT).transform(
        with_reason, rules=RULES, as_of=as_of, line_format=STUDY_FORMAT
    )


def _customers(spark, rows, *, start=19000, as_of=None):
    lines = _classified(spark.createDataFrame(rows, RAW_DDL), as_of)
    return lines.transform(to_customer_activity).transform(with_guest_customer_ids, start=start)


LOG = [
    # customer 100: two purchase invoices on 2011-01-01 and 2011-01-10, one return, one POST line
    _line("A1", "P1", 2, "2011-01-01 10:00:00", 1.5, 100.0),
    _line("A1", "P2", 1, "2011-01-01 10:00:00", 4.0, 100.0),
    _line("A1", "POST", 1, "2011-01-01 10:00:00", 18.0, 100.0),
    _line("A2", "P1", 10, "2011-01-10 09:00:00", 1.0, 100.0),
    _line("C3", "P1", -3, "2011-01-12 09:00:00", 1.0, 100.0),
    # customer 200: returns only
    _line("C4", "P9", -1, "2011-01-05 09:00:00", 2.0, 200.0),
    # guest invoices: G2 is earlier than G1; G0 has only a POST line (numbered, then empty)
    _line("G1", "P3", 1, "2011-01-03 12:00:00", 3.0, None),
    _line("G2", "P4", 5, "2011-01-02 08:00:00", 0.5, None),
    _line("G2", "P5", 1, "2011-01-02 08:00:00", 1.0, None),
    _line("G0", "POST", 1, "2011-01-01 07:00:00", 18.0, None),
    # a line with an unparsable timestamp belongs to nobody
    _line("G9", "P6", 1, "yesterday", 1.0, None),
    # the known bad account
    _line("B1", "P1", 100, "2011-01-04 10:00:00", 1.0, 16446.0),
]


def test_features_by_hand(spark):
    customers = _customers(spark, LOG)
    got = customers.transform(to_customer_features, as_of=dt.date(2011, 1, 12))
    expected = spark.createDataFrame(
        [
            # 100: revenue 2*1.5 + 4 + 10 = 17; invoices A1, A2; items 13; products P1, P2;
            # frequency 2 / (9 + 1); returns 3; avg ticket 17 / 3 lines; recency 12 - 10 = 2
            (100, "100", False, 17.0, 2, 2, 13, 2, 0.2, 3, 17.0 / 3, dt.date(2011, 1, 1), dt.date(2011, 1, 10)),
            # G2 is the second guest invoice in time (after G0): 19001
            (19001, None, True, 3.5, 10, 1, 6, 2, 1.0, 0, 1.75, dt.date(2011, 1, 2), dt.date(2011, 1, 2)),
            (19002, None, True, 3.0, 9, 1, 1, 1, 1.0, 0, 3.0, dt.date(2011, 1, 3), dt.date(2011, 1, 3)),
        ],
        CUSTOMER_FEATURES_SCHEMA,
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_summary_counts_returns_only_customers_and_guests(spark):
    summary = summarise_customers(_customers(spark, LOG).cache())
    assert summary == CustomerSummary(
        customers=4,  # 100, 200, 19001, 19002 (16446 is excluded, G0 has no kept line)
        with_purchases=3,
        returns_only=1,
        guests=2,
        distinct_ids=4,
        last_kept_date=dt.date(2011, 1, 12),
        shared_guest_keys=0,
    )


def _lines(spark, rows):
    return _classified(spark.createDataFrame(rows, RAW_DDL))


# LOG and 40 more guest invoices, some of them with a broken or set-aside line
MANY_GUESTS = (
    LOG
    + [
        _line(
            f"H{i:02d}",
            f"P{i % 7}",
            1 + i % 3,
            f"2011-02-{1 + i % 27:02d} 1{i % 10}:00:00",
            0.02 if i % 11 == 0 else 1.25,
            None,
        )
        for i in range(40)
    ]
    + [_line("H05", "P9", 2, "not a time", 1.0, None), _line("H06", "P8", -1, "2011-03-01 10:00:00", 1.25, None)]
)


def test_group_key_keeps_customer_ids_and_guest_invoices_apart(spark):
    rows = spark.createDataFrame(
        [(17850, None), (None, "536365"), (None, "536366"), (None, None)], "customer_id long, guest_invoice_no string"
    )
    keys = [
        r.key for r in rows.select(group_key(F.col("customer_id"), F.col("guest_invoice_no")).alias("key")).collect()
    ]
    assert keys[0] == 17850
    assert keys[1] < 0 and keys[2] < 0 and keys[1] != keys[2]
    assert keys[3] is None  # a line with neither belongs to nobody, as with the two-column key
    with pytest.raises(ValueError, match=r"1\.\.63"):
        group_key(F.col("customer_id"), F.col("guest_invoice_no"), guest_key_bits=64)


def test_one_long_key_aggregates_exactly_like_id_and_invoice(spark):
    lines = _lines(spark, MANY_GUESTS)
    hashed = lines.transform(to_customer_activity)
    exact = lines.transform(to_customer_activity, exact_keys=True)
    assert hashed.columns == exact.columns
    assert hashed.where(F.col(SHARED_GUEST_KEY)).count() == 0
    assert exact.where(F.col("guest_invoice_no").isNotNull()).count() == 43  # G0, G1, G2 and H00..H39
    assert_df_equality(hashed, exact, ignore_row_order=True, ignore_nullable=True)


def test_guest_invoices_sharing_a_key_are_marked(spark):
    """With one bit of hash, 43 guest invoices fall into two keys: both groups are marked, each
    customer's own row is not, and the exact keys give 43 guest rows again."""
    lines = _lines(spark, MANY_GUESTS)
    squeezed = lines.transform(to_customer_activity, guest_key_bits=1)
    marked = {(r.customer_id, r.shared_guest_key) for r in squeezed.select("customer_id", SHARED_GUEST_KEY).collect()}
    assert marked == {(100, False), (200, False), (16446, False), (None, True)}
    assert squeezed.where(F.col(SHARED_GUEST_KEY)).count() == 2


def test_guest_numbers_do_not_depend_on_partitioning(spark):
    rows = [_line(f"G{i:03d}", "P1", 1, f"2011-01-{1 + i % 28:02d} 0{i % 9}:00:00", 1.0, None) for i in range(60)]
    one = _customers(spark, rows).select("guest_invoice_no", "customer_id")
    spread = (
        _classified(spark.createDataFrame(rows, RAW_DDL).repartition(7))
        .transform(to_customer_activity)
        .transform(with_guest_customer_ids, start=19000)
        .select("guest_invoice_no", "customer_id")
    )
    assert_df_equality(one, spread, ignore_row_order=True)
    ids = sorted(r.customer_id for r in one.collect())
    assert ids == list(range(19000, 19060))


def test_guest_numbers_of_earlier_invoices_survive_later_days(spark):
    early = [
        _line("G1", "P1", 1, "2011-01-02 10:00:00", 1.0, None),
        _line("G2", "P1", 1, "2011-01-03 10:00:00", 1.0, None),
    ]
    later = [_line("G0", "P1", 1, "2011-02-01 10:00:00", 1.0, None)]
    before = {r.guest_invoice_no: r.customer_id for r in _customers(spark, early).collect()}
    after = {r.guest_invoice_no: r.customer_id for r in _customers(spark, early + later).collect()}
    assert before == {"G1": 19000, "G2": 19001}
    assert after == {"G1": 19000, "G2": 19001, "G0": 19002}


def test_as_of_drops_later_lines_from_features(spark):
    customers = _customers(spark, LOG, as_of=dt.date(2011, 1, 5))
    got = {r.customer_id: r for r in customers.transform(to_customer_features, as_of=dt.date(2011, 1, 5)).collect()}
    assert got[100].qty_invoices == 1 and got[100].gross_revenue == pytest.approx(7.0)
    assert got[100].qty_returns == 0 and got[100].recency_days == 4


def test_round_half_up_agrees_with_spark_round(spark):
    """The cheap rounding behind exact revenue units against Spark's own ROUND(x, 0), on every
    price of 0.001 to 100.000 in steps of 0.001 scaled to 1/10,000 units, halves of both signs,
    and the doubles next to a half."""
    edges = [
        0.5,
        1.5,
        2.5,
        -0.5,
        -2.5,
        0.49999999999999994,
        -0.49999999999999994,
        2.4999999999999996,
        2.5000000000000004,
        0.0,
        -0.0,
        4503599627370495.5,
        25499.999999999996,
        1e15 + 0.5,
    ]
    values = (
        spark.range(1, 100_001)
        .select((F.col("id") / 1000.0 * 10_000).alias("x"))
        .unionByName(spark.createDataFrame([(v,) for v in edges], "x double"))
        .unionByName(spark.range(1, 100_001).select((-F.col("id") / 1000.0 * 10_000 - 0.5).alias("x")))
    )
    checked = values.select(
        F.round(F.col("x")).cast("long").alias("expected"), round_half_up(F.col("x")).cast("long").alias("got")
    )
    assert checked.where(~F.col("expected").eqNullSafe(F.col("got"))).count() == 0
    assert checked.count() == 200_000 + len(edges)
