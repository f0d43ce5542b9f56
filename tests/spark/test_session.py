"""The session the suite runs on is built from the ``test`` profile alone (``spark.session``)."""

from __future__ import annotations

from insiders_spark.core.config import default_conf_dir


def test_the_session_takes_every_setting_of_the_profile(spark, test_config):
    for key, value in test_config.spark.items():
        if key != "spark.driver.extraJavaOptions":
            assert spark.conf.get(key) == value, key
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.sparkContext.master == "local[2]" and spark.conf.get("spark.sql.shuffle.partitions") == "2"


def test_the_driver_jvm_logs_through_the_packaged_log4j_file(spark):
    """Quiet from its first line: the packaged log4j2.properties is given to the JVM it starts."""
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    log4j = (default_conf_dir() / "log4j2.properties").resolve()
    assert f"-Dlog4j2.configurationFile={log4j.as_uri()}" in options.split()
    assert spark.sparkContext._jvm.System.getProperty("log4j2.configurationFile") == log4j.as_uri()
