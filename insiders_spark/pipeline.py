"""The job, as a table of contents: read, clean, aggregate, embed, cluster, profile, write."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import platform
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata, resources

from pyspark.sql import DataFrame, SparkSession

from insiders_spark import __version__, continuity, control, explain, io, models, report
from insiders_spark.accounting import (
    AccountingError,
    RowAccounting,
    accounting_from,
    observe_outcomes,
)
from insiders_spark.cleaning import (
    CleaningRules,
    to_parsed_lines,
    to_quarantine,
    with_reason,
)
from insiders_spark.clustering import SILHOUETTE_DISTANCE, ClusteringError
from insiders_spark.config import Config
from insiders_spark.embedding import fit_embedding
from insiders_spark.errors import explain as explain_error
from insiders_spark.features import (
    CustomerSummary,
    NoCustomersError,
    summarise_customers,
    to_customer_activity,
    to_customer_features,
    with_guest_customer_ids,
)
from insiders_spark.kselection import KSelection, score_grid
from insiders_spark.leaves import cluster_summaries, summarise_leaves
from insiders_spark.profiles import (
    ClusterProfile,
    carry_over_identity,
    to_profiles_frame,
)
from insiders_spark.progress import BackgroundStages, StageTimer
from insiders_spark.quality import QualityTargets, check_silhouette, quality_verdict
from insiders_spark.quality_report import render_quality
from insiders_spark.schemas import CUSTOMER_FEATURES_SCHEMA, SEGMENTS_SCHEMA
from insiders_spark.segmentation import (
    SegmentationModel,
    fit_segmentation,
    silhouette_of,
    to_segments,
)
from insiders_spark.session import activate_in_this_thread
from insiders_spark.stability import Stability, fit_stability_runs

log = logging.getLogger(__name__)

SEGMENTS = "segments"
PROFILES = "profiles"
QUARANTINE = "quarantine"
RUNS = "runs"
REPORT = "report"
RULES = "rules"
BACKTEST = "backtest"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"  # metrics.json plus provenance; written last


class RunDateConflictError(ValueError):
    """A run would leave one run date's published tables describing two different models."""


class DuplicateCustomerIdError(ValueError):
    """Guest numbers collide with real customer ids."""


@dataclass(frozen=True)
class RunResult:
    run_date: dt.date
    as_of: dt.date
    profiles: list[ClusterProfile]
    metrics: dict
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerTable:
    """The log read, classified, accounted for and aggregated per customer."""

    source: io.RawInput
    lines: DataFrame  # every input line with its reason (lazy)
    quarantine_lines: DataFrame  # the same with each line's source file (lazy; read for the quarantine)
    customers: DataFrame  # one row per customer or guest invoice, numbered (cached)
    summary: CustomerSummary
    accounting: RowAccounting
    as_of: dt.date
    as_of_source: str
    held: list[DataFrame] = field(default_factory=list, compare=False, repr=False)  # cached by the run

    def features(self) -> DataFrame:
        return self.customers.transform(to_customer_features, as_of=self.as_of)

    def hold(self, frame: DataFrame) -> DataFrame:
        """Keep a frame the run cached so that :meth:`unpersist` releases it, however the run ends
        (a notebook's long-lived session must not keep a failed run's caches)."""
        self.held.append(frame)
        return frame

    def unpersist(self) -> None:
        for frame in (*self.held, self.customers):
            frame.unpersist()
        self.held.clear()


def prepare_customers(spark: SparkSession, config: Config, *, as_of: dt.date | None = None) -> CustomerTable:
    """Read the configured log, classify every line, aggregate customers and check the accounting.

    One Spark job reads the input: it aggregates the customers and, through ``observe``, counts
    every line's outcome. ``as_of`` defaults to the last invoice date among the kept lines up to
    today (UTC): a line dated in the future (a wrong year in an export) is left for a later run,
    counted and warned about, instead of moving every customer's recency and the run date with it.
    """
    source = io.read_transactions(spark, config.input, config.synthetic)
    log.info("input: %s (%s%s)", source.description, source.format, _file_count(source.files))
    rules = CleaningRules.from_config(config.cleaning)
    today = dt.datetime.now(dt.timezone.utc).date()
    upper = as_of or today

    def classified(raw: DataFrame) -> DataFrame:
        return raw.transform(to_parsed_lines, timestamp_format=config.input.timestamp_format).transform(
            with_reason, rules=rules, as_of=upper
        )

    lines = classified(source.lines)
    decoded_text = source.format == "csv"
    observed, observation = observe_outcomes(lines, decoded_text=decoded_text)

    def aggregated(frame: DataFrame, *, exact_keys: bool) -> tuple[DataFrame, DataFrame]:
        activity = frame.transform(to_customer_activity, exact_keys=exact_keys).cache()
        numbered = activity.transform(with_guest_customer_ids, start=config.cleaning.guest_customer_id_start)
        return activity, numbered.cache()

    activity, customers = aggregated(observed, exact_keys=False)
    try:
        summary = summarise_customers(customers)
        if summary.shared_guest_keys:
            # two guest invoices hashed to one group key (about one run in 20 million with a million
            # guest invoices): their rows are merged, so aggregate again by (id, invoice); the
            # lines' outcomes were counted by the first pass
            log.warning(
                "%s group keys were shared by more than one guest invoice; aggregating again with exact keys",
                f"{summary.shared_guest_keys:,}",
            )
            for frame in (activity, customers):
                frame.unpersist()
            activity, customers = aggregated(lines, exact_keys=True)
            summary = summarise_customers(customers)
        activity.unpersist()
        accounting = accounting_from(observation, lines, decoded_text=decoded_text)
        accounting.check()
        log.info(
            "rows: %s read, %s kept, %s quarantined, %s after as-of; customers: %s (%s with purchases)",
            f"{accounting.input:,}", f"{accounting.kept:,}", f"{accounting.quarantined_total:,}",
            f"{accounting.after_as_of:,}", f"{summary.customers:,}", f"{summary.with_purchases:,}",
        )
        if as_of is None and accounting.after_as_of:
            log.warning(
                "%s lines are dated after today (%s, UTC): left for a later run, like lines after an as-of "
                "date (a wrong year or clock in the export?)", f"{accounting.after_as_of:,}", today,
            )
        _check_customers(summary, config.cleaning.guest_customer_id_start, accounting, as_of=upper)
    except BaseException:
        for frame in (activity, customers):
            frame.unpersist()
        raise
    return CustomerTable(
        source=source,
        lines=lines,
        quarantine_lines=classified(source.lines_with_source()),
        customers=customers,
        summary=summary,
        accounting=accounting,
        as_of=as_of or summary.last_kept_date,
        as_of_source="given" if as_of else "last invoice date in the cleaned log",
    )


class RunFailedError(RuntimeError):
    """A run that stopped before publishing; live outputs are untouched."""

    def __init__(self, message: str, failed_outputs: str | None) -> None:
        where = f" The failed run's staged outputs are kept under {failed_outputs}." if failed_outputs else ""
        super().__init__(message + where)
        self.failed_outputs = failed_outputs


TRAIN = "train"
SCORE = "score"
TRAIN_AND_SCORE = "train-and-score"
MODES = (TRAIN, SCORE, TRAIN_AND_SCORE)


def run(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date | None = None,
    as_of: dt.date | None = None,
    mode: str = TRAIN_AND_SCORE,
    model_version: str | None = None,
) -> RunResult:
    """One run of the job: train a model, score customers with one, or both (the default).

    Every output is staged and published together at the end (``io.RunOutputs``): a run that fails,
    or is killed, leaves the previously published partitions and models exactly as they were.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    started = time.perf_counter()
    with io.output_lock(spark, config.output.path, f"insiders-spark run ({mode})"):
        return _run_holding_the_output(
            spark, config, started, run_date=run_date, as_of=as_of, mode=mode, model_version=model_version
        )


def _run_holding_the_output(
    spark: SparkSession,
    config: Config,
    started: float,
    *,
    run_date: dt.date | None,
    as_of: dt.date | None,
    mode: str,
    model_version: str | None,
) -> RunResult:
    timer = StageTimer(log)
    for run_id in io.recover_interrupted_commits(spark, config.output.path):
        log.warning("cleaned up after an earlier run that did not finish: %s", run_id)

    with timer.stage("read and aggregate"):
        table = prepare_customers(spark, config, as_of=as_of)
    run_date = run_date or table.as_of
    run_id = f"{run_date.isoformat()}_{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:8]}"
    outputs = io.RunOutputs(spark, config.output.path, run_date.isoformat(), run_id)
    try:
        # leaving the block waits for the background stages, so a failure moves nothing still being written
        with BackgroundStages(
            timer, enabled=config.output.overlap_writes, prepare_thread=lambda: activate_in_this_thread(spark)
        ) as background:
            return _publish(
                spark, config, table, outputs, timer, started, background, mode=mode, model_version=model_version
            )
    except Exception as error:
        failed = outputs.fail()
        if failed:
            io.write_text(spark, f"{failed}/failure.json", json.dumps(_failure(error, table), indent=2) + "\n")
        raise RunFailedError(explain_error(error), failed) from error
    finally:
        table.unpersist()


def _publish(
    spark: SparkSession,
    config: Config,
    table: CustomerTable,
    outputs: io.RunOutputs,
    timer: StageTimer,
    started: float,
    background: BackgroundStages,
    *,
    mode: str,
    model_version: str | None,
) -> RunResult:
    output = config.output.path
    run_date = dt.date.fromisoformat(outputs.run_date)
    published: dict[str, str] = {}
    run_info: dict = {"run_id": outputs.run_id, "mode": mode}
    if mode == TRAIN and io.exists(spark, io.partition_path(output, SEGMENTS, outputs.run_date)):
        raise RunDateConflictError(
            f"run date {outputs.run_date} already has published segments: a train run would replace that "
            "date's profiles, rules, report and manifest with a new model's while its segments stay the "
            "old model's. Give the train run another --run-date, or use --mode train-and-score to refit "
            "and publish that date's segments too"
        )

    def write_quarantine() -> None:
        if table.accounting.quarantined_total:
            outputs.write_table(to_quarantine(table.quarantine_lines), QUARANTINE)
            _check_quarantine_written(spark, outputs, table.accounting)
        else:
            outputs.clear_table(QUARANTINE)

    if table.accounting.quarantined_total:
        published[QUARANTINE] = outputs.live(outputs.partition(QUARANTINE))

    # beside the segmentation; a run failing below still stages it first (leaving ``background``
    # waits), so the failed run's quarantine can be read
    background.run("quarantine", write_quarantine)
    if table.accounting.undecodable:
        log.warning(
            "%s lines hold text that is not valid %s (shown as U+FFFD): is the input in another "
            "encoding (e.g. --encoding ISO-8859-1)?",
            f"{table.accounting.undecodable:,}", config.input.encoding,
        )
    table.accounting.check_thresholds(config.quarantine)

    features = table.hold(table.features().cache())
    previous_version = models.current_version(spark, output)
    stability: Stability | None = None
    selection: KSelection | None = None
    stability_failures: list[str] | None = None
    if mode == SCORE:
        with timer.stage("load model"):
            model, description = models.load(spark, output, model_version)
            log.info("scoring with model %s (trained as of %s)", description["version"], description["trained_as_of"])
            clustered = table.hold(model.embed(features).cache())
            model = dataclasses.replace(model, leaf_sums=summarise_leaves(clustered))  # today's customers
            profiles = rescore_profiles(model)
        run_info.update(model_version=description["version"], model_trained_as_of=description["trained_as_of"])
    else:
        with timer.stage("segmentation"):
            training = train_segmentation(features, config, customers=table.summary.with_purchases)
            model, clustered = training.model, table.hold(training.clustered)
            stability, selection = training.stability, training.selection
            stability_failures = training.stability_failures()
            log.info("embedding: %s; KMeans: %s", model.embedding.describe(), model.kmeans.describe())
        if previous_version:
            with timer.stage("match clusters"):
                model, run_info["lineage"] = _lineage(spark, output, previous_version, model, clustered, config)
        profiles = model.profiles
        version = models.new_version(table.as_of, outputs.run_id)
        description = models.describe(
            model, version=version, as_of=table.as_of, run_date=run_date, config_hash=config.fingerprint()
        )

        def save_model() -> None:
            models.save(model, outputs.stage_folder(f"{models.MODELS}/{version}"), description)
            outputs.write_path(f"{models.MODELS}/{models.CURRENT}", version + "\n")

        background.run("save model", save_model)
        published["model"] = outputs.live(f"{models.MODELS}/{version}")
        run_info.update(model_version=version, model_trained_as_of=table.as_of.isoformat())
    run_info["previous_model_version"] = previous_version
    rules = explain.to_rule_rows(
        model.leaf_sums, model.embedding.tree, model.kmeans.leaf_clusters, profiles,
        split_grid=model.embedding.split_grid,
    )

    def write_small_tables() -> None:
        outputs.write_table(to_profiles_frame(spark, profiles), PROFILES)
        outputs.write_table(explain.to_rules_frame(spark, rules), RULES)

    background.run("write profiles and rules", write_small_tables)

    with timer.stage("silhouette"):
        silhouette_score = silhouette_of(model, occupied_clusters=sum(p.customers > 0 for p in profiles))
        check = check_silhouette(
            clustered,
            customers=table.summary.with_purchases,
            seed=config.job.seed,
            max_rows=config.quality.silhouette_sample_rows,
            mllib=silhouette_score,
        )
        log.info(
            "k=%d: silhouette %.3f (%s; scikit-learn on %d sampled customers: %s)",
            len(profiles), silhouette_score, SILHOUETTE_DISTANCE, check.sample_rows,
            "-" if check.sample is None else f"{check.sample:.3f}",
        )
    targets = QualityTargets.from_config(config.quality)
    verdict = quality_verdict(
        profiles=profiles,
        silhouette=silhouette_score,
        stability_failures=stability_failures,
        targets=targets,
    )
    if verdict["failures"]:
        log.warning("quality targets missed: %s", "; ".join(verdict["failures"]))

    with timer.stage("write"):
        if mode != TRAIN:
            previous_date = continuity.previous_run_date(spark, output, SEGMENTS, run_date)
            previous = io.read_partition(spark, output, SEGMENTS, previous_date) if previous_date else None
            if previous_date:
                run_info["previous_segments"] = _previous_segments(spark, output, previous_date, mode, run_info)
            segments = to_published_segments(
                clustered, model, profiles, previous, run_date=run_date, config=config
            )
            published[SEGMENTS] = outputs.write_table(segments, SEGMENTS)
            churn = continuity.churn_counts(
                spark.read.parquet(outputs.staged(outputs.partition(SEGMENTS))), previous, previous_date
            )
            run_info["churn"] = churn.to_dict()
            log.info("Insiders churn: %s", churn.to_dict())
        published[PROFILES] = outputs.live(outputs.partition(PROFILES))
        published[RULES] = outputs.live(outputs.partition(RULES))

    backtest_result, backtest_error = None, None
    if config.backtest.horizon_days:
        with timer.stage("backtest"):
            try:
                backtest_result = _backtest(spark, config, table, k=model.k)
            except (backtest_module().BacktestError, ClusteringError) as error:
                # a measurement of the segments, not the segments: its failure is reported, not fatal
                backtest_error = str(error)
                log.warning("backtest not measured: %s", backtest_error)
                outputs.clear_table(BACKTEST)
            else:
                published[BACKTEST] = outputs.write_table(
                    backtest_module().to_curve_frame(spark, backtest_result), BACKTEST
                )
    else:
        outputs.clear_table(BACKTEST)

    metrics = _metrics(
        spark, config, run_date=run_date, table=table, profiles=profiles,
        embedding=model.embedding.describe(), kmeans=model.kmeans.describe(), silhouette_score=silhouette_score,
    )
    metrics["quality"] = {
        **verdict,
        "silhouette": check.to_dict(),
        "stability": stability.to_dict() if stability else None,
    }
    if selection is not None:
        metrics["k_selection"] = selection.to_dict()
    if backtest_result is not None:
        metrics["backtest"] = {"measured": True, **backtest_result.describe()}
    elif backtest_error is not None:
        metrics["backtest"] = {"measured": False, "error": backtest_error}
    with timer.stage("report"):
        title = f"Mean gross revenue per cluster, as of {table.as_of.isoformat()}"
        outputs.write_file(REPORT, report.CHART_FILE, report.revenue_chart_png(profiles, title=title))
        outputs.write_file(REPORT, report.PROFILES_FILE, report.profiles_csv(profiles))
        sections = [
            render_quality(profiles=profiles, silhouette=check, stability=stability, selection=selection, targets=targets),
            report.rules_section(model.embedding, rules, top=config.segments.top_features),
        ]
        if backtest_result is not None:
            bt = backtest_module()
            outputs.write_file(REPORT, bt.CHART_FILE, bt.capture_chart_png(backtest_result))
            sections.append(report.backtest_section(bt.summary_markdown(backtest_result), bt.CHART_FILE))
        elif backtest_error is not None:
            sections.append(report.backtest_section(f"Not measured on this run: {backtest_error}", None))
        outputs.write_file(REPORT, report.PAGE_FILE, report.render_page(profiles, metrics, sections=sections))
        published[REPORT] = outputs.live(outputs.partition(REPORT))

    background.wait()  # the quarantine, the model and the small tables are staged (or the run fails here)
    published[RUNS] = outputs.live(f"{outputs.partition(RUNS)}/{MANIFEST_FILE}")
    metrics.update(run_info)
    metrics["durations_s"] = dict(timer.durations)
    metrics["total_s"] = round(time.perf_counter() - started, 3)
    metrics["outputs"] = dict(published)
    outputs.write_file(RUNS, METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    manifest = {**metrics, **_provenance(config, table)}
    outputs.write_file(RUNS, MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    outputs.commit(last=RUNS)
    for name, path in published.items():
        log.info("published %s: %s", name, path)
    return RunResult(run_date=run_date, as_of=table.as_of, profiles=profiles, metrics=manifest, outputs=published)


@dataclass(frozen=True)
class Training:
    model: SegmentationModel
    clustered: DataFrame
    stability: Stability | None = None
    selection: KSelection | None = None
    stability_unmeasurable: str | None = None  # why the stability runs could not be compared

    def stability_failures(self) -> list[str] | None:
        """For the quality verdict: the missed stability targets; None when not measured."""
        if self.stability_unmeasurable:
            return [f"stability not measurable: {self.stability_unmeasurable}"]
        return None if self.stability is None else self.stability.failures()


def train_segmentation(features: DataFrame, config: Config, *, customers: int) -> Training:
    """Fit the segmentation; measure its stability and, with ``--k auto``, choose k first.

    The tree is fitted once. The stability runs use it as their reference and serve every k of
    the grid, so choosing k costs one set of runs; KMeans is then fitted at the chosen k (which
    may differ from the configured one, e.g. when the tree has fewer leaves than it).
    """
    seed, quality = config.job.seed, config.quality
    embedding = fit_embedding(features, config=config.embedding, seed=seed, customers=customers)
    if not (quality.stability or config.clustering.select_k):
        model, clustered = fit_segmentation(
            features, config=config, customers=customers, k=config.clustering.k, seed=seed, embedding=embedding
        )
        return Training(model, clustered)
    targets = QualityTargets.from_config(quality)
    runs = fit_stability_runs(
        features,
        config=config,
        customers=customers,
        seed=seed,
        seeds=quality.stability_seeds,
        bootstraps=quality.stability_bootstraps,
        reference=embedding,
    )
    selection = None
    k = config.clustering.k
    if config.clustering.select_k:
        selection = score_grid(runs, grid=config.clustering.k_grid, config=config, targets=targets)
        k = selection.chosen
    model, clustered = fit_segmentation(
        features, config=config, customers=customers, k=k, seed=seed, embedding=embedding
    )
    try:
        stability = runs.stability(model.k, config=config, targets=targets)
    except ClusteringError as error:  # a resample's tree has fewer leaves than k: a result, not a crash
        log.warning("stability not measurable at k=%d: %s", model.k, error)
        return Training(model, clustered, selection=selection, stability_unmeasurable=str(error))
    log.info(
        "stability over %d runs: ARI min %.3f, Insiders Jaccard min %.3f",
        len(runs.perturbed), stability.ari_min, stability.jaccard_min,
    )
    return Training(model, clustered, stability, selection)


def to_published_segments(
    clustered: DataFrame,
    model: SegmentationModel,
    profiles: list[ClusterProfile],
    previous: DataFrame | None,
    *,
    run_date: dt.date,
    config: Config,
) -> DataFrame:
    """The segments table (``SEGMENTS_SCHEMA``): assignment, reasons, Insider history, control flag."""
    return (
        to_segments(clustered, profiles)
        .transform(explain.with_top_contributions, model.embedding.tree, top=config.segments.top_features)
        .transform(
            continuity.with_insider_history,
            previous,
            run_date=run_date,
            hysteresis_runs=config.refresh.insider_hysteresis_runs,
        )
        .transform(
            control.with_control_flag,
            salt=config.control.salt,
            share=config.control.share,
            scope=config.control.scope,
        )
        .select(*[f.name for f in SEGMENTS_SCHEMA.fields])
    )


def backtest_module():
    """``insiders_spark.backtest`` (imported late: it builds on this module's ``prepare_customers``)."""
    from insiders_spark import backtest

    return backtest


def _backtest(spark: SparkSession, config: Config, table: CustomerTable, *, k: int):
    """The backtest of ``[backtest]``; unless a cut-off is set, its window ends on the last invoice
    date up to the run's as-of date (an as-of day without sales, a Sunday, must not leave the window
    past the log).

    Its segments use the run's k (the one ``--k auto`` chose, or the scored model's)."""
    bt = backtest_module()
    settings = config.backtest
    config = dataclasses.replace(config, clustering=dataclasses.replace(config.clustering, k=k))
    horizon = settings.horizon_days
    window_end = table.summary.last_kept_date or table.as_of  # kept lines end on or before the as-of date
    cutoff = dt.date.fromisoformat(settings.cutoff) if settings.cutoff else window_end - dt.timedelta(days=horizon)
    result = bt.run_backtest(
        spark,
        config,
        bt.BacktestSettings(
            horizon_days=horizon,
            cutoff=cutoff,
            head_count_shares=settings.head_count_shares,
            scorers=settings.scorers,
            guests_last=settings.guests_last,
        ),
    )
    log.info("backtest: %s", result.describe()["insiders"])
    return result


def rescore_profiles(model: SegmentationModel) -> list[ClusterProfile]:
    """Today's sizes and means for a persisted model's clusters (``model.leaf_sums``: the leaf table
    of the customers it scored today), keeping its numbers and names."""
    trained = model.profiles
    by_kmeans = {s["kmeans_cluster"]: s for s in cluster_summaries(model.leaf_sums, model.kmeans.leaf_clusters)}
    customers = sum(s["customers"] for s in by_kmeans.values())
    revenue = sum(s["revenue_total"] for s in by_kmeans.values())
    profiles = []
    for profile in trained:
        summary = by_kmeans.get(profile.kmeans_cluster)
        if summary is None:  # nobody in this cluster today
            profiles.append(
                dataclasses.replace(profile, customers=0, customer_share=0.0, revenue_total=0.0, revenue_share=0.0)
            )
            continue
        stats = {k: float(v) for k, v in summary.items() if k.endswith("_mean")}
        profiles.append(
            dataclasses.replace(
                profile,
                customers=int(summary["customers"]),
                customer_share=summary["customers"] / customers,
                revenue_total=float(summary["revenue_total"]),
                revenue_share=float(summary["revenue_total"]) / revenue if revenue else 0.0,
                **stats,
            )
        )
    return profiles


def _lineage(
    spark: SparkSession, output: str, previous_version: str, model: SegmentationModel, clustered: DataFrame,
    config: Config,
) -> tuple[SegmentationModel, dict]:
    """Match the new clusters to the previous model's, both scoring today's customers, and give each
    matched cluster the previous one's number and name (``profiles.carry_over_identity``).

    Returns the model with its clusters so numbered and the manifest's ``lineage``. Lineage only
    informs: a previous model that cannot be read is a warning, and the new model keeps its own
    numbers.
    """
    try:
        previous_model, _ = models.load(spark, output, previous_version)
        features = clustered.select(*[f.name for f in CUSTOMER_FEATURES_SCHEMA.fields])
        matches = continuity.match_clusters(
            to_segments(clustered, model.profiles),
            previous_model.transform(features),
            min_jaccard=config.refresh.match_min_jaccard,
        )
    except Exception as error:  # noqa: BLE001 - an unreadable older model must not fail today's run
        log.warning("cannot compare with the previous model %s: %s", previous_version, error)
        return model, {"previous_model_version": previous_version, "matches": [], "error": str(error)}
    carried = {m.cluster: (m.previous_cluster, m.previous_segment) for m in matches if m.previous_cluster is not None}
    relabelled = carry_over_identity(model.profiles, carried)
    now = {p.kmeans_cluster: p for p in relabelled}
    by_number = {p.cluster: now[p.kmeans_cluster] for p in model.profiles}
    records = []
    for match in matches:
        profile = by_number[match.cluster]
        record = dataclasses.replace(match, cluster=profile.cluster, segment=profile.segment, revenue_rank=match.cluster)
        if record.previous_cluster is None:
            log.warning("cluster %d (%s) matches no cluster of model %s", record.cluster, record.segment, previous_version)
        elif (record.previous_cluster, record.previous_segment) != (record.cluster, record.segment):
            log.warning(
                "cluster %d (%s) is cluster %d (%s) of model %s (Jaccard %.2f) but could not keep its number and "
                "name (cluster 1 is always the highest revenue)",
                record.cluster, record.segment, record.previous_cluster, record.previous_segment, previous_version,
                record.jaccard,
            )
        records.append(record)
    succeeded = {m.previous_cluster for m in matches if m.previous_cluster is not None}
    ended = [
        {"previous_cluster": p.cluster, "previous_segment": p.segment}
        for p in previous_model.profiles
        if p.cluster not in succeeded
    ]
    for gone in ended:
        log.warning(
            "cluster %d (%s) of model %s has no successor in the new model",
            gone["previous_cluster"], gone["previous_segment"], previous_version,
        )
    lineage = {
        "previous_model_version": previous_version,
        "matches": [r.to_dict() for r in sorted(records, key=lambda r: r.cluster)],
        "previous_clusters_without_successor": ended,
    }
    return dataclasses.replace(model, profiles=relabelled), lineage


def _previous_segments(spark: SparkSession, output: str, previous_date: dt.date, mode: str, run_info: dict) -> dict:
    """Which model assigned the segments churn is counted against. A score run with another model
    than theirs (a rollback, ``--model-version``) compares cluster numbers of two models that no
    lineage paired: said in the manifest and the log."""
    manifest = f"{io.partition_path(output, RUNS, previous_date.isoformat())}/{MANIFEST_FILE}"
    version = json.loads(io.read_text(spark, manifest)).get("model_version") if io.exists(spark, manifest) else None
    if mode == SCORE and version is not None and version != run_info["model_version"]:
        log.warning(
            "the segments of %s were assigned by model %s, today's by model %s: churn compares the cluster "
            "numbers of two models that no training run paired", previous_date, version, run_info["model_version"],
        )
    return {"run_date": previous_date.isoformat(), "model_version": version}


def _provenance(config: Config, table: CustomerTable) -> dict:
    return {
        "input_files": list(table.source.files),
        "config": config.to_dict(),
        "code_version": _code_version(),
    }


def _code_version() -> dict:
    """The package version, and the git commit when the code runs from a checkout."""
    import subprocess
    from pathlib import Path

    package = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(package), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", False
    if not commit:  # imported from scripts/submit.sh's zip, which records the commit it was built from
        try:
            build = json.loads((resources.files("insiders_spark") / "BUILD.json").read_text())
            commit, dirty = build["git_commit"], build["git_dirty"]
        except (OSError, ValueError, KeyError):
            pass
    return {"package": __version__, "git_commit": commit or None, "git_dirty": dirty if commit else None}


def _failure(error: BaseException, table: CustomerTable) -> dict:
    return {
        "error": explain_error(error),
        "error_type": type(error).__name__,
        "as_of": table.as_of.isoformat(),
        "rows": table.accounting.to_dict(),
    }


def _file_count(files: tuple[str, ...]) -> str:
    return f", {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""


def _check_quarantine_written(spark: SparkSession, outputs: io.RunOutputs, accounting: RowAccounting) -> None:
    """The quarantine is a second pass over the input: it must hold the lines the first pass counted.

    Counting the staged parquet reads only its footers. A difference means the input changed
    between the two passes (a drop rewritten or appended to during the run)."""
    staged = outputs.staged(outputs.partition(QUARANTINE))
    written = spark.read.parquet(staged).count() if io.exists(spark, staged) else 0  # no rows: no partition
    if written != accounting.quarantined_total:
        raise AccountingError(
            f"the quarantine holds {written:,} lines but the run counted {accounting.quarantined_total:,} set "
            "aside: the input changed while the run read it (a file rewritten or appended to during the run?). "
            "Nothing was published; run again once the input is complete."
        )


def _check_customers(
    summary: CustomerSummary, guest_start: int, accounting: RowAccounting, *, as_of: dt.date | None
) -> None:
    if summary.with_purchases == 0:
        later = (
            f"{accounting.after_as_of:,} after the as-of date {as_of} (is it before the log's first invoice?), "
            if accounting.after_as_of
            else ""
        )
        raise NoCustomersError(
            f"no customer has a kept purchase: {accounting.input:,} lines read, {accounting.kept:,} kept, {later}"
            f"{accounting.quarantined_total:,} set aside ({_top_reasons(accounting)}); check the input "
            "and the cleaning settings"
        )
    if summary.distinct_ids != summary.customers:
        raise DuplicateCustomerIdError(
            f"guest invoices numbered from {guest_start} collide with real customer ids "
            f"({summary.customers - summary.distinct_ids:,} duplicates); set "
            "cleaning.guest_customer_id_start above the largest customer id in the log"
        )


def _top_reasons(accounting: RowAccounting) -> str:
    ranked = sorted(accounting.quarantined.items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{name}: {count:,}" for name, count in ranked) or "none"


def _versions(spark: SparkSession) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "insiders_spark": version("insiders-spark"),
        "python": platform.python_version(),
        "spark": spark.version,
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),
        **{name: version(name) for name in ("pyspark", "pandas", "numpy", "pyarrow", "scikit-learn")},
    }


def _spark_info(spark: SparkSession) -> dict:
    """Where the run ran: master, application id and the executors that did the work.

    ``executors`` lists the live block managers (the driver included). ``executor_ids`` names every
    executor that joined the run, the driver excluded (so it is empty in local mode), with the tasks
    each completed; ``lost_executors`` those removed before the end (a lost worker) and why. They
    come from Spark's status store, the data behind the UI, which remembers removed executors.
    """
    context = spark.sparkContext
    executors = sorted(
        {f"{info.host()}:{info.port()}" for info in context._jsc.sc().statusTracker().getExecutorInfos()}
    )
    summaries = context._jsc.sc().statusStore().executorList(False)
    joined = [summaries.apply(index) for index in range(summaries.size())]
    joined = sorted((s for s in joined if s.id() != "driver"), key=lambda s: (len(s.id()), s.id()))  # "2" < "10"
    return {
        "master": context.master,
        "app_id": context.applicationId,
        "executors": executors,
        "executor_ids": [s.id() for s in joined],
        "tasks_by_executor": {s.id(): s.completedTasks() for s in joined},
        "lost_executors": [
            {"id": s.id(), "host_port": s.hostPort(), "reason": s.removeReason().get() if s.removeReason().isDefined() else None}
            for s in joined
            if not s.isActive()
        ],
    }


def _metrics(
    spark: SparkSession,
    config: Config,
    *,
    run_date: dt.date,
    table: CustomerTable,
    profiles: list[ClusterProfile],
    embedding: dict,
    kmeans: dict,
    silhouette_score: float,
) -> dict:
    insiders = profiles[0]
    return {
        "run_date": run_date.isoformat(),
        "as_of": table.as_of.isoformat(),
        "as_of_source": table.as_of_source,
        "input": {
            "description": table.source.description,
            "format": table.source.format,
            "files": len(table.source.files),
            "extra_columns": list(table.source.extra_columns),
            "empty_files": list(table.source.empty_files),
        },
        "rows": table.accounting.to_dict(),
        "customers": {
            "with_kept_lines": table.summary.customers,
            "segmented": table.summary.with_purchases,
            "returns_only": table.summary.returns_only,
            "guests": table.summary.guests,
        },
        "features": {"gross_revenue_total": round(sum(p.revenue_total for p in profiles), 2)},
        "embedding": {**embedding, "seed": config.job.seed},
        "clustering": {
            "k": len(profiles),
            "seed": config.job.seed,
            "silhouette": round(silhouette_score, 4),
            "silhouette_distance": SILHOUETTE_DISTANCE,
            "kmeans_distance": "euclidean",
            "kmeans": kmeans,
        },
        "insiders": {
            "cluster": insiders.cluster,
            "segment": insiders.segment,
            "customers": insiders.customers,
            "customer_share": round(insiders.customer_share, 4),
            "revenue_share": round(insiders.revenue_share, 4),
        },
        "clusters": [
            {
                "cluster": p.cluster,
                "segment": p.segment,
                "customers": p.customers,
                "customer_share": round(p.customer_share, 4),
                "revenue_share": round(p.revenue_share, 4),
                "gross_revenue_mean": round(p.gross_revenue_mean, 2),
            }
            for p in profiles
        ],
        "spark": _spark_info(spark),
        "config_hash": config.fingerprint(),
        "versions": _versions(spark),
    }
