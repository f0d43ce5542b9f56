"""Whole-job runs that many tests assert on, each run once per session (a run costs 15-60 s).

* ``base_run``: the job on its embedded synthetic log, defaults of the ``test`` profile (``run``),
  with the Spark jobs it started.
* ``nightly``: a season of nightly runs on one output through the command line: train, retrain,
  score with the older model, a refused train; a dirty CSV export in another timestamp
  format and encoding, read with ``--format``, ``--timestamp-format`` and ``--encoding``.
* ``trust_run``: ``--k auto`` with stability, the control group over everyone, a backtest and a
  custom name for the Insiders, on an as-of date two days after the log's last sale.
* ``real_log_run``: the real Online Retail log with a backtest (skips without ../shared).

Tests must not change these outputs: a test that needs to write copies the folder first.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests import background, support

LINES = 40_000  # the synthetic log of the job runs: ~500 customers, every rule at work
SEED = 42  # synthetic.seed and job.seed of the test profile


@dataclass(frozen=True)
class JobRun:
    output: Path
    config: object
    result: object  # RunResult
    jobs: tuple = ()  # (job id, description, tags) of the Spark jobs the run started

    @property
    def run_date(self) -> str:
        return self.result.run_date.isoformat()

    def manifest(self) -> dict:
        return json.loads((support.partition(self.output, "runs", self.run_date) / "manifest.json").read_text())

    def table(self, spark, name: str):
        return spark.read.parquet(str(support.partition(self.output, name, self.run_date)))


@pytest.fixture(scope="session")
def synthetic_log() -> pd.DataFrame:
    """The raw log of the synthetic job runs, as the generator makes it (pandas)."""
    return support.synthetic_frame(LINES, SEED)


@pytest.fixture(scope="session")
def synthetic_outcomes(synthetic_log, test_config) -> support.Outcomes:
    return support.expected_outcomes(synthetic_log, support.study_config().cleaning)


@pytest.fixture(scope="session")
def base_run(spark, tmp_path_factory) -> JobRun:
    from insiders_spark.runs import run

    output = tmp_path_factory.mktemp("base")
    config = support.config({"output.path": str(output), "synthetic.lines": LINES})
    before = max((job_id for job_id, _, _ in support.spark_jobs(spark)), default=-1)
    result = run(spark, config)
    return JobRun(output, config, result, tuple(support.spark_jobs(spark, after=before)))


# --- a season of nightly runs through the command line --------------------------------------

STORY_LINES = 40_000
STORY_SEED = 7
STORY_TIMESTAMP = "M/d/yyyy H:mm"  # one of the published exports' patterns
STORY_STRFTIME = "%-m/%-d/%Y %-H:%M"
STORY_ENCODING = "ISO-8859-1"
STORY_HYSTERESIS = 2  # an Insider leaves after two runs outside cluster 1
ACCENTED = " CAFÉ"  # appended to some descriptions: not valid UTF-8 once encoded in ISO-8859-1
STEPS = {
    "train": ("2011-09-09", ["--mode", "train"]),
    "retrain": ("2011-11-09", ["--seed", "3"]),
    "score": ("2011-12-09", ["--mode", "score", "--model-version", "{first_model}"]),
    "refused": ("2011-12-09", ["--mode", "train"]),
}


@dataclass
class Nightly:
    output: Path
    source: Path
    raw: pd.DataFrame  # the export's good lines, as generated
    bad: list[tuple[str, str, str]]  # (marker, line, reason) injected among them
    runs: dict[str, support.CliRun] = field(default_factory=dict)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)  # the whole output after each step
    manifests: dict[str, dict] = field(default_factory=dict)

    def args(self, step: str) -> list[str]:
        as_of, extra = STEPS[step]
        common = ["run", "--env", "test", "--input", str(self.source), "--output", str(self.output)]
        reading = ["--format", "csv", "--timestamp-format", STORY_TIMESTAMP, "--encoding", STORY_ENCODING]
        first = self.manifests.get("train", {}).get("model_version", "")
        return [*common, *reading, "--as-of", as_of, *[a.format(first_model=first) for a in extra]]

    @staticmethod
    def date(step: str) -> str:
        return STEPS[step][0]

    def outcomes(self, as_of: str) -> support.Outcomes:
        """The oracle's outcomes of the good lines up to ``as_of``, the bad lines' reasons added."""
        rules = support.study_config().cleaning
        expected = support.expected_outcomes(self.raw, rules, as_of=dt.date.fromisoformat(as_of))
        for _, _, reason in self.bad:
            expected.quarantined[reason] = expected.quarantined.get(reason, 0) + 1
        return expected


def story_export(folder: Path) -> tuple[Path, pd.DataFrame, list]:
    """The nightly runs' input: a synthetic log exported as ``online_retail.dat`` (no .csv: the
    format must be given), timestamps as ``M/d/yyyy H:mm``, text in ISO-8859-1, with every kind
    of bad line mixed in."""
    raw = support.synthetic_frame(STORY_LINES, STORY_SEED)
    accented = (raw.index % 997 == 0) & raw["Description"].notna()
    raw.loc[accented, "Description"] = raw.loc[accented, "Description"] + ACCENTED
    good = support.to_csv_text(raw, timestamp_format=STORY_STRFTIME).splitlines()
    bad = support.bad_lines(when="3/1/2011 10:00", bad_when="2011-03-01 10:00:00")
    accented = support.csv_line("ACC01", code="POST", description="THÉ POSTAGE", when="3/1/2011 10:00")
    bad.append(("ACC01", accented, "non_product_code"))  # set aside, its text kept as decoded
    lines = good[1:]
    for position, (_, line, _) in enumerate(bad):
        lines.insert(1 + 1_000 * position, line)  # spread through the file
    source = support.write_csv(folder / "online_retail.dat", lines, header=good[0], encoding=STORY_ENCODING)
    return source, raw, bad


@pytest.fixture(scope="session")
def nightly(spark, tmp_path_factory) -> Nightly:
    folder = tmp_path_factory.mktemp("nightly")
    source, raw, bad = story_export(folder / "export")
    story = Nightly(output=folder / "out", source=source, raw=raw, bad=bad)
    environ = {"INSIDERS_SPARK__REFRESH__INSIDER_HYSTERESIS_RUNS": str(STORY_HYSTERESIS)}
    for step in STEPS:
        story.runs[step] = support.run_cli(story.args(step), environ=environ)
        manifest = support.partition(story.output, "runs", story.date(step)) / "manifest.json"
        if step != "refused":
            assert story.runs[step].status == 0, story.runs[step].stderr
            story.manifests[step] = json.loads(manifest.read_text())
        story.digests[step] = support.tree_digest(story.output)
    background.start_after("nightly", story)  # jobs that work on a copy of these outputs
    return story


# --- --k auto, stability, control group, backtest -------------------------------------------

TRUST_GRID = (7, 8, 9)
TRUST_CONTROL_SHARE = 0.25
TRUST_HORIZON = 60
TRUST_INSIDERS = "VIP"


@dataclass(frozen=True)
class TrustRun:
    output: Path
    cli: support.CliRun
    manifest: dict
    as_of: dt.date  # two days after the log's last sale: a nightly run on a day without sales
    last_sale: dt.date


@pytest.fixture(scope="session")
def trust_run(spark, tmp_path_factory, synthetic_outcomes) -> TrustRun:
    output = tmp_path_factory.mktemp("trust")
    last_sale = synthetic_outcomes.last_kept_date
    as_of = last_sale + dt.timedelta(days=2)
    environ = {
        "INSIDERS_SPARK__CLUSTERING__K_GRID": str(list(TRUST_GRID)),
        "INSIDERS_SPARK__QUALITY__STABILITY_SEEDS": "1",
        "INSIDERS_SPARK__QUALITY__STABILITY_BOOTSTRAPS": "2",
        "INSIDERS_SPARK__CONTROL__SCOPE": "all",
        "INSIDERS_SPARK__CONTROL__SHARE": str(TRUST_CONTROL_SHARE),
        "INSIDERS_SPARK__SEGMENTS__INSIDERS_NAME": TRUST_INSIDERS,
    }
    args = [
        "run", "--env", "test", "--output", str(output), "--synthetic-lines", str(LINES),
        "--k", "auto", "--backtest-horizon", str(TRUST_HORIZON), "--as-of", as_of.isoformat(),
    ]  # fmt: skip
    cli = support.run_cli(args, environ=environ)
    assert cli.status == 0, cli.stderr
    manifest = json.loads((support.partition(output, "runs", as_of) / "manifest.json").read_text())
    return TrustRun(output, cli, manifest, as_of, last_sale)


# --- the real log ---------------------------------------------------------------------------


HORIZON_DAYS = 90  # the real-log run's backtest: the CLV reference's pandas_udf, the capture curve
CONNECT_LINES = 20_000  # the Connect comparison without ../shared: k = 9 clusters on ~260 customers


@pytest.fixture(scope="session")
def real_log_run(spark, real_log_parquet, tmp_path_factory) -> JobRun:
    """With a backtest: tests/ops/test_connect.py compares a run over Spark Connect with it."""
    from insiders_spark.runs import run

    output = tmp_path_factory.mktemp("real")
    config = support.config(
        {"input.path": str(real_log_parquet), "output.path": str(output), "backtest.horizon_days": HORIZON_DAYS}
    )
    return JobRun(output, config, run(spark, config))


@pytest.fixture(scope="session")
def connect_twin_run(spark, tmp_path_factory) -> JobRun:
    """Without ../shared: the synthetic log of the Connect comparison, with the same backtest."""
    from insiders_spark.runs import run

    output = tmp_path_factory.mktemp("connect-twin")
    config = support.config(
        {"synthetic.lines": CONNECT_LINES, "output.path": str(output), "backtest.horizon_days": HORIZON_DAYS}
    )
    return JobRun(output, config, run(spark, config))
