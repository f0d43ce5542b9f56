"""Input and output contracts: raw column names, typed schemas and column-name constants.

The raw log has the columns of the published export (``InvoiceNo`` ... ``Country``). The job maps
them to snake_case on read; everything downstream speaks the snake_case names defined here.
"""

from __future__ import annotations

from pyspark.sql import types as T

# --- raw input ------------------------------------------------------------------------------
# Published column name -> our name. The order is the order of the published export.
RAW_TO_COLUMN: dict[str, str] = {
    "InvoiceNo": "invoice_no",
    "StockCode": "stock_code",
    "Description": "description",
    "Quantity": "quantity",
    "InvoiceDate": "invoice_date",
    "UnitPrice": "unit_price",
    "CustomerID": "customer_id",
    "Country": "country",
}
RAW_COLUMNS: tuple[str, ...] = tuple(RAW_TO_COLUMN)

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

# Where each raw line came from (file path, or the synthetic generator's name).
SOURCE_FILE = "source_file"
# A CSV line that does not split into the header's columns, kept whole by Spark's PERMISSIVE mode.
CORRUPT_RECORD = "_corrupt_record"

# --- parsed lines ---------------------------------------------------------------------------
INVOICE_NO = "invoice_no"
STOCK_CODE = "stock_code"
DESCRIPTION = "description"
QUANTITY = "quantity"
INVOICE_TS = "invoice_ts"
UNIT_PRICE = "unit_price"
CUSTOMER_ID = "customer_id"
COUNTRY = "country"
REASON = "reason"  # null: the line is kept; otherwise why it is not

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
IS_GUEST = "is_guest"
GROSS_REVENUE = "gross_revenue"
RECENCY_DAYS = "recency_days"
QTY_INVOICES = "qty_invoices"
QTY_ITEMS = "qty_items"
QTY_PRODUCTS = "qty_products"
FREQUENCY = "frequency"
QTY_RETURNS = "qty_returns"
AVG_TICKET = "avg_ticket"
FIRST_PURCHASE_DATE = "first_purchase_date"
LAST_PURCHASE_DATE = "last_purchase_date"

# The features, in the order the study lists them; shared by the aggregation, the tree and reports.
FEATURE_COLUMNS: tuple[str, ...] = (
    GROSS_REVENUE,
    RECENCY_DAYS,
    QTY_INVOICES,
    QTY_ITEMS,
    QTY_PRODUCTS,
    FREQUENCY,
    QTY_RETURNS,
    AVG_TICKET,
)
LABEL_COLUMN = GROSS_REVENUE  # what the tree learns to predict
MODEL_INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c != LABEL_COLUMN)

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
LEAF = "leaf"
CLUSTER = "cluster"  # 1 = the highest mean gross revenue
SEGMENT = "segment"
IS_INSIDER = "is_insider"
INSIDER_SINCE = "insider_since"  # first run date of the current Insider spell (null: not an Insider)
RUNS_OUTSIDE_INSIDERS = "runs_outside_insiders"  # Insiders kept by hysteresis: runs outside cluster 1

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

TOP_FEATURES = "top_features"  # the features that moved the tree's prediction most, largest first
IS_CONTROL = "is_control"  # in the loyalty A/B test's control group (salted hash of the id)
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
