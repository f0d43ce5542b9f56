"""Parsing and the quality rules (Column -> Column), and the accounting of every line."""

from insiders_spark.cleaning.accounting import RowAccounting, accounting_from, observe_outcomes
from insiders_spark.cleaning.parsing import to_parsed_lines
from insiders_spark.cleaning.rules import reason_for, to_quarantine, with_reason

__all__ = [
    "RowAccounting",
    "accounting_from",
    "observe_outcomes",
    "reason_for",
    "to_parsed_lines",
    "to_quarantine",
    "with_reason",
]
