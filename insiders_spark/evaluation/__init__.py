"""How far to trust the segments: quality targets, stability, the choice of k, the backtest."""

from insiders_spark.evaluation.agreement import Contingency, adjusted_rand_index
from insiders_spark.evaluation.backtest import BacktestResult, run_backtest
from insiders_spark.evaluation.kselection import KSelection, score_grid, select_k
from insiders_spark.evaluation.quality import SilhouetteCheck, check_silhouette, quality_verdict
from insiders_spark.evaluation.stability import Stability, StabilityRuns, fit_stability_runs, measure_stability

__all__ = [
    "BacktestResult",
    "Contingency",
    "KSelection",
    "SilhouetteCheck",
    "Stability",
    "StabilityRuns",
    "adjusted_rand_index",
    "check_silhouette",
    "fit_stability_runs",
    "measure_stability",
    "quality_verdict",
    "run_backtest",
    "score_grid",
    "select_k",
]
