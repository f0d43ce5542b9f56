"""The customer table: the log read, every line classified and counted, customers aggregated."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from insiders_spark.cleaning.accounting import RowAccounting, accounting_from, observe_outcomes
from insiders_spark.cleaning.parsing import AMOUNT_TOLERANCE, LineFormat, to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import Config, detect_dataset
from insiders_spark.core.errors import DuplicateCustomerIdError, NoCustomersError
from insiders_spark.core.names import CUSTOMER_ID, PRODUCT_FEATURES, PRODUCT_ID, TEXT_IDS
from insiders_spark.features.customers import (
    CustomerSummary,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.storage.inputs import read_input
from insiders_spark.storage.mapping import MappedInput, map_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomerTable:
    """The log read, classified, accounted for and aggregated per customer."""

    config: Config  # the run's configuration, with the dataset profile the input called for
    source: MappedInput
    lines: DataFrame  # every input line with its reason (lazy)
    quarantine_lines: DataFrame  # the same with each line's source file (lazy; read for the quarantine)
    customers: DataFrame  # one row per customer or guest invoice, numbered (cached)
    summary: CustomerSummary
    accounting: RowAccounting
    as_of: dt.date
    as_of_source: str
    guest_start: int  # guest invoices are numbered from here
    held: list[DataFrame] = field(default_factory=list, compare=False, repr=False)  # cached by the run

    @property
    def line_format(self) -> LineFormat:
        return line_format_of(self.source, self.config)

    @property
    def has_products(self) -> bool:
        return self.source.mapping.has(PRODUCT_ID)

    def features(self) -> DataFrame:
        """The customers' features as of the table's date; without product ids, no qty_products."""
        features = self.customers.transform(to_customer_features, as_of=self.as_of)
        return features if self.has_products else features.drop(*PRODUCT_FEATURES)

    def classified(self, lines: DataFrame, *, as_of: dt.date) -> DataFrame:
        """Parsed lines classified again as of another date (the same rules, a later window)."""
        return lines.transform(with_reason, rules=self.config.cleaning, as_of=as_of, line_format=self.line_format)

    def hold(self, frame: DataFrame) -> DataFrame:
        """Keep a frame the run cached so that :meth:`unpersist` releases it, however the run ends
        (a notebook's long-lived session must not keep a failed run's caches)."""
        self.held.append(frame)
        return frame

    def unpersist(self) -> None:
        for frame in (*self.held, self.customers):
            frame.unpersist()
        self.held.clear()


def line_format_of(source: MappedInput, config: Config) -> LineFormat:
    return LineFormat(
        columns=dict(source.mapping.columns),
        customer_ids=source.customer_ids,
        timestamp_format=config.input.timestamp_format,
    )


def read_mapped_input(spark: SparkSession, config: Config, *, as_of: dt.date | None) -> tuple[Config, MappedInput]:
    """The configured input through its column mapping, and the configuration with the dataset
    profile whose columns the input has (when the configuration names none)."""
    raw = read_input(spark, config.input, config.synthetic)
    log.info("input: %s (%s%s)", raw.description, raw.format, _file_count(raw.files))
    config = detect_dataset(config, raw.columns)
    mapped = map_input(raw, config.input.columns, customer_ids=config.input.customer_ids, as_of=as_of)
    for name, effect in mapped.mapping.describe()["absent"].items():
        log.info("input has no %s: %s", name, effect)
    return config, mapped


def prepare_customers(spark: SparkSession, config: Config, *, as_of: dt.date | None = None) -> CustomerTable:
    """Read the configured log, classify every line, aggregate customers and check the accounting.

    One Spark job reads the input: it aggregates the customers and, through ``observe``, counts
    every line's outcome. ``as_of`` defaults to the last invoice date among the kept lines up to
    today (UTC): a line dated in the future (a wrong year in an export) is left for a later run,
    counted and warned about, instead of moving every customer's recency and the run date with it.
    """
    config, source = read_mapped_input(spark, config, as_of=as_of)
    rules, line_format = config.cleaning, line_format_of(source, config)
    today = dt.datetime.now(dt.UTC).date()
    upper = as_of or today
    text_ids = source.customer_ids == TEXT_IDS

    def classified(raw: DataFrame) -> DataFrame:
        return raw.transform(to_parsed_lines, line_format=line_format).transform(
            with_reason, rules=rules, as_of=upper, line_format=line_format
        )

    lines = classified(source.lines())
    decoded_text = source.raw.decoded_text
    observed, observation = observe_outcomes(lines, decoded_text=decoded_text)

    def aggregated(frame: DataFrame, *, exact_keys: bool) -> tuple[DataFrame, DataFrame, int]:
        activity = frame.transform(to_customer_activity, exact_keys=exact_keys, text_ids=text_ids).cache()
        start = rules.guest_customer_id_start or automatic_guest_start(activity, text_ids=text_ids)
        numbered = activity.transform(with_guest_customer_ids, start=start)
        return activity, numbered.cache(), start

    activity, customers, guest_start = aggregated(observed, exact_keys=False)
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
            activity, customers, guest_start = aggregated(lines, exact_keys=True)
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
        if accounting.amounts_disagree:
            log.warning(
                "%s kept lines have a line_amount that differs from unit_price x quantity by more than %s: "
                "the revenue is line_amount's",
                f"{accounting.amounts_disagree:,}",
                AMOUNT_TOLERANCE,
            )
        if as_of is None and accounting.after_as_of:
            log.warning(
                "%s lines are dated after today (%s, UTC): left for a later run, like lines after an as-of "
                "date (a wrong year or clock in the export?)",
                f"{accounting.after_as_of:,}",
                today,
            )
        check_customers(summary, guest_start, accounting, as_of=upper, text_ids=text_ids)
    except BaseException:
        for frame in (activity, customers):
            frame.unpersist()
        raise
    return CustomerTable(
        config=config,
        source=source,
        lines=lines,
        quarantine_lines=classified(source.lines(with_source=True)),
        customers=customers,
        summary=summary,
        accounting=accounting,
        as_of=as_of or summary.last_kept_date,
        as_of_source="given" if as_of else "last invoice date in the cleaned log",
        guest_start=guest_start,
    )


def automatic_guest_start(activity: DataFrame, *, text_ids: bool) -> int:
    """Where guest numbers start when ``cleaning.guest_customer_id_start`` is 0: the first power of
    ten above ten times the largest registered id, so that later, larger ids rarely move it (text ids,
    numbered by a 63-bit hash, leave the small numbers free: 1)."""
    if text_ids:
        return 1
    largest = activity.agg(F.max(CUSTOMER_ID)).first()[0]
    return 10 ** (len(str(int(largest))) + 1) if largest else 1


def check_customers(
    summary: CustomerSummary,
    guest_start: int,
    accounting: RowAccounting,
    *,
    as_of: dt.date | None,
    text_ids: bool = False,
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
    if summary.shared_customer_keys:
        raise DuplicateCustomerIdError(
            f"{summary.shared_customer_keys:,} customer numbers were shared by two text customer ids (a 63-bit "
            "hash collision): their lines were merged; rerun with customer ids that differ, or report it"
        )
    if summary.distinct_ids != summary.customers:
        if text_ids:
            raise DuplicateCustomerIdError(
                f"guest invoices numbered from {guest_start} collide with the numbers of text customer ids "
                f"({summary.customers - summary.distinct_ids:,} duplicates); set cleaning.guest_customer_id_start "
                "to another number"
            )
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
