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
  - ``baseline_registered``: past gross revenue with guest invoices last (see ``guests_last``);
  - ``clv``: the textbook customer-lifetime-value model fitted at ``c``: BG/NBD's expected purchase
    days in the horizon × Gamma-Gamma's expected spend per purchase day, then past gross revenue
    (``evaluation.clv``; guests last with ``guests_last``). Fitted on at most
    ``backtest.clv_sample_rows`` customers; a log it cannot be fitted on (too few repeat buyers)
    leaves it out of the curve, with the reason in the result's ``clv`` entry.

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

from insiders_spark.evaluation.backtest.curve import CURVE_SCHEMA, capture_curve, head_counts, to_curve_frame, to_ranks
from insiders_spark.evaluation.backtest.names import FUTURE_TREE_INPUTS, NEXT_REVENUE, RANK_KEY
from insiders_spark.evaluation.backtest.result import BacktestResult, CurvePoint, Window, gap_closed
from insiders_spark.evaluation.backtest.run import last_invoice_date, run_backtest
from insiders_spark.evaluation.backtest.windows import to_revenue_windows, with_model_features

__all__ = [
    "CURVE_SCHEMA",
    "FUTURE_TREE_INPUTS",
    "NEXT_REVENUE",
    "RANK_KEY",
    "BacktestResult",
    "CurvePoint",
    "Window",
    "capture_curve",
    "gap_closed",
    "head_counts",
    "last_invoice_date",
    "run_backtest",
    "to_curve_frame",
    "to_ranks",
    "to_revenue_windows",
    "with_model_features",
]
