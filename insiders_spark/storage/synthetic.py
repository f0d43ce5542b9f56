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

from __future__ import annotations

import datetime as dt
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import types as T

from insiders_spark.core.names import RAW_COLUMNS
from insiders_spark.core.schemas import RAW_PARQUET_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# --- arrow schema -------------------------------------------------------------------------------
_ARROW_TYPES: dict[type, pa.DataType] = {
    T.StringType: pa.string(),
    T.LongType: pa.int64(),
    T.DoubleType: pa.float64(),
    T.IntegerType: pa.int32(),
}


def spark_to_arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema of a flat Spark schema (string, long, int and double fields)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[type(f.dataType)], f.nullable) for f in schema.fields])


RAW_ARROW_SCHEMA: pa.Schema = spark_to_arrow_schema(RAW_PARQUET_SCHEMA)

# --- constants of the model ---------------------------------------------------------------------
LINES_PER_CUSTOMER = 75  # default population: lines // 75 (~60% show up: one per ~125 lines)
MIN_CUSTOMERS = 20
FIRST_CUSTOMER_ID = 12346
REGISTERED_ID_CEILING = 19000  # the job numbers guest invoices from here: stay below it
OVERFLOW_CUSTOMER_ID = 100_000_000  # where ids continue when the population does not fit below
FIRST_INVOICE_NO = 536365
MAX_INVOICE_LINES = 1000
SPARK_CHUNK_LINES = 100_000  # lines per Spark task when the job generates the log itself (the log depends on it)
MAX_PRODUCTS = 10_000  # the stock-code ranges below hold about 15,000 base numbers

_POPULATION_STREAM, _CATALOGUE_STREAM, _CHUNK_STREAM = 1, 2, 3

# invoice kinds
REGISTERED, GUEST, RETURN, ADJUSTMENT = 0, 1, 2, 3
_GUEST_RETURN_SHARE = 0.04  # share of return invoices without a customer

# customers
_ID_GAP_SHARE = 0.36  # real ids are contiguous-ish: ~4,400 customers over 12346..18287
_ACTIVITY_SIGMA = 1.6  # lognormal sd of invoice rates (the head: ~half the revenue)
_ACTIVITY_FLOOR = -1.2  # in sds: no customer is much rarer than that
_EXISTING_SHARE = 0.35  # already customers when the log starts
_MEAN_LIFETIME_DAYS = 700.0
_MIN_ACTIVE_DAYS = 21
_TASTE_BASE = 70.0  # preferred-subset size of a median customer
_ESTABLISHED_DAYS = 7  # a return comes from a customer active for at least this long

# calendar
_HOUR_WEIGHTS = np.array(
    [0] * 6 + [22, 31, 624, 1824, 2961, 3165, 3961, 3369, 3137, 3069, 1952, 1205, 333, 219, 28] + [0] * 3,
    dtype=np.float64,
)
_WEEKDAY_WEIGHTS = np.array([4.1, 4.7, 4.8, 5.7, 4.2, 0.0, 2.4])  # Mon..Sun; closed Saturdays
_MONTH_WEIGHTS = np.array([1.0, 0.85, 1.0, 0.95, 1.05, 1.05, 1.05, 1.0, 1.4, 1.65, 2.3, 1.6])
_TIMES_OF_DAY = pa.array([f"{m // 60:02d}:{m % 60:02d}:00" for m in range(1440)], pa.string())

# countries: (name, share of registered customers, share of guest invoices)
_COUNTRIES: tuple[tuple[str, float, float], ...] = (
    ("United Kingdom", 3950, 0.989),
    ("Germany", 95, 0.0003),
    ("France", 87, 0.0005),
    ("Spain", 29, 0.0),
    ("Belgium", 24, 0.0),
    ("Switzerland", 20, 0.0009),
    ("Portugal", 19, 0.0003),
    ("Italy", 15, 0.0),
    ("Finland", 12, 0.0),
    ("Norway", 10, 0.0),
    ("Australia", 9, 0.0),
    ("Netherlands", 9, 0.0),
    ("Channel Islands", 9, 0.0),
    ("Austria", 9, 0.0),
    ("Japan", 8, 0.0),
    ("Denmark", 8, 0.0),
    ("Sweden", 8, 0.0),
    ("Cyprus", 7, 0.0),
    ("Poland", 6, 0.0),
    ("EIRE", 5, 0.0053),
    ("Israel", 4, 0.0002),
    ("Greece", 4, 0.0),
    ("Canada", 4, 0.0),
    ("USA", 4, 0.0),
    ("Unspecified", 4, 0.0015),
    ("United Arab Emirates", 2, 0.0),
    ("Bahrain", 2, 0.0002),
    ("Malta", 2, 0.0),
    ("Lithuania", 1, 0.0),
    ("Iceland", 1, 0.0),
    ("Singapore", 1, 0.0),
    ("Lebanon", 1, 0.0),
    ("Saudi Arabia", 1, 0.0),
    ("Czech Republic", 1, 0.0),
    ("Brazil", 1, 0.0),
    ("European Community", 1, 0.0),
    ("RSA", 1, 0.0),
    ("Hong Kong", 0, 0.0021),
)
_COUNTRY_NAMES = pa.array([c[0] for c in _COUNTRIES], pa.string())
_UNSPECIFIED = [c[0] for c in _COUNTRIES].index("Unspecified")
_EUROPEAN_COMMUNITY = [c[0] for c in _COUNTRIES].index("European Community")

# quantities: pack sizes of purchase lines and of returned lines
_QTY_VALUES = np.array(
    [
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        15,
        16,
        18,
        20,
        24,
        25,
        30,
        32,
        36,
        40,
        48,
        50,
        60,
        72,
        96,
        100,
        120,
        144,
        192,
        200,
        288,
        300,
        480,
        500,
        576,
        1000,
    ]
)
_QTY_WEIGHTS = np.array(
    [
        148,
        82,
        37,
        38,
        12,
        41,
        3,
        13,
        2,
        22,
        1,
        61,
        0.8,
        4.3,
        1.8,
        5,
        24,
        5.1,
        1.2,
        1,
        3.8,
        1.1,
        6.1,
        0.9,
        0.7,
        1.9,
        1.8,
        1.8,
        0.6,
        1,
        0.3,
        0.4,
        0.2,
        0.2,
        0.1,
        0.1,
        0.1,
        0.05,
    ]
)
_RETURN_QTY_VALUES = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 24, 48, 100])
_RETURN_QTY_WEIGHTS = np.array([44, 14, 6.3, 5, 2, 5.2, 1.6, 1.8, 5.9, 2.6, 0.9, 0.5])
_BULK_SHARE = 5e-5  # rare very large orders (hundreds to tens of thousands)
_EXPENSIVE = 8.0  # products at or above this price sell in small packs

# prices
_PRICE_LOG_MEAN, _PRICE_LOG_SD = 0.9, 1.0
_GUEST_MARKUP = 1.9
_PACK_DISCOUNTS = np.array([1.0, 0.9, 0.8])  # registered lines of < 24, 24-99, 100+ items
_ZERO_PRICE_SHARE = 3e-4  # stray 0.0 prices on purchase lines
_ADJUSTMENT_NULL_DESCRIPTION = 0.6
_ADJUSTMENT_NOTES = (
    "check",
    "damaged",
    "damages",
    "found",
    "adjustment",
    "?",
    "missing",
    "wet damaged",
    "stock check",
    "mixed up",
)

# non-product codes: code, description, median price, log sd, line rate on registered, guest,
# return lines (B has a negative price, PADS a price of 0.001: both below the 0.04 floor)
_NON_PRODUCTS: tuple[tuple[str, str, float, float, float, float, float], ...] = (
    ("POST", "POSTAGE", 18.0, 0.3, 3e-3, 3e-4, 5e-3),
    ("DOT", "DOTCOM POSTAGE", 180.0, 0.8, 2e-5, 5e-3, 0.0),
    ("M", "Manual", 7.95, 1.5, 8e-4, 8e-4, 1e-2),
    ("C2", "CARRIAGE", 50.0, 0.1, 3e-4, 1e-4, 1e-3),
    ("D", "Discount", 25.0, 1.0, 0.0, 0.0, 6e-3),
    ("S", "SAMPLES", 20.0, 1.2, 0.0, 1e-5, 6e-3),
    ("BANK CHARGES", "Bank Charges", 15.0, 0.5, 5e-5, 1e-5, 2e-3),
    ("AMAZONFEE", "AMAZON FEE", 5000.0, 1.0, 0.0, 0.0, 3e-3),
    ("CRUK", "CRUK Commission", 400.0, 0.5, 0.0, 0.0, 1.7e-3),
    ("DCGSSBOY", "BOYS PARTY BAG", 3.29, 0.0, 0.0, 8e-5, 0.0),
    ("DCGSSGIRL", "GIRLS PARTY BAG", 3.29, 0.0, 0.0, 8e-5, 0.0),
    ("PADS", "PADS TO MATCH ALL CUSHIONS", 0.001, 0.0, 1e-5, 0.0, 0.0),
    ("m", "Manual", 2.55, 0.0, 0.0, 5e-6, 0.0),
    ("B", "Adjust bad debt", -11000.0, 0.2, 0.0, 1e-5, 0.0),
)

# words of made-up product descriptions
_MODIFIERS = (
    "",
    "",
    "",
    "",
    "SET OF 3",
    "SET OF 4",
    "SET/6",
    "PACK OF 12",
    "SMALL",
    "LARGE",
    "MINI",
    "JUMBO",
    "VINTAGE",
    "RETRO",
    "REGENCY",
    "ANTIQUE",
    "WOODEN",
    "GLASS",
    "ENAMEL",
    "CERAMIC",
    "PAPER",
    "FELT",
    "ZINC",
    "WIRE",
    "LACE",
    "HANGING",
    "FOLDING",
)
_COLOURS = (
    "",
    "",
    "PINK",
    "RED",
    "BLUE",
    "GREEN",
    "WHITE",
    "IVORY",
    "CREAM",
    "BLACK",
    "SILVER",
    "GOLD",
    "PASTEL",
    "RED SPOTTY",
    "POLKADOT",
    "STRIPED",
    "FLORAL",
    "GINGHAM",
)
_MOTIFS = (
    "",
    "",
    "",
    "HEART",
    "STAR",
    "ROSE",
    "BIRD",
    "OWL",
    "CHRISTMAS",
    "BUNTING",
    "DOILY",
    "SKULL",
    "CHERRY",
    "LOVEBIRD",
    "DAISY",
    "BUTTERFLY",
    "PAISLEY",
    "ROBOT",
    "ROCKET",
    "DOLLY",
    "WOODLAND",
    "GARDEN",
    "KITCHEN",
    "PARTY",
    "TEA TIME",
    "ALPHABET",
    "JUNGLE",
)
_ITEMS = (
    "T-LIGHT HOLDER",
    "LANTERN",
    "CAKE TIN",
    "CAKE STAND",
    "LUNCH BAG",
    "JUMBO BAG",
    "SHOPPER BAG",
    "MUG",
    "TEACUP AND SAUCER",
    "PLATE",
    "BOWL",
    "NAPKINS",
    "PAPER CUPS",
    "BUNTING",
    "CANDLE",
    "PHOTO FRAME",
    "CLOCK",
    "DOORSTOP",
    "CUSHION COVER",
    "TEA TOWEL",
    "APRON",
    "PURSE",
    "NOTEBOOK",
    "WRAPPING PAPER",
    "GIFT TAG",
    "CARD",
    "STICKERS",
    "BADGE",
    "KEY RING",
    "HOT WATER BOTTLE",
    "STORAGE TIN",
    "JAR",
    "BASKET",
    "BOX",
    "DRAWER KNOB",
    "COAT HOOK",
    "SIGN",
    "MAGNET",
    "PENCILS",
    "GARLAND",
    "DECORATION",
    "BAUBLE",
    "WREATH",
    "VASE",
    "BIRD FEEDER",
    "PLANTER",
    "UMBRELLA",
    "HANDBAG",
    "NECKLACE",
    "EARRINGS",
    "BRACELET",
    "HAIR CLIP",
    "OVEN GLOVE",
    "CHOPPING BOARD",
    "PLACEMAT",
    "COASTER",
    "SOAP DISH",
    "TOOTHBRUSH HOLDER",
    "CABINET",
    "MIRROR",
)
# ranges of the 5-digit base numbers of stock codes and their weights
_CODE_RANGES = (
    (20000, 24000, 0.72),
    (84000, 86000, 0.1),
    (90000, 91000, 0.06),
    (47000, 49000, 0.04),
    (35000, 38000, 0.04),
    (71000, 73000, 0.02),
    (79000, 80000, 0.02),
)


# --- the spec -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticLogSpec:
    """What to generate. Every field has a default calibrated on the real log.

    ``customers`` is the size of the registered population; by default ``lines // 75`` (linear:
    a bigger log is a bigger store). About 60% of the population shows up in the log (the rest
    are rare buyers or have short active windows), i.e. one customer per ~125 lines, like the
    real log. Ids start at 12346 and are contiguous-ish (a gap every ~3 ids, fewer gaps when
    needed to stay below 19000, where the job starts numbering guests). Customers beyond the
    6,654 that fit below 19000 get ids from 100,000,000 up, clear of any guest number.
    """

    lines: int = 300_000
    seed: int = 42
    customers: int | None = None
    start: dt.date = dt.date(2010, 12, 1)
    days: int = 374
    products: int = 4_000
    guest_line_share: float = 0.25  # lines without CustomerID (adjustments and guest returns too)
    return_line_share: float = 0.05  # lines on "C" invoices (the real log has 1.7%)
    adjustment_line_share: float = 0.0045  # one-line guest stock adjustments at price 0.0
    mean_invoice_lines: float = 21.5  # mean lines on a registered purchase invoice
    preferred_share: float = 0.8  # registered purchase lines drawn from the customer's subset
    odd_country_share: float = 0.001  # invoices filed under "Unspecified"/"European Community"

    def __post_init__(self) -> None:
        if isinstance(self.start, dt.datetime):  # a datetime is a date too: keep the day only
            object.__setattr__(self, "start", self.start.date())
        if self.lines < 1 or self.seed < 0 or self.days < 1 or self.products < 1:
            raise ValueError("lines, days and products must be positive and seed non-negative")
        if self.customers is not None and self.customers < 1:
            raise ValueError("customers must be positive")
        if self.products > MAX_PRODUCTS:
            raise ValueError(f"at most {MAX_PRODUCTS} products")
        if not 1.0 <= self.mean_invoice_lines <= MAX_INVOICE_LINES / 4:
            raise ValueError("mean_invoice_lines out of range")
        shares = (
            self.guest_line_share,
            self.return_line_share,
            self.adjustment_line_share,
            self.preferred_share,
            self.odd_country_share,
        )
        if not all(0.0 <= s <= 1.0 for s in shares) or min(_kind_line_shares(self)) < 0.0:
            raise ValueError("shares must be in [0, 1] and leave room for registered purchases")

    @property
    def n_customers(self) -> int:
        """The size of the registered population."""
        if self.customers is not None:
            return self.customers
        return max(MIN_CUSTOMERS, self.lines // LINES_PER_CUSTOMER)


# --- public API ---------------------------------------------------------------------------------
def chunk_count(spec: SyntheticLogSpec, chunk_lines: int = 1_000_000) -> int:
    """How many chunks of ``chunk_lines`` lines make the log (the last one may be shorter)."""
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be positive")
    return -(-spec.lines // chunk_lines)


def generate_chunk(spec: SyntheticLogSpec, chunk_index: int, chunk_lines: int = 1_000_000) -> pa.Table:
    """Lines ``[chunk_index * chunk_lines, ...)`` of the log, as a table of ``RAW_ARROW_SCHEMA``."""
    columns = _chunk_columns(spec, chunk_index, chunk_lines)
    return pa.Table.from_arrays([_decoded(c) for c in columns], schema=RAW_ARROW_SCHEMA)


def iter_chunks(spec: SyntheticLogSpec, chunk_lines: int = 1_000_000) -> Iterator[pa.Table]:
    """All chunks in order, one table at a time."""
    for chunk_index in range(chunk_count(spec, chunk_lines)):
        yield generate_chunk(spec, chunk_index, chunk_lines)


def write_parquet(
    spec: SyntheticLogSpec,
    path: str | os.PathLike[str],
    chunk_lines: int = 1_000_000,
    compression: str = "snappy",
    overwrite: bool = False,
) -> list[str]:
    """Write one ``part-NNNNN.parquet`` per chunk into folder ``path``; return the file paths.

    Existing ``part-*.parquet`` files in the folder raise ``FileExistsError`` unless
    ``overwrite``, which deletes them (and nothing else) first.
    """
    folder = os.fspath(path)
    os.makedirs(folder, exist_ok=True)
    stale = [f for f in os.listdir(folder) if f.startswith("part-") and f.endswith(".parquet")]
    if stale and not overwrite:
        raise FileExistsError(f"{folder} already holds {len(stale)} part files")
    for name in stale:
        os.remove(os.path.join(folder, name))
    paths = []
    for chunk_index in range(chunk_count(spec, chunk_lines)):
        file_path = os.path.join(folder, f"part-{chunk_index:05d}.parquet")
        _write_chunk(_chunk_columns(spec, chunk_index, chunk_lines), file_path, compression)
        paths.append(file_path)
    return paths


def _write_chunk(columns: list[pa.Array], file_path: str, compression: str) -> None:
    """Write dictionary-encoded string columns as they are (no hashing: twice as fast).

    Without a stored Arrow schema the strings read back as plain ``string``, so the file's
    schema is ``RAW_ARROW_SCHEMA``. StockCode and Description get no min/max statistics
    (computing them over their large dictionaries is slow, and nobody prunes on them).
    """
    table = pa.Table.from_arrays(columns, names=list(RAW_COLUMNS))
    with_statistics = [c for c in RAW_COLUMNS if c not in ("StockCode", "Description")]
    pq.write_table(table, file_path, compression=compression, store_schema=False, write_statistics=with_statistics)


def to_spark(spark: SparkSession, spec: SyntheticLogSpec, chunk_lines: int = SPARK_CHUNK_LINES) -> DataFrame:
    """The log as a Spark DataFrame of ``RAW_PARQUET_SCHEMA``, one partition per chunk.

    Chunks are generated in the executors (``mapInArrow`` over the chunk ids), so the driver
    holds nothing of the log's size. Partition order is chunk order.
    """
    n_chunks = chunk_count(spec, chunk_lines)

    def generate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for chunk_index in batch.column(0).to_pylist():
                yield from generate_chunk(spec, chunk_index, chunk_lines).to_batches()

    ids = spark.range(0, n_chunks, 1, numPartitions=n_chunks)
    return ids.mapInArrow(generate, RAW_PARQUET_SCHEMA)


# --- calendar -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _timeline(start: dt.date, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open hours of the period: (first minute of each, cumulative share before it, its share)."""
    dates = np.datetime64(start, "D") + np.arange(days)
    months = dates.astype("datetime64[M]").astype(np.int64) % 12
    day_of_month = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    closed = ((months == 11) & (day_of_month >= 24)) | ((months == 0) & (day_of_month <= 3))
    day_weight = _MONTH_WEIGHTS[months] * _WEEKDAY_WEIGHTS[weekday] * ~closed
    if not day_weight.any():  # a period with no trading day: trade every day anyway
        day_weight = np.ones(days)
    hour_weight = (day_weight[:, None] * _HOUR_WEIGHTS[None, :]).ravel()
    open_hours = np.flatnonzero(hour_weight)
    share = hour_weight[open_hours] / hour_weight.sum()
    before = np.concatenate([[0.0], np.cumsum(share)[:-1]])
    return open_hours * 60, before, share


def _minutes_at(spec: SyntheticLogSpec, positions: np.ndarray) -> np.ndarray:
    """Minutes since ``spec.start`` of the lines at ``positions`` (monotone in position)."""
    hour_start, before, share = _timeline(spec.start, spec.days)
    fraction = positions / spec.lines
    hour = np.searchsorted(before, fraction, side="right") - 1
    within = np.clip((fraction - before[hour]) / share[hour], 0.0, 1.0)
    return hour_start[hour] + np.minimum((within * 60).astype(np.int64), 59)


# --- population and catalogue -------------------------------------------------------------------
@dataclass(frozen=True)
class _Population:
    ids: np.ndarray  # float64 CustomerID
    weight: np.ndarray  # float32 relative invoice rate while active
    first_day: np.ndarray  # first and last day of the active window (days since start)
    last_day: np.ndarray
    country: np.ndarray  # index into _COUNTRIES
    taste: np.ndarray  # size of the preferred subset of the catalogue
    salt: np.ndarray  # uint64 key of the preferred subset


@functools.lru_cache(maxsize=2)
def _population(seed: int, n: int, days: int) -> _Population:
    """The registered customers: a function of the seed, their number and the period only."""
    rng = np.random.default_rng([seed, _POPULATION_STREAM])
    ids = _customer_ids(rng, n)
    activity = np.maximum(rng.standard_normal(n), _ACTIVITY_FLOOR)
    weight = np.exp(_ACTIVITY_SIGMA * activity).astype(np.float32)
    existing = rng.random(n) < _EXISTING_SHARE
    first_day = np.where(existing, 0, rng.integers(0, days, n))
    lifetime = np.maximum(_MIN_ACTIVE_DAYS, rng.exponential(_MEAN_LIFETIME_DAYS, n))
    last_day = np.minimum(days - 1, first_day + lifetime.astype(np.int64))
    country_cdf = _cdf(np.array([c[1] for c in _COUNTRIES], dtype=np.float64))
    country = np.searchsorted(country_cdf, rng.random(n), side="right").astype(np.int8)
    taste_noise = np.exp(0.5 * rng.standard_normal(n))
    taste = np.clip(np.rint(_TASTE_BASE * np.sqrt(weight) * taste_noise), 4, 800)
    salt = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    return _Population(
        ids, weight, first_day.astype(np.int32), last_day.astype(np.int32), country, taste.astype(np.int16), salt
    )


def _customer_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` sorted ids from 12346 with a gap every ~3 ids, below 19000 while they fit.

    The job numbers guest invoices upward from 19000, so ids that do not fit below it continue
    from ``OVERFLOW_CUSTOMER_ID`` (far above any guest number) instead of running into them.
    """
    gaps = round(_ID_GAP_SHARE * n)
    room = REGISTERED_ID_CEILING - FIRST_CUSTOMER_ID
    below = min(n, room)
    gaps = max(0, min(gaps, room - below))
    offsets = np.sort(rng.choice(below + gaps, size=below, replace=False))
    low = FIRST_CUSTOMER_ID + offsets - offsets[0]
    high = OVERFLOW_CUSTOMER_ID + np.arange(n - below)
    return np.concatenate([low, high]).astype(np.float64)


@dataclass(frozen=True)
class _Catalogue:
    codes: pa.Array  # stock codes: products, then non-products
    descriptions: pa.Array  # products, then non-products, then adjustment notes
    price: np.ndarray  # base unit price of each product
    popularity: _Alias  # sampler of products by popularity


@functools.lru_cache(maxsize=2)
def _catalogue(seed: int, n: int) -> _Catalogue:
    """Products (stock codes, descriptions, prices, popularity) plus the non-product codes."""
    rng = np.random.default_rng([seed, _CATALOGUE_STREAM])
    codes, families = _stock_codes(rng, n)
    descriptions = _descriptions(rng, families)
    price = _price_points(np.exp(rng.normal(_PRICE_LOG_MEAN, _PRICE_LOG_SD, n)))
    popularity = np.exp(1.4 * rng.standard_normal(n)) * price**-0.3
    return _Catalogue(
        codes=pa.array(codes + [p[0] for p in _NON_PRODUCTS], pa.string()),
        descriptions=pa.array(descriptions + [p[1] for p in _NON_PRODUCTS] + list(_ADJUSTMENT_NOTES), pa.string()),
        price=price,
        popularity=_alias_table(popularity),
    )


def _stock_codes(rng: np.random.Generator, n: int) -> tuple[list[str], list[int]]:
    """``n`` codes like "22423" or "85123A" (letters mark variants of one family)."""
    range_weights = np.array([r[2] for r in _CODE_RANGES])
    picks = rng.choice(len(_CODE_RANGES), size=2 * n, p=range_weights / range_weights.sum())
    lows, highs = (np.array([r[i] for r in _CODE_RANGES])[picks] for i in (0, 1))
    numbers = dict.fromkeys((lows + rng.random(2 * n) * (highs - lows)).astype(int).tolist())
    variants = np.where(rng.random(len(numbers)) < 0.1, rng.integers(2, 7, len(numbers)), 1)
    codes: list[str] = []
    families: list[int] = []
    for family, (number, count) in enumerate(zip(numbers, variants.tolist(), strict=True)):
        suffixes = [""] if count == 1 else [chr(ord("A") + k) for k in range(count)]
        codes += [f"{number}{s}" for s in suffixes]
        families += [family] * count
        if len(codes) >= n:
            break
    return codes[:n], families[:n]


def _descriptions(rng: np.random.Generator, families: list[int]) -> list[str]:
    """Made-up upper-case descriptions; variants of a family differ in colour only."""
    n_families = families[-1] + 1 if families else 0
    stems = [
        (
            _MODIFIERS[rng.integers(len(_MODIFIERS))],
            _MOTIFS[rng.integers(len(_MOTIFS))],
            _ITEMS[rng.integers(len(_ITEMS))],
        )
        for _ in range(n_families)
    ]
    colours = rng.integers(len(_COLOURS), size=len(families))
    trailing = rng.random(len(families)) < 0.1  # the real export has stray trailing spaces
    out = []
    for family, colour, space in zip(families, colours.tolist(), trailing.tolist(), strict=True):
        modifier, motif, item = stems[family]
        words = " ".join(w for w in (modifier, _COLOURS[colour], motif, item) if w)
        out.append(words + (" " if space else ""))
    return out


def _price_points(raw: np.ndarray) -> np.ndarray:
    """Shop-like prices: pennies below 1.00, multiples of 0.05 above, never below 0.10."""
    return np.maximum(0.10, np.where(raw < 1.0, np.round(raw, 2), np.round(raw * 20) / 20))


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    return cdf / cdf[-1]


class _Alias(NamedTuple):
    """Walker's alias table: draws a weighted category from one uniform in O(1)."""

    prob: np.ndarray
    alias: np.ndarray


def _alias_table(weights: np.ndarray) -> _Alias:
    """Vose's construction of the alias table of ``weights``."""
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * n / np.sum(weights)
    prob, alias = np.ones(n), np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] += scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    return _Alias(prob, alias)


def _alias_draw(table: _Alias, u: np.ndarray) -> np.ndarray:
    """Categories for uniforms ``u`` in [0, 1): the integer part of ``u * n`` picks a column,
    the fractional part decides between it and its alias."""
    scaled = u * table.prob.size
    column = np.minimum(scaled.astype(np.int64), table.prob.size - 1)  # u * n may round to n
    return np.where(scaled - column < table.prob[column], column, table.alias[column])


# --- invoices -----------------------------------------------------------------------------------
class _Invoices(NamedTuple):
    kind: np.ndarray  # REGISTERED, GUEST, RETURN or ADJUSTMENT
    size: np.ndarray  # lines
    minute: np.ndarray  # minutes since spec.start
    customer: np.ndarray  # index into the population, -1 for guests
    country: np.ndarray  # index into _COUNTRIES


def _kind_line_shares(spec: SyntheticLogSpec) -> tuple[float, float, float, float]:
    guest_returns = _GUEST_RETURN_SHARE * spec.return_line_share
    guest = spec.guest_line_share - spec.adjustment_line_share - guest_returns
    registered = 1.0 - spec.guest_line_share - spec.return_line_share + guest_returns
    return registered, guest, spec.return_line_share, spec.adjustment_line_share


@functools.lru_cache(maxsize=8)
def _size_pmfs(mean_registered: float) -> tuple[np.ndarray, np.ndarray]:
    """Lines-per-invoice pmfs over 1..MAX_INVOICE_LINES of each kind, and their means."""
    k = np.arange(1, MAX_INVOICE_LINES + 1, dtype=np.float64)
    single = (k == 1).astype(np.float64)
    guest = 0.45 * single + 0.55 * _lognormal_pmf(k, math.log(40.0), 1.0)
    returns = 0.55 ** (k - 1)
    pmfs = np.stack([_registered_pmf(k, mean_registered), guest, returns / returns.sum(), single])
    return pmfs, pmfs @ k


def _lognormal_pmf(k: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    density = np.exp(-((np.log(k) - mu) ** 2) / (2 * sigma**2)) / k
    return density / density.sum()


def _registered_pmf(k: np.ndarray, mean: float, sigma: float = 0.85) -> np.ndarray:
    """A discretised lognormal with the given mean (found by bisection on its log-median)."""
    low, high = -5.0, math.log(MAX_INVOICE_LINES)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _lognormal_pmf(k, mid, sigma) @ k < mean else (low, mid)
    return _lognormal_pmf(k, (low + high) / 2, sigma)


def _draw_invoices(spec: SyntheticLogSpec, rng: np.random.Generator, n_lines: int, first_line: int) -> _Invoices:
    kind, size = _draw_kinds_and_sizes(spec, rng, n_lines)
    starts = first_line + np.cumsum(size) - size
    minute = _minutes_at(spec, starts)
    population = _population(spec.seed, spec.n_customers, spec.days)
    customer = _draw_customers(population, kind, minute // 1440, rng)
    country = _draw_countries(spec, population, customer, rng)
    return _Invoices(kind, size, minute, customer, country)


def _draw_kinds_and_sizes(
    spec: SyntheticLogSpec, rng: np.random.Generator, n_lines: int
) -> tuple[np.ndarray, np.ndarray]:
    """Invoice kinds and sizes filling exactly ``n_lines`` (the last invoice is cut short)."""
    pmfs, means = _size_pmfs(spec.mean_invoice_lines)
    kind_p = np.array(_kind_line_shares(spec)) / means
    kind_cdf = _cdf(kind_p)
    size_cdfs = [_cdf(p) for p in pmfs]
    mean_size = kind_p @ means / kind_p.sum()
    kinds, sizes, total = [], [], 0
    while total < n_lines:
        m = int((n_lines - total) / mean_size * 1.1) + 16
        kind = np.searchsorted(kind_cdf, rng.random(m), side="right")
        size = np.empty(m, dtype=np.int64)
        for k, cdf in enumerate(size_cdfs):
            of_kind = kind == k
            size[of_kind] = 1 + np.searchsorted(cdf, rng.random(of_kind.sum()), side="right")
        kinds.append(kind)
        sizes.append(size)
        total += int(size.sum())
    kind, size = np.concatenate(kinds), np.concatenate(sizes)
    ends = np.cumsum(size)
    n_invoices = int(np.searchsorted(ends, n_lines)) + 1
    kind, size = kind[:n_invoices], size[:n_invoices]
    size[-1] -= ends[n_invoices - 1] - n_lines
    return kind.astype(np.int8), size


def _draw_customers(population: _Population, kind: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A customer for each registered purchase or return, drawn by weight among the active."""
    customer = np.full(kind.size, -1, dtype=np.int64)
    guest_return = (kind == RETURN) & (rng.random(kind.size) < _GUEST_RETURN_SHARE)
    registered = np.flatnonzero(((kind == REGISTERED) | (kind == RETURN)) & ~guest_return)
    bounds = np.flatnonzero(np.diff(day[registered])) + 1
    for group in np.split(registered, bounds):  # invoices are in time order: one group a day
        if group.size:
            is_return = kind[group] == RETURN
            customer[group] = _draw_on_day(population, int(day[group[0]]), is_return, rng)
    return customer


def _draw_on_day(population: _Population, day: int, is_return: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Purchases go to customers active that day, returns to those active for a while."""
    active = np.flatnonzero((population.first_day <= day) & (population.last_day >= day))
    picks = np.empty(is_return.size, dtype=np.int64)
    picks[~is_return] = _weighted_pick(population.weight, active, int((~is_return).sum()), rng)
    if is_return.any():
        established = active[population.first_day[active] <= day - _ESTABLISHED_DAYS]
        picks[is_return] = _weighted_pick(population.weight, established, int(is_return.sum()), rng)
    return picks


def _weighted_pick(weight: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if candidates.size == 0:  # nobody qualifies (tiny populations): fall back to anyone
        candidates = np.arange(weight.size)
    cumulative = np.cumsum(weight[candidates], dtype=np.float64)
    picks = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    return candidates[np.minimum(picks, candidates.size - 1)]


def _draw_countries(
    spec: SyntheticLogSpec,
    population: _Population,
    customer: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    guest_cdf = _cdf(np.array([c[2] for c in _COUNTRIES], dtype=np.float64))
    guest_country = np.searchsorted(guest_cdf, rng.random(customer.size), side="right")
    country = np.where(customer >= 0, population.country[customer], guest_country)
    odd = rng.random(customer.size)
    country[odd < spec.odd_country_share] = _UNSPECIFIED
    country[odd < spec.odd_country_share / 5] = _EUROPEAN_COMMUNITY
    return country.astype(np.int16)


# --- lines --------------------------------------------------------------------------------------
class _Lines(NamedTuple):
    invoice: np.ndarray  # index of the line's invoice
    item: np.ndarray  # index into _Catalogue.codes
    description: np.ndarray  # index into _Catalogue.descriptions, -1 for null
    quantity: np.ndarray
    price: np.ndarray


def _draw_lines(spec: SyntheticLogSpec, rng: np.random.Generator, inv: _Invoices) -> _Lines:
    catalogue = _catalogue(spec.seed, spec.products)
    invoice = np.repeat(np.arange(inv.kind.size, dtype=np.int32), inv.size)
    kind = inv.kind[invoice]
    customer = inv.customer[invoice]
    product = _draw_products(spec, rng, kind, customer, catalogue)
    non_product = _draw_non_products(rng, kind)
    is_product = non_product < 0
    item = np.where(is_product, product, spec.products + non_product)
    base_price = catalogue.price[product]
    quantity = _draw_quantities(rng, kind, base_price)
    quantity[~is_product] = np.where(kind[~is_product] == RETURN, -1, 1)
    price = _line_prices(rng, kind, quantity, base_price, non_product)
    description = _descriptions_of_lines(rng, kind, item, spec.products)
    return _Lines(invoice, item.astype(np.int32), description, quantity, price)


def _draw_products(
    spec: SyntheticLogSpec,
    rng: np.random.Generator,
    kind: np.ndarray,
    customer: np.ndarray,
    catalogue: _Catalogue,
) -> np.ndarray:
    """Products by popularity; registered lines mostly from the customer's preferred subset."""
    population = _population(spec.seed, spec.n_customers, spec.days)
    n = kind.size
    is_return = kind == RETURN
    preferred = (customer >= 0) & (is_return | (rng.random(n) < spec.preferred_share))
    skew = np.square(rng.random(n))  # low slots are the customer's favourites, bought most often
    np.square(skew, out=skew, where=is_return)  # and returned most often
    slot = (skew * population.taste[customer]).astype(np.uint64)
    hashed = _hash_uniform(population.salt[customer], slot)  # guests' values are ignored
    u = np.where(preferred, hashed, rng.random(n))
    return _alias_draw(catalogue.popularity, u).astype(np.int32)


def _hash_uniform(salt: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) from (salt, slot) by the splitmix64 finaliser: stable everywhere."""
    x = salt + slot * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _draw_non_products(rng: np.random.Generator, kind: np.ndarray) -> np.ndarray:
    """Index into _NON_PRODUCTS of lines that carry a non-product code, -1 elsewhere."""
    rates = np.array([p[4:7] for p in _NON_PRODUCTS]).T  # kinds x codes
    rates = np.vstack([rates, np.zeros(len(_NON_PRODUCTS))])  # adjustments: products only
    cumulative = np.cumsum(rates, axis=1)
    u = rng.random(kind.size)
    code = np.full(kind.size, -1, dtype=np.int64)
    for k in range(len(cumulative)):
        hit = (kind == k) & (u < cumulative[k, -1])
        code[hit] = np.searchsorted(cumulative[k], u[hit], side="right")
    return code


def _draw_quantities(rng: np.random.Generator, kind: np.ndarray, base_price: np.ndarray) -> np.ndarray:
    """Pack sizes; returns negative; expensive products in small packs; a rare bulk tail."""
    n = kind.size
    quantity = _QTY_VALUES[_alias_draw(_QTY_ALIAS, rng.random(n))]
    expensive = base_price >= _EXPENSIVE
    quantity[expensive] = np.minimum(quantity[expensive], 1 + (quantity[expensive] > 2) * 3)
    bulk = rng.random(n) < _BULK_SHARE
    quantity[bulk] = np.minimum(80_000, (200 * (1 + rng.pareto(1.2, bulk.sum()))).astype(np.int64))
    returns = kind == RETURN
    returned = _alias_draw(_RETURN_QTY_ALIAS, rng.random(returns.sum()))
    quantity[returns] = -_RETURN_QTY_VALUES[returned]
    adjustments = np.flatnonzero(kind == ADJUSTMENT)
    flip = rng.random(adjustments.size) < 0.6
    quantity[adjustments[flip]] *= -1
    return quantity.astype(np.int64)


def _line_prices(
    rng: np.random.Generator,
    kind: np.ndarray,
    quantity: np.ndarray,
    base_price: np.ndarray,
    non_product: np.ndarray,
) -> np.ndarray:
    """Unit prices: guests pay retail, big packs get discounts, a few 0.0 and odd prices."""
    size = np.abs(quantity)
    tier = _PACK_DISCOUNTS[(size >= 24).view(np.int8) + (size >= 100).view(np.int8)]
    price = base_price * np.where(kind == GUEST, _GUEST_MARKUP, tier)
    others = np.flatnonzero(non_product >= 0)
    if others.size:
        codes = non_product[others]
        median = np.array([p[2] for p in _NON_PRODUCTS])[codes]
        sd = np.array([p[3] for p in _NON_PRODUCTS])[codes]
        price[others] = median * np.exp(sd * rng.standard_normal(others.size))
    price = np.round(price, 2)
    if others.size:  # PADS-like prices below a penny survive the rounding
        price[others] = np.where(np.abs(median) < 0.01, median, price[others])
    stray = (kind == REGISTERED) & (rng.random(kind.size) < _ZERO_PRICE_SHARE)
    zero = (kind == ADJUSTMENT) | stray
    price[zero] = 0.0
    return price


def _descriptions_of_lines(rng: np.random.Generator, kind: np.ndarray, item: np.ndarray, n_products: int) -> np.ndarray:
    """The item's own description; adjustments get a note or none (-1 stands for null)."""
    description = item.astype(np.int32)
    adjustments = np.flatnonzero(kind == ADJUSTMENT)
    first_note = n_products + len(_NON_PRODUCTS)
    notes = first_note + rng.integers(0, len(_ADJUSTMENT_NOTES), adjustments.size)
    null = rng.random(adjustments.size) < _ADJUSTMENT_NULL_DESCRIPTION
    description[adjustments] = np.where(null, -1, notes)
    return description


# --- assembly -----------------------------------------------------------------------------------
def _chunk_columns(spec: SyntheticLogSpec, chunk_index: int, chunk_lines: int) -> list[pa.Array]:
    """The chunk's columns in ``RAW_COLUMNS`` order; string columns dictionary-encoded."""
    if not 0 <= chunk_index < chunk_count(spec, chunk_lines):
        raise IndexError(f"chunk {chunk_index} out of range")
    first_line = chunk_index * chunk_lines
    n_lines = min(chunk_lines, spec.lines - first_line)
    rng = np.random.default_rng([spec.seed, _CHUNK_STREAM, chunk_index])
    invoices = _draw_invoices(spec, rng, n_lines, first_line)
    lines = _draw_lines(spec, rng, invoices)
    first_invoice_no = FIRST_INVOICE_NO + chunk_index * chunk_lines
    return _assemble(spec, invoices, lines, first_invoice_no)


def _assemble(spec: SyntheticLogSpec, inv: _Invoices, lines: _Lines, first_invoice_no: int) -> list[pa.Array]:
    catalogue = _catalogue(spec.seed, spec.products)
    population = _population(spec.seed, spec.n_customers, spec.days)
    customer = inv.customer[lines.invoice]
    minutes, minute_of_invoice = np.unique(inv.minute, return_inverse=True)
    columns = {
        "InvoiceNo": _encoded(lines.invoice, _invoice_numbers(inv.kind, first_invoice_no)),
        "StockCode": _encoded(lines.item, catalogue.codes),
        "Description": _encoded(lines.description, catalogue.descriptions),
        "Quantity": pa.array(lines.quantity, pa.int64()),
        "InvoiceDate": _encoded(minute_of_invoice[lines.invoice], _dates(spec, minutes)),
        "UnitPrice": pa.array(lines.price, pa.float64()),
        "CustomerID": pa.array(population.ids[customer], pa.float64(), mask=customer < 0),
        "Country": _encoded(inv.country[lines.invoice], _COUNTRY_NAMES),
    }
    return [columns[c] for c in RAW_COLUMNS]


def _encoded(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """A dictionary array; negative indices stand for nulls."""
    null = indices < 0
    codes = pa.array(indices.astype(np.int32), mask=null if null.any() else None)
    return pa.DictionaryArray.from_arrays(codes, dictionary)


def _decoded(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _invoice_numbers(kind: np.ndarray, first: int) -> pa.Array:
    numbers = pc.cast(pa.array(first + np.arange(kind.size, dtype=np.int64)), pa.string())
    prefix = pc.if_else(pa.array(kind == RETURN), "C", "")
    return pc.binary_join_element_wise(prefix, numbers, "")


def _dates(spec: SyntheticLogSpec, minute: np.ndarray) -> pa.Array:
    """``yyyy-MM-dd HH:mm:ss`` strings, joined from a day table and a time-of-day table."""
    day, minute_of_day = np.divmod(minute, 1440)
    day_part = _day_strings(spec.start, spec.days).take(pa.array(day.astype(np.int32)))
    time_part = _TIMES_OF_DAY.take(pa.array(minute_of_day.astype(np.int32)))
    return pc.binary_join_element_wise(day_part, time_part, " ")


@functools.lru_cache(maxsize=8)
def _day_strings(start: dt.date, days: int) -> pa.Array:
    return pa.array([(start + dt.timedelta(days=d)).isoformat() for d in range(days)], pa.string())


_QTY_ALIAS = _alias_table(_QTY_WEIGHTS)
_RETURN_QTY_ALIAS = _alias_table(_RETURN_QTY_WEIGHTS)
