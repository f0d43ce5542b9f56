"""The names a cluster can earn from its profile (the rule is in ``profiles``' docstring).

Plain data without Spark, so the configuration can check ``segments.insiders_name`` against them
at start-up without importing what the profiles need.
"""

from __future__ import annotations

# (value is high, recency tier, buys again) -> name; the table in profiles' docstring.
NAMES: dict[tuple[bool, str, bool], str] = {
    (True, "recent", True): "Loyal",
    (True, "recent", False): "Loyal",
    (True, "lapsing", True): "At risk",
    (True, "lapsing", False): "At risk",
    (True, "gone", True): "At risk",
    (True, "gone", False): "At risk",
    (False, "recent", True): "Promising",
    (False, "recent", False): "New",
    (False, "lapsing", True): "Need attention",
    (False, "lapsing", False): "About to sleep",
    (False, "gone", True): "Hibernating",
    (False, "gone", False): "Lost",
}
FREQUENT_RETURNERS = "Frequent returners"
