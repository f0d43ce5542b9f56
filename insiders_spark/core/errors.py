"""The job's own errors: each names what is wrong and what to do, and the CLI prints it as it is.

Spark's errors are reduced to a message of the same kind by ``spark.messages.explain``.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file, variable or flag that cannot be used, with the reason."""


class GridError(ValueError):
    """A grid name that is neither "none", a known name, nor increasing mantissas in [1, 10)."""


class InputError(ValueError):
    """The input cannot be read as a transaction log; the message names the file and the problem."""


class OutputInUseError(RuntimeError):
    """Another run holds the output folder: one output takes one run at a time."""


class AccountingError(RuntimeError):
    """The outcome counts do not add up to the input: a line went missing or was counted twice."""


class QuarantineThresholdError(RuntimeError):
    """Too much of the input was set aside: the segments would silently shrink, so the run stops."""


class NoCustomersError(ValueError):
    """No line survived cleaning, so there is nobody to segment."""


class ClusteringError(ValueError):
    """The embedding cannot hold the requested number of clusters."""


class ModelNotFoundError(LookupError):
    """Score mode asked for a model that is not there."""


class ModelFormatError(ModelNotFoundError):
    """A model folder is there but cannot be read as a model of this version of the job."""


class RunDateConflictError(ValueError):
    """A run would leave one run date's published tables describing two different models."""


class DuplicateCustomerIdError(ValueError):
    """Guest numbers collide with real customer ids."""


class RunFailedError(RuntimeError):
    """A run that stopped before publishing; live outputs are untouched."""

    def __init__(self, message: str, failed_outputs: str | None) -> None:
        where = f" The failed run's staged outputs are kept under {failed_outputs}." if failed_outputs else ""
        super().__init__(message + where)
        self.failed_outputs = failed_outputs


class BacktestError(ValueError):
    """The log cannot support the requested backtest (window past its end, nothing before it)."""


class ClvFitError(ValueError):
    """The log cannot support a CLV fit (too few repeat buyers, or a fit that does not converge)."""
