"""Input and output contracts: the typed schemas of the raw log, the lines, the features and the segments.

The raw log has the columns of the published export (``InvoiceNo`` ... ``Country``). The job maps
them to snake_case on read; everything downstream speaks the snake_case names defined here.
"""

from __future__ import annotations

from pyspark.sql import types as T

from insiders_spark.core.names import (
    AVG_TICKET,
    CLUSTER,
    COUNTRY,
    CUSTOMER_ID,
    DESCRIPTION,
    FIRST_PURCHASE_DATE,
    FREQUENCY,
    GROSS_REVENUE,
    INSIDER_SINCE,
    INVOICE_NO,
    INVOICE_TS,
    IS_CONTROL,
    IS_GUEST,
    IS_INSIDER,
    LAST_PURCHASE_DATE,
    LEAF,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    QTY_RETURNS,
    QUANTITY,
    RAW_COLUMNS,
    RAW_TO_COLUMN,
    REASON,
    RECENCY_DAYS,
    RUNS_OUTSIDE_INSIDERS,
    SEGMENT,
    SOURCE_FILE,
    STOCK_CODE,
    TOP_FEATURES,
    UNIT_PRICE,
)

# --- raw input ------------------------------------------------------------------------------

# Every raw field read as text: how a CSV drop arrives, and how quarantine keeps it.
RAW_TEXT_SCHEMA = T.StructType([T.StructField(name, T.StringType(), True) for name in RAW_COLUMNS])

# The published parquet export: same columns, numbers typed, the timestamp still a string.
RAW_PARQUET_SCHEMA = T.StructType(
    [
        T.StructField("InvoiceNo", T.StringType(), True),
        T.StructField("StockCode", T.StringType(), True),
        T.StructField("Description", T.StringType(), True),
        T.StructField("Quantity", T.LongType(), True),
        T.StructField("InvoiceDate", T.StringType(), True),
        T.StructField("UnitPrice", T.DoubleType(), True),
        T.StructField("CustomerID", T.DoubleType(), True),
        T.StructField("Country", T.StringType(), True),
    ]
)


# --- parsed lines ---------------------------------------------------------------------------

PARSED_LINE_SCHEMA = T.StructType(
    [
        T.StructField(INVOICE_NO, T.StringType(), True),
        T.StructField(STOCK_CODE, T.StringType(), True),
        T.StructField(DESCRIPTION, T.StringType(), True),
        T.StructField(QUANTITY, T.LongType(), True),
        T.StructField(INVOICE_TS, T.TimestampType(), True),
        T.StructField(UNIT_PRICE, T.DoubleType(), True),
        T.StructField(CUSTOMER_ID, T.LongType(), True),
        T.StructField(COUNTRY, T.StringType(), True),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType(), True) for name in RAW_TO_COLUMN.values()]
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
        T.StructField(IS_GUEST, T.BooleanType(), False),
        T.StructField(GROSS_REVENUE, T.DoubleType(), False),
        T.StructField(RECENCY_DAYS, T.IntegerType(), False),
        T.StructField(QTY_INVOICES, T.LongType(), False),
        T.StructField(QTY_ITEMS, T.LongType(), False),
        T.StructField(QTY_PRODUCTS, T.LongType(), False),
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
# history and the control flag.
SEGMENTS_SCHEMA = T.StructType(
    list(ASSIGNMENT_SCHEMA.fields)
    + [
        T.StructField(TOP_FEATURES, T.ArrayType(CONTRIBUTION_TYPE, True), True),
        T.StructField(INSIDER_SINCE, T.DateType(), True),
        T.StructField(RUNS_OUTSIDE_INSIDERS, T.IntegerType(), True),
        T.StructField(IS_CONTROL, T.BooleanType(), False),
    ]
)
