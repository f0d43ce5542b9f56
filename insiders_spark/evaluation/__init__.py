"""How far to trust the segments: quality targets, stability, the choice of k, the backtest and
its CLV reference."""

from insiders_spark.evaluation.agreement import Contingency, adjusted_rand_index
from insiders_spark.evaluation.backtest import BacktestResult, run_backtest
from insiders_spark.evaluation.clv import fit_clv, to_rfm_summary, with_clv
from insiders_spark.evaluation.clv_model import BgNbd, ClvModel, GammaGamma, fit_clv_arrays
from insiders_spark.evaluation.kselection import KSelection, score_grid, select_k
from insiders_spark.evaluation.quality import SilhouetteCheck, check_silhouette, quality_verdict
from insiders_spark.evaluation.stability import Stability, StabilityRuns, fit_stability_runs, measure_stability

__all__ = [
    "BacktestResult",
    "BgNbd",
    "ClvModel",
    "Contingency",
    "GammaGamma",
    "KSelection",
    "SilhouetteCheck",
    "Stability",
    "StabilityRuns",
    "adjusted_rand_index",
    "check_silhouette",
    "fit_clv",
    "fit_clv_arrays",
    "fit_stability_runs",
    "measure_stability",
    "quality_verdict",
    "run_backtest",
    "score_grid",
    "select_k",
    "to_rfm_summary",
    "with_clv",
]
