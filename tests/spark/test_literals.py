"""Small driver-side tables built in the plan (``literals.literal_frame``), not shipped as an RDD."""

import datetime as dt
import math

import pytest
from chispa import assert_df_equality
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import types as T

from insiders_spark.spark.literals import literal_frame

SCHEMA = T.StructType(
    [
        T.StructField("leaf", T.IntegerType(), False),
        T.StructField("embedding", VectorUDT(), False),
        T.StructField(
            "top",
            T.ArrayType(
                T.StructType(
                    [T.StructField("feature", T.StringType(), False), T.StructField("value", T.DoubleType(), False)]
                ),
                False,
            ),
            False,
        ),
        T.StructField("day", T.DateType(), True),
        T.StructField("share", T.DoubleType(), True),
        T.StructField("count", T.LongType(), False),
    ]
)
ROWS = [
    (
        3,
        Vectors.sparse(3, [0, 2], [1.0, -1.0]),
        [("qty_items", 2.5), ("recency_days", -0.25)],
        dt.date(2011, 9, 9),
        None,
        2**62,
    ),
    (7, Vectors.dense([0.0, 1.0, 1.0]), [], None, 0.1 + 0.2, -1),
    (
        9,
        Vectors.dense([0.0, 0.0, 0.0]),
        [('it\'s a "quoted" \\ path ≤ 5', float("inf"))],
        dt.date(1, 1, 1),
        float("nan"),
        0,
    ),
]


def executed_plan(frame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


def test_the_rows_come_back_as_createDataFrame_gives_them(spark):
    built = literal_frame(spark, ROWS, SCHEMA)
    expected = spark.createDataFrame(ROWS, SCHEMA)
    assert built.schema.simpleString() == SCHEMA.simpleString()
    assert_df_equality(built, expected, ignore_nullable=True, ignore_row_order=True, allow_nan_equality=True)
    assert built.collect()[0]["embedding"].toArray().tolist() == [1.0, 0.0, -1.0]  # dense, same values


def test_the_plan_holds_the_values_and_no_python_rdd(spark):
    built = literal_frame(spark, ROWS, SCHEMA)
    assert "ExistingRDD" not in executed_plan(built)
    assert "ExistingRDD" in executed_plan(spark.createDataFrame(ROWS, SCHEMA))  # what it replaces
    assert built.rdd.getNumPartitions() == 1


def test_values_come_back_exactly(spark):
    """Doubles to the last bit, 64-bit integers, non-finite numbers, quotes, backslashes, unicode."""
    built = {row["leaf"]: row for row in literal_frame(spark, ROWS, SCHEMA).collect()}
    assert built[3]["count"] == 2**62 and built[7]["count"] == -1
    assert built[7]["share"] == 0.1 + 0.2 and built[3]["share"] is None
    assert math.isnan(built[9]["share"])
    assert built[9]["top"][0]["feature"] == 'it\'s a "quoted" \\ path ≤ 5' and built[9]["top"][0]["value"] == float(
        "inf"
    )
    assert built[9]["day"] == dt.date(1, 1, 1)


def test_text_does_not_depend_on_how_the_parser_reads_escapes(spark):
    text = ROWS[2][2][0][0]
    spark.conf.set("spark.sql.parser.escapedStringLiterals", "true")
    try:
        built = literal_frame(spark, ROWS, SCHEMA).where("leaf = 9").collect()
    finally:
        spark.conf.unset("spark.sql.parser.escapedStringLiterals")
    assert built[0]["top"][0]["feature"] == text


def test_names_types_and_nullability_are_the_schemas(spark):
    built = literal_frame(spark, ROWS, SCHEMA)
    expected = spark.createDataFrame(ROWS, SCHEMA)
    without_vector = [f.name for f in SCHEMA.fields if f.name != "embedding"]
    assert built.select(without_vector).schema == expected.select(without_vector).schema


def test_a_null_where_the_schema_forbids_one_is_refused(spark):
    with pytest.raises(TypeError, match="field leaf: null"):
        literal_frame(spark, [(None, *ROWS[0][1:])], SCHEMA)
    with pytest.raises(TypeError, match="not a 64-bit integer"):
        literal_frame(spark, [(*ROWS[0][:-1], 2**63)], SCHEMA)


def test_an_empty_table_keeps_its_columns(spark):
    built = literal_frame(spark, [], SCHEMA)
    assert built.count() == 0
    assert built.select([f.name for f in SCHEMA.fields if f.name != "embedding"]).schema == T.StructType(
        [f for f in SCHEMA.fields if f.name != "embedding"]
    )
