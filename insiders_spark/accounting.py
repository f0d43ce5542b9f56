"""Row accounting: every input line ends in exactly one place, and the job checks it every run.

The counts are gathered with ``DataFrame.observe`` on the classified lines, so they come out of the
same Spark job that aggregates the features: no extra pass over the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from insiders_spark.cleaning import AFTER_AS_OF, QUARANTINE_REASONS
from insiders_spark.schemas import REASON

INPUT = "input"
KEPT = "kept"


class AccountingError(RuntimeError):
    """The outcome counts do not add up to the input: a line went missing or was counted twice."""


@dataclass(frozen=True)
class RowAccounting:
    input: int
    kept: int
    after_as_of: int
    quarantined: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def check(self) -> None:
        accounted = self.kept + self.after_as_of + self.quarantined_total
        if accounted != self.input:
            raise AccountingError(
                f"row accounting does not balance: {self.input:,} lines read, but {self.kept:,} kept + "
                f"{self.after_as_of:,} after as-of + {self.quarantined_total:,} quarantined = {accounted:,}"
            )

    def to_dict(self) -> dict:
        return {
            "input": self.input,
            "kept": self.kept,
            "after_as_of": self.after_as_of,
            "quarantined": dict(self.quarantined),
            "quarantined_total": self.quarantined_total,
        }


def observe_outcomes(lines: DataFrame) -> tuple[DataFrame, Observation]:
    """Attach outcome counters to ``lines``; they fill in when the first action runs over them."""
    observation = Observation("row_accounting")
    reason = F.col(REASON)
    observed = lines.observe(
        observation,
        F.count(F.lit(1)).alias(INPUT),
        F.count_if(reason.isNull()).alias(KEPT),
        F.count_if(reason == AFTER_AS_OF).alias(AFTER_AS_OF),
        *[F.count_if(reason == name).alias(name) for name in QUARANTINE_REASONS],
    )
    return observed, observation


def accounting_from(observation: Observation) -> RowAccounting:
    counts = observation.get
    return RowAccounting(
        input=int(counts[INPUT]),
        kept=int(counts[KEPT]),
        after_as_of=int(counts[AFTER_AS_OF]),
        quarantined={name: int(counts[name]) for name in QUARANTINE_REASONS if counts[name]},
    )
