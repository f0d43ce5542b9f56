"""Small driver-side tables (lookups, profiles, rules, curves) as DataFrames built in the JVM.

``spark.createDataFrame(rows, schema)`` ships Python rows to the JVM as a pickled RDD: its first
use in a job starts Python worker processes, and on a cluster every executor then needs the job's
Python to read a 16-row lookup. :func:`literal_frame` writes the rows into the plan instead, as
one SQL expression (an array of structs, cast to the schema and ``inline``-d), so the job runs no
Python on executors and building a table is one call to the JVM whatever its size (a column
literal per value took seconds for the 16-row rules table in a cold JVM). Only for bounded
tables: the plan holds the rows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import Vector, VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

INT_RANGE = range(-(2**31), 2**31)
LONG_RANGE = range(-(2**63), 2**63)


def carried_type(data_type: T.DataType) -> T.DataType:
    """``data_type`` as the plan carries it: an ML vector as an array of doubles."""
    if isinstance(data_type, VectorUDT):
        return T.ArrayType(T.DoubleType(), False)
    if isinstance(data_type, T.ArrayType):
        return T.ArrayType(carried_type(data_type.elementType), data_type.containsNull)
    if isinstance(data_type, T.StructType):
        return T.StructType([T.StructField(f.name, carried_type(f.dataType), f.nullable) for f in data_type.fields])
    return data_type


def sql_string(text: str) -> str:
    """A Spark SQL string: a plain literal, or, for text with a quote or a backslash (whose reading
    depends on spark.sql.parser.escapedStringLiterals), its UTF-8 bytes in hexadecimal, decoded."""
    if "'" not in text and "\\" not in text:
        return f"'{text}'"
    # unhex may be null for bad input; the coalesce tells the analyser this one is not
    return f"coalesce(decode(unhex('{text.encode('utf-8').hex()}'), 'UTF-8'), '')"


def _double(value: Any) -> str:
    number = float(value)
    if math.isfinite(number):
        return f"{number!r}D"
    # a cast from text may be null; the coalesce tells the analyser this one is not
    text = "NaN" if math.isnan(number) else ("-Infinity" if number < 0 else "Infinity")
    return f"coalesce(CAST('{text}' AS DOUBLE), 0.0D)"


def _integer(value: Any, valid: range, suffix: str, name: str) -> str:
    if isinstance(value, bool) or int(value) != value or int(value) not in valid:
        raise TypeError(f"{value!r} is not a {name}")
    return f"{int(value)}{suffix}"


def _placeholder(data_type: T.DataType) -> Any:
    """Some non-null value of ``data_type`` (to type an empty array)."""
    if isinstance(data_type, VectorUDT):
        return [0.0]
    if isinstance(data_type, T.ArrayType):
        return [_placeholder(data_type.elementType)]
    if isinstance(data_type, T.StructType):
        return tuple(_placeholder(f.dataType) for f in data_type.fields)
    placeholders = {
        T.StringType: "",
        T.BooleanType: False,
        T.IntegerType: 0,
        T.LongType: 0,
        T.DoubleType: 0.0,
        T.DateType: dt.date(1970, 1, 1),
    }
    if type(data_type) not in placeholders:
        raise TypeError(f"literal_frame does not carry {data_type.simpleString()}")
    return placeholders[type(data_type)]


def sql_literal(value: Any, data_type: T.DataType) -> str:
    """``value`` of ``data_type`` as a Spark SQL expression of constants."""
    if value is None:
        return f"CAST(NULL AS {carried_type(data_type).simpleString()})"
    if isinstance(data_type, VectorUDT):
        values = value.toArray().tolist() if isinstance(value, Vector) else list(value)
        return sql_literal(values, carried_type(data_type))
    if isinstance(data_type, T.ArrayType):
        if not value:  # an empty array of exactly this type: a one-element array sliced to none
            return f"slice(array({sql_literal(_placeholder(data_type.elementType), data_type.elementType)}), 1, 0)"
        if not data_type.containsNull and any(v is None for v in value):
            raise TypeError(f"{value!r}: null element in an array that holds none")
        return "array(" + ", ".join(sql_literal(v, data_type.elementType) for v in value) + ")"
    if isinstance(data_type, T.StructType):
        values = list(value.values() if isinstance(value, dict) else value)
        for v, f in zip(values, data_type.fields, strict=True):
            if v is None and not f.nullable:
                raise TypeError(f"field {f.name}: null in a column that is not nullable")
        fields = (
            f"{sql_string(f.name)}, {sql_literal(v, f.dataType)}" for v, f in zip(values, data_type.fields, strict=True)
        )
        return "named_struct(" + ", ".join(fields) + ")"
    if isinstance(data_type, T.StringType):
        return sql_string(str(value))
    if isinstance(data_type, T.BooleanType):
        if not isinstance(value, bool):
            raise TypeError(f"{value!r} is not a boolean")
        return "true" if value else "false"
    if isinstance(data_type, T.IntegerType):
        return _integer(value, INT_RANGE, "", "32-bit integer")
    if isinstance(data_type, T.LongType):
        return _integer(value, LONG_RANGE, "L", "64-bit integer")
    if isinstance(data_type, T.DoubleType):
        return _double(value)
    if isinstance(data_type, T.DateType):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise TypeError(f"{value!r} is not a date")
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"literal_frame does not carry {data_type.simpleString()}")


def literal_frame(spark: SparkSession, rows: Iterable[Sequence[Any]], schema: T.StructType) -> DataFrame:
    """A one-partition DataFrame of ``rows`` (tuples in ``schema``'s column order), held by its plan.

    Columns have ``schema``'s names, types and nullability (a null where the schema forbids one
    fails here, as in ``createDataFrame``), except that an ML vector column comes back dense and
    nullable.
    """
    structs = [sql_literal(tuple(row), schema) for row in rows]
    carried = T.ArrayType(carried_type(schema), False)
    array = F.expr("array(" + ", ".join(structs) + ")") if structs else F.expr("array()")
    table = spark.range(0, 1, 1, numPartitions=1).select(F.inline(array.cast(carried)))
    return table.select(
        *[
            array_to_vector(F.col(f.name)).alias(f.name) if isinstance(f.dataType, VectorUDT) else F.col(f.name)
            for f in schema.fields
        ]
    )
