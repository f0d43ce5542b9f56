"""The synthetic log's fixed tables: its arrow schema, calendar weights, countries, quantities,
prices and product words."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import types as T

# The layout of the UCI Online Retail export (the study's log): numbers typed, the timestamp text.
ONLINE_RETAIL_SCHEMA = T.StructType(
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
ONLINE_RETAIL_COLUMNS: tuple[str, ...] = tuple(f.name for f in ONLINE_RETAIL_SCHEMA.fields)


_ARROW_TYPES: dict[type, pa.DataType] = {
    T.StringType: pa.string(),
    T.LongType: pa.int64(),
    T.DoubleType: pa.float64(),
    T.IntegerType: pa.int32(),
}


def spark_to_arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema of a flat Spark schema (string, long, int and double fields)."""
    return pa.schema([pa.field(f.name, _ARROW_TYPES[type(f.dataType)], f.nullable) for f in schema.fields])


RAW_ARROW_SCHEMA: pa.Schema = spark_to_arrow_schema(ONLINE_RETAIL_SCHEMA)


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
