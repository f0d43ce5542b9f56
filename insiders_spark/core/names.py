"""Every name the job shares between its layers: columns, line reasons, segment names, tables.

Plain data, no Spark: the configuration checks its values against these at start-up, and the
schemas (``core.schemas``), the rules, the aggregation and the reports all speak them.
"""

from __future__ import annotations

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

# Where each raw line came from (file path, or the synthetic generator's name).
SOURCE_FILE = "source_file"

# A CSV line that does not split into the header's columns, kept whole by Spark's PERMISSIVE mode.
CORRUPT_RECORD = "_corrupt_record"

INVOICE_NO = "invoice_no"

STOCK_CODE = "stock_code"

DESCRIPTION = "description"

QUANTITY = "quantity"

INVOICE_TS = "invoice_ts"

UNIT_PRICE = "unit_price"

CUSTOMER_ID = "customer_id"

COUNTRY = "country"

REASON = "reason"  # null: the line is kept; otherwise why it is not

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

LEAF = "leaf"

CLUSTER = "cluster"  # 1 = the highest mean gross revenue

SEGMENT = "segment"

IS_INSIDER = "is_insider"

INSIDER_SINCE = "insider_since"  # first run date of the current Insider spell (null: not an Insider)

RUNS_OUTSIDE_INSIDERS = "runs_outside_insiders"  # Insiders kept by hysteresis: runs outside cluster 1

TOP_FEATURES = "top_features"  # the features that moved the tree's prediction most, largest first

IS_CONTROL = "is_control"  # in the loyalty A/B test's control group (salted hash of the id)


# --- line reasons ---------------------------------------------------------------------------
# Why a line is not kept. Parse reasons: the line itself is broken.
MALFORMED_LINE = "malformed_line"
REPEATED_HEADER = "repeated_header"
MISSING_INVOICE = "missing_invoice"
MISSING_STOCK_CODE = "missing_stock_code"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
NON_NUMERIC_QUANTITY = "non_numeric_quantity"
NON_NUMERIC_PRICE = "non_numeric_price"
INVALID_CUSTOMER_ID = "invalid_customer_id"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
# Window: a valid line after the as-of date (kept for a later run, not quarantined).
AFTER_AS_OF = "after_as_of"
# The study's rules: valid lines the segmentation leaves out.
PRICE_BELOW_MINIMUM = "price_below_minimum"
NON_PRODUCT_CODE = "non_product_code"
EXCLUDED_COUNTRY = "excluded_country"
EXCLUDED_CUSTOMER = "excluded_customer"

PARSE_REASONS: tuple[str, ...] = (
    MALFORMED_LINE,
    REPEATED_HEADER,
    MISSING_INVOICE,
    MISSING_STOCK_CODE,
    UNPARSABLE_TIMESTAMP,
    NON_NUMERIC_QUANTITY,
    NON_NUMERIC_PRICE,
    INVALID_CUSTOMER_ID,
    AMOUNT_OUT_OF_RANGE,
)
STUDY_RULE_REASONS: tuple[str, ...] = (
    PRICE_BELOW_MINIMUM,
    NON_PRODUCT_CODE,
    EXCLUDED_COUNTRY,
    EXCLUDED_CUSTOMER,
)
QUARANTINE_REASONS: tuple[str, ...] = PARSE_REASONS + STUDY_RULE_REASONS
RULE_ORDER: tuple[str, ...] = PARSE_REASONS + (AFTER_AS_OF,) + STUDY_RULE_REASONS


# --- segment names --------------------------------------------------------------------------
# (value is high, recency tier, buys again) -> name; the rule is in ``model.profiles``.
NAMES: dict[tuple[bool, str, bool], str] = {
    (True, "recent", True): "Loyal",
    (True, "recent", False): "Loyal",
    (True, "lapsing", True): "At risk",
    (True, "lapsing", False): "At risk",
    (True, "gone", True): "At risk",
    (True, "gone", False): "At risk",
    (False, "recent", True): "Promising",
    (False, "recent", False): "New",
    (False, "lapsing", True): "Need attention",
    (False, "lapsing", False): "About to sleep",
    (False, "gone", True): "Hibernating",
    (False, "gone", False): "Lost",
}
FREQUENT_RETURNERS = "Frequent returners"


# --- backtest rankings ----------------------------------------------------------------------
BASELINE = "baseline"
BASELINE_REGISTERED = "baseline_registered"
FORESIGHT = "foresight"
SEGMENTS_SCORER = "segments"
INSIDERS_POINT = "insiders"  # the segmentation's cluster 1 at the cut-off, as it is (guests included)
FUTURE_REVENUE_TREE = "future_revenue_tree"
FUTURE_REVENUE_TREE_TREND = "future_revenue_tree_trend"
CLV = "clv"  # BG/NBD expected purchases × Gamma-Gamma expected spend (``evaluation.clv``)
REFERENCES: tuple[str, ...] = (BASELINE, FORESIGHT, BASELINE_REGISTERED, CLV)
MODEL_SCORERS: tuple[str, ...] = (SEGMENTS_SCORER, FUTURE_REVENUE_TREE, FUTURE_REVENUE_TREE_TREND)


# --- published tables and files -------------------------------------------------------------
SEGMENTS = "segments"
PROFILES = "profiles"
QUARANTINE = "quarantine"
RUNS = "runs"
REPORT = "report"
RULES = "rules"
BACKTEST = "backtest"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"  # metrics.json plus provenance; written last
PARTITION_COLUMN = "run_date"

# --- run modes ------------------------------------------------------------------------------
TRAIN = "train"
SCORE = "score"
TRAIN_AND_SCORE = "train-and-score"
MODES = (TRAIN, SCORE, TRAIN_AND_SCORE)
