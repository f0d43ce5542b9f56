"""Every name the job shares between its layers: columns, line reasons, segment names, tables.

Plain data, no Spark: the configuration checks its values against these at start-up, and the
schemas (``core.schemas``), the rules, the aggregation and the reports all speak them.
"""

from __future__ import annotations

# --- the input contract ---------------------------------------------------------------------
# A store's log reaches the job as these canonical columns, through a mapping (canonical = source
# column: [input.columns], --columns, or a dataset profile in conf/datasets/).
INVOICE_ID = "invoice_id"
PRODUCT_ID = "product_id"
DESCRIPTION = "description"
QUANTITY = "quantity"
INVOICE_DATE = "invoice_date"  # as read: text, a timestamp or a date
UNIT_PRICE = "unit_price"
LINE_AMOUNT = "line_amount"  # the line's revenue (unit_price x quantity when both are given)
CUSTOMER_ID = "customer_id"
COUNTRY = "country"
CANONICAL_COLUMNS: tuple[str, ...] = (
    INVOICE_ID,
    PRODUCT_ID,
    DESCRIPTION,
    QUANTITY,
    INVOICE_DATE,
    UNIT_PRICE,
    LINE_AMOUNT,
    CUSTOMER_ID,
    COUNTRY,
)
REQUIRED_COLUMNS: tuple[str, ...] = (CUSTOMER_ID, INVOICE_DATE)  # and UNIT_PRICE or LINE_AMOUNT
AMOUNT_COLUMNS: tuple[str, ...] = (UNIT_PRICE, LINE_AMOUNT)  # at least one of them
# What the job does without each optional column (the manifest and the report list it).
ABSENT_EFFECTS: dict[str, str] = {
    INVOICE_ID: "one invoice per customer and timestamp (a guest's lines at one timestamp are one guest)",
    PRODUCT_ID: "qty_products is not computed and the tree does not use it; no line is set aside as a "
    "missing or non-product code",
    DESCRIPTION: "no effect on the features; quarantined lines show no description",
    QUANTITY: "every line is one item (a negative line_amount: one returned item); with line_amount the "
    "amount is the line's revenue",
    UNIT_PRICE: "the revenue is line_amount",
    LINE_AMOUNT: "the revenue is unit_price x quantity",
    COUNTRY: "no line is set aside by country",
}

# Kinds of customer ids ([input] customer_ids): positive whole numbers (anything else is an invalid
# id), or any text (numbered by a hash; the text is kept as source_customer_id).
NUMBER_IDS = "number"
TEXT_IDS = "text"

# Where each raw line came from (file path, table name, or the synthetic generator's name).
SOURCE_FILE = "source_file"

# A CSV line that does not split into the header's columns, kept whole by Spark's PERMISSIVE mode.
CORRUPT_RECORD = "_corrupt_record"

# --- parsed lines ---------------------------------------------------------------------------
INVOICE_TS = "invoice_ts"
REVENUE_UNITS = "revenue_units"  # a line's revenue in 1/10,000 currency units, exact

REASON = "reason"  # null: the line is kept; otherwise why it is not

# --- customer features ----------------------------------------------------------------------
IS_GUEST = "is_guest"
SOURCE_CUSTOMER_ID = "source_customer_id"  # the customer's id as the log gives it (null for guests)
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
PRODUCT_FEATURES: tuple[str, ...] = (QTY_PRODUCTS,)  # not computed when the log has no product_id

# --- segments -------------------------------------------------------------------------------
LEAF = "leaf"
CLUSTER = "cluster"  # 1 = the highest mean gross revenue
SEGMENT = "segment"
IS_INSIDER = "is_insider"
INSIDER_SINCE = "insider_since"  # first run date of the current Insider spell (null: not an Insider)
RUNS_OUTSIDE_INSIDERS = "runs_outside_insiders"  # Insiders kept by hysteresis: runs outside cluster 1
TOP_FEATURES = "top_features"  # the features that moved the tree's prediction most, largest first
IS_CONTROL = "is_control"  # in the loyalty A/B test's control group (salted hash of the id)
# share of the bootstrap refits whose Insiders hold the customer (null: no refits were made)
INSIDER_CONFIDENCE = "insider_confidence"
WAITING_LIST = "waiting list"  # cluster 1's customers beyond the programme's size: "Insiders (waiting list)"

# --- line reasons ---------------------------------------------------------------------------
# Why a line is not kept. Parse reasons: the line itself is broken.
MALFORMED_LINE = "malformed_line"
REPEATED_HEADER = "repeated_header"
MISSING_INVOICE = "missing_invoice"
MISSING_PRODUCT = "missing_product"
UNPARSABLE_TIMESTAMP = "unparsable_timestamp"
NON_NUMERIC_QUANTITY = "non_numeric_quantity"
NON_NUMERIC_PRICE = "non_numeric_price"
NON_NUMERIC_AMOUNT = "non_numeric_amount"
INVALID_CUSTOMER_ID = "invalid_customer_id"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
# Window: a valid line after the as-of date (kept for a later run, not quarantined).
AFTER_AS_OF = "after_as_of"
# The business rules of [cleaning] (a dataset profile sets the study's): valid lines the segmentation
# leaves out.
PRICE_BELOW_MINIMUM = "price_below_minimum"
NON_PRODUCT_CODE = "non_product_code"
EXCLUDED_COUNTRY = "excluded_country"
EXCLUDED_CUSTOMER = "excluded_customer"

PARSE_REASONS: tuple[str, ...] = (
    MALFORMED_LINE,
    REPEATED_HEADER,
    MISSING_INVOICE,
    MISSING_PRODUCT,
    UNPARSABLE_TIMESTAMP,
    NON_NUMERIC_QUANTITY,
    NON_NUMERIC_PRICE,
    NON_NUMERIC_AMOUNT,
    INVALID_CUSTOMER_ID,
    AMOUNT_OUT_OF_RANGE,
)
BUSINESS_RULE_REASONS: tuple[str, ...] = (
    PRICE_BELOW_MINIMUM,
    NON_PRODUCT_CODE,
    EXCLUDED_COUNTRY,
    EXCLUDED_CUSTOMER,
)
QUARANTINE_REASONS: tuple[str, ...] = PARSE_REASONS + BUSINESS_RULE_REASONS
RULE_ORDER: tuple[str, ...] = PARSE_REASONS + (AFTER_AS_OF,) + BUSINESS_RULE_REASONS


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
