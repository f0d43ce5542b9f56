"""A deterministic, fast generator of synthetic raw transaction logs shaped like "Online Retail".

The model. A log is a sequence of ``spec.lines`` lines cut into invoices. Line positions map to
time through a calendar intensity (weekday and hour-of-day profiles, a Christmas closure and a
seasonal curve peaking in November), so the whole log is in time order and an invoice's position
fixes its timestamp. The log is produced in chunks of consecutive lines (consecutive time slices);
an invoice never spans two chunks, and chunk ``i`` numbers its invoices from its own disjoint
range (``FIRST_INVOICE_NO + i * chunk_lines + k``), so numbers are unique and rise with time.

Invoices come in four kinds: registered purchases; guest purchases (no CustomerID); returns
("C" invoice numbers, negative quantities, mostly registered customers returning products they
buy); and one-line stock adjustments (guest, price 0.0, often no description and a negative
quantity on a non-"C" invoice). Kind shares are set so that the *line* shares match the spec.

A global population of registered customers depends on the seed only (identical in every chunk
and process): contiguous-ish ids from 12346 upward, a lognormal activity weight (a ~10% head
holds about half the revenue), a home country (UK-heavy), an active window (some were already
customers when the log starts, others join later, some churn) and a preferred subset of the
catalogue (stable per customer, derived by hashing). A registered invoice on day ``d`` goes to an
active customer drawn by weight. The catalogue (also seed-only) has ``spec.products`` stock codes
like "85123A" with made-up descriptions, lognormal prices and long-tailed popularity, plus the
store's non-product codes (POST, DOT, M, D, ...) at small rates. Quantities follow pack sizes
(1, 2, 12, 6, 24, ...) with a rare bulk tail; guests pay retail prices, large packs get discounts.

Chunk content is a pure function of ``(spec, chunk_index, chunk_lines)``: numpy Generators are
seeded from ``(seed, stream, chunk_index)`` for a chunk and ``(seed, stream)`` for the population
and catalogue. Memory is one chunk (~200-350 bytes a line at its peak) plus the population
(31 bytes a customer, built once per process: ~85 MB at the default size of a 200M-line log).
"""

from insiders_spark.storage.synthetic.log import (
    LAYOUTS,
    ONLINE_RETAIL,
    ORDERS,
    ORDERS_COLUMNS,
    chunk_count,
    generate_chunk,
    iter_chunks,
    to_orders_layout,
    to_spark,
    write_parquet,
)
from insiders_spark.storage.synthetic.spec import SyntheticLogSpec
from insiders_spark.storage.synthetic.tables import (
    FIRST_CUSTOMER_ID,
    FIRST_INVOICE_NO,
    ONLINE_RETAIL_COLUMNS,
    ONLINE_RETAIL_SCHEMA,
    RAW_ARROW_SCHEMA,
    REGISTERED_ID_CEILING,
    SPARK_CHUNK_LINES,
    spark_to_arrow_schema,
)

__all__ = [
    "FIRST_CUSTOMER_ID",
    "FIRST_INVOICE_NO",
    "LAYOUTS",
    "ONLINE_RETAIL",
    "ONLINE_RETAIL_COLUMNS",
    "ONLINE_RETAIL_SCHEMA",
    "ORDERS",
    "ORDERS_COLUMNS",
    "RAW_ARROW_SCHEMA",
    "REGISTERED_ID_CEILING",
    "SPARK_CHUNK_LINES",
    "SyntheticLogSpec",
    "chunk_count",
    "generate_chunk",
    "iter_chunks",
    "spark_to_arrow_schema",
    "to_orders_layout",
    "to_spark",
    "write_parquet",
]
