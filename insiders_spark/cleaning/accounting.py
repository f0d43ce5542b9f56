"""Row accounting: every input line ends in exactly one place, and the job checks it every run.

The counts are gathered with ``DataFrame.observe`` on the classified lines, so they come out of the
same Spark job that aggregates the features: no extra pass over the input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import AMOUNTS_DISAGREE, RAW_PREFIX
from insiders_spark.core.config import QuarantineConfig
from insiders_spark.core.errors import AccountingError, QuarantineThresholdError
from insiders_spark.core.names import AFTER_AS_OF, COUNTRY, DESCRIPTION, QUARANTINE_REASONS, REASON

INPUT = "input"
KEPT = "kept"
UNDECODABLE = "undecodable"  # lines whose text holds U+FFFD: read with the wrong encoding?
REPLACEMENT_CHARACTER = "\ufffd"
TEXT_FIELDS = (DESCRIPTION, COUNTRY)  # the free-text fields; codes and numbers are ASCII


@dataclass(frozen=True)
class RowAccounting:
    input: int
    kept: int
    after_as_of: int
    quarantined: dict[str, int] = field(default_factory=dict)
    undecodable: int = 0
    amounts_disagree: int = 0  # kept lines whose line_amount is not unit_price x quantity (the amount wins)

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
            "undecodable_text_lines": self.undecodable,
            "amount_disagreements": self.amounts_disagree,
        }

    @property
    def judged(self) -> int:
        """The lines this run judged: all but those after the as-of date (left for a later run),
        so that a backfill's early as-of date does not dilute the quarantine shares."""
        return self.input - self.after_as_of

    def share(self, count: int) -> float:
        return count / self.judged if self.judged else 0.0

    def check_thresholds(self, limits: QuarantineConfig) -> None:
        """Fail when the quarantined share, overall or for one reason, is above its limit."""
        breaches = []
        if self.share(self.quarantined_total) > limits.max_share:
            breaches.append(
                f"all reasons: {self.quarantined_total:,} lines ({self.share(self.quarantined_total):.2%}) "
                f"> {limits.max_share:.2%}"
            )
        for reason, count in sorted(self.quarantined.items(), key=lambda item: -item[1]):
            limit = limits.max_share_by_reason.get(reason)
            if limit is not None and self.share(count) > limit:
                breaches.append(f"{reason}: {count:,} lines ({self.share(count):.2%}) > {limit:.2%}")
        if breaches:
            after = f", {self.after_as_of:,} of them after the as-of date and not judged" if self.after_as_of else ""
            raise QuarantineThresholdError(
                f"too much of the input was set aside ({self.input:,} lines read{after}; shares of the "
                f"{self.judged:,} judged): "
                + "; ".join(breaches)
                + ". Nothing was published. Fix the export (or the cleaning settings), or raise "
                "quarantine.max_share / quarantine.max_share_by_reason if this is expected, then run again"
            )


def is_undecodable(*texts: Column) -> Column:
    """Text that held bytes the configured encoding could not decode (read as U+FFFD)."""
    flags = [F.coalesce(text.contains(REPLACEMENT_CHARACTER), F.lit(False)) for text in texts]
    result = flags[0]
    for flag in flags[1:]:
        result = result | flag
    return result


def _outcome_counters(*, decoded_text: bool) -> list[Column]:
    reason = F.col(REASON)
    undecodable = (
        F.count_if(is_undecodable(*[F.col(f"{RAW_PREFIX}{name}") for name in TEXT_FIELDS]))
        if decoded_text
        else F.lit(0).cast("long")  # parquet strings are already text: nothing was decoded here
    )
    return [
        F.count(F.lit(1)).alias(INPUT),
        undecodable.alias(UNDECODABLE),
        F.count_if(reason.isNull()).alias(KEPT),
        F.count_if(reason.isNull() & F.col(AMOUNTS_DISAGREE)).alias(AMOUNTS_DISAGREE),
        F.count_if(reason == AFTER_AS_OF).alias(AFTER_AS_OF),
        *[F.count_if(reason == name).alias(name) for name in QUARANTINE_REASONS],
    ]


def observe_outcomes(lines: DataFrame, *, decoded_text: bool) -> tuple[DataFrame, Observation]:
    """Attach outcome counters to ``lines``; they fill in when the first action runs over them.

    ``decoded_text``: the input was bytes decoded with the configured encoding (CSV, JSON), so lines
    holding U+FFFD are counted too.
    """
    # a unique name: two tables read in one session (a backtest's windows) can then be joined
    observation = Observation(f"row_accounting_{uuid.uuid4().hex[:12]}")
    return lines.observe(observation, *_outcome_counters(decoded_text=decoded_text)), observation


def accounting_from(observation: Observation, lines: DataFrame, *, decoded_text: bool) -> RowAccounting:
    """The observed counts; when Spark observed nothing (an input with no rows at all), count
    ``lines`` directly (one pass over an empty or tiny input).

    Classic sessions raise when nothing was observed, Spark Connect answers ``{}``; either way the
    direct count decides (and raises the input's own error, if reading it is what failed).
    """
    try:
        counts = observation.get
    except Exception:  # a classic session's Py4JJavaError as well as PySpark's own errors
        counts = {}
    if INPUT not in counts:
        counts = lines.agg(*_outcome_counters(decoded_text=decoded_text)).first().asDict()
    return RowAccounting(
        input=int(counts[INPUT]),
        kept=int(counts[KEPT]),
        after_as_of=int(counts[AFTER_AS_OF]),
        quarantined={name: int(counts[name]) for name in QUARANTINE_REASONS if counts[name]},
        undecodable=int(counts[UNDECODABLE]),
        amounts_disagree=int(counts[AMOUNTS_DISAGREE]),
    )
