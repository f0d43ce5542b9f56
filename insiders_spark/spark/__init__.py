"""The Spark session and how its JVM starts; small tables built in the plan; Spark's errors explained."""

from insiders_spark.spark.launch import LaunchPlan, plan_launch, write_class_archive
from insiders_spark.spark.literals import literal_frame
from insiders_spark.spark.messages import explain
from insiders_spark.spark.session import build_spark_session

__all__ = ["LaunchPlan", "build_spark_session", "explain", "literal_frame", "plan_launch", "write_class_archive"]
