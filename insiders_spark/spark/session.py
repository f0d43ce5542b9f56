"""The SparkSession, built from configuration only.

No master is chosen here: local profiles set ``spark.master`` in their TOML, and under
``spark-submit`` the master comes from the command line (profiles for clusters leave it unset).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pyspark.sql import SparkSession

from insiders_spark.core.config import default_conf_dir

LOG4J_FILE = "log4j2.properties"
JVM_LOG_LEVEL = "WARN"


def build_spark_session(
    app_name: str,
    spark_conf: Mapping[str, str],
    log4j_config: str | Path | None = None,
    *,
    launched_by_spark_submit: bool = False,
    java_options: Sequence[str] = (),
) -> SparkSession:
    """Create (or reuse) the session with every setting from ``spark_conf``.

    ``log4j_config`` quiets the JVM from its first line when Python starts the JVM itself. Under
    ``spark-submit`` (``launched_by_spark_submit``) the JVM is already running with the profile's
    settings (scripts/submit.sh passes them as ``--conf``, and the log4j file) plus whatever the
    person submitting added: those win, and only keys spark-submit did not set are applied here.

    ``java_options`` (``insiders_spark.launch``) are added to the driver's JVM options when Python
    starts the JVM; a JVM that is already running (spark-submit's, a notebook's) cannot take them.
    """
    builder = SparkSession.builder.appName(app_name)
    settings = dict(spark_conf)
    if launched_by_spark_submit:
        settings = {key: value for key, value in settings.items() if key not in _launcher_settings()}
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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(JVM_LOG_LEVEL)
    return spark


def _launcher_settings() -> set[str]:
    """The keys spark-submit already set (its --conf, --master, defaults), read from its JVM."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # under spark-submit: connects to the running JVM
    return {key for key, _ in SparkConf().getAll()}


def activate_in_this_thread(spark: SparkSession) -> None:
    """Make ``spark`` the active session of the calling thread, in the JVM.

    PySpark runs each Python thread's calls on a JVM thread of its own, where the active session
    is thread-local: a new thread has none, and MLlib's writers (a model's ``save``) look it up.
    """
    spark.sparkContext._jvm.org.apache.spark.sql.classic.SparkSession.setActiveSession(spark._jsparkSession)
