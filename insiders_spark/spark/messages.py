"""Turn any failure into one paragraph a person can act on (never a bare Java stack trace).

Our own errors (bad input, a failed check) already say what is wrong; Spark's are reduced to the
file and the problem, with what was expected.
"""

from __future__ import annotations

import re

from pyspark.errors import PySparkException

from insiders_spark.spark.classic import java_causes

FILE = r"(?:CSV file|file): ?(?P<file>\S+?)\.?(?:\s|$)"


def _first_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:count])


def _translate(text: str) -> str | None:
    """Known Spark failures about input files, rewritten; None when the text is not one of them."""
    header = re.search(
        r"CSV header does not conform to the schema\.\s*Header: (?P<header>.*?)\s*Schema: (?P<schema>.*?)\s*"
        r"Expected: (?P<expected>.*?) but found: (?P<found>.*?)\s*CSV file: (?P<file>\S+)",
        text,
        re.S,
    )
    if header:
        expected, found = header["expected"], header["found"]
        spaces = " (they differ only in the spaces around the name)" if expected.strip() == found.strip() else ""
        return (
            f"{header['file']}: its header does not match the first file's: expected column "
            f"{expected!r} but found {found!r}{spaces} (header: {header['header'].strip()}; expected: "
            f"{header['schema'].strip()}). Every CSV file of one input must have the same columns in the "
            "same order; fix or remove that file"
        )
    length = re.search(
        r"Number of column in CSV header is not equal to number of fields in the schema:\s*"
        r"Header length: (?P<found>\d+), schema size: (?P<expected>\d+)\s*CSV file: (?P<file>\S+)",
        text,
        re.S,
    )
    if length:
        return (
            f"{length['file']}: its first line has {length['found']} column(s), but the input's header has "
            f"{length['expected']}: it is not a transaction-log CSV like the others (is it a CSV file at "
            "all, with the same delimiter and encoding?)"
        )
    parquet = re.search(r"(?P<file>\S+) is not a Parquet file", text)
    if parquet:
        return f"{parquet['file'].rstrip('.')}: not a readable parquet file (wrong format or truncated)"
    footer = re.search(r"\[CANNOT_READ_FILE_FOOTER\].*?file (?P<file>\S+?)\.?\s", text, re.S)
    if footer:
        return f"{footer['file']}: not a readable parquet file (its footer cannot be read)"
    unreadable = re.search(r"Encountered error while reading file (?P<file>\S+?)\.?\s", text)
    if unreadable:
        return f"{unreadable['file']}: could not be read ({_first_lines(text.split('Caused by')[-1], 1)})"
    return None


def explain(error: BaseException) -> str:
    """A one-paragraph message for ``error``: ours verbatim, Spark's reduced to what matters."""
    causes = java_causes(error)  # classic sessions: a Java exception PySpark did not convert
    if causes:
        text = "\n".join(causes)
        return _translate(text) or f"Spark failed: {_first_lines(causes[-1], 3)}"
    if isinstance(error, PySparkException):
        text = str(error)
        return _translate(text) or f"Spark failed: {_first_lines(text, 3)}"
    return str(error) or type(error).__name__
