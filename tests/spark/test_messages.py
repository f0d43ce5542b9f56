"""Every failure as one paragraph (``spark.messages.explain``): the job's own errors as they are,
Spark's known input failures rewritten to name the file and what was expected (no JVM needed: the
texts are Spark's)."""

from __future__ import annotations

import pytest
from pyspark.errors import PySparkException

from insiders_spark.core.errors import InputError
from insiders_spark.spark.messages import explain


def test_the_jobs_own_errors_are_said_as_they_are():
    assert explain(InputError("input 'x' does not exist")) == "input 'x' does not exist"
    assert explain(RuntimeError()) == "RuntimeError"  # no message: at least the kind


@pytest.mark.parametrize(
    ("spark_text", "message"),
    [
        (
            "CSV header does not conform to the schema.\n Header: InvoiceNo, Customer ID\n"
            " Schema: InvoiceNo, CustomerID\nExpected: CustomerID but found: Customer ID\nCSV file: file:/d/day2.csv",
            "file:/d/day2.csv: its header does not match the first file's: expected column 'CustomerID' but found "
            "'Customer ID' (header: InvoiceNo, Customer ID; expected: InvoiceNo, CustomerID). Every CSV file of "
            "one input must have the same columns in the same order; fix or remove that file",
        ),
        (
            "CSV header does not conform to the schema.\n Header: a, b\n Schema: a,  b\nExpected:  b but found: b\n"
            "CSV file: file:/d/day2.csv",
            "(they differ only in the spaces around the name)",
        ),
        (
            "Number of column in CSV header is not equal to number of fields in the schema:\n Header length: 1, "
            "schema size: 8\nCSV file: file:/d/notes.csv",
            "file:/d/notes.csv: its first line has 1 column(s), but the input's header has 8: it is not a "
            "transaction-log CSV like the others",
        ),
        (
            "file:/d/log.parquet is not a Parquet file. Expected magic number",
            "file:/d/log.parquet: not a readable parquet file",
        ),
        (
            "[CANNOT_READ_FILE_FOOTER] Could not read footer for file file:/d/log.parquet. SQLSTATE: KD001",
            "file:/d/log.parquet: not a readable parquet file (its footer cannot be read)",
        ),
        ("something Spark says\nsecond line\nthird\nfourth", "Spark failed: something Spark says second line third"),
    ],
)
def test_sparks_input_failures_name_the_file_and_the_problem(spark_text, message):
    explained = explain(PySparkException(message=spark_text))
    assert message in explained
    assert "\n" not in explained  # one paragraph
