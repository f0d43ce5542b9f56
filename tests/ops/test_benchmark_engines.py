"""The benchmark's engines (benchmarks/) compute the job's features exactly: pandas, DuckDB and Spark agree.

On a small synthetic log (three part files, guest invoices, returns, every study rule at work), the
pandas + scikit-learn reference and the DuckDB aggregation give the Spark job's customers and
features: the same ids (guest numbering included), every integer feature equal, revenue to the
cent, the ratios to 1e-9. No timing here: speed is measured by benchmarks/run.py.
"""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insiders_spark.cleaning.parsing import MAX_CUSTOMER_ID
from insiders_spark.cleaning.rules import MAX_LINE_AMOUNT, MAX_LINE_QUANTITY
from insiders_spark.core.config import load_config
from insiders_spark.core.names import BUSINESS_RULE_REASONS, RULE_ORDER
from insiders_spark.core.schemas import CUSTOMER_FEATURES_SCHEMA
from insiders_spark.features.table import prepare_customers
from insiders_spark.storage.synthetic import SyntheticLogSpec, write_parquet

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
LINES = 30_000
CHUNK_LINES = 10_000  # three files: invoices numbered per chunk, guests ordered across files
FEATURES = [f.name for f in CUSTOMER_FEATURES_SCHEMA.fields if f.name != "source_customer_id"]  # the job's own id text
INTEGER_FEATURES = ("recency_days", "qty_invoices", "qty_items", "qty_products", "qty_returns")


def _study():
    """What the engines run with: base.toml and the study's dataset profile (its columns and rules)."""
    return load_config(env="base", environ={}, dataset="online_retail")


def _import_benchmarks(*names: str) -> dict:
    """Scripts of benchmarks/ (a folder of scripts, not a package), imported by name."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        return {name: importlib.import_module(name) for name in names}


@pytest.fixture(scope="module")
def bench():
    return _import_benchmarks("generate", "reference_pandas")


@pytest.fixture(scope="module")
def runner():
    pytest.importorskip("psutil", reason="the runner needs psutil, a benchmark dependency (pip install -e '.[bench]')")
    return _import_benchmarks("generate", "run")["run"]


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench_log")
    write_parquet(SyntheticLogSpec(lines=LINES, seed=7), folder, chunk_lines=CHUNK_LINES)
    return folder


@pytest.fixture(scope="module")
def spark_features(spark, small_log) -> pd.DataFrame:
    config = load_config(env="test", overrides={"input.path": str(small_log)}, environ={})
    table = prepare_customers(spark, config)
    features = table.features().toPandas()
    table.unpersist()
    return _sorted(features)


@pytest.fixture(scope="module")
def pandas_features(bench, small_log) -> pd.DataFrame:
    features, _ = bench["reference_pandas"].compute_features(small_log, _study())
    return _sorted(features)


def _sorted(features: pd.DataFrame) -> pd.DataFrame:
    return features[FEATURES].sort_values("customer_id").reset_index(drop=True)


def assert_same_features(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    assert got["customer_id"].tolist() == expected["customer_id"].tolist()
    assert got["is_guest"].tolist() == expected["is_guest"].tolist()
    for name in INTEGER_FEATURES:
        assert got[name].astype(np.int64).tolist() == expected[name].astype(np.int64).tolist(), name
    np.testing.assert_allclose(got["gross_revenue"], expected["gross_revenue"], rtol=0, atol=0.005)
    np.testing.assert_allclose(got["frequency"], expected["frequency"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["avg_ticket"], expected["avg_ticket"], rtol=1e-9)
    for name in ("first_purchase_date", "last_purchase_date"):
        assert pd.to_datetime(got[name]).tolist() == pd.to_datetime(expected[name]).tolist(), name


def test_the_small_log_exercises_guests_returns_and_the_rules(spark_features, bench, small_log):
    _, summary = bench["reference_pandas"].compute_features(small_log, _study())
    assert spark_features["is_guest"].any() and (~spark_features["is_guest"]).any()
    assert (spark_features["qty_returns"] > 0).any()
    assert summary["customers"]["returns_only"] > 0
    assert {"price_below_minimum", "non_product_code", "excluded_country"} <= set(summary["rows"])


def test_pandas_reference_has_the_jobs_rule_order(bench):
    assert bench["reference_pandas"].RULE_ORDER == RULE_ORDER
    assert bench["reference_pandas"].STUDY_RULE_REASONS == BUSINESS_RULE_REASONS
    reference = bench["reference_pandas"]
    assert (reference.MAX_LINE_QUANTITY, reference.MAX_LINE_AMOUNT) == (MAX_LINE_QUANTITY, MAX_LINE_AMOUNT)
    assert reference.MAX_CUSTOMER_ID == MAX_CUSTOMER_ID


def test_pandas_reference_features_equal_spark(spark_features, pandas_features):
    assert_same_features(spark_features, pandas_features)


def test_duckdb_features_equal_spark(spark_features, small_log, tmp_path):
    pytest.importorskip("duckdb", reason="DuckDB is a benchmark dependency (pip install -e '.[bench]')")
    aggregate_duckdb = _import_benchmarks("aggregate_duckdb")["aggregate_duckdb"]
    aggregate_duckdb.aggregate(str(small_log), str(tmp_path), threads=2)
    got = _sorted(pd.read_parquet(tmp_path / aggregate_duckdb.FEATURES_FILE))
    assert_same_features(spark_features, got)


def test_spark_floor_counts_every_raw_line_once_per_customer_id(spark, small_log):
    """The floor's bare groupBy (benchmarks/floor_spark.py) against pandas over the same raw files."""
    floor = _import_benchmarks("floor_spark")["floor_spark"]
    got = floor.floor_aggregate(spark, str(small_log)).toPandas()
    raw = pd.concat([pd.read_parquet(path) for path in sorted(small_log.glob("*.parquet"))], ignore_index=True)
    raw["revenue"] = raw["Quantity"] * raw["UnitPrice"]
    expected = (
        raw.groupby("CustomerID", dropna=False)
        .agg(lines=("Quantity", "size"), revenue=("revenue", "sum"), last_invoice_date=("InvoiceDate", "max"))
        .reset_index()
    )
    assert got["lines"].sum() == len(raw)
    assert len(got) == len(expected)
    merged = expected.merge(got, on="CustomerID", how="outer", suffixes=("", "_spark"), indicator=True)
    assert (merged["_merge"] == "both").all()
    assert merged["lines"].tolist() == merged["lines_spark"].tolist()
    assert merged["last_invoice_date"].tolist() == merged["last_invoice_date_spark"].tolist()
    np.testing.assert_allclose(merged["revenue_spark"], merged["revenue"], rtol=1e-9, atol=1e-6)


def test_pandas_reference_whole_job_on_the_small_log(bench, small_log, pandas_features, tmp_path):
    metrics = bench["reference_pandas"].run(str(small_log), str(tmp_path), _study())
    segments = pd.read_parquet(tmp_path / "segments.parquet")
    assert_same_features(pandas_features, _sorted(segments))
    assert sorted(segments["cluster"].unique()) == list(range(1, 10))
    means = segments.groupby("cluster")["gross_revenue"].mean()
    assert means.idxmax() == 1 and segments["is_insider"].eq(segments["cluster"] == 1).all()
    assert metrics["rows"]["input"] == LINES
    assert metrics["rows"]["kept"] + metrics["quarantined"] + metrics["rows"].get("after_as_of", 0) == LINES
    assert pd.read_parquet(tmp_path / "quarantine.parquet").shape[0] == metrics["quarantined"]
    assert 0.0 < metrics["silhouette"] <= 1.0


# --- lines whose numbers are not numbers: every engine sets them aside for the same reason ---------

EDGE_PRICES = (float("nan"), float("inf"), float("-inf"))  # stored in parquet: non_numeric_price
EDGE_CUSTOMER_IDS = (float("nan"), float("inf"), 1e300, 2.0**53)  # not ids: invalid_customer_id
LARGEST_ID = 2.0**53 - 1  # the largest whole number a double holds exactly: a customer


@pytest.fixture(scope="module")
def edge_log(tmp_path_factory) -> Path:
    """A small clean log plus copies of one registered purchase with a price or id that is not a
    number, or out of range (parquet doubles can hold them where a CSV would hold text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("edge_log")
    write_parquet(SyntheticLogSpec(lines=3_000, seed=11), folder, chunk_lines=3_000)
    (path,) = sorted(folder.glob("*.parquet"))
    table = pq.read_table(path)
    frame = table.to_pandas()
    row = int(np.flatnonzero(frame["CustomerID"].notna() & (frame["Quantity"] > 0) & (frame["UnitPrice"] >= 1))[0])
    template = table.slice(row, 1)

    def with_value(name: str, value: float) -> pa.Table:  # pa.array keeps NaN a NaN (pandas would null it)
        return template.set_column(template.schema.get_field_index(name), name, pa.array([value], pa.float64()))

    edges = [with_value("UnitPrice", price) for price in EDGE_PRICES]
    edges += [with_value("CustomerID", number) for number in (*EDGE_CUSTOMER_IDS, LARGEST_ID)]
    pq.write_table(pa.concat_tables(edges), folder / "part-edges.parquet")
    return folder


def test_engines_set_aside_prices_and_ids_that_are_not_numbers_alike(spark, bench, edge_log):
    config = load_config(env="test", overrides={"input.path": str(edge_log)}, environ={})
    table = prepare_customers(spark, config)
    spark_features = _sorted(table.features().toPandas())
    accounting = table.accounting
    table.unpersist()
    features, summary = bench["reference_pandas"].compute_features(edge_log, _study())

    # independent expectation: the edge lines are quarantined for exactly these reasons
    clean = prepare_customers(
        spark, load_config(env="test", overrides={"input.path": str(edge_log / "part-00000.parquet")}, environ={})
    )
    clean_accounting = clean.accounting
    clean.unpersist()
    assert accounting.quarantined.get("non_numeric_price", 0) - clean_accounting.quarantined.get(
        "non_numeric_price", 0
    ) == len(EDGE_PRICES)
    assert accounting.quarantined.get("invalid_customer_id", 0) - clean_accounting.quarantined.get(
        "invalid_customer_id", 0
    ) == len(EDGE_CUSTOMER_IDS)
    assert int(LARGEST_ID) in set(spark_features["customer_id"])

    rows = summary["rows"]
    assert {reason: rows.get(reason, 0) for reason in accounting.quarantined} == accounting.quarantined
    assert rows["kept"] == accounting.kept
    assert_same_features(spark_features, _sorted(features))


def test_duckdb_sets_aside_prices_and_ids_that_are_not_numbers_as_spark(spark, edge_log, tmp_path):
    pytest.importorskip("duckdb", reason="DuckDB is a benchmark dependency (pip install -e '.[bench]')")
    aggregate_duckdb = _import_benchmarks("aggregate_duckdb")["aggregate_duckdb"]
    config = load_config(env="test", overrides={"input.path": str(edge_log)}, environ={})
    table = prepare_customers(spark, config)
    expected = _sorted(table.features().toPandas())
    table.unpersist()
    aggregate_duckdb.aggregate(str(edge_log), str(tmp_path), threads=2)
    assert_same_features(expected, _sorted(pd.read_parquet(tmp_path / aggregate_duckdb.FEATURES_FILE)))


def test_leaf_paths_encode_the_root_to_leaf_decisions(bench):
    from sklearn.tree import DecisionTreeRegressor

    x = np.arange(40, dtype=float).reshape(-1, 1)
    tree = DecisionTreeRegressor(max_depth=2, random_state=0).fit(x, (x[:, 0] // 10))
    leaf_of_node, vectors = bench["reference_pandas"].leaf_paths(tree)
    assert vectors.shape == (4, 3)
    # leaves in preorder: left-left, left-right, right-left, right-right (root is dimension 0)
    assert vectors[:, 0].tolist() == [-1, -1, 1, 1]
    assert sorted(leaf_of_node.values()) == [0, 1, 2, 3]
    squared = ((vectors[:, None, :] - vectors[None, :, :]) ** 2).sum(axis=2)
    # 4 where the paths part, plus 1 for each further split on either path: siblings are closest
    assert squared[0, 1] == 4 and squared[0, 2] == 6


@pytest.mark.real_data
def test_pandas_reference_reproduces_the_study_on_the_real_log(bench, real_log_parquet, reference_features):
    features, summary = bench["reference_pandas"].compute_features(
        real_log_parquet, _study()
    )
    assert summary["rows"]["kept"] == 536_139
    # guests: the job counts the same 1,430 guest invoices on its own (tests/test_real_data.py)
    assert summary["customers"] == {"with_kept_lines": 5_786, "segmented": 5_695, "returns_only": 91, "guests": 1_430}
    assert features["gross_revenue"].sum() == pytest.approx(10_104_658.35, abs=0.005)
    by_id = features.set_index("customer_id")
    with open(reference_features, newline="") as handle:
        for reference in csv.DictReader(handle):
            row = by_id.loc[int(reference["customer_id"])]
            assert round(row["gross_revenue"], 2) == pytest.approx(float(reference["gross_revenue"]))
            assert round(row["frequency"], 4) == pytest.approx(float(reference["frequency"]))
            for name in INTEGER_FEATURES:
                assert int(row[name]) == int(reference[name]), (reference["customer_id"], name)


# --- the runner's measurement (no timing asserted) ------------------------------------------------

ALLOCATE = (
    "import pathlib, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c',\n"
    "    'import time; b = b\"x\" * ({child} << 20); time.sleep({sleep})'])\n"
    "pathlib.Path({pid_file!r}).write_text(str(child.pid))\n"
    "buffer = b'x' * ({parent} << 20)\n"
    "child.wait()\n"
)


def test_runner_measures_the_memory_of_the_whole_process_tree(runner, tmp_path):
    command = [sys.executable, "-c", ALLOCATE.format(child=300, parent=100, sleep=1.5, pid_file=str(tmp_path / "pid"))]
    measured = runner.measure(
        command, log_path=tmp_path / "tree.log", env=runner.child_env(), timeout_s=120, cap_bytes=8 * runner.GIB
    )
    assert measured.status == "ok"
    assert measured.peak_bytes > 400 * 2**20  # the child's 300 MiB and the parent's 100 MiB
    assert measured.peak_rss_bytes >= measured.peak_bytes


def test_runner_kills_a_tree_over_the_memory_cap_and_records_it(runner, tmp_path):
    import psutil

    pid_file = tmp_path / "pid"
    command = [sys.executable, "-c", ALLOCATE.format(child=600, parent=10, sleep=600, pid_file=str(pid_file))]
    measured = runner.measure(
        command, log_path=tmp_path / "oom.log", env=runner.child_env(), timeout_s=300, cap_bytes=300 * 2**20
    )
    assert measured.status == "out_of_memory" and "cap" in measured.detail
    # the grandchild (the one over the cap, meant to sleep 600 s) is gone too, not left running
    try:
        grandchild = psutil.Process(int(pid_file.read_text()))
    except psutil.NoSuchProcess:
        return
    _, alive = psutil.wait_procs([grandchild], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "the grandchild outlived the kill"


def test_runner_targets_from_recorded_runs(runner):

    def record(dataset, engine, wall, read_aggregate=None, status="ok", peak_gib=1.0):
        return {
            "dataset": dataset,
            "engine": engine,
            "status": status,
            "wall_s": wall,
            "detail": "",
            "read_aggregate_s": read_aggregate,
            "peak_bytes": int(peak_gib * runner.GIB),
        }

    runs = [
        record("50M", "spark_aggregate", 50.0, 40.0),
        record("50M", "duckdb", 12.0, 11.0),
        record("100M", "spark", 70.0),
        record("100M", "pandas", 65.0),
        record("200M", "spark", 150.0, peak_gib=5.5),
        record("200M", "pandas", 80.0, status="out_of_memory", peak_gib=20.1),
        record("real log", "spark", 14.0),
        record("real log", "spark_floor", 9.0),
    ]
    targets = runner.evaluate_targets(runs)
    assert targets["P1"]["met"] is False and targets["P1"]["ratio"] == pytest.approx(40 / 11, abs=1e-3)
    assert targets["P2"]["met"] is False
    assert targets["P3"]["met"] is True and targets["P3"]["pandas"]["status"] == "out_of_memory"
    assert targets["P4"]["met"] is True and targets["P4"]["floor_wall_s"] == 9.0
    assert runner.evaluate_targets([])["P1"]["met"] is None
    reference_killed = [
        record("100M", "spark", 70.0),
        record("100M", "pandas", 30.0, status="out_of_memory", peak_gib=20.1),
    ]
    p2 = runner.evaluate_targets(reference_killed)["P2"]
    assert p2["met"] is None and p2["ratio"] is None and "out_of_memory" in p2["note"]
    assert "P1" in runner.render_markdown(
        {
            "run_id": "x",
            "command": "c",
            "machine": {"cpus": 2, "memory_gib": 24},
            "runs": runs,
            "settings": {"memory_cap_gib": 20, "timeout_s": 60},
            "targets": targets,
            "consistency": {},
        }
    )


def test_jfr_summary_counts_a_sample_for_its_innermost_operator():
    jfr = _import_benchmarks("jfr_summary")["jfr_summary"]
    pulled_by_the_aggregation = [
        "java.util.regex.Pattern$BmpCharProperty.match",
        "org.apache.spark.sql.catalyst.expressions.GeneratedClass$GeneratedIteratorForCodegenStage1.processNext",
        "org.apache.spark.sql.execution.aggregate.ObjectAggregationIterator.processInputs",
        "org.apache.spark.shuffle.ShuffleWriteProcessor.write",
    ]
    in_the_sets = [
        "org.apache.spark.sql.catalyst.expressions.aggregate.CollectSet.update",
        *pulled_by_the_aggregation[2:],
    ]
    stage_code = pulled_by_the_aggregation[1:]
    assert jfr.category(pulled_by_the_aggregation).startswith("timestamp text")
    assert jfr.category(in_the_sets).startswith("per-customer aggregation")
    assert jfr.category(stage_code) == jfr.OTHER
