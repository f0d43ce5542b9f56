"""The quality sections of the report, rendered from hand-made measurements (no Spark)."""

from insiders_spark.core.config import QualityConfig
from insiders_spark.evaluation.kselection import KScore, KSelection
from insiders_spark.evaluation.quality import SilhouetteCheck
from insiders_spark.evaluation.stability import RunAgreement, Stability
from insiders_spark.model.profiles import build_profiles
from insiders_spark.report.quality import render_quality


def _profiles():
    def summary(cluster, customers, revenue):
        means = {
            f"{n}_mean": 1.0
            for n in (
                "recency_days",
                "qty_invoices",
                "qty_items",
                "qty_products",
                "frequency",
                "qty_returns",
                "avg_ticket",
            )
        }
        return {
            "kmeans_cluster": cluster,
            "customers": customers,
            "revenue_total": revenue,
            "gross_revenue_mean": revenue / customers,
            **means,
        }

    return build_profiles([summary(0, 8, 600.0), summary(1, 50, 300.0), summary(2, 42, 100.0)])


def _stability():
    runs = (
        RunAgreement("seed", 43, None, 100, 1.0, 1.0, 8),
        RunAgreement("bootstrap", 42, 43, 97, 0.55, 0.48, 12),
    )
    return Stability(k=3, reference_seed=42, customers=100, reference_insiders=8, runs=runs, targets=QualityConfig())


def test_every_section_with_its_numbers():
    check = SilhouetteCheck(mllib=0.8718, customers=100, sample=0.8702, sample_rows=40, sample_seed=42)
    stability = _stability()
    score = KScore(
        k=3,
        silhouette=0.87,
        smallest_cluster_share=0.08,
        insiders_share=0.08,
        insiders_revenue_share=0.6,
        stability=stability,
        failures=tuple(stability.failures()),
    )
    selection = KSelection(
        scores=(score, KScore(k=5, error="only 4 distinct points", failures=("cannot fit",))),
        chosen=3,
        fallback=True,
        reason="no k in 3..5 meets every target; kept the configured k=3",
        targets=QualityConfig(),
        leaves=4,
        seeds=1,
        bootstraps=1,
        seconds=1.0,
    )
    page = render_quality(
        profiles=_profiles(), silhouette=check, stability=stability, selection=selection, targets=QualityConfig()
    )
    for heading in ("## Quality targets", "## Silhouette", "## Stability", "## Choice of k"):
        assert heading in page
    assert "| silhouette (squared Euclidean) | >= 0.75 | 0.872 | yes |" in page
    assert "| Insiders, share of customers | <= 10% | 8.0% | yes |" in page
    assert "| stability: ARI, worst seed run | >= 0.9 | 1.000 | yes |" in page  # the seed run agrees
    assert "| stability: ARI, bootstrap p10 | >= 0.9 | 0.550 | **no** |" in page  # the one refit does not
    assert "| stability: Insiders Jaccard, bootstrap p10 | >= 0.9 | 0.480 | **no** |" in page
    assert "Not every target is met" in page
    assert (
        "| every customer, exact from the leaf table (= MLlib `ClusteringEvaluator`) | 0.872 | 100 | squaredEuclidean |"
        in page
    )
    assert "sqeuclidean (the same)" in page and "-0.002" in page
    assert "| bootstrap refits (the job) | 1 | 0.550 | 0.550 | 0.550 | 0.480 | 0.480 | 0.480 |" in page
    assert "| other seeds | 1 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in page
    assert "| bootstrap | 42 | 43 | 97 | 0.550 | 0.480 | 12 |" in page
    failures = "bootstrap ARI p10 0.550 < 0.9; bootstrap Insiders Jaccard p10 0.480 < 0.9"
    assert f"Not every stability target is met: {failures}." in page
    assert f"| 3 **(chosen)** | 0.870 | 8.00% | 8.0% | 60.0% | 0.550 | 0.480 | no: {failures} |" in page
    assert "| 5 | – | – | – | – | – | – | no: only 4 distinct points |" in page
    assert "Chosen: k = 3. no k in 3..5" in page


def test_only_the_sections_measured():
    page = render_quality(stability=_stability(), heading_level=3, targets=QualityConfig())
    assert page.startswith("### Stability") and "Choice of k" not in page and "Quality targets" not in page
