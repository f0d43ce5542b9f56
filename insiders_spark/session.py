"""The SparkSession, built from configuration only.

No master is chosen here: local profiles set ``spark.master`` in their TOML, and under
``spark-submit`` the master comes from the command line (profiles for clusters leave it unset).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from insiders_spark.config import default_conf_dir

LOG4J_FILE = "log4j2.properties"
JVM_LOG_LEVEL = "WARN"


def build_spark_session(
    app_name: str,
    spark_conf: Mapping[str, str],
    log4j_config: str | Path | None = None,
) -> SparkSession:
    """Create (or reuse) the session with every setting from ``spark_conf``.

    ``log4j_config`` quiets the JVM from its first line when Python starts the JVM itself; under
    ``spark-submit`` the JVM is already running and scripts/submit.sh passes the same file.
    """
    builder = SparkSession.builder.appName(app_name)
    settings = dict(spark_conf)
    log4j = Path(log4j_config) if log4j_config else default_conf_dir() / LOG4J_FILE
    if log4j.is_file():
        option = f"-Dlog4j2.configurationFile={log4j.resolve().as_uri()}"
        existing = settings.get("spark.driver.extraJavaOptions", "")
        settings["spark.driver.extraJavaOptions"] = f"{existing} {option}".strip()
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(JVM_LOG_LEVEL)
    return spark
