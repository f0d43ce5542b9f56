"""The synthetic log, chunk by chunk: in memory (arrow), as parquet files, or generated in Spark's executors."""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from insiders_spark.storage.synthetic.draws import _draw_invoices, _draw_lines, _Invoices, _Lines
from insiders_spark.storage.synthetic.spec import SyntheticLogSpec
from insiders_spark.storage.synthetic.tables import (
    _CHUNK_STREAM,
    _COUNTRY_NAMES,
    _TIMES_OF_DAY,
    FIRST_INVOICE_NO,
    ONLINE_RETAIL_COLUMNS,
    ONLINE_RETAIL_SCHEMA,
    RAW_ARROW_SCHEMA,
    RETURN,
    SPARK_CHUNK_LINES,
)
from insiders_spark.storage.synthetic.world import _catalogue, _population

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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


ONLINE_RETAIL = "online_retail"  # the study's export: InvoiceNo ... Country
ORDERS = "orders"  # another store's: other names, a line amount, text customer ids, no description or country
LAYOUTS = (ONLINE_RETAIL, ORDERS)
# The orders layout's columns, by the canonical column each one holds (its --columns mapping).
ORDERS_COLUMNS: dict[str, str] = {
    "invoice_id": "order_ref",
    "product_id": "sku",
    "quantity": "units",
    "invoice_date": "ordered_at",
    "line_amount": "amount",
    "customer_id": "client",
}


def to_orders_layout(table: pa.Table) -> pa.Table:
    """An online-retail chunk as the orders layout: ``ordered_at`` a timestamp, ``amount`` the line's
    quantity x price (to 1/10,000), ``client`` the customer id as text ("C-17850"), no unit price,
    description or country."""
    when = pc.strptime(table["InvoiceDate"], format="%Y-%m-%d %H:%M:%S", unit="us")
    amount = pc.round(pc.multiply(pc.cast(table["Quantity"], pa.float64()), table["UnitPrice"]), 4)
    ids = pc.cast(pc.cast(table["CustomerID"], pa.int64()), pa.string())
    columns = {
        "order_ref": table["InvoiceNo"],
        "sku": table["StockCode"],
        "units": table["Quantity"],
        "ordered_at": when,
        "amount": amount,
        "client": pc.binary_join_element_wise("C", ids, "-"),
    }
    return pa.table(columns)


def write_parquet(
    spec: SyntheticLogSpec,
    path: str | os.PathLike[str],
    chunk_lines: int = 1_000_000,
    compression: str = "snappy",
    overwrite: bool = False,
    layout: str = ONLINE_RETAIL,
) -> list[str]:
    """Write one ``part-NNNNN.parquet`` per chunk into folder ``path``; return the file paths.

    ``layout``: the study's columns (``online_retail``), or another store's (``orders``: see
    :func:`to_orders_layout`; the same lines). Existing ``part-*.parquet`` files in the folder raise
    ``FileExistsError`` unless ``overwrite``, which deletes them (and nothing else) first.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
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
        if layout == ORDERS:
            pq.write_table(to_orders_layout(generate_chunk(spec, chunk_index, chunk_lines)), file_path)
        else:
            _write_chunk(_chunk_columns(spec, chunk_index, chunk_lines), file_path, compression)
        paths.append(file_path)
    return paths


def _write_chunk(columns: list[pa.Array], file_path: str, compression: str) -> None:
    """Write dictionary-encoded string columns as they are (no hashing: twice as fast).

    Without a stored Arrow schema the strings read back as plain ``string``, so the file's
    schema is ``RAW_ARROW_SCHEMA``. StockCode and Description get no min/max statistics
    (computing them over their large dictionaries is slow, and nobody prunes on them).
    """
    table = pa.Table.from_arrays(columns, names=list(ONLINE_RETAIL_COLUMNS))
    with_statistics = [c for c in ONLINE_RETAIL_COLUMNS if c not in ("StockCode", "Description")]
    pq.write_table(table, file_path, compression=compression, store_schema=False, write_statistics=with_statistics)


def to_spark(spark: SparkSession, spec: SyntheticLogSpec, chunk_lines: int = SPARK_CHUNK_LINES) -> DataFrame:
    """The log as a Spark DataFrame of ``ONLINE_RETAIL_SCHEMA``, one partition per chunk.

    Chunks are generated in the executors (``mapInArrow`` over the chunk ids), so the driver
    holds nothing of the log's size. Partition order is chunk order.
    """
    n_chunks = chunk_count(spec, chunk_lines)

    def generate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for chunk_index in batch.column(0).to_pylist():
                yield from generate_chunk(spec, chunk_index, chunk_lines).to_batches()

    ids = spark.range(0, n_chunks, 1, numPartitions=n_chunks)
    return ids.mapInArrow(generate, ONLINE_RETAIL_SCHEMA)


def _chunk_columns(spec: SyntheticLogSpec, chunk_index: int, chunk_lines: int) -> list[pa.Array]:
    """The chunk's columns in ``ONLINE_RETAIL_COLUMNS`` order; string columns dictionary-encoded."""
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
    return [columns[c] for c in ONLINE_RETAIL_COLUMNS]


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
