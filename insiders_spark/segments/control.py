"""A control group for the loyalty programme's A/B test: a deterministic, salted hash of the id.

A customer is in the control group when ``xxhash64(salt || ":" || customer_id) mod 10,000`` falls
below ``share × 10,000``. The flag depends on nothing but the salt, the share and the customer's
id: not on the run, the partitioning, the order of the rows or the other customers, so a customer
keeps their group from one run to the next while the salt stays the same (change the salt to draw
a new control group). Shares are therefore honoured in expectation, to 1/10,000 of resolution.

``scope`` says who can be drawn: ``"insiders"`` (default: the control group is a share of the
Insiders, who are then kept out of the programme to measure its effect) or ``"all"`` (every
segmented customer). Customers outside the scope are never in the control group.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import CUSTOMER_ID, IS_CONTROL, IS_INSIDER

HASH_BUCKETS = 10_000
SCOPES = ("insiders", "all")


def control_bucket(customer_id: Column, salt: str) -> Column:
    """The customer's bucket in [0, 10,000): a salted 64-bit xxHash of the id, as text."""
    key = F.concat(F.lit(f"{salt}:"), customer_id.cast("string"))
    return F.pmod(F.xxhash64(key), F.lit(HASH_BUCKETS))


def is_control(customer_id: Column, *, salt: str, share: float) -> Column:
    return control_bucket(customer_id, salt) < F.lit(round(share * HASH_BUCKETS))


def with_control_flag(segments: DataFrame, *, salt: str, share: float, scope: str = "insiders") -> DataFrame:
    """Add ``is_control`` (boolean, never null) to a segments table."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"control share {share}: expected a share between 0 and 1")
    if scope not in SCOPES:
        raise ValueError(f"control scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if not salt:
        raise ValueError("control salt is empty: set one (changing it draws a new control group)")
    drawn = is_control(F.col(CUSTOMER_ID), salt=salt, share=share)
    in_scope = F.col(IS_INSIDER) if scope == "insiders" else F.lit(True)
    return segments.withColumn(IS_CONTROL, F.coalesce(in_scope & drawn, F.lit(False)))
