"""The report's programme, confidence and stability sections, rendered from hand-made values."""

from insiders_spark.core.config import QualityConfig
from insiders_spark.evaluation.stability import BOOTSTRAP, REVENUE_CUT, SEED, RunAgreement, Stability
from insiders_spark.model.profiles import build_profiles
from insiders_spark.model.programme import CUT, FITS, InsiderRule
from insiders_spark.model.programme_size import Group, ProgrammeSize
from insiders_spark.report.programme import confidence_markdown, programme_markdown
from insiders_spark.report.quality import render_quality, stability_markdown, targets_markdown
from insiders_spark.segments.confidence import InsiderConfidence, NearMiss


def _programme(step):
    cluster = Group(800, 0.16, 0.62)
    insiders = Group(500, 0.10, 0.55) if step == CUT else cluster
    return ProgrammeSize(0.10, 5_000, 500, step, insiders, cluster, 0.81, InsiderRule(frozenset({3, 4}), 2, 10.0, 7))


def _run(kind, ari, jaccard, seed=1, tree=None):
    return RunAgreement(kind, seed, tree, 5_000.0, ari, jaccard, 480)


def _stability():
    boots = [_run(BOOTSTRAP, 0.5 + i / 40, 0.6 + i / 50, tree=i) for i in range(20)]
    cuts = [_run(REVENUE_CUT, 0.85 + i / 200, 0.88 + i / 300, seed=43 + i) for i in range(20)]
    return Stability(
        k=9,
        reference_seed=42,
        customers=5_000,
        reference_insiders=480,
        runs=(_run(SEED, 1.0, 1.0, seed=43), *boots),
        targets=QualityConfig(),
        revenue_cut=tuple(cuts),
    )


def test_the_programme_section_says_when_the_bound_bit_and_what_it_cost():
    cut = programme_markdown(_programme(CUT))
    assert "at most 10% of the customers: 500 of 5,000" in cut
    assert "**The bound bit.** Cluster 1 holds 800 customers (16.0%)" in cut
    assert "the other 300 are cluster 1's waiting list" in cut
    assert "| cluster 1 | 800 | 16.0% | 62.0% |" in cut and "| the programme's Insiders | 500 | 10.0% | 55.0% |" in cut
    assert "did not bind" in programme_markdown(_programme(FITS))
    described = _programme(CUT).describe()
    assert described["binding"] and described["cost"] == {"insiders_revenue_share": 0.07, "silhouette": 0.0}
    assert described["rule"]["boundary_leaf"] == 2


def test_the_confidence_section_splits_core_and_borderline_and_lists_near_misses():
    misses = tuple(NearMiss(i, f"C{i}", 2, "Loyal", 1000.0 - i, 0.8) for i in range(3))
    text = confidence_markdown(InsiderConfidence(insiders=480, core=400, borderline=80, near_misses=3, listed=misses))
    assert "| core Insiders (confidence >= 0.9) | 400 |" in text
    assert "| borderline Insiders (< 0.9) | 80 |" in text
    assert "| near misses: not Insiders, confidence >= 0.5 | 3 |" in text
    assert "| C0 | 2 | Loyal | 1,000.00 | 0.80 |" in text


def test_stability_is_shown_beside_the_revenue_cut_with_min_p10_and_median():
    stability = _stability()
    text = stability_markdown(stability)
    assert "| bootstrap refits (the job) | 20 | 0.500 | 0.547 | 0.738 |" in text
    assert "| revenue cut (reference) | 20 |" in text
    assert "| other seeds | 1 | 1.000 |" in text
    assert "bootstrap ARI p10 0.547 < the revenue cut's 0.860" in text
    failures = stability.failures()
    assert "bootstrap ARI p10 0.547 < 0.9" in failures and not any(f.startswith("seed runs") for f in failures)
    assert stability.to_dict()["bootstrap"] == {
        "runs": 20,
        "ari": {"min": 0.5, "p10": 0.5475, "median": 0.7375},
        "insiders_jaccard": {"min": 0.6, "p10": 0.638, "median": 0.79},
    }


def test_the_targets_judge_the_programmes_insiders_and_the_bootstrap_p10():
    means = {f"{n}_mean": 1.0 for n in ("recency_days", "qty_invoices", "qty_items", "qty_products", "frequency")}
    means |= {"qty_returns_mean": 0.0, "avg_ticket_mean": 1.0}
    profiles = build_profiles(
        [
            {"kmeans_cluster": 0, "customers": 800, "revenue_total": 620.0, "gross_revenue_mean": 620 / 800, **means},
            {
                "kmeans_cluster": 1,
                "customers": 4_200,
                "revenue_total": 380.0,
                "gross_revenue_mean": 380 / 4_200,
                **means,
            },
        ]
    )
    text = targets_markdown(
        profiles=profiles, silhouette=0.8, stability=_stability(), targets=QualityConfig(), programme=_programme(CUT)
    )
    assert "| Insiders, share of customers | <= 10% | 10.0% | yes |" in text  # the programme's, not cluster 1's 16%
    assert "| stability: ARI, bootstrap p10 against the revenue cut's | >= 0.860 | 0.547 | **no** |" in text
    assert "| stability: ARI, worst seed run | >= 0.9 | 1.000 | yes |" in text
    page = render_quality(profiles=profiles, stability=_stability(), targets=QualityConfig(), programme=_programme(CUT))
    assert "## Programme size" in page and "## Stability" in page
