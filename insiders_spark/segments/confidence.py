"""How certain each Insider is: ``insider_confidence`` summarised for the programme.

``insider_confidence`` is the share of the bootstrap refits whose Insiders hold the customer. It
counts every refit, drawn or not: MLlib's forest does not expose which customers a tree's resample
drew, and a refit assigns every customer, as the job's model does. The report splits the Insiders
into **core** (confidence at least ``CORE``) and **borderline**, and lists the **near misses**:
customers outside the Insiders whom at least ``NEAR_MISS`` of the refits call Insiders.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from insiders_spark.core.names import (
    CLUSTER,
    CUSTOMER_ID,
    GROSS_REVENUE,
    INSIDER_CONFIDENCE,
    IS_INSIDER,
    SEGMENT,
    SOURCE_CUSTOMER_ID,
)

CORE = 0.9  # an Insider at least this confident is core, below it borderline
NEAR_MISS = 0.5  # a non-Insider at least this confident is a near miss
NEAR_MISSES_LISTED = 20  # the report's table: the most confident first, then the largest revenue


@dataclass(frozen=True)
class NearMiss:
    customer_id: int
    source_customer_id: str | None
    cluster: int
    segment: str
    gross_revenue: float
    insider_confidence: float


@dataclass(frozen=True)
class InsiderConfidence:
    """Counts of the Insiders by confidence and of the near misses, and the most confident of those."""

    insiders: int
    core: int
    borderline: int
    near_misses: int
    listed: tuple[NearMiss, ...]
    core_threshold: float = CORE
    near_miss_threshold: float = NEAR_MISS

    def describe(self) -> dict:
        return {
            "core_threshold": self.core_threshold,
            "near_miss_threshold": self.near_miss_threshold,
            "insiders": self.insiders,
            "core": self.core,
            "borderline": self.borderline,
            "near_misses": self.near_misses,
        }


def summarise_confidence(segments: DataFrame, *, listed: int = NEAR_MISSES_LISTED) -> InsiderConfidence | None:
    """Core and borderline Insiders, the near misses, and the top ``listed`` of them (two small
    jobs: one aggregation, one bounded top-k). None when the segments carry no confidence."""
    confidence = F.col(INSIDER_CONFIDENCE)
    insider = F.col(IS_INSIDER)
    near_miss = ~insider & (confidence >= NEAR_MISS)
    row = segments.agg(
        F.count_if(insider).alias("insiders"),
        F.count_if(insider & (confidence >= CORE)).alias("core"),
        F.count_if(near_miss).alias("near_misses"),
        F.count(confidence).alias("measured"),
    ).first()
    if not row["measured"]:
        return None
    top = (
        segments.where(near_miss)
        .orderBy(confidence.desc(), F.col(GROSS_REVENUE).desc(), F.col(CUSTOMER_ID).asc())
        .select(CUSTOMER_ID, SOURCE_CUSTOMER_ID, CLUSTER, SEGMENT, GROSS_REVENUE, INSIDER_CONFIDENCE)
        .limit(listed)
        .collect()
    )
    return InsiderConfidence(
        insiders=row["insiders"],
        core=row["core"],
        borderline=row["insiders"] - row["core"],
        near_misses=row["near_misses"],
        listed=tuple(
            NearMiss(
                customer_id=r[CUSTOMER_ID],
                source_customer_id=r[SOURCE_CUSTOMER_ID],
                cluster=r[CLUSTER],
                segment=r[SEGMENT],
                gross_revenue=r[GROSS_REVENUE],
                insider_confidence=r[INSIDER_CONFIDENCE],
            )
            for r in top
        ),
    )
