"""The command line: ``insiders-spark run ...`` (and ``spark-submit jobs/segment_customers.py ...``).

Thin on purpose: arguments -> configuration -> logging -> session -> run -> stop.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from insiders_spark.core.checks import CUSTOMER_ID_KINDS, INPUT_FORMATS
from insiders_spark.core.config import default_conf_dir, load_config
from insiders_spark.core.errors import ConfigError, ModelNotFoundError, OutputInUseError
from insiders_spark.core.progress import DRIVER_TASK_LOG, JSON_LOGS, JVM_LOGGING, LOG_FORMATS, configure_logging
from insiders_spark.spark.connect import REMOTE_VARIABLE, python_modules, remote_url
from insiders_spark.spark.launch import ARCHIVE_SYNTHETIC_LINES, import_in_background, plan_launch, write_class_archive

log = logging.getLogger("insiders_spark")

EXIT_OK = 0
EXIT_FAILED = 1  # the run failed: bad input, a check that did not pass, a Spark error
EXIT_USAGE = 2  # the command line or the configuration is wrong


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _k(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of clusters or 'auto', got {text!r}") from None


def _columns(text: str) -> dict[str, str]:
    """``canonical=source,canonical=source,...`` as a mapping (its names are checked with the configuration)."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        name, equals, source = pair.partition("=")
        if not equals or not name.strip() or not source.strip():
            raise argparse.ArgumentTypeError(
                f"expected canonical=source pairs separated by commas (e.g. customer_id=cust,invoice_date=ts), "
                f"got {pair!r}"
            )
        if name.strip() in mapping:
            raise argparse.ArgumentTypeError(f"{name.strip()} is mapped twice in {text!r}")
        mapping[name.strip()] = source.strip()
    return mapping


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("input and output")
    where = source.add_mutually_exclusive_group()
    where.add_argument(
        "--input",
        help="a file, folder or glob of CSV, parquet, JSON lines or ORC (default: the embedded synthetic log)",
    )
    where.add_argument("--table", help="a catalog table, db.name, read through the session's catalog")
    source.add_argument("--format", choices=INPUT_FORMATS, help="input format (default: from the file names)")
    source.add_argument(
        "--columns",
        type=_columns,
        metavar="CANONICAL=SOURCE,...",
        help="the input's column for each of the job's: invoice_id, product_id, description, quantity, "
        "invoice_date, unit_price, line_amount, customer_id, country (unmapped ones are taken by their own "
        "name; customer_id, invoice_date and unit_price or line_amount are required)",
    )
    source.add_argument(
        "--dataset",
        help="a dataset profile (conf/datasets/NAME.toml: column names, timestamp pattern, cleaning rules), "
        "e.g. online_retail; default: the profile whose columns the input has; 'none' for none",
    )
    source.add_argument(
        "--timestamp-format",
        help="Spark datetime pattern of invoice_date text, e.g. 'yyyy-MM-dd HH:mm:ss', 'M/d/yyyy H:mm', "
        "yyyyMMdd, dd/MM/yyyy (default: auto, ISO 8601; a timestamp or date column needs none)",
    )
    source.add_argument(
        "--customer-ids",
        choices=CUSTOMER_ID_KINDS,
        help="number: positive whole numbers (anything else is an invalid id); text: any text; "
        "auto (default): from the column's type or a sample of its values",
    )
    source.add_argument("--encoding", help="CSV and JSON text encoding (default: UTF-8)")
    source.add_argument("--output", help="output folder or URI (default: ./output)")
    source.add_argument(
        "--catalog-database",
        metavar="NAME",
        help="after publishing, register every output as a table of this catalog database, partitioned by "
        "run_date (default: off; the catalog is an embedded Hive metastore in output.metastore_dir unless "
        "the profile's [spark] names one)",
    )
    dates = parser.add_argument_group("dates")
    dates.add_argument(
        "--as-of", type=_date, help="compute features from lines up to this date (default: the last invoice date)"
    )
    dates.add_argument("--run-date", type=_date, help="partition the outputs by this date (default: the as-of date)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--mode",
        choices=("train-and-score", "train", "score"),
        default="train-and-score",
        help="train: fit and persist a model; score: assign customers with the persisted model, no "
        "refit; train-and-score (default): both",
    )
    model.add_argument("--model-version", help="score with this model version (default: models/CURRENT)")
    model.add_argument(
        "--k",
        type=_k,
        help="number of clusters (default: 9, as in the study), or 'auto': the smallest k of the grid "
        "(clustering.k_grid) that meets every quality target, the configured k if none does",
    )
    model.add_argument("--seed", type=int, help="seed of the tree and KMeans (default: 42)")
    model.add_argument(
        "--stability",
        action=argparse.BooleanOptionalAction,
        help="refit with other seeds and bootstrap resamples and record the agreement (default: on when training)",
    )
    model.add_argument(
        "--backtest-horizon",
        type=int,
        metavar="DAYS",
        help="also backtest: choose customers at the as-of date minus DAYS and measure their share of the "
        "following DAYS' revenue against top past spenders and perfect foresight (default: off)",
    )
    model.add_argument(
        "--backtest-cutoff", type=_date, help="the backtest's cut-off (default: as-of minus the horizon)"
    )
    model.add_argument("--synthetic-lines", type=int, help="size of the generated log when no --input is given")
    model.add_argument(
        "--mlflow-uri",
        help="log each training run (configuration, metrics, manifest, report, model) to this MLflow tracking "
        "URI and move the registered model's alias 'current' (default: tracking.mlflow_uri; off when empty)",
    )
    settings = parser.add_argument_group("configuration")
    settings.add_argument("--env", default="local", help="configuration profile in conf/ (default: local)")
    settings.add_argument("--conf-dir", help="folder of configuration profiles (default: the packaged conf/)")
    settings.add_argument(
        "--remote",
        metavar="sc://HOST:PORT",
        help=f"run on this Spark Connect server (default: {REMOTE_VARIABLE}; unset: Spark in this process); "
        "the profile's spark.sql.* settings apply to the session, the server keeps its own others",
    )
    settings.add_argument("--log-level", help="driver log level (default: INFO)")
    settings.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text, or json: one JSON object a line from the driver's Python log and from Spark's "
        "(structured logging), in the same shape (default: text)",
    )
    settings.add_argument("--verbose", action="store_true", help="print full tracebacks on failure")
    settings.add_argument("--launched-by-spark-submit", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="insiders-spark",
        description="Find the Insiders: segment customers from a raw transaction log with Spark.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the segmentation job",
        description="Read a transaction log, build customer features, cluster them and write "
        "segments, profiles, metrics and a report under --output.",
    )
    _add_run_arguments(run)
    show = commands.add_parser("config", help="print the effective configuration as JSON")
    show.add_argument("--env", default="local")
    show.add_argument("--conf-dir")
    registry = commands.add_parser("models", help="list the persisted models, or choose the current one")
    registry.add_argument("action", choices=("list", "use"), help="list versions, or use VERSION for scoring")
    registry.add_argument("version", nargs="?", help="with 'use': the version to make current (a rollback)")
    registry.add_argument("--output", help="output folder or URI (default: ./output)")
    registry.add_argument("--mlflow-uri", help="with 'use': also move the MLflow alias 'current' (tracking.mlflow_uri)")
    registry.add_argument("--env", default="local")
    registry.add_argument("--conf-dir")
    archive = commands.add_parser(
        "class-archive",
        help="make the JVM class archive that shortens local runs' start (launch.class_archive)",
        description="Run the job once on a small log in a JVM that writes the classes it loads to a "
        "class-data sharing archive; runs that name it in launch.class_archive start faster. Make it "
        "again after upgrading Java or pyspark (the JVM then says it cannot use the old one).",
    )
    archive.add_argument("--archive", help="where to write it (default: launch.class_archive of the profile)")
    archive.add_argument(
        "--input",
        help="a sample of your log, so the archive holds its reader's classes too (default: a "
        f"{ARCHIVE_SYNTHETIC_LINES:,}-line synthetic log)",
    )
    archive.add_argument("--env", default="local", help="configuration profile in conf/ (default: local)")
    archive.add_argument("--conf-dir")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    """The command-line flags as dotted configuration keys (unset flags are None and ignored)."""
    return {
        "input.path": args.input,
        "input.table": args.table,
        "input.format": args.format,
        "input.columns": args.columns,
        "input.dataset": args.dataset,
        "input.customer_ids": args.customer_ids,
        "input.timestamp_format": args.timestamp_format,
        "input.encoding": args.encoding,
        "output.path": args.output,
        "output.catalog_database": args.catalog_database,
        "clustering.k": args.k if args.k != "auto" else None,
        "clustering.select_k": True if args.k == "auto" else (False if args.k is not None else None),
        "quality.stability": args.stability,
        "backtest.horizon_days": args.backtest_horizon,
        "backtest.cutoff": args.backtest_cutoff.isoformat() if args.backtest_cutoff else None,
        "job.seed": args.seed,
        "job.log_level": args.log_level,
        "job.log_format": args.log_format,
        "synthetic.lines": args.synthetic_lines,
        "tracking.mlflow_uri": args.mlflow_uri,
    }


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    """``insiders-spark ARGV``; ``environ``: the environment variables the configuration and
    ``SPARK_REMOTE`` are read from (default: the process's), for a caller that runs several
    commands in one process with different settings."""
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        if args.command == "config":
            config = load_config(args.conf_dir, args.env, environ=environ)
            print(json.dumps(config.to_dict(), indent=2))
            return EXIT_OK
        if args.command == "models":
            if args.action == "use" and not args.version:
                print("insiders-spark: 'models use' needs a VERSION (see 'models list')", file=sys.stderr)
                return EXIT_USAGE
            config = load_config(
                args.conf_dir,
                args.env,
                overrides={"output.path": args.output, "tracking.mlflow_uri": args.mlflow_uri},
                environ=environ,
            )
            return manage_models(config, args.action, args.version)
        if args.command == "class-archive":
            return make_class_archive(args)
        config = load_config(args.conf_dir, args.env, overrides=overrides_from(args), environ=environ)
        remote = remote_url(args.remote, environ)
        if remote and args.launched_by_spark_submit:
            raise ConfigError(f"--remote/{REMOTE_VARIABLE} {remote!r}: spark-submit runs the job in its own JVM")
    except ConfigError as error:
        print(f"insiders-spark: configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_job(
        config,
        run_date=args.run_date,
        as_of=args.as_of,
        mode=args.mode,
        model_version=args.model_version,
        verbose=args.verbose,
        launched_by_spark_submit=args.launched_by_spark_submit,
        remote=remote,
    )


def run_job(
    config,
    *,
    run_date: dt.date | None,
    as_of: dt.date | None,
    mode: str = "train-and-score",
    model_version: str | None = None,
    verbose: bool = False,
    launched_by_spark_submit: bool = False,
    remote: str | None = None,
) -> int:
    """The job on a session of its own (over Spark Connect with ``remote``, where none of the
    driver JVM's start-up aids apply), or on the session this process already has (a notebook's)."""
    importing = None if remote else import_in_background()  # the run's modules load while the JVM starts
    from pyspark.sql import SparkSession

    from insiders_spark.spark.messages import explain
    from insiders_spark.spark.session import build_spark_session

    configure_logging(config.job.log_level, config.job.log_format)
    spark = None
    already_running = not remote and SparkSession.getActiveSession() is not None  # a notebook's: not ours to stop
    java_options: tuple[str, ...] = ()
    jvm_logging = JVM_LOGGING[config.job.log_format]
    if not (already_running or launched_by_spark_submit or remote):
        plan = plan_launch(config)
        log.info(plan.describe())
        java_options = (*plan.java_options, DRIVER_TASK_LOG)
    try:
        spark = build_spark_session(
            config.job.app_name,
            {**config.session_settings(), **jvm_logging.settings},  # + the embedded metastore, when the run uses it
            log4j_config=Path(str(default_conf_dir() / jvm_logging.file)),
            launched_by_spark_submit=launched_by_spark_submit,
            java_options=java_options,
            remote=remote,
            remote_modules=python_modules(config) if remote else (),
        )
        if importing is not None:
            importing.join()
        from insiders_spark.runs import run

        result = run(spark, config, run_date=run_date, as_of=as_of, mode=mode, model_version=model_version)
    except Exception as error:  # every failure ends as one clear message and a non-zero status
        message = explain(error)
        if verbose:
            log.exception("run failed")
        if config.job.log_format == JSON_LOGS:  # every line of the log parses, this one too
            log.error("insiders-spark: error: %s", message)
        else:
            print(f"insiders-spark: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if spark is not None and not already_running:
            spark.stop()
    insiders = result.metrics["insiders"]
    if "churn" in result.metrics:
        churn = result.metrics["churn"]
        log.info("Insiders: %s entered, %s left, %s stayed", churn["entered"], churn["left"], churn["stayed"])
    log.info(
        "done: %s Insiders (%.1f%% of customers, %.1f%% of revenue), silhouette %.3f; outputs under %s",
        f"{insiders['customers']:,}",
        100 * insiders["customer_share"],
        100 * insiders["revenue_share"],
        result.metrics["clustering"]["silhouette"],
        config.output.path,
    )
    return EXIT_OK


def make_class_archive(args: argparse.Namespace) -> int:
    """``class-archive``: run the job once on a small log and keep the classes its JVM loaded."""
    import tempfile

    from insiders_spark.runs import run
    from insiders_spark.spark.messages import explain

    with tempfile.TemporaryDirectory(prefix="insiders-class-archive-") as scratch:
        overrides = {"input.path": args.input or "", "synthetic.lines": ARCHIVE_SYNTHETIC_LINES, "output.path": scratch}
        try:
            config = load_config(args.conf_dir, args.env, overrides=overrides)
            target = args.archive or config.launch.class_archive
            if not target:
                raise ConfigError(
                    f"no archive path: give --archive PATH or set launch.class_archive in the {args.env} profile"
                )
        except ConfigError as error:
            print(f"insiders-spark: configuration error: {error}", file=sys.stderr)
            return EXIT_USAGE
        configure_logging(config.job.log_level, config.job.log_format)
        try:
            result = write_class_archive(config, target, lambda spark: run(spark, config))
        except Exception as error:
            print(f"insiders-spark: error: {explain(error)}", file=sys.stderr)
            return EXIT_FAILED
    print(f"class archive: {result.path} ({result.bytes / 2**20:.0f} MiB, made in {result.seconds:.0f} s)")
    named = config.launch.class_archive
    if not named or Path(named).expanduser().resolve() != result.path:
        print(f'runs start from it with launch.class_archive = "{result.path}" in the {args.env} profile')
    return EXIT_OK


def manage_models(config, action: str, version: str | None) -> int:
    """``models list`` / ``models use VERSION`` on the configured output."""
    from pyspark.sql import SparkSession

    from insiders_spark.model.store import current_version, list_versions, use_version
    from insiders_spark.spark.session import build_spark_session

    already_running = SparkSession.getActiveSession() is not None  # a notebook's: not ours to stop
    spark = build_spark_session(config.job.app_name, config.spark)
    try:
        if action == "use":
            use_version(spark, config.output.path, version)
            print(f"current model: {version}")
            if config.tracking.mlflow_uri:
                from insiders_spark.runs.tracking import CURRENT_ALIAS, mirror_current

                if mirror_current(config, version):
                    print(f"MLflow: alias {CURRENT_ALIAS!r} of {config.tracking.experiment!r} follows it")
            return EXIT_OK
        current = current_version(spark, config.output.path)
        for info in list_versions(spark, config.output.path):
            marker = "*" if info.version == current else " "
            print(
                f"{marker} {info.version}  trained as of {info.trained_as_of}  run {info.run_date}  "
                f"config {info.config_hash}"
            )
        return EXIT_OK
    except (ModelNotFoundError, OutputInUseError) as error:
        print(f"insiders-spark: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if not already_running:
            spark.stop()


if __name__ == "__main__":
    sys.exit(main())
