"""The input contract: the source's columns mapped onto the job's canonical columns.

A canonical column is taken from the source column the mapping names (``[input.columns]``,
``--columns``, a dataset profile), else from a source column of its own name, else it is absent
(``core.names.ABSENT_EFFECTS`` says what the job does without it). ``customer_id`` and
``invoice_date`` are required, and ``unit_price`` or ``line_amount``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.core.errors import InputError
from insiders_spark.core.names import (
    ABSENT_EFFECTS,
    AMOUNT_COLUMNS,
    CANONICAL_COLUMNS,
    CORRUPT_RECORD,
    CUSTOMER_ID,
    INVOICE_DATE,
    NUMBER_IDS,
    REQUIRED_COLUMNS,
    SOURCE_FILE,
    TEXT_IDS,
)
from insiders_spark.storage.inputs import TABLE, RawInput

log = logging.getLogger(__name__)

ID_SAMPLE_ROWS = 1_000  # customer ids looked at to tell numbers from text
NUMBER_SHARE = 0.99  # at least this share of the sample numeric: numbers (the rest are invalid ids)
_WHOLE_NUMBER = re.compile(r"^[0-9]+(\.0*)?$")


@dataclass(frozen=True)
class ColumnMapping:
    """Canonical name -> the source column it is read from, for the columns the input has."""

    columns: Mapping[str, str]
    given: frozenset[str] = frozenset()  # mapped by the configuration; the others by their own name

    def has(self, name: str) -> bool:
        return name in self.columns

    @property
    def absent(self) -> tuple[str, ...]:
        return tuple(name for name in CANONICAL_COLUMNS if name not in self.columns)

    def describe(self) -> dict:
        """The manifest's record: the mapping used, and each absent column with its effect."""
        return {
            "columns": {name: self.columns[name] for name in CANONICAL_COLUMNS if name in self.columns},
            "absent": {name: ABSENT_EFFECTS[name] for name in self.absent if name in ABSENT_EFFECTS},
        }


def map_columns(configured: Mapping[str, str], found: Sequence[str], where: str) -> ColumnMapping:
    """Resolve the mapping against the columns ``found`` in the input (``where`` names it).

    A configured source column the input lacks is an error naming it and the columns found, as is an
    input without the required columns.
    """
    found_list = ", ".join(found) or "(none)"
    missing = {name: source for name, source in configured.items() if source not in found}
    if missing:
        name, source = next(iter(sorted(missing.items())))
        raise InputError(
            f"{where}: column {source!r} (mapped to {name}) is not in the input; columns found: {found_list}"
        )
    columns = dict(configured)
    used = set(configured.values())
    for name in CANONICAL_COLUMNS:
        if name not in columns and name in found and name not in used:
            columns[name] = name
    lacking = [name for name in REQUIRED_COLUMNS if name not in columns]
    if not any(name in columns for name in AMOUNT_COLUMNS):
        lacking.append(" or ".join(AMOUNT_COLUMNS))
    if lacking:
        example = ",".join(f"{name.split(' or ')[0]}=SOURCE" for name in lacking)
        raise InputError(
            f"{where}: no {', no '.join(lacking)} column; map the input's columns with --columns {example} "
            f"(or [input.columns]); columns found: {found_list}"
        )
    return ColumnMapping(columns=columns, given=frozenset(configured))


@dataclass(frozen=True)
class MappedInput:
    """The raw input seen through its mapping: each line's canonical fields, raw types kept."""

    raw: RawInput
    mapping: ColumnMapping
    customer_ids: str  # NUMBER_IDS | TEXT_IDS
    scan_filter: str | None = None  # the as-of date filter applied where the source is read, if any
    _filter: Column | None = None

    def lines(self, *, with_source: bool = False) -> DataFrame:
        """The canonical columns (absent ones as null text) and ``_corrupt_record``; ``with_source``
        adds each line's ``source_file`` (the quarantine's; the aggregation's scan then reads less)."""
        frame = self.raw.frame if self._filter is None else self.raw.frame.where(self._filter)
        corrupt = F.col(CORRUPT_RECORD) if CORRUPT_RECORD in frame.columns else F.lit(None).cast(T.StringType())
        return frame.select(
            *[
                F.col(f"`{self.mapping.columns[name]}`").alias(name)
                if self.mapping.has(name)
                else F.lit(None).cast(T.StringType()).alias(name)
                for name in CANONICAL_COLUMNS
            ],
            corrupt.alias(CORRUPT_RECORD),
            *([self.raw.source_file.alias(SOURCE_FILE)] if with_source else []),
        )

    def describe(self) -> dict:
        return {
            **self.mapping.describe(),
            "customer_ids": self.customer_ids,
            **({"scan_filter": self.scan_filter} if self.scan_filter else {}),
        }


def map_input(
    raw: RawInput, configured: Mapping[str, str], *, customer_ids: str, as_of: dt.date | None = None
) -> MappedInput:
    """``raw`` through the configured mapping. ``customer_ids`` auto is told from the customer
    column's type, or from a sample of its values. A table's typed invoice_date is filtered up to
    ``as_of`` where it is read (lines after it are then not read, hence not counted)."""
    mapping = map_columns(configured, raw.columns, raw.description)
    kind = customer_ids if customer_ids != "auto" else _customer_id_kind(raw.frame, mapping.columns[CUSTOMER_ID])
    scan_filter, condition = None, None
    date_source = mapping.columns[INVOICE_DATE]
    if as_of is not None and raw.format == TABLE:
        date_type = raw.frame.schema[date_source].dataType
        if isinstance(date_type, (T.TimestampType, T.TimestampNTZType, T.DateType)):
            bound = as_of + dt.timedelta(days=1)
            condition = F.col(f"`{date_source}`") < F.lit(bound).cast(date_type)
            scan_filter = f"{date_source} < {bound.isoformat()}"
            log.info("reading %s up to %s only (the as-of date's filter reaches the scan)", raw.description, as_of)
    return MappedInput(raw=raw, mapping=mapping, customer_ids=kind, scan_filter=scan_filter, _filter=condition)


def _customer_id_kind(frame: DataFrame, source: str) -> str:
    """Numbers when the column is numeric, or when nearly all of a sample of its values are whole
    numbers (17850, 17850.0); text otherwise (C-17850, emails, UUIDs)."""
    data_type = frame.schema[source].dataType
    if isinstance(data_type, T.NumericType):
        return NUMBER_IDS
    text = F.trim(F.col(f"`{source}`").cast(T.StringType()))
    sample = [row[0] for row in frame.select(text.alias("id")).where(F.col("id") != "").limit(ID_SAMPLE_ROWS).collect()]
    if not sample:
        return NUMBER_IDS
    numeric = sum(1 for value in sample if _WHOLE_NUMBER.match(value))
    kind = NUMBER_IDS if numeric >= NUMBER_SHARE * len(sample) else TEXT_IDS
    log.info("customer ids: %s (%d of %d sampled values are whole numbers)", kind, numeric, len(sample))
    return kind
