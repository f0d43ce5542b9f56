"""The published segments: assignment, Insider history from run to run, and the control group."""

from insiders_spark.segments.assignment import to_published_segments
from insiders_spark.segments.continuity import churn_counts, match_clusters, with_insider_history
from insiders_spark.segments.control import with_control_flag

__all__ = ["churn_counts", "match_clusters", "to_published_segments", "with_control_flag", "with_insider_history"]
