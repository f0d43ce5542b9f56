"""Proof of value: do the customers chosen at a cut-off bring the revenue that follows it?

A backtest takes a cut-off date ``c`` and a horizon of ``h`` days, and looks only at lines up to
``c`` to choose customers; then it measures what those customers spent in the **window**
``(c, c + h]`` (purchases, the same cleaning rules as the job; day ``c + 1`` to day ``c + h``
included, so a 90-day horizon is 90 calendar days).

Definitions (all in Spark; only per-head-count sums reach the driver):

* **eligible customers**: the customers with a kept purchase up to ``c`` (``prepare_customers``
  with ``as_of = c``; the job's features, guest invoices numbered as the job numbers them).
* **share of the following revenue** of a selection = its revenue in the window / **all** revenue
  in the window, new customers included (registered customers first seen after ``c`` and every
  guest invoice after ``c``, which is a new customer by construction). No selection made at ``c``
  can capture the new customers' part, so even perfect foresight stays below 100%.
* **head-count**: a share ``s`` of the eligible customers, ``round(s × eligible)`` customers.
* **ranking**: each scorer orders the eligible customers by a rank key (compared field by field,
  larger first), then by ``customer_id``; a head-count takes the first customers. The references:

  - ``baseline``: past gross revenue (the simple rule any shop already has);
  - ``foresight``: the window revenue itself (the best any selection can do);
  - ``baseline_registered``: past gross revenue with guest invoices last (see ``guests_last``).

  And the models:

  - ``segments``: the job's segmentation fitted at ``c``: cluster rank (1 = Insiders first), then
    the revenue tree's predicted value (its leaf), then past gross revenue. Without ``guests_last``
    its first ``|Insiders|`` customers are the Insiders chosen at ``c``; with it (the default)
    guest Insiders rank after the registered customers, so the Insiders themselves are measured
    apart (the ``insiders`` point of the result).
  - ``future_revenue_tree``: a tree that learns *future* revenue. Features as of
    ``c − h`` (the job's features, ``gross_revenue`` and ``is_guest`` included) with the label the
    revenue in ``(c − h, c]``; then applied to the features as of ``c``. Same depth and minimum leaf
    share as the segmentation tree; the label is raw revenue, so a leaf predicts the mean future
    revenue of its customers (what a revenue share rewards); ranked by the prediction, then past
    gross revenue.
  - ``future_revenue_tree_trend``: the same with recency and trend features: revenue in the last
    ``h`` days, in the ``h`` days before, revenue decayed with a half-life of ``h`` days, and the
    returns rate (returned / (bought + returned) items).

* ``guests_last`` (default on): a guest invoice is a customer of one invoice by construction and
  never buys again, so every model scorer ranks guests after registered customers. The baseline
  does not (it is the shop's simple rule); ``baseline_registered`` shows how much of a model's
  gain that rule alone brings.

The comparison the issue asks for: a model's share at a head-count against the baseline's and
the foresight's, and the share of the gap it closes, ``(model − baseline) / (foresight −
baseline)``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from insiders_spark.cleaning.parsing import to_parsed_lines
from insiders_spark.cleaning.rules import is_purchase, with_reason
from insiders_spark.core.config import CleaningConfig, Config, EmbeddingConfig
from insiders_spark.core.errors import BacktestError, NoCustomersError
from insiders_spark.core.names import (
    AFTER_AS_OF,
    BASELINE,
    BASELINE_REGISTERED,
    CLUSTER,
    CUSTOMER_ID,
    FORESIGHT,
    FUTURE_REVENUE_TREE,
    FUTURE_REVENUE_TREE_TREND,
    GROSS_REVENUE,
    INSIDERS_POINT,
    INVOICE_NO,
    INVOICE_TS,
    IS_GUEST,
    IS_INSIDER,
    MODEL_INPUT_COLUMNS,
    MODEL_SCORERS,
    QTY_ITEMS,
    QTY_RETURNS,
    QUANTITY,
    REASON,
    REFERENCES,
    SEGMENTS_SCORER,
    UNIT_PRICE,
)
from insiders_spark.features.customers import GUEST_INVOICE, days_between, invoice_day, is_kept, line_revenue
from insiders_spark.features.table import CustomerTable, prepare_customers
from insiders_spark.model.clustering import KMEANS_CLUSTER
from insiders_spark.model.embedding import PREDICTED_LABEL, tree_regressor
from insiders_spark.model.profiles import with_clusters
from insiders_spark.model.segmentation import fit_segmentation
from insiders_spark.spark.literals import literal_frame
from insiders_spark.storage.inputs import read_transactions

log = logging.getLogger(__name__)

# --- names ---
TRAINING_CUTOFF = "the training cut-off"

NEXT_REVENUE = "next_revenue"  # revenue in the window after the cut-off
REVENUE_RECENT = "revenue_recent"  # revenue in the last h days up to a table's as-of date
REVENUE_PREVIOUS = "revenue_previous"  # revenue in the h days before those
REVENUE_DECAYED = "revenue_decayed"  # every purchase weighted by 2^(-age / h)
RETURNS_RATE = "returns_rate"
IS_GUEST_VALUE = "is_guest_value"  # is_guest as 0/1, for the tree
FUTURE_LABEL = "future_label"
FUTURE_FEATURES = "future_features"
FUTURE_PREDICTION = "future_prediction"

SCORER = "scorer"
RANK_KEY = "rank_key"  # array<double>, compared element by element, larger first
RANK = "rank"  # 0-based position in a scorer's order
POINT = "point"  # index of the first head-count point that includes the customer
HEAD_COUNT_SHARE = "head_count_share"

STUDY_FEATURES: tuple[str, ...] = (*MODEL_INPUT_COLUMNS, GROSS_REVENUE, IS_GUEST_VALUE)
TREND_FEATURES: tuple[str, ...] = (*STUDY_FEATURES, REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED, RETURNS_RATE)
TREE_FEATURES: dict[str, tuple[str, ...]] = {
    FUTURE_REVENUE_TREE: STUDY_FEATURES,
    FUTURE_REVENUE_TREE_TREND: TREND_FEATURES,
}

# Every 1% of the eligible customers, for the chart; the report's table shows [backtest]'s.
CHART_SHARES: tuple[float, ...] = tuple(i / 100 for i in range(1, 101))
CURVE_SCHEMA = T.StructType(
    [
        T.StructField("cutoff", T.DateType(), False),
        T.StructField("horizon_days", T.IntegerType(), False),
        T.StructField(SCORER, T.StringType(), False),
        T.StructField(HEAD_COUNT_SHARE, T.DoubleType(), False),
        T.StructField("head_count", T.LongType(), False),
        T.StructField("revenue_captured", T.DoubleType(), False),
        T.StructField("revenue_share", T.DoubleType(), False),
        T.StructField("gap_closed", T.DoubleType(), True),  # null for the references
    ]
)


@dataclass(frozen=True)
class Window:
    cutoff: dt.date
    horizon_days: int

    @property
    def end(self) -> dt.date:
        return self.cutoff + dt.timedelta(days=self.horizon_days)

    @property
    def training_cutoff(self) -> dt.date:
        return self.cutoff - dt.timedelta(days=self.horizon_days)


@dataclass(frozen=True)
class CurvePoint:
    scorer: str
    share: float  # requested share of the eligible customers
    head_count: int
    revenue: float  # window revenue of the first head_count customers
    revenue_share: float  # of all the window's revenue


@dataclass(frozen=True)
class BacktestResult:
    window: Window
    eligible: int  # customers with a purchase up to the cut-off
    window_revenue: float  # all revenue in the window, new customers included
    known_revenue: float  # the part of it spent by eligible customers
    new_customers: int  # customers with window revenue who were not eligible
    insiders: int  # the segmentation's Insiders at the cut-off (0 without the segments scorer)
    curve: tuple[CurvePoint, ...]
    k: int | None = None  # the segmentation's clusters at the cut-off (None without the segments scorer)
    # the Insiders themselves (INSIDERS_POINT) and every ranking's first |Insiders| customers
    insiders_point: Mapping[str, CurvePoint] = field(default_factory=dict)
    tree_rules: Mapping[str, str] = field(default_factory=dict)  # future trees, MLlib's debug string

    def share(self, scorer: str, share: float) -> float:
        return next(p.revenue_share for p in self.curve if p.scorer == scorer and abs(p.share - share) < 1e-9)

    def gap_closed(self, scorer: str, share: float) -> float | None:
        return gap_closed(self.share(scorer, share), self.share(BASELINE, share), self.share(FORESIGHT, share))

    @property
    def scorers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.scorer for p in self.curve))

    def describe(self) -> dict:
        """The manifest entry (metrics.json ``backtest``)."""
        shares = sorted({p.share for p in self.curve if round(p.share * 100) in (5, 10, 20)})
        return {
            "cutoff": self.window.cutoff.isoformat(),
            "horizon_days": self.window.horizon_days,
            "window": [(self.window.cutoff + dt.timedelta(days=1)).isoformat(), self.window.end.isoformat()],
            "eligible_customers": self.eligible,
            "window_revenue": round(self.window_revenue, 2),
            "known_customers_revenue_share": round(self.known_revenue / self.window_revenue, 4)
            if self.window_revenue
            else 0.0,
            "new_customers": self.new_customers,
            "insiders": {
                "k": self.k,
                "customers": self.insiders,
                **{name: round(p.revenue_share, 4) for name, p in self.insiders_point.items()},
            },
            "revenue_share": {
                scorer: {f"{s:.0%}": round(self.share(scorer, s), 4) for s in shares} for scorer in self.scorers
            },
        }


def gap_closed(model: float, baseline: float, foresight: float) -> float | None:
    """Share of the baseline-to-foresight gap a model closes (None when there is no gap)."""
    gap = foresight - baseline
    return (model - baseline) / gap if gap > 0 else None


# --- per-customer revenue windows ------------------------------------------------------------


def to_revenue_windows(lines: DataFrame, customers: DataFrame, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """Per customer, from the kept purchases up to ``as_of``: revenue in ``(as_of − h, as_of]``,
    in the ``h`` days before, and every purchase decayed with a half-life of ``h`` days.

    ``lines`` carry a ``reason`` classified as of ``as_of`` (lines after it are not kept);
    ``customers`` is a :class:`CustomerTable`'s numbered table, which gives guest lines their
    customer id through their invoice. A guest invoice it does not number (one after that table's
    as-of date: a new customer) keeps a null ``customer_id``; each row is one customer. One
    aggregation per (customer, guest invoice), then a join of the guest groups to their numbers.
    """
    purchase = is_kept(F.col(REASON)) & is_purchase(F.col(QUANTITY))
    age = days_between(F.lit(as_of).cast(T.DateType()), invoice_day(F.col(INVOICE_TS)))
    revenue = line_revenue(F.col(QUANTITY), F.col(UNIT_PRICE))
    per_group = (
        lines.where(purchase)
        .withColumn(GUEST_INVOICE, F.when(F.col(CUSTOMER_ID).isNull(), F.col(INVOICE_NO)))
        .groupBy(CUSTOMER_ID, GUEST_INVOICE)
        .agg(
            F.sum(F.when(age < horizon_days, revenue)).alias(REVENUE_RECENT),
            F.sum(F.when((age >= horizon_days) & (age < 2 * horizon_days), revenue)).alias(REVENUE_PREVIOUS),
            F.sum(revenue * F.pow(F.lit(0.5), age / F.lit(float(horizon_days)))).alias(REVENUE_DECAYED),
        )
    )
    registered = per_group.where(F.col(GUEST_INVOICE).isNull()).drop(GUEST_INVOICE)
    guest_numbers = customers.where(F.col(GUEST_INVOICE).isNotNull()).select(GUEST_INVOICE, CUSTOMER_ID)
    guests = (
        per_group.where(F.col(GUEST_INVOICE).isNotNull())
        .drop(CUSTOMER_ID)
        .join(guest_numbers, on=GUEST_INVOICE, how="left")
        .drop(GUEST_INVOICE)
    )
    return registered.unionByName(guests).select(
        F.col(CUSTOMER_ID).cast(T.LongType()).alias(CUSTOMER_ID),
        *[
            F.coalesce(F.col(c), F.lit(0.0)).cast(T.DoubleType()).alias(c)
            for c in (REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED)
        ],
    )


def reclassified(lines: DataFrame, rules: CleaningConfig, *, as_of: dt.date) -> DataFrame:
    """A table's lines with their reason as of another date (the same rules, a later window)."""
    return lines.transform(with_reason, rules=rules, as_of=as_of)


@dataclass(frozen=True)
class LogReach:
    last_kept_date: dt.date | None
    lines_after: int  # valid lines after the as-of date the lines were classified for


def log_reach(lines: DataFrame) -> LogReach:
    """How far a classified log goes (one aggregation over its lines)."""
    row = lines.agg(
        F.max(F.when(is_kept(F.col(REASON)), invoice_day(F.col(INVOICE_TS)))).alias("last"),
        F.count_if(F.col(REASON) == AFTER_AS_OF).alias("after"),
    ).first()
    return LogReach(last_kept_date=row["last"], lines_after=int(row["after"] or 0))


def with_model_features(features: DataFrame, windows: DataFrame) -> DataFrame:
    """The job's features plus the revenue windows, the returns rate and ``is_guest`` as 0/1."""
    returned, bought = F.col(QTY_RETURNS), F.col(QTY_ITEMS)
    return (
        features.join(windows, on=CUSTOMER_ID, how="left")
        .fillna(0.0, subset=[REVENUE_RECENT, REVENUE_PREVIOUS, REVENUE_DECAYED])
        .withColumn(
            RETURNS_RATE,
            F.when(returned + bought > 0, returned / (returned + bought)).otherwise(F.lit(0.0)).cast(T.DoubleType()),
        )
        .withColumn(IS_GUEST_VALUE, F.col(IS_GUEST).cast(T.DoubleType()))
    )


# --- scorers: eligible customers -> (customer_id, rank_key) ----------------------------------


def rank_key(*values: Column) -> Column:
    return F.array(*[v.cast(T.DoubleType()) for v in values])


def registered_first(guests_last: bool) -> list[Column]:
    return [F.when(F.col(IS_GUEST), F.lit(0.0)).otherwise(F.lit(1.0))] if guests_last else []


def reference_rankings(eligible: DataFrame) -> dict[str, DataFrame]:
    """The baseline, its registered-first variant and perfect foresight."""
    past, future = F.col(GROSS_REVENUE), F.col(NEXT_REVENUE)
    return {
        BASELINE: eligible.select(CUSTOMER_ID, rank_key(past).alias(RANK_KEY)),
        FORESIGHT: eligible.select(CUSTOMER_ID, rank_key(future, past).alias(RANK_KEY)),
        BASELINE_REGISTERED: eligible.select(CUSTOMER_ID, rank_key(*registered_first(True), past).alias(RANK_KEY)),
    }


def segments_ranking(segmented: DataFrame, *, guests_last: bool) -> DataFrame:
    """Cluster rank (1 first), then the tree's predicted value, then past revenue."""
    return segmented.select(
        CUSTOMER_ID,
        rank_key(*registered_first(guests_last), -F.col(CLUSTER), F.col(PREDICTED_LABEL), F.col(GROSS_REVENUE)).alias(
            RANK_KEY
        ),
    )


def fit_future_revenue_tree(
    training: DataFrame, *, feature_columns: Sequence[str], config: EmbeddingConfig, seed: int, customers: int
) -> PipelineModel:
    """A regression tree from features at an earlier cut-off to the revenue that followed it
    (``FUTURE_LABEL``, raw revenue: a leaf predicts its customers' mean future revenue)."""
    assembler = VectorAssembler(inputCols=list(feature_columns), outputCol=FUTURE_FEATURES)
    regressor = tree_regressor(
        config,
        seed=seed,
        customers=customers,
        features_col=FUTURE_FEATURES,
        label_col=FUTURE_LABEL,
        prediction_col=FUTURE_PREDICTION,
    )
    return Pipeline(stages=[assembler, regressor]).fit(training)


def future_tree_ranking(model: PipelineModel, eligible: DataFrame, *, guests_last: bool) -> DataFrame:
    return model.transform(eligible).select(
        CUSTOMER_ID,
        rank_key(*registered_first(guests_last), F.col(FUTURE_PREDICTION), F.col(GROSS_REVENUE)).alias(RANK_KEY),
    )


# --- the capture curve -----------------------------------------------------------------------


def head_counts(shares: Sequence[float], eligible: int) -> dict[float, int]:
    """Share -> customers, ``round(share × eligible)`` (at least one)."""
    return {share: max(1, round(share * eligible)) for share in shares}


def to_ranks(rankings: Mapping[str, DataFrame], outcomes: DataFrame) -> DataFrame:
    """(scorer, customer_id, rank, next_revenue) for every ranking, in one distributed sort.

    The rows are sorted by (scorer, rank key descending, customer_id) and indexed with
    ``zipWithIndex``; a scorer's ranks are its indices minus its first one (a k-row aggregate).
    """
    spark = outcomes.sparkSession
    stacked = None
    for name, ranking in rankings.items():
        frame = ranking.select(F.lit(name).alias(SCORER), CUSTOMER_ID, RANK_KEY)
        stacked = frame if stacked is None else stacked.unionByName(frame)
    if stacked is None:
        empty = T.StructType(
            [
                T.StructField(SCORER, T.StringType()),
                T.StructField(CUSTOMER_ID, T.LongType()),
                T.StructField(RANK, T.LongType()),
                T.StructField(NEXT_REVENUE, T.DoubleType()),
            ]
        )
        return literal_frame(spark, [], empty)
    indexed = stacked.orderBy(F.col(SCORER), F.col(RANK_KEY).desc(), F.col(CUSTOMER_ID)).zipWithIndex("position")
    first = indexed.groupBy(SCORER).agg(F.min("position").alias("first_position"))
    return (
        indexed.join(F.broadcast(first), on=SCORER, how="inner")
        .join(outcomes.select(CUSTOMER_ID, NEXT_REVENUE), on=CUSTOMER_ID, how="inner")
        .select(SCORER, CUSTOMER_ID, (F.col("position") - F.col("first_position")).alias(RANK), NEXT_REVENUE)
    )


def point_index(rank: Column, counts: Sequence[int]) -> Column:
    """Index of the first (ascending) head-count that includes a 0-based ``rank``; past the last, len."""
    bounds = sorted(set(counts))
    index = F.when(rank < bounds[0], F.lit(0))
    for i, bound in enumerate(bounds[1:], start=1):
        index = index.when(rank < bound, F.lit(i))
    return index.otherwise(F.lit(len(bounds)))


def capture_curve(ranks: DataFrame, *, counts: Mapping[float, int], window_revenue: float) -> tuple[CurvePoint, ...]:
    """Window revenue captured by each scorer's first ``n`` customers, for every head-count ``n``.

    One aggregation by (scorer, head-count bucket): at most scorers × head-counts rows reach the
    driver, where the buckets are summed cumulatively.
    """
    bounds = sorted(set(counts.values()))
    rows = (
        ranks.withColumn(POINT, point_index(F.col(RANK), bounds))
        .where(F.col(POINT) < len(bounds))
        .groupBy(SCORER, POINT)
        .agg(F.sum(NEXT_REVENUE).alias("revenue"))
        .collect()
    )
    by_scorer: dict[str, dict[int, float]] = {}
    for row in rows:
        by_scorer.setdefault(row[SCORER], {})[int(row[POINT])] = float(row["revenue"] or 0.0)
    points = []
    for scorer, buckets in by_scorer.items():
        cumulative, running = {}, 0.0
        for i, bound in enumerate(bounds):
            running += buckets.get(i, 0.0)
            cumulative[bound] = running
        for share, count in sorted(counts.items()):
            revenue = cumulative[count]
            points.append(
                CurvePoint(
                    scorer=scorer,
                    share=share,
                    head_count=count,
                    revenue=revenue,
                    revenue_share=revenue / window_revenue if window_revenue else 0.0,
                )
            )
    order = {name: i for i, name in enumerate((*REFERENCES, *MODEL_SCORERS))}
    return tuple(sorted(points, key=lambda p: (order.get(p.scorer, len(order)), p.share)))


# --- the backtest ----------------------------------------------------------------------------


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
    rules = config.cleaning
    cutoff = cutoff or last_invoice_date(spark, config) - dt.timedelta(days=h)
    window = Window(cutoff=cutoff, horizon_days=h)
    log.info("backtest: cut-off %s, window %s to %s", window.cutoff, window.cutoff + dt.timedelta(days=1), window.end)
    tables: list[CustomerTable] = []
    cached: list[DataFrame] = []
    try:
        cut = _table(spark, config, window.cutoff, tables, "the cut-off")
        eligible_count = cut.summary.with_purchases
        until_end = reclassified(cut.lines, rules, as_of=window.end)
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
        future_scorers = [s for s in settings.scorers if s in TREE_FEATURES]
        if future_scorers:
            train = _table(spark, config, window.training_cutoff, tables, TRAINING_CUTOFF)
            training = to_training_set(train, rules, as_of=window.training_cutoff, horizon_days=h).cache()
            cached.append(training)
            for scorer in future_scorers:
                tree = fit_future_revenue_tree(
                    training,
                    feature_columns=TREE_FEATURES[scorer],
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
        )
        log.info("backtest: %s", result.describe())
        return result
    finally:
        for frame in cached:
            frame.unpersist()
        for table in tables:
            table.unpersist()


def last_invoice_date(spark: SparkSession, config: Config) -> dt.date:
    """The last date with a kept line in the configured log (one pass, no aggregation by customer)."""
    source = read_transactions(spark, config.input, config.synthetic)
    lines = source.lines.transform(to_parsed_lines, timestamp_format=config.input.timestamp_format).transform(
        with_reason, rules=config.cleaning, as_of=None
    )
    reach = log_reach(lines)
    if reach.last_kept_date is None:
        raise BacktestError(f"{source.description}: no line is kept; there is nothing to backtest")
    return reach.last_kept_date


@dataclass(frozen=True)
class WindowTotals:
    revenue: float  # all revenue in the window
    known_revenue: float  # spent by the eligible customers
    new_customers: int  # customers with window revenue who were not eligible


def window_totals(next_revenue: DataFrame, eligible: DataFrame) -> WindowTotals:
    """One aggregation: the window's revenue, the eligible customers' part, the new customers."""
    known = eligible.select(CUSTOMER_ID, F.lit(True).alias("is_known"))
    row = (
        next_revenue.join(known, on=CUSTOMER_ID, how="left")
        .agg(
            F.sum(NEXT_REVENUE).alias("revenue"),
            F.sum(F.when(F.col("is_known"), F.col(NEXT_REVENUE))).alias("known_revenue"),
            F.count_if(F.col("is_known").isNull()).alias("new_customers"),  # null ids: new guests
        )
        .first()
    )
    return WindowTotals(
        revenue=float(row["revenue"] or 0.0),
        known_revenue=float(row["known_revenue"] or 0.0),
        new_customers=int(row["new_customers"] or 0),
    )


def to_training_set(train: CustomerTable, rules: CleaningConfig, *, as_of: dt.date, horizon_days: int) -> DataFrame:
    """Features as of the training cut-off, labelled ``FUTURE_LABEL`` with each customer's revenue
    in the ``h`` days after it (the table's lines classified again as of the label window's end)."""
    label_end = as_of + dt.timedelta(days=horizon_days)
    label = to_revenue_windows(
        reclassified(train.lines, rules, as_of=label_end), train.customers, as_of=label_end, horizon_days=horizon_days
    ).select(CUSTOMER_ID, F.col(REVENUE_RECENT).alias(FUTURE_LABEL))
    windows = to_revenue_windows(train.lines, train.customers, as_of=as_of, horizon_days=horizon_days)
    return (
        train.features()
        .transform(with_model_features, windows)
        .join(label.where(F.col(CUSTOMER_ID).isNotNull()), on=CUSTOMER_ID, how="left")
        .fillna(0.0, subset=[FUTURE_LABEL])
    )


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


# --- output table and report renderers (bounded: a few hundred curve points) -----------------


def to_curve_frame(spark: SparkSession, result: BacktestResult) -> DataFrame:
    """The capture curve as the ``backtest`` output table (``CURVE_SCHEMA``)."""
    rows = []
    for p in result.curve:
        closed = None if p.scorer in REFERENCES else result.gap_closed(p.scorer, p.share)
        rows.append(
            (
                result.window.cutoff,
                result.window.horizon_days,
                p.scorer,
                float(p.share),
                int(p.head_count),
                float(p.revenue),
                float(p.revenue_share),
                None if closed is None else float(closed),
            )
        )
    return literal_frame(spark, rows, CURVE_SCHEMA)
