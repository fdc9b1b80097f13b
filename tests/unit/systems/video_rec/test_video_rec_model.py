"""Fitting every stage, and the models' contract cases."""

from __future__ import annotations

import pandas as pd

from mlsd.contracts import KINDS
from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.model import FitReport, ModelsResult, contract_cases
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld


def test_fit_report_times_every_stage(
    world_log: tuple[VideoRecWorld, pd.DataFrame, Catalogue],
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
) -> None:
    _, log, cat = world_log
    _, rec, report = fitted
    assert set(report.seconds) == {
        "point_in_time_indexes",
        "popular",
        "cowatch",
        "two_tower",
        "ann_index",
        "ranking",
    }
    assert all(s >= 0 for s in report.seconds.values())
    assert report.tower_pairs == int(log["click"].sum())  # one pair per click
    assert len(report.tower_losses) == 3
    assert rec.day == int(log["day"].max()) + 1
    assert rec.index.kind == "hnsw" and len(rec.index) == len(cat.videos)


def test_models_metrics_follow_the_layout(
    fitted: tuple[VideoRecWorld, Recommender, FitReport],
) -> None:
    from mlsd.systems.video_rec.model import FitConfig
    from mlsd.text import make_encoder

    _, rec, report = fitted
    m = ModelsResult(rec, make_encoder("hashing"), FitConfig(), report, "hashing", 3, 0.1).metrics()
    models = m["models"]
    assert {"title_encoder", "popular", "cowatch", "two_tower", "ann_index", "ranking"} == set(
        models
    )
    assert models["ranking"]["click_auc"] == report.ranking["click_auc"]
    assert "features" not in models["ranking"] and m["features"]["ranking"]
    assert m["oracle"] == {"click_nce": report.click_nce_oracle}


def test_contract_cases_cover_the_retrievers_and_the_ranker() -> None:
    cases = contract_cases()
    names = [c.name for c in cases]
    assert len(set(names)) == len(names) == 9
    assert {"video_rec_als", "video_rec_bpr", "video_rec_mult_vae", "video_rec_lightgcn"} <= set(
        names
    )
    assert {c.kind for c in cases} == {"retriever", "ranker"} and {c.kind for c in cases} <= set(
        KINDS
    )
