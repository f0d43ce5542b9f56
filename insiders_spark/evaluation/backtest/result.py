"""What a backtest measured: its window, the capture curve of every ranking, the Insiders' point."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from insiders_spark.core.names import (
    BASELINE,
    FORESIGHT,
)

log = logging.getLogger(__name__)


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
    # the clv reference's fit: {"measured": True, parameters...} or {"measured": False, "error": why};
    # empty where it was not attempted
    clv: Mapping[str, Any] = field(default_factory=dict)

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
            **({"clv": dict(self.clv)} if self.clv else {}),
        }


def gap_closed(model: float, baseline: float, foresight: float) -> float | None:
    """Share of the baseline-to-foresight gap a model closes (None when there is no gap)."""
    gap = foresight - baseline
    return (model - baseline) / gap if gap > 0 else None
