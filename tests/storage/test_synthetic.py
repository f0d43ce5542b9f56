"""The synthetic raw log: contract, determinism, chunking, realism, parquet and Spark outputs."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insiders_spark.storage.synthetic import (
    ONLINE_RETAIL_COLUMNS,
    ONLINE_RETAIL_SCHEMA,
    RAW_ARROW_SCHEMA,
    SyntheticLogSpec,
    chunk_count,
    generate_chunk,
    iter_chunks,
    to_spark,
    write_parquet,
)

SMALL = SyntheticLogSpec(lines=120_000, seed=7)
SMALL_CHUNK = 12_000  # 10 chunks, each about five weeks of trading
NON_PRODUCT_CODES = {
    "POST",
    "D",
    "DOT",
    "M",
    "S",
    "AMAZONFEE",
    "m",
    "DCGSSBOY",
    "DCGSSGIRL",
    "PADS",
    "B",
    "CRUK",
    "C2",
    "BANK CHARGES",
}


@pytest.fixture(scope="module")
def chunks() -> list[pa.Table]:
    return list(iter_chunks(SMALL, SMALL_CHUNK))


@pytest.fixture(scope="module")
def log(chunks: list[pa.Table]) -> pd.DataFrame:
    frame = pa.concat_tables(chunks).to_pandas()
    frame["chunk"] = np.repeat(np.arange(len(chunks)), [c.num_rows for c in chunks])
    frame["is_return"] = frame["InvoiceNo"].str.startswith("C")
    return frame


# --- contract ------------------------------------------------------------------------------------
def test_arrow_schema_is_the_raw_parquet_contract() -> None:
    expected = pa.schema(
        [
            ("InvoiceNo", pa.string()),
            ("StockCode", pa.string()),
            ("Description", pa.string()),
            ("Quantity", pa.int64()),
            ("InvoiceDate", pa.string()),
            ("UnitPrice", pa.float64()),
            ("CustomerID", pa.float64()),
            ("Country", pa.string()),
        ]
    )
    assert RAW_ARROW_SCHEMA.equals(expected)
    assert tuple(RAW_ARROW_SCHEMA.names) == ONLINE_RETAIL_COLUMNS == tuple(ONLINE_RETAIL_SCHEMA.names)


def test_every_chunk_has_exactly_the_contract_schema(chunks: list[pa.Table]) -> None:
    for table in chunks:
        assert table.schema.equals(RAW_ARROW_SCHEMA)
        assert all(not pa.types.is_dictionary(t) for t in table.schema.types)


def test_chunks_cover_the_lines_exactly() -> None:
    spec = SyntheticLogSpec(lines=25_001)
    assert chunk_count(spec, 5_000) == 6
    sizes = [t.num_rows for t in iter_chunks(spec, 5_000)]
    assert sizes == [5_000] * 5 + [1]
    with pytest.raises(IndexError):
        generate_chunk(spec, 6, 5_000)


def test_invoice_dates_are_formatted_timestamps(log: pd.DataFrame) -> None:
    assert log["InvoiceDate"].str.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").all()
    parsed = pd.to_datetime(log["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    assert parsed.min() >= pd.Timestamp(SMALL.start)
    assert parsed.max() < pd.Timestamp(SMALL.start + dt.timedelta(days=SMALL.days))


# --- determinism and chunk independence -----------------------------------------------------------
def test_same_spec_same_table_different_seed_different_table() -> None:
    spec = SyntheticLogSpec(lines=20_000, seed=3)
    assert generate_chunk(spec, 1, 8_000).equals(generate_chunk(spec, 1, 8_000))
    other = SyntheticLogSpec(lines=20_000, seed=4)
    assert not generate_chunk(spec, 1, 8_000).equals(generate_chunk(other, 1, 8_000))


def test_a_chunk_alone_equals_the_same_chunk_in_sequence(chunks: list[pa.Table]) -> None:
    generate_chunk(SyntheticLogSpec(lines=5_000, seed=99), 0)  # other caches in between
    assert generate_chunk(SMALL, 6, SMALL_CHUNK).equals(chunks[6])
    assert generate_chunk(SMALL, 0, SMALL_CHUNK).equals(chunks[0])


def test_a_chunk_is_identical_in_another_process(chunks: list[pa.Table]) -> None:
    code = (
        "import sys, pyarrow as pa\n"
        "from insiders_spark.storage.synthetic import SyntheticLogSpec, generate_chunk\n"
        f"spec = SyntheticLogSpec(lines={SMALL.lines}, seed={SMALL.seed})\n"
        f"t = generate_chunk(spec, 3, {SMALL_CHUNK})\n"
        "sink = pa.BufferOutputStream()\n"
        "with pa.ipc.new_stream(sink, t.schema) as w: w.write_table(t)\n"
        "sys.stdout.buffer.write(sink.getvalue().to_pybytes())\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd=root)
    assert pa.ipc.open_stream(out.stdout).read_all().equals(chunks[3])


# --- invoices and time -------------------------------------------------------------------------
def test_invoice_numbers_unique_and_never_span_chunks(log: pd.DataFrame) -> None:
    assert (log.groupby("InvoiceNo")["chunk"].nunique() == 1).all()
    purchase = log.loc[~log["is_return"], "InvoiceNo"]
    assert purchase.str.fullmatch(r"\d{6,}").all()
    assert log.loc[log["is_return"], "InvoiceNo"].str.fullmatch(r"C\d{6,}").all()
    invoices = log["InvoiceNo"].drop_duplicates()
    assert invoices.str.lstrip("C").is_unique  # one number, one invoice: "C" is no separate range
    numbers = log["InvoiceNo"].str.lstrip("C").astype(np.int64)
    assert numbers.is_monotonic_increasing  # numbered in time order, chunk ranges disjoint


def test_an_invoice_has_one_date_customer_and_country(log: pd.DataFrame) -> None:
    per_invoice = log.groupby("InvoiceNo").agg(
        dates=("InvoiceDate", "nunique"),
        countries=("Country", "nunique"),
        customers=("CustomerID", "nunique"),
        guests=("CustomerID", lambda s: s.isna().sum()),
        lines=("CustomerID", "size"),
    )
    assert (per_invoice["dates"] == 1).all() and (per_invoice["countries"] == 1).all()
    # all-guest or all-registered, and one customer
    assert ((per_invoice["guests"] == 0) | (per_invoice["guests"] == per_invoice["lines"])).all()
    assert (per_invoice["customers"] <= 1).all()


def test_the_log_is_in_time_order_across_chunks(chunks: list[pa.Table], log: pd.DataFrame) -> None:
    assert log["InvoiceDate"].is_monotonic_increasing
    for before, after in itertools.pairwise(chunks):
        assert before["InvoiceDate"][-1].as_py() <= after["InvoiceDate"][0].as_py()
    first, last = log["InvoiceDate"].iloc[[0, -1]]
    assert first < "2011-01-01" and last > "2011-11-30"  # the log spans the year


def test_november_is_the_busiest_month(log: pd.DataFrame) -> None:
    months = log["InvoiceDate"].str[:7].value_counts()
    assert months.idxmax() == "2011-11"
    assert months["2011-11"] > 1.8 * months["2011-02"]


# --- realism -------------------------------------------------------------------------------------
def test_guest_and_return_shares(log: pd.DataFrame) -> None:
    assert log["CustomerID"].isna().mean() == pytest.approx(SMALL.guest_line_share, abs=0.03)
    assert log["is_return"].mean() == pytest.approx(SMALL.return_line_share, abs=0.01)
    returns = log[log["is_return"]]
    assert (returns["Quantity"] < 0).all()
    assert returns["CustomerID"].notna().mean() > 0.9  # mostly registered customers


def test_returns_are_of_products_the_customer_buys(log: pd.DataFrame) -> None:
    registered = log[log["CustomerID"].notna()]
    bought = set(
        zip(
            registered.loc[~registered["is_return"], "CustomerID"],
            registered.loc[~registered["is_return"], "StockCode"],
            strict=True,
        )
    )
    returned = registered[registered["is_return"] & registered["StockCode"].str.match(r"\d")]
    pairs = list(zip(returned["CustomerID"], returned["StockCode"], strict=True))
    assert np.mean([p in bought for p in pairs]) > 0.55  # ~0.7 here, 0.92 in the real log


def test_top_tenth_of_customers_hold_a_large_share_of_revenue(log: pd.DataFrame) -> None:
    sales = log[log["CustomerID"].notna() & ~log["is_return"] & (log["UnitPrice"] > 0)]
    revenue = (sales["Quantity"] * sales["UnitPrice"]).groupby(sales["CustomerID"]).sum()
    ranked = revenue.sort_values(ascending=False)
    assert ranked.head(len(ranked) // 10).sum() / ranked.sum() >= 0.35


def test_customers_recur_across_chunks_and_recency_varies(log: pd.DataFrame) -> None:
    registered = log[log["CustomerID"].notna()]
    chunks_per_customer = registered.groupby("CustomerID")["chunk"].nunique()
    assert chunks_per_customer.max() >= 8  # of 10 chunks
    assert (chunks_per_customer >= 3).mean() > 0.25
    ids = chunks_per_customer.index
    assert ids.min() >= 12346 and ids.max() < 19000 and (ids == ids.round()).all()
    last = registered.groupby("CustomerID")["InvoiceDate"].max()
    assert (last < "2011-06-01").mean() > 0.1 and (last > "2011-11-01").mean() > 0.2


def test_customers_buy_from_a_preferred_subset(log: pd.DataFrame) -> None:
    registered = log[log["CustomerID"].notna()]
    per_customer = registered.groupby("CustomerID")["StockCode"].agg(["size", "nunique"])
    heavy = per_customer[per_customer["size"] >= 200]
    assert len(heavy) > 0
    ratio = heavy["nunique"] / heavy["size"]  # the real log: median 0.6, at most 0.8
    assert ratio.median() < 0.75 and ratio.max() < 0.95


def test_customers_have_a_home_country_mostly_uk(log: pd.DataFrame) -> None:
    registered = log[log["CustomerID"].notna()]
    assert (registered.groupby("CustomerID")["Country"].nunique() <= 2).all()
    assert 0.8 < (log["Country"] == "United Kingdom").mean() < 0.97
    assert log["Country"].nunique() >= 10
    assert (log["Country"] == "Unspecified").any()


def test_dirty_lines_the_cleaning_must_handle(log: pd.DataFrame) -> None:
    codes = set(log["StockCode"])
    assert {"POST", "DOT", "M"} <= {c for c in codes if not c[0].isdigit()} <= NON_PRODUCT_CODES
    non_products = log["StockCode"].isin(NON_PRODUCT_CODES).mean()
    assert 0.001 < non_products < 0.02
    assert 0.001 < (log["UnitPrice"] < 0.04).mean() < 0.01
    assert 0.0005 < log["Description"].isna().mean() < 0.01
    assert ((log["Quantity"] < 0) & ~log["is_return"]).any()  # stock adjustments
    products = log.loc[~log["StockCode"].isin(NON_PRODUCT_CODES), "StockCode"]
    assert products.str.fullmatch(r"\d{5}[A-Z]?").all()
    assert 1_000 < products.nunique() <= SMALL.products


def test_quantities_are_long_tailed(log: pd.DataFrame) -> None:
    sold = log.loc[~log["is_return"] & (log["Quantity"] > 0), "Quantity"]
    assert sold.median() <= 6
    assert (sold <= 24).mean() > 0.85
    assert sold.max() >= 200


def test_lines_per_invoice(log: pd.DataFrame) -> None:
    registered = log[log["CustomerID"].notna() & ~log["is_return"]]
    sizes = registered.groupby("InvoiceNo").size()
    assert sizes.mean() == pytest.approx(SMALL.mean_invoice_lines, rel=0.2)
    assert sizes.min() == 1 and sizes.max() > 60


# --- outputs -------------------------------------------------------------------------------------
def test_write_parquet_reads_back_equal(tmp_path: Path) -> None:
    spec = SyntheticLogSpec(lines=30_000, seed=11)
    paths = write_parquet(spec, tmp_path / "raw", chunk_lines=10_000)
    assert [Path(p).name for p in paths] == [f"part-0000{i}.parquet" for i in range(3)]
    for path, expected in zip(paths, iter_chunks(spec, 10_000), strict=True):
        table = pq.read_table(path)
        assert table.schema.equals(RAW_ARROW_SCHEMA)
        assert table.equals(expected)
    with pytest.raises(FileExistsError):
        write_parquet(spec, tmp_path / "raw", chunk_lines=10_000)
    smaller = SyntheticLogSpec(lines=10_000, seed=11)
    assert len(write_parquet(smaller, tmp_path / "raw", 10_000, overwrite=True)) == 1
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["part-00000.parquet"]


def test_to_spark_equals_iter_chunks(spark) -> None:
    spec = SyntheticLogSpec(lines=16_000, seed=5)
    frame = to_spark(spark, spec, chunk_lines=8_000)
    assert frame.schema == ONLINE_RETAIL_SCHEMA
    assert frame.rdd.getNumPartitions() == 2  # one partition per chunk, generated in executors
    actual = frame.toArrow().cast(RAW_ARROW_SCHEMA)  # partitions come back in chunk order
    assert actual.equals(pa.concat_tables(iter_chunks(spec, 8_000)))


def test_spark_reads_the_written_parquet_with_the_contract_schema(spark, tmp_path: Path) -> None:
    spec = SyntheticLogSpec(lines=10_000, seed=13)
    write_parquet(spec, tmp_path / "raw", chunk_lines=5_000)
    frame = spark.read.parquet(str(tmp_path / "raw"))
    assert frame.schema == ONLINE_RETAIL_SCHEMA
    every_column = [(name, "ascending") for name in ONLINE_RETAIL_COLUMNS]
    actual = frame.toArrow().cast(RAW_ARROW_SCHEMA).sort_by(every_column)
    expected = pa.concat_tables(iter_chunks(spec, 5_000)).sort_by(every_column)
    assert actual.equals(expected)
