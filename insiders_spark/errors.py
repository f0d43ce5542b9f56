"""Turn any failure into one paragraph a person can act on (never a bare Java stack trace)."""

from __future__ import annotations

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException

def _first_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:count])


def _root_cause(java_exception) -> str:
    cause = java_exception
    while cause.getCause() is not None and cause.getCause() != cause:
        cause = cause.getCause()
    return f"{cause.getClass().getSimpleName()}: {cause.getMessage()}"


def explain(error: BaseException) -> str:
    """A one-paragraph message for ``error``: ours verbatim, Spark's reduced to what matters."""
    if isinstance(error, Py4JJavaError):
        return f"Spark failed: {_first_lines(_root_cause(error.java_exception), 3)}"
    if isinstance(error, PySparkException):
        return f"Spark failed: {_first_lines(str(error), 3)}"
    return str(error) or type(error).__name__
