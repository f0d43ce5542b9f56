"""What every step of a run shares: the session, the configuration, the customers and the outputs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession

from insiders_spark.core.config import Config
from insiders_spark.core.progress import BackgroundStages, StageTimer
from insiders_spark.evaluation.kselection import KSelection
from insiders_spark.evaluation.stability import Stability
from insiders_spark.features.table import CustomerTable
from insiders_spark.model.profiles import ClusterProfile
from insiders_spark.model.programme_size import ProgrammeSize
from insiders_spark.model.segmentation import SegmentationModel
from insiders_spark.storage.outputs import RunOutputs


@dataclass
class RunContext:
    """One run in progress. ``published`` maps each output to where it will be live after the
    commit; ``run_info`` gathers what the manifest records about the run itself."""

    spark: SparkSession
    config: Config
    table: CustomerTable
    outputs: RunOutputs
    timer: StageTimer
    background: BackgroundStages
    mode: str
    started: float
    published: dict[str, str] = field(default_factory=dict)
    run_info: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.config.output.path

    @property
    def run_date(self) -> dt.date:
        return dt.date.fromisoformat(self.outputs.run_date)


@dataclass(frozen=True)
class FittedRun:
    """The model a run segments with (trained now, or loaded) and the customers it clustered.

    ``profiles`` are today's: a loaded model's clusters measured on today's customers.
    ``stability_failures``: the missed stability targets; None when stability was not measured.
    ``stability.votes`` gives each customer's ``insider_confidence`` (train runs with stability).
    """

    model: SegmentationModel
    clustered: DataFrame
    profiles: list[ClusterProfile]
    stability: Stability | None = None
    selection: KSelection | None = None
    stability_failures: list[str] | None = None
    programme: ProgrammeSize | None = None  # the programme's Insiders on today's customers (runs.publish)
