"""The job's own errors say what to do; a failed run says where its staged outputs went."""

from insiders_spark.core.errors import ModelFormatError, ModelNotFoundError, RunFailedError


def test_a_failed_run_names_where_its_outputs_were_kept():
    kept = RunFailedError("too much of the input was set aside.", "file:/out/failed_runs/run_date=2011-12-09/r1")
    assert str(kept) == (
        "too much of the input was set aside. The failed run's staged outputs are kept under "
        "file:/out/failed_runs/run_date=2011-12-09/r1."
    )
    assert kept.failed_outputs.endswith("/r1")
    nothing = RunFailedError("the output is in use.", None)
    assert str(nothing) == "the output is in use." and nothing.failed_outputs is None


def test_an_unreadable_model_is_also_a_missing_one():
    """The CLI and score runs catch ModelNotFoundError: a damaged model must be caught with it."""
    assert issubclass(ModelFormatError, ModelNotFoundError)
