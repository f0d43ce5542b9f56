"""A frame's final ``select`` as its contract: every field of a schema, in order."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def conform(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """``frame``'s columns in ``schema``'s order, each cast to its type; a nullable field the frame
    does not have (a feature the log cannot give, such as qty_products without product ids) is null."""
    missing = [f.name for f in schema.fields if f.name not in frame.columns and not f.nullable]
    if missing:
        raise ValueError(f"the frame lacks {', '.join(missing)}: its columns are {', '.join(frame.columns)}")
    return frame.select(
        *[
            (F.col(f.name) if f.name in frame.columns else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in schema.fields
        ]
    )
