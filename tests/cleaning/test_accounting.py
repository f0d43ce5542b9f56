"""Row accounting: every input line ends in exactly one place, counted in the same pass as the
aggregation; counts that do not add up, or shares past the quarantine's limits, stop the run."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from insiders_spark.cleaning.accounting import RowAccounting, accounting_from, observe_outcomes
from insiders_spark.cleaning.parsing import LineFormat, to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import CleaningConfig, QuarantineConfig
from insiders_spark.core.errors import AccountingError, QuarantineThresholdError
from insiders_spark.storage.inputs import read_input
from insiders_spark.storage.mapping import map_input
from tests import support

RULES = CleaningConfig(non_product_codes=("POST",), excluded_countries=("Unspecified",))
STUDY_FORMAT = LineFormat(columns=support.study_config().input.columns, timestamp_format="yyyy-MM-dd HH:mm:ss")
RAW_TEXT_DDL = (
    "invoice_id string, product_id string, description string, quantity string, invoice_date string, "
    "unit_price string, customer_id string, country string, _corrupt_record string, line_amount string"
)


# --- the balance -----------------------------------------------------------------------------


def test_balanced_counts_pass_and_describe_themselves():
    balanced = RowAccounting(input=10, kept=6, after_as_of=1, quarantined={"non_product_code": 2, "malformed_line": 1})
    balanced.check()
    assert balanced.quarantined_total == 3 and balanced.judged == 9
    assert balanced.to_dict() == {
        "input": 10,
        "kept": 6,
        "after_as_of": 1,
        "quarantined": {"non_product_code": 2, "malformed_line": 1},
        "quarantined_total": 3,
        "undecodable_text_lines": 0,
        "amount_disagreements": 0,
    }


@pytest.mark.parametrize(
    ("accounting", "accounted"),
    [
        (RowAccounting(input=10, kept=6, after_as_of=1, quarantined={"non_product_code": 2}), "9"),  # a line lost
        (RowAccounting(input=10, kept=7, after_as_of=1, quarantined={"non_product_code": 3}), "11"),  # counted twice
        (RowAccounting(input=1_234_567, kept=0, after_as_of=0), "0"),
    ],
    ids=["a line went missing", "a line counted twice", "nothing counted"],
)
def test_counts_that_do_not_add_up_to_the_input_stop_the_run(accounting, accounted):
    with pytest.raises(AccountingError) as error:
        accounting.check()
    message = str(error.value)
    assert message.startswith(f"row accounting does not balance: {accounting.input:,} lines read, but ")
    assert message.endswith(f"quarantined = {accounted}")


# --- the quarantine's limits -----------------------------------------------------------------


@pytest.fixture(scope="module")
def limits() -> QuarantineConfig:
    return support.config().quarantine


def test_quarantine_shares_are_of_the_lines_the_run_judged(limits):
    """A backfill at an early as-of date leaves most lines for later runs: 30 set aside of the 100
    lines up to that date is 30%, not 3% of the 1,000 read."""
    backfill = RowAccounting(input=1_000, kept=70, after_as_of=900, quarantined={"excluded_country": 30})
    backfill.check()
    with pytest.raises(QuarantineThresholdError) as error:
        backfill.check_thresholds(limits)
    message = str(error.value)
    assert "excluded_country: 30 lines (30.00%) > 2.00%" in message
    assert "900 of them after the as-of date" in message and "of the 100 judged" in message
    assert "Nothing was published" in message and "{" not in message  # no unfilled placeholder
    RowAccounting(input=1_000, kept=990, after_as_of=0, quarantined={"excluded_country": 10}).check_thresholds(limits)


def test_the_overall_limit_holds_when_every_reason_is_within_its_own(limits):
    """Six parse reasons at 0.9% each stay under their 1% limits, but together they set aside 5.4%
    of the lines, past the 5% of all reasons: the run must stop."""
    assert limits.max_share == 0.05
    reasons = (
        "malformed_line", "missing_invoice", "missing_product", "unparsable_timestamp",
        "non_numeric_quantity", "non_numeric_price",
    )  # fmt: skip
    assert all(limits.max_share_by_reason[reason] == 0.01 for reason in reasons)
    spread = RowAccounting(input=10_000, kept=9_460, after_as_of=0, quarantined=dict.fromkeys(reasons, 90))
    spread.check()
    with pytest.raises(QuarantineThresholdError) as error:
        spread.check_thresholds(limits)
    message = str(error.value)
    assert "all reasons: 540 lines (5.40%) > 5.00%" in message
    assert not any(f"{reason}:" in message for reason in reasons)  # each alone is within its limit
    within = RowAccounting(input=10_000, kept=9_550, after_as_of=0, quarantined=dict.fromkeys(reasons[:5], 90))
    within.check_thresholds(limits)  # 4.5% in all: within every limit


def test_a_run_that_judged_nothing_has_no_shares(limits):
    everything_later = RowAccounting(input=50, kept=0, after_as_of=50)
    assert everything_later.judged == 0 and everything_later.share(0) == 0.0
    everything_later.check_thresholds(limits)


# --- the counts, observed in the same pass -----------------------------------------------------

LINES = [
    ("1", "85123A", "MUG", "6", "2011-03-01 10:00:00", "2.55", "17850", "United Kingdom", None),
    ("2", "POST", "POSTAGE", "1", "2011-03-01 10:00:00", "18.0", "17850", "United Kingdom", None),
    ("3", "85123A", "CAF\ufffd MUG", "6", "2011-03-01 10:00:00", "2.55", "17850", "Unspecified", None),
    ("4", "85123A", "MUG", "6", "2011-09-01 10:00:00", "2.55", "17850", "United Kingdom", None),
    ("5", "85123A", None, "6", "2011-03-01 10:00:00", "2.55", None, "C\ufffdte d'Ivoire", None),
    (None, None, None, None, None, None, None, None, "5,85123A,SHORT"),
]


def _classified(spark, rows):
    raw = spark.createDataFrame([(*row, None) for row in rows], RAW_TEXT_DDL)  # no line amount
    return raw.transform(to_parsed_lines, line_format=STUDY_FORMAT).transform(
        with_reason, rules=RULES, as_of=dt.date(2011, 6, 30), line_format=STUDY_FORMAT
    )


@pytest.mark.parametrize("decoded_text", [True, False])
def test_the_outcomes_are_counted_while_the_lines_are_read(spark, decoded_text):
    lines = _classified(spark, LINES)
    observed, observation = observe_outcomes(lines, decoded_text=decoded_text)
    assert observed.count() == len(LINES)  # any action over the lines fills the observation in
    accounting = accounting_from(observation, lines, decoded_text=decoded_text)
    assert accounting == RowAccounting(
        input=6,
        kept=2,  # 1 and 5 (a guest line; the replacement character is only counted)
        after_as_of=1,
        quarantined={"malformed_line": 1, "non_product_code": 1, "excluded_country": 1},
        undecodable=2 if decoded_text else 0,  # description of 3, country of 5; parquet text is never decoded
    )
    accounting.check()


def test_an_input_with_no_rows_is_counted_directly(spark, tmp_path):
    """A CSV export with its header only: Spark observes nothing on a pass without rows, so the
    counts come from one direct pass over the (empty) lines instead of failing or waiting."""
    config = support.study_config({"input.path": str(support.write_csv(tmp_path / "header.csv", []))})
    source = map_input(read_input(spark, config.input, config.synthetic), config.input.columns, customer_ids="number")
    lines = source.lines().transform(to_parsed_lines, line_format=STUDY_FORMAT).transform(
        with_reason, rules=RULES, as_of=None, line_format=STUDY_FORMAT
    )
    observed, observation = observe_outcomes(lines, decoded_text=True)
    assert observed.count() == 0
    counted = []
    worker = threading.Thread(target=lambda: counted.append(accounting_from(observation, lines, decoded_text=True)))
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the accounting waited for metrics that never come"
    assert counted == [RowAccounting(input=0, kept=0, after_as_of=0)]
