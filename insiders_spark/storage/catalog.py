"""The published outputs as tables of a catalog database (``output.catalog_database``).

After a run's commit, each table partition it published is added to (or moved in, or dropped
from) the database's table of that name, partitioned by ``run_date``: ``segments``, ``profiles``,
``rules``, ``quarantine`` and ``backtest`` are external parquet tables; ``runs_files`` is the runs
partitions as text (one row per file: ``metrics.json`` and ``manifest.json``), and ``runs`` a view of
it with one row per run (its manifest). The report is a document, not rows: it is not a table.

A partition's location is where the files are published: ``<output>/<table>/run_date=<date>`` with
the rename publishing, the run's folder with the pointer publishing. A rerun of a date moves the
partition, so a date is never in a table twice; a run that fails registers nothing, because only a
committed run gets here.

The catalog is the session's: Spark's built-in Hive metastore (embedded Derby by default, in
``output.metastore_dir``: ``core.sections.Config.session_settings``), a shared Hive metastore, or
any catalog the ``[spark]`` settings name (``spark.sql.catalog.<name>``, ``spark.sql.defaultCatalog``).
"""

from __future__ import annotations

import logging
from typing import Any

from insiders_spark.core.names import BACKTEST, PARTITION_COLUMN, PROFILES, QUARANTINE, RULES, RUNS, SEGMENTS
from insiders_spark.spark.messages import explain
from insiders_spark.storage.layout import POINTERS, RENAME

log = logging.getLogger(__name__)

PARQUET_TABLES = (SEGMENTS, PROFILES, RULES, QUARANTINE, BACKTEST)
RUNS_FILES = "runs_files"
MANIFEST = "manifest.json"


class CatalogError(RuntimeError):
    """The run published its files, but the catalog does not say so."""


def register_partitions(
    spark: Any, database: str, output: str, run_date: str, partitions: dict[str, str | None], layout: str = RENAME
) -> list[str]:
    """Point each table's ``run_date`` partition at where ``partitions`` says it was published (None:
    the run emptied that table, so its partition is dropped). Returns the tables registered.

    A table's own location is ``<output>/<table>`` with the rename publishing; with the pointer one,
    whose partitions live in run folders, it is ``<output>/_published`` (a folder that exists, so
    that creating a table makes no empty folder). Raises :class:`CatalogError` naming what failed;
    the published files are never touched here.
    """
    registered, dropped = [], []
    try:
        if spark.conf.get("spark.sql.catalogImplementation", "in-memory") == "in-memory" and "." not in database:
            log.warning(
                "the session's catalog is in memory: the tables of %s last only as long as this session "
                "(docs/publishing.md#catalog-tables)",
                database,
            )
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quoted(database)}")
        for table, location in partitions.items():
            root = f"{output.rstrip('/')}/{table if layout == RENAME else POINTERS}"
            if table in PARQUET_TABLES:
                _register(spark, database, table, table, location, run_date, root)
            elif table == RUNS:
                _register(spark, database, RUNS_FILES, table, location, run_date, root)
                _create_runs_view(spark, database)
            else:
                continue
            (registered if location else dropped).append(table)
    except Exception as error:
        raise CatalogError(
            f"the run published its outputs under {output}, but registering them in the catalog database "
            f"{database!r} failed: {explain(error)}. The published files are complete and readable; fix the "
            f"catalog (docs/publishing.md#catalog-tables) and run the date again to register it"
        ) from error
    log.info(
        "catalog %s, run date %s: registered %s%s",
        database,
        run_date,
        ", ".join(registered) or "nothing",
        f"; dropped {', '.join(dropped)} (no rows)" if dropped else "",
    )
    return registered


def _register(spark: Any, database: str, name: str, table: str, location: str | None, run_date: str, root: str):
    qualified = f"{_quoted(database)}.{_quoted(name)}"
    spec = f"PARTITION ({PARTITION_COLUMN} = '{run_date}')"
    if location is None:
        if spark.catalog.tableExists(f"{database}.{name}"):
            spark.sql(f"ALTER TABLE {qualified} DROP IF EXISTS {spec}")
        return
    if not spark.catalog.tableExists(f"{database}.{name}"):
        if table == RUNS:
            spark.sql(
                f"CREATE TABLE {qualified} (value STRING, {PARTITION_COLUMN} DATE) USING text "
                f"OPTIONS (wholetext 'true') PARTITIONED BY ({PARTITION_COLUMN}) LOCATION {_literal(root)}"
            )
        else:
            columns = _columns(spark.read.parquet(location).schema)
            spark.sql(
                f"CREATE TABLE {qualified} ({columns}, {PARTITION_COLUMN} DATE) USING parquet "
                f"PARTITIONED BY ({PARTITION_COLUMN}) LOCATION {_literal(root)}"
            )
    elif table != RUNS:
        _add_new_columns(spark, qualified, spark.read.parquet(location).schema)
    spark.sql(f"ALTER TABLE {qualified} ADD IF NOT EXISTS {spec} LOCATION {_literal(location)}")
    spark.sql(f"ALTER TABLE {qualified} {spec} SET LOCATION {_literal(location)}")  # a rerun moves it
    spark.sql(f"REFRESH TABLE {qualified}")


def _add_new_columns(spark: Any, qualified: str, schema) -> None:
    """A column a newer version of the job publishes is added; a column it dropped stays (null)."""
    known = {field.name.lower() for field in spark.table(qualified).schema}
    new = [field for field in schema if field.name.lower() not in known]
    if new:
        spark.sql(f"ALTER TABLE {qualified} ADD COLUMNS ({_columns(new)})")


def _create_runs_view(spark: Any, database: str) -> None:
    files = f"{_quoted(database)}.{_quoted(RUNS_FILES)}"
    spark.sql(
        f"CREATE OR REPLACE VIEW {_quoted(database)}.{_quoted(RUNS)} AS SELECT "
        "get_json_object(value, '$.run_id') AS run_id, get_json_object(value, '$.mode') AS mode, "
        "get_json_object(value, '$.model_version') AS model_version, "
        "CAST(get_json_object(value, '$.quality.meets_targets') AS BOOLEAN) AS meets_targets, "
        f"value AS manifest, {PARTITION_COLUMN} FROM {files} WHERE _metadata.file_name = '{MANIFEST}'"
    )


def _columns(fields) -> str:
    return ", ".join(f"{_quoted(f.name)} {f.dataType.simpleString()}" for f in fields)


def _quoted(name: str) -> str:
    return ".".join(f"`{part}`" for part in name.split("."))


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
