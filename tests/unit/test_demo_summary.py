"""The demo's recommender table: every candidate of the run, what is served and why, and the
served model over tuned ALS with its interval (the figures issue 23 asks the summary for)."""

from __future__ import annotations

from typing import Any

from cinepulse_devstack.demo import model_rows


def _summary(**extra: Any) -> dict[str, Any]:
    metrics = ("ndcg@10", "recall@10", "precision@10")
    return {
        "version": "v1",
        "status": "published",
        "served": "blend",
        "why": "best on validation",
        "ndcg@10": 0.152,
        "als_ndcg@10": 0.141,
        "popularity_ndcg@10": 0.088,
        "candidates": {
            name: dict(zip(metrics, (score, score / 2, score / 4), strict=True))
            for name, score in (("popularity", 0.088), ("als", 0.141), ("blend", 0.152))
        },
        "ratios": {
            "ndcg@10_vs_als": 1.078,
            "ndcg@10_vs_als_ci95": [1.041, 1.118],
            "ndcg@10_vs_popularity": 1.727,
        },
        "seconds": 12.5,
    } | extra


def test_every_candidate_and_the_ratio_with_its_interval_are_rows() -> None:
    rows = dict(model_rows(_summary()))
    assert rows["served"] == "blend"
    assert rows["why"] == "best on validation"
    assert [name.strip() for name in rows if name.startswith("  ")] == [
        "popularity",
        "als",
        "blend",
    ]
    assert rows["  als"] == "NDCG@10 0.1410  recall 0.0705  precision 0.0352"
    assert rows["served / ALS, NDCG@10"] == "1.078x (95% 1.041-1.118)"
    assert rows["served / popularity, NDCG@10"] == "1.73x"


def test_an_older_summary_without_candidates_keeps_its_three_figures() -> None:
    rows = dict(model_rows(_summary(candidates=None, ratios=None)))
    assert rows["NDCG@10 ALS (baseline)"] == "0.1410"
    assert "served / ALS, NDCG@10" not in rows
