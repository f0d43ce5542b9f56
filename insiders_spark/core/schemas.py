"""Output contracts: the typed schemas of the quarantine, the customer features and the segments.

A log's own columns are mapped onto the canonical ones of ``core.names`` when it is read
(``storage.mapping``); everything downstream speaks those names.
"""

from __future__ import annotations

from pyspark.sql import types as T

from insiders_spark.core.names import (
    AVG_TICKET,
    CANONICAL_COLUMNS,
    CLUSTER,
    CUSTOMER_ID,
    FIRST_PURCHASE_DATE,
    FREQUENCY,
    GROSS_REVENUE,
    INSIDER_CONFIDENCE,
    INSIDER_SINCE,
    IS_CONTROL,
    IS_GUEST,
    IS_INSIDER,
    LAST_PURCHASE_DATE,
    LEAF,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    QTY_RETURNS,
    REASON,
    RECENCY_DAYS,
    RUNS_OUTSIDE_INSIDERS,
    SEGMENT,
    SOURCE_CUSTOMER_ID,
    SOURCE_FILE,
    TOP_FEATURES,
)

# --- the quarantine -------------------------------------------------------------------------

# A set-aside line: its canonical fields as read (text), the whole line when it did not split into
# columns, its file and why.
QUARANTINE_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType(), True) for name in CANONICAL_COLUMNS]
    + [
        T.StructField("raw_line", T.StringType(), True),
        T.StructField(SOURCE_FILE, T.StringType(), True),
        T.StructField(REASON, T.StringType(), False),
    ]
)

# --- customer features ----------------------------------------------------------------------


CUSTOMER_FEATURES_SCHEMA = T.StructType(
    [
        T.StructField(CUSTOMER_ID, T.LongType(), False),
        T.StructField(SOURCE_CUSTOMER_ID, T.StringType(), True),  # null for guests
        T.StructField(IS_GUEST, T.BooleanType(), False),
        T.StructField(GROSS_REVENUE, T.DoubleType(), False),
        T.StructField(RECENCY_DAYS, T.IntegerType(), False),
        T.StructField(QTY_INVOICES, T.LongType(), False),
        T.StructField(QTY_ITEMS, T.LongType(), False),
        T.StructField(QTY_PRODUCTS, T.LongType(), True),  # null when the log has no product_id
        T.StructField(FREQUENCY, T.DoubleType(), False),
        T.StructField(QTY_RETURNS, T.LongType(), False),
        T.StructField(AVG_TICKET, T.DoubleType(), False),
        T.StructField(FIRST_PURCHASE_DATE, T.DateType(), False),
        T.StructField(LAST_PURCHASE_DATE, T.DateType(), False),
    ]
)

# --- segments -------------------------------------------------------------------------------

# What a model assigns: the features plus leaf, cluster, segment and the raw Insider flag.
ASSIGNMENT_SCHEMA = T.StructType(
    list(CUSTOMER_FEATURES_SCHEMA.fields)
    + [
        T.StructField(LEAF, T.IntegerType(), False),
        T.StructField(CLUSTER, T.IntegerType(), False),
        T.StructField(SEGMENT, T.StringType(), False),
        T.StructField(IS_INSIDER, T.BooleanType(), False),
    ]
)

# Nullable inside, as parquet gives nested fields back whatever was written.
CONTRIBUTION_TYPE = T.StructType(
    [T.StructField("feature", T.StringType(), True), T.StructField("contribution", T.DoubleType(), True)]
)

# The published segments table: the assignment, why (top features), the customer's Insider
# history, the control flag, and the share of the bootstrap refits that call the customer an Insider.
SEGMENTS_SCHEMA = T.StructType(
    list(ASSIGNMENT_SCHEMA.fields)
    + [
        T.StructField(TOP_FEATURES, T.ArrayType(CONTRIBUTION_TYPE, True), True),
        T.StructField(INSIDER_SINCE, T.DateType(), True),
        T.StructField(RUNS_OUTSIDE_INSIDERS, T.IntegerType(), True),
        T.StructField(IS_CONTROL, T.BooleanType(), False),
        T.StructField(INSIDER_CONFIDENCE, T.DoubleType(), True),  # null: no bootstrap refits this run
    ]
)
