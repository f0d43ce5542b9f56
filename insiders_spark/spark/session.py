"""The SparkSession, built from configuration only: classic (a JVM in this process) or, with a
``remote`` URL, a Spark Connect client's (``spark.connect``).

No master is chosen here: local profiles set ``spark.master`` in their TOML, and under
``spark-submit`` the master comes from the command line (profiles for clusters leave it unset).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pyspark import inheritable_thread_target
from pyspark.sql import SparkSession

from insiders_spark.core.config import default_conf_dir
from insiders_spark.spark import classic
from insiders_spark.spark.connect import connect_session

LOG4J_FILE = "log4j2.properties"
JVM_LOG_LEVEL = "WARN"
LOG_LEVEL_SETTING = "spark.log.level"  # SparkContext.setLogLevel at start-up


def build_spark_session(
    app_name: str,
    spark_conf: Mapping[str, str],
    log4j_config: str | Path | None = None,
    *,
    launched_by_spark_submit: bool = False,
    java_options: Sequence[str] = (),
    remote: str | None = None,
    remote_modules: Sequence[str] = (),
) -> SparkSession:
    """Create (or reuse) the session with every setting from ``spark_conf``.

    ``remote`` (``sc://HOST:PORT``): a session on that Spark Connect server instead, checked before
    it is returned (``spark.connect.connect_session``; ``remote_modules``: the Python the run
    imports on the server); the JVM's options and log4j file are then the server's business.

    ``log4j_config`` quiets the JVM from its first line when Python starts the JVM itself. Under
    ``spark-submit`` (``launched_by_spark_submit``) the JVM is already running with the profile's
    settings (scripts/submit.sh passes them as ``--conf``, and the log4j file) plus whatever the
    person submitting added: those win, and only keys spark-submit did not set are applied here.

    ``java_options`` (``insiders_spark.launch``) are added to the driver's JVM options when Python
    starts the JVM; a JVM that is already running (spark-submit's, a notebook's) cannot take them.
    """
    if remote:
        return connect_session(remote, spark_conf, modules=remote_modules)
    builder = SparkSession.builder.appName(app_name)
    settings = {LOG_LEVEL_SETTING: JVM_LOG_LEVEL, **spark_conf}
    if launched_by_spark_submit:
        settings = {key: value for key, value in settings.items() if key not in classic.launcher_settings()}
    else:
        options = [settings.get("spark.driver.extraJavaOptions", ""), *java_options]
        log4j = Path(log4j_config) if log4j_config else default_conf_dir() / LOG4J_FILE
        if isinstance(log4j, Path) and log4j.is_file():
            options.append(f"-Dlog4j2.configurationFile={log4j.resolve().as_uri()}")
        joined = " ".join(option for option in options if option)
        if joined:
            settings["spark.driver.extraJavaOptions"] = joined
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def thread_initializer(spark: SparkSession) -> Callable[[], None]:
    """What a second driver thread runs first so that its Spark calls are ``spark``'s, as the
    calling thread's are: over Spark Connect, the active session (MLlib's writers look it up) and
    the session's tags; in classic mode, the job's local properties. Call it on the parent thread
    (``pyspark.inheritable_thread_target`` captures them there)."""
    return inheritable_thread_target(spark)(lambda: None)
