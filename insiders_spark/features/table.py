"""The customer table: the log read, every line classified and counted, customers aggregated."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from insiders_spark.cleaning.accounting import RowAccounting, accounting_from, observe_outcomes
from insiders_spark.cleaning.parsing import to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import Config
from insiders_spark.core.errors import DuplicateCustomerIdError, NoCustomersError
from insiders_spark.features.customers import (
    CustomerSummary,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.storage.inputs import RawInput, read_transactions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomerTable:
    """The log read, classified, accounted for and aggregated per customer."""

    source: RawInput
    lines: DataFrame  # every input line with its reason (lazy)
    quarantine_lines: DataFrame  # the same with each line's source file (lazy; read for the quarantine)
    customers: DataFrame  # one row per customer or guest invoice, numbered (cached)
    summary: CustomerSummary
    accounting: RowAccounting
    as_of: dt.date
    as_of_source: str
    held: list[DataFrame] = field(default_factory=list, compare=False, repr=False)  # cached by the run

    def features(self) -> DataFrame:
        return self.customers.transform(to_customer_features, as_of=self.as_of)

    def hold(self, frame: DataFrame) -> DataFrame:
        """Keep a frame the run cached so that :meth:`unpersist` releases it, however the run ends
        (a notebook's long-lived session must not keep a failed run's caches)."""
        self.held.append(frame)
        return frame

    def unpersist(self) -> None:
        for frame in (*self.held, self.customers):
            frame.unpersist()
        self.held.clear()


def prepare_customers(spark: SparkSession, config: Config, *, as_of: dt.date | None = None) -> CustomerTable:
    """Read the configured log, classify every line, aggregate customers and check the accounting.

    One Spark job reads the input: it aggregates the customers and, through ``observe``, counts
    every line's outcome. ``as_of`` defaults to the last invoice date among the kept lines up to
    today (UTC): a line dated in the future (a wrong year in an export) is left for a later run,
    counted and warned about, instead of moving every customer's recency and the run date with it.
    """
    source = read_transactions(spark, config.input, config.synthetic)
    log.info("input: %s (%s%s)", source.description, source.format, _file_count(source.files))
    rules = config.cleaning
    today = dt.datetime.now(dt.UTC).date()
    upper = as_of or today

    def classified(raw: DataFrame) -> DataFrame:
        return raw.transform(to_parsed_lines, timestamp_format=config.input.timestamp_format).transform(
            with_reason, rules=rules, as_of=upper
        )

    lines = classified(source.lines)
    decoded_text = source.format == "csv"
    observed, observation = observe_outcomes(lines, decoded_text=decoded_text)

    def aggregated(frame: DataFrame, *, exact_keys: bool) -> tuple[DataFrame, DataFrame]:
        activity = frame.transform(to_customer_activity, exact_keys=exact_keys).cache()
        numbered = activity.transform(with_guest_customer_ids, start=config.cleaning.guest_customer_id_start)
        return activity, numbered.cache()

    activity, customers = aggregated(observed, exact_keys=False)
    try:
        summary = summarise_customers(customers)
        if summary.shared_guest_keys:
            # two guest invoices hashed to one group key (about one run in 20 million with a million
            # guest invoices): their rows are merged, so aggregate again by (id, invoice); the
            # lines' outcomes were counted by the first pass
            log.warning(
                "%s group keys were shared by more than one guest invoice; aggregating again with exact keys",
                f"{summary.shared_guest_keys:,}",
            )
            for frame in (activity, customers):
                frame.unpersist()
            activity, customers = aggregated(lines, exact_keys=True)
            summary = summarise_customers(customers)
        activity.unpersist()
        accounting = accounting_from(observation, lines, decoded_text=decoded_text)
        accounting.check()
        log.info(
            "rows: %s read, %s kept, %s quarantined, %s after as-of; customers: %s (%s with purchases)",
            f"{accounting.input:,}",
            f"{accounting.kept:,}",
            f"{accounting.quarantined_total:,}",
            f"{accounting.after_as_of:,}",
            f"{summary.customers:,}",
            f"{summary.with_purchases:,}",
        )
        if as_of is None and accounting.after_as_of:
            log.warning(
                "%s lines are dated after today (%s, UTC): left for a later run, like lines after an as-of "
                "date (a wrong year or clock in the export?)",
                f"{accounting.after_as_of:,}",
                today,
            )
        check_customers(summary, config.cleaning.guest_customer_id_start, accounting, as_of=upper)
    except BaseException:
        for frame in (activity, customers):
            frame.unpersist()
        raise
    return CustomerTable(
        source=source,
        lines=lines,
        quarantine_lines=classified(source.lines_with_source()),
        customers=customers,
        summary=summary,
        accounting=accounting,
        as_of=as_of or summary.last_kept_date,
        as_of_source="given" if as_of else "last invoice date in the cleaned log",
    )


def check_customers(
    summary: CustomerSummary, guest_start: int, accounting: RowAccounting, *, as_of: dt.date | None
) -> None:
    if summary.with_purchases == 0:
        later = (
            f"{accounting.after_as_of:,} after the as-of date {as_of} (is it before the log's first invoice?), "
            if accounting.after_as_of
            else ""
        )
        raise NoCustomersError(
            f"no customer has a kept purchase: {accounting.input:,} lines read, {accounting.kept:,} kept, {later}"
            f"{accounting.quarantined_total:,} set aside ({_top_reasons(accounting)}); check the input "
            "and the cleaning settings"
        )
    if summary.distinct_ids != summary.customers:
        raise DuplicateCustomerIdError(
            f"guest invoices numbered from {guest_start} collide with real customer ids "
            f"({summary.customers - summary.distinct_ids:,} duplicates); set "
            "cleaning.guest_customer_id_start above the largest customer id in the log"
        )


def _top_reasons(accounting: RowAccounting) -> str:
    ranked = sorted(accounting.quarantined.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{name}: {count:,}" for name, count in ranked) or "none"


def _file_count(files: tuple[str, ...]) -> str:
    return f", {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""
