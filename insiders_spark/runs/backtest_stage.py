"""The run's backtest (``--backtest-horizon``): a measurement of the segments, never a reason to
withhold them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from insiders_spark.core.errors import BacktestError, ClusteringError
from insiders_spark.core.names import BACKTEST
from insiders_spark.evaluation.backtest import BacktestResult, run_backtest, to_curve_frame
from insiders_spark.runs.context import RunContext

log = logging.getLogger(__name__)


def backtest_cutoff(ctx: RunContext) -> dt.date:
    """``backtest.cutoff``, else the last invoice date up to the run's as-of date minus the horizon
    (an as-of day without sales, a Sunday, must not leave the window past the log)."""
    settings, table = ctx.config.backtest, ctx.table
    if settings.cutoff:
        return dt.date.fromisoformat(settings.cutoff)
    window_end = table.summary.last_kept_date or table.as_of  # kept lines end on or before the as-of date
    return window_end - dt.timedelta(days=settings.horizon_days)


def stage_backtest(ctx: RunContext, *, k: int) -> tuple[BacktestResult | None, str | None]:
    """The backtest of ``[backtest]`` with the run's k (the one ``--k auto`` chose, or the scored
    model's), staged as the ``backtest`` table; (result, None), or (None, why) when the log cannot
    support it. Off (horizon 0): (None, None), and a previous partition of the date goes away."""
    if not ctx.config.backtest.horizon_days:
        ctx.outputs.clear_table(BACKTEST)
        return None, None
    config = dataclasses.replace(ctx.config, clustering=dataclasses.replace(ctx.config.clustering, k=k))
    with ctx.timer.stage("backtest"):
        try:
            result = run_backtest(ctx.spark, config, cutoff=backtest_cutoff(ctx))
        except (BacktestError, ClusteringError) as error:
            log.warning("backtest not measured: %s", error)
            ctx.outputs.clear_table(BACKTEST)
            return None, str(error)
        log.info("backtest: %s", result.describe()["insiders"])
        ctx.published[BACKTEST] = ctx.outputs.write_table(to_curve_frame(ctx.spark, result), BACKTEST)
        return result, None
