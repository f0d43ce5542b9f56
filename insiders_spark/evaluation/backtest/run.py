"""The backtest, end to end (the package docstring defines every term)."""

from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from insiders_spark.cleaning.parsing import to_parsed_lines
from insiders_spark.cleaning.rules import with_reason
from insiders_spark.core.config import BacktestConfig, Config
from insiders_spark.core.errors import BacktestError, ClvFitError, NoCustomersError
from insiders_spark.core.names import (
    CLV,
    CUSTOMER_ID,
    INSIDERS_POINT,
    IS_INSIDER,
    SEGMENTS_SCORER,
)
from insiders_spark.evaluation.backtest.curve import capture_curve, head_counts, to_ranks
from insiders_spark.evaluation.backtest.names import (
    CHART_SHARES,
    FUTURE_TREE_INPUTS,
    NEXT_REVENUE,
    REVENUE_RECENT,
    TRAINING_CUTOFF,
)
from insiders_spark.evaluation.backtest.rankings import (
    clv_ranking,
    fit_future_revenue_tree,
    future_tree_ranking,
    reference_rankings,
    segments_ranking,
)
from insiders_spark.evaluation.backtest.result import BacktestResult, CurvePoint, Window
from insiders_spark.evaluation.backtest.windows import (
    LogReach,
    log_reach,
    to_revenue_windows,
    to_training_set,
    window_totals,
    with_model_features,
)
from insiders_spark.evaluation.clv import fit_clv, to_rfm_summary, with_clv
from insiders_spark.features.table import CustomerTable, line_format_of, prepare_customers, read_mapped_input
from insiders_spark.model.clustering import KMEANS_CLUSTER
from insiders_spark.model.profiles import with_clusters
from insiders_spark.model.segmentation import fit_segmentation

log = logging.getLogger(__name__)


def run_backtest(spark: SparkSession, config: Config, *, cutoff: dt.date | None = None) -> BacktestResult:
    """Backtest the configured log (see the module docstring for every definition).

    Two customer tables: as of the cut-off (eligible customers, their features and, with its lines
    classified again as of the window's end, the window revenue) and, for the future-revenue trees,
    as of the training cut-off (training features, labelled the same way). Each table's frames are
    only joined with frames of the same table: the trees cross over as fitted models. Without an
    explicit cut-off one more pass finds the log's last invoice date.
    """
    settings = config.backtest
    h = settings.horizon_days
    if h < 1:
        raise BacktestError(f"backtest.horizon_days = {h}: a backtest needs a horizon of at least one day")
    cutoff = cutoff or last_invoice_date(spark, config) - dt.timedelta(days=h)
    window = Window(cutoff=cutoff, horizon_days=h)
    log.info("backtest: cut-off %s, window %s to %s", window.cutoff, window.cutoff + dt.timedelta(days=1), window.end)
    tables: list[CustomerTable] = []
    cached: list[DataFrame] = []
    try:
        cut = _table(spark, config, window.cutoff, tables, "the cut-off")
        eligible_count = cut.summary.with_purchases
        until_end = cut.classified(cut.lines, as_of=window.end)
        _check_window(window, log_reach(until_end))

        next_revenue = (
            to_revenue_windows(until_end, cut.customers, as_of=window.end, horizon_days=h)
            .select(CUSTOMER_ID, F.col(REVENUE_RECENT).alias(NEXT_REVENUE))
            .where(F.col(NEXT_REVENUE) != 0)
            .cache()
        )
        cut_windows = to_revenue_windows(cut.lines, cut.customers, as_of=window.cutoff, horizon_days=h)
        eligible = (
            cut.features()
            .transform(with_model_features, cut_windows)
            .join(next_revenue.where(F.col(CUSTOMER_ID).isNotNull()), on=CUSTOMER_ID, how="left")
            .fillna(0.0, subset=[NEXT_REVENUE])
            .cache()
        )
        cached += [next_revenue, eligible]
        totals = window_totals(next_revenue, eligible)
        if totals.revenue <= 0:
            raise BacktestError(f"no revenue in the window after {window.cutoff} ({h} days); nothing to measure")

        rankings = reference_rankings(eligible)
        clv = _clv_reference(cut, eligible, window, settings, seed=config.job.seed, rankings=rankings, cached=cached)
        insiders, insiders_revenue = 0, 0.0
        if SEGMENTS_SCORER in settings.scorers:
            model, clustered = fit_segmentation(
                eligible, config=config, customers=eligible_count, k=config.clustering.k, seed=config.job.seed
            )
            cached.append(clustered)
            segmented = with_clusters(clustered, model.profiles, cluster_col=KMEANS_CLUSTER)
            rankings[SEGMENTS_SCORER] = segments_ranking(segmented, guests_last=settings.guests_last)
            insiders = model.profiles[0].customers
            insiders_revenue = segmented.where(F.col(IS_INSIDER)).agg(F.sum(NEXT_REVENUE)).first()[0] or 0.0
        tree_rules: dict[str, str] = {}
        future_scorers = [s for s in settings.scorers if s in FUTURE_TREE_INPUTS]
        if future_scorers:
            train = _table(spark, config, window.training_cutoff, tables, TRAINING_CUTOFF)
            training = to_training_set(train, as_of=window.training_cutoff, horizon_days=h).cache()
            cached.append(training)
            for scorer in future_scorers:
                tree = fit_future_revenue_tree(
                    training,
                    feature_columns=FUTURE_TREE_INPUTS[scorer],
                    config=config.embedding,
                    seed=config.job.seed,
                    customers=train.summary.with_purchases,
                )
                tree_rules[scorer] = tree.stages[-1].toDebugString
                rankings[scorer] = future_tree_ranking(tree, eligible, guests_last=settings.guests_last)

        counts = head_counts(sorted(set(settings.head_count_shares) | set(CHART_SHARES)), eligible_count)
        insiders_share = insiders / eligible_count
        extra_point = bool(insiders) and insiders_share not in counts
        if extra_point:
            counts[insiders_share] = insiders
        curve = capture_curve(to_ranks(rankings, eligible), counts=counts, window_revenue=totals.revenue)
        result = BacktestResult(
            window=window,
            eligible=eligible_count,
            window_revenue=totals.revenue,
            known_revenue=totals.known_revenue,
            new_customers=totals.new_customers,
            insiders=insiders,
            curve=tuple(p for p in curve if not (extra_point and p.share == insiders_share)),
            k=config.clustering.k if SEGMENTS_SCORER in settings.scorers else None,
            insiders_point={
                **(
                    {
                        INSIDERS_POINT: CurvePoint(
                            INSIDERS_POINT,
                            insiders_share,
                            insiders,
                            insiders_revenue,
                            insiders_revenue / totals.revenue,
                        )
                    }
                    if insiders
                    else {}
                ),
                **{p.scorer: p for p in curve if insiders and p.share == insiders_share},
            },
            tree_rules=tree_rules,
            clv=clv,
        )
        log.info("backtest: %s", result.describe())
        return result
    finally:
        for frame in cached:
            frame.unpersist()
        for table in tables:
            table.unpersist()


def _clv_reference(
    cut: CustomerTable,
    eligible: DataFrame,
    window: Window,
    settings: BacktestConfig,
    *,
    seed: int,
    rankings: dict[str, DataFrame],
    cached: list[DataFrame],
) -> dict:
    """Fit BG/NBD and Gamma-Gamma at the cut-off and add the ``clv`` ranking; the manifest entry.
    A log that cannot support the fit leaves ``clv`` out, reported as not measured, and the
    backtest goes on (like a backtest the run cannot measure)."""
    summary = to_rfm_summary(cut.lines, cut.customers, as_of=window.cutoff).cache()
    cached.append(summary)
    try:
        model = fit_clv(summary, max_rows=settings.clv_sample_rows, seed=seed)
    except ClvFitError as error:
        log.warning("backtest: %s not measured: %s", CLV, error)
        return {"measured": False, "error": str(error)}
    scored = with_clv(summary, model, horizon_days=window.horizon_days)
    ranking = clv_ranking(eligible, scored, guests_last=settings.guests_last).cache()  # the UDF runs once
    cached.append(ranking)
    rankings[CLV] = ranking
    return {"measured": True, **model.describe()}


def last_invoice_date(spark: SparkSession, config: Config) -> dt.date:
    """The last date with a kept line in the configured log (one pass, no aggregation by customer)."""
    config, source = read_mapped_input(spark, config, as_of=None)
    line_format = line_format_of(source, config)
    lines = source.lines().transform(to_parsed_lines, line_format=line_format)
    reach = log_reach(lines.transform(with_reason, rules=config.cleaning, as_of=None, line_format=line_format))
    if reach.last_kept_date is None:
        raise BacktestError(f"{source.raw.description}: no line is kept; there is nothing to backtest")
    return reach.last_kept_date


def _table(spark: SparkSession, config: Config, as_of: dt.date | None, tables: list, what: str) -> CustomerTable:
    log.info("backtest: customers as of %s (%s)", as_of or "the last invoice date", what)
    try:
        table = prepare_customers(spark, config, as_of=as_of)
    except NoCustomersError as error:
        advice = (
            "the future-revenue trees need a cut-off at least two horizons into the log"
            if what == TRAINING_CUTOFF
            else "choose a later cut-off"
        )
        raise BacktestError(f"no customer bought anything up to {what} {as_of}; {advice} ({error})") from error
    tables.append(table)
    return table


def _check_window(window: Window, reach: LogReach) -> None:
    """The log must reach the window's end: lines after it, or a kept line on its last day."""
    last = reach.last_kept_date
    if reach.lines_after == 0 and (last is None or last < window.end):
        raise BacktestError(
            f"the backtest window ends on {window.end} (cut-off {window.cutoff} + {window.horizon_days} days) but "
            f"the log's last invoice date is {last}; choose a cut-off up to "
            f"{last - dt.timedelta(days=window.horizon_days) if last else 'a date inside the log'}"
        )
