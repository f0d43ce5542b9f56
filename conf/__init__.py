"""The configuration profiles, shipped inside the package as ``insiders_spark.conf``."""
