"""The published outputs as catalog tables (``--catalog-database``), in Spark's built-in Hive
metastore on embedded Derby, read back by a fresh process; and ``--table`` reading a table of it.

Derby lets one JVM at a time open the metastore, and the suite's own session has an in-memory
catalog, so the runs happen in child processes, one after the other: a publisher (its runs each
build and stop their own session, as ``insiders-spark run`` does), then a reader in a new process
and a new JVM. Both are a background job (tests/background.py): they run beside the other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from insiders_spark.storage.outputs import partition_path
from insiders_spark.storage.pointers import read_pointer
from tests import background

pytestmark = pytest.mark.spark
PROJECT = Path(__file__).resolve().parents[2]
DATE, FAILED_DATE = "2011-12-09", "2011-12-10"
COLUMNS = (
    "invoice_id=order_number,product_id=sku,description=item,quantity=qty,invoice_date=ordered,"
    "unit_price=price,customer_id=client,country=country"
)

PUBLISHER = """
import json, os, sys
from insiders_spark.cli import main
from insiders_spark.core.config import load_config
from insiders_spark.spark.session import build_spark_session
from insiders_spark.storage.synthetic import SyntheticLogSpec, generate_chunk
from pyspark.sql import functions as F

root = sys.argv[1]
common = ["--env", "test", "--synthetic-lines", "20000", "--no-stability"]

def run(output, date, database, publishing, **environ):
    os.environ.update({"INSIDERS_SPARK__OUTPUT__PUBLISHING": publishing, **environ})
    status = main(["run", "--output", f"{root}/{output}", "--run-date", date, "--catalog-database", database, *common])
    for name in environ:
        del os.environ[name]
    return status

statuses = {
    "rename": run("rename", "2011-12-09", "ins_rename", "rename"),
    "pointer": run("pointer", "2011-12-09", "ins_pointer", "pointer"),
    "pointer again": run("pointer", "2011-12-09", "ins_pointer", "pointer"),
    "pointer failing": run("pointer", "2011-12-10", "ins_pointer", "pointer",
                           INSIDERS_SPARK__QUARANTINE__MAX_SHARE="0.0001"),
}
# a catalog that refuses the registration: a view where the runs table goes (registered last)
config = load_config(env="test", overrides={"output.catalog_database": "ins_broken"})
spark = build_spark_session("catalog-test", config.session_settings())
spark.sql("CREATE DATABASE IF NOT EXISTS ins_broken")
spark.sql("CREATE OR REPLACE VIEW ins_broken.runs_files AS SELECT 1 AS id")
# and an input table, as a store would have its orders in the metastore
lines = generate_chunk(SyntheticLogSpec(lines=20000, seed=5), 0, chunk_lines=20000).to_pandas()
lines["CustomerID"] = lines["CustomerID"].astype("Int64")
orders = (
    spark.createDataFrame(lines)
    .select(F.col("InvoiceNo").alias("order_number"), F.col("StockCode").alias("sku"),
            F.col("Description").alias("item"), F.col("Quantity").alias("qty"),
            F.to_timestamp("InvoiceDate").alias("ordered"), F.col("UnitPrice").alias("price"),
            F.col("CustomerID").alias("client"), F.col("Country").alias("country"))
)
spark.sql("CREATE DATABASE IF NOT EXISTS ins_input")
orders.write.mode("overwrite").saveAsTable("ins_input.orders")
spark.stop()
statuses["broken catalog"] = run("broken", "2011-12-09", "ins_broken", "pointer")
print(json.dumps(statuses))
"""

READER = """
import json, sys
from insiders_spark.cli import main
from insiders_spark.core.config import load_config
from insiders_spark.spark.session import build_spark_session

root, columns = sys.argv[1], sys.argv[2]
config = load_config(env="test", overrides={"output.catalog_database": "ins_rename"})
spark = build_spark_session("catalog-reader", config.session_settings())
found = {"implementation": spark.conf.get("spark.sql.catalogImplementation")}
for database in ("ins_rename", "ins_pointer"):
    found[database] = {
        "tables": sorted(t.name for t in spark.catalog.listTables(database)),
        "partitions": [r.partition for r in spark.sql(f"SHOW PARTITIONS {database}.segments").collect()],
        "rows": spark.sql(f"SELECT count(*) FROM {database}.segments WHERE run_date = '2011-12-09'").first()[0],
        "profiles": spark.sql(f"SELECT count(*) FROM {database}.profiles WHERE run_date = '2011-12-09'").first()[0],
        "runs": [r.asDict() for r in spark.sql(f"SELECT run_id, mode, CAST(run_date AS STRING) AS run_date "
                                             f"FROM {database}.runs").collect()],
        "location": spark.sql(f"DESCRIBE TABLE EXTENDED {database}.segments PARTITION (run_date = '2011-12-09')")
            .where("col_name = 'Location'").first().data_type,
    }
found["broken"] = [r.partition for r in spark.sql("SHOW PARTITIONS ins_broken.segments").collect()]
spark.stop()
found["table run"] = main(["run", "--table", "ins_input.orders", "--columns", columns, "--output", f"{root}/from-table",
                           "--run-date", "2011-12-09", "--env", "test", "--no-stability"])
print(json.dumps(found))
"""


def _child(script: str, *args: str, metastore: Path) -> dict:
    """Run ``script`` in a new process whose working folder is the test's (Derby must not write there)."""
    path = os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH", "")) if p)
    environ = {**os.environ, "INSIDERS_SPARK__OUTPUT__METASTORE_DIR": str(metastore), "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=1500, env=environ, cwd=metastore.parent,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _published_rows(output: Path, table: str) -> int:
    return pq.read_table(partition_path(str(output), table, DATE)).num_rows


@background.job("catalog", wanted=background.in_module(__name__))
def _publish_and_read(root: Path):
    metastore = root / "metastore"
    published = _child(PUBLISHER, str(root), metastore=metastore)
    seen = _child(READER, str(root), COLUMNS, metastore=metastore)
    return root, metastore, published, seen


@pytest.fixture(scope="module")
def catalog():
    return background.result("catalog")


def test_a_fresh_process_reads_the_published_partitions_from_the_metastore(catalog):
    root, metastore, published, seen = catalog
    assert published["rename"] == published["pointer"] == published["pointer again"] == 0
    assert seen["implementation"] == "hive"
    for database, output in (("ins_rename", root / "rename"), ("ins_pointer", root / "pointer")):
        tables = seen[database]
        assert tables["tables"] == ["profiles", "quarantine", "rules", "runs", "runs_files", "segments"]
        assert tables["rows"] == _published_rows(output, "segments") > 0
        assert tables["profiles"] == _published_rows(output, "profiles") > 0
        assert tables["location"].rstrip("/").endswith(partition_path(str(output), "segments", DATE))
    assert seen["ins_rename"]["location"] == f"file:{root}/rename/segments/run_date={DATE}"
    # Derby's files are where metastore_dir says, not in the working folder
    assert (metastore / "metastore_db").is_dir() and (metastore / "derby.log").exists()
    assert not (root / "metastore_db").exists() and not (root / "derby.log").exists()


def test_a_rerun_moves_the_partition_and_a_failed_run_registers_nothing(catalog):
    root, _, published, seen = catalog
    pointer = read_pointer(None, str(root / "pointer"), DATE)
    tables = seen["ins_pointer"]
    assert tables["partitions"] == [f"run_date={DATE}"]  # the rerun replaced it; the failed date is not there
    assert f"/{pointer['run_id']}/" in tables["location"]  # the second run's folder, not the first's
    assert tables["runs"] == [{"run_id": pointer["run_id"], "mode": "train-and-score", "run_date": DATE}]
    assert published["pointer failing"] == 1 and read_pointer(None, str(root / "pointer"), FAILED_DATE) is None


def test_a_catalog_that_refuses_fails_the_run_but_leaves_its_outputs_published(catalog):
    root, _, published, seen = catalog
    assert published["broken catalog"] == 1
    pointer = read_pointer(None, str(root / "broken"), DATE)
    assert pointer is not None and _published_rows(root / "broken", "segments") > 0  # published, and readable
    assert seen["broken"] == [f"run_date={DATE}"]  # what came before the refusal was registered


def test_a_run_reads_its_input_from_a_table_of_the_metastore(catalog):
    root, _, _, seen = catalog
    assert seen["table run"] == 0
    manifest = json.loads((root / "from-table" / "runs" / f"run_date={DATE}" / "manifest.json").read_text())
    assert manifest["rows"]["input"] == 20_000
    assert _published_rows(root / "from-table", "segments") > 0
