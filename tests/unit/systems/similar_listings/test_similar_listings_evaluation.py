"""Offline metrics on hand-made cases; the online carousel prefers the true similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.systems.similar_listings.evaluation import (
    Cases,
    K,
    build_cases,
    paired_rank_difference,
    score_model,
)
from mlsd.systems.similar_listings.evaluation_online import compute_online
from mlsd.systems.similar_listings.features import Sessions, sessions_from_log
from mlsd.systems.similar_listings.model import ListingSimilarity, OracleSimilarity, RegionPopular
from mlsd.systems.similar_listings.world import SimilarListingsConfig, SimilarListingsWorld


class ById(ListingSimilarity):
    """Similarity = minus the id distance (listing i's nearest are i±1, i±2, ...)."""

    def __init__(self, n: int = 30) -> None:
        self.n = n

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = -np.abs(np.asarray(query)[:, None] - np.arange(self.n)[None, :]) * 1.0
        return out


def test_booked_rank_and_next_click_metrics() -> None:
    region = np.zeros(30, np.int64)
    cases = Cases(np.array([10, 10]), np.array([11, 14]), np.array([10, 10]), np.array([12, 29]))
    s = score_model(ById(), cases, region, np.zeros(30, bool))
    # 11 ties with 9 at rank 1-2 (counted 1.5); 14 is beaten by 9, 11, 8, 12, 7, 13 (ties 6)
    assert s["booked_rank"] == (1.5 + 7.5) / 2
    assert s[f"booked_hr@{K}"] == 1.0
    assert s[f"next_hr@{K}"] == 0.5  # 12 is 3rd or 4th; 29 is far
    assert 0.0 < s[f"next_mrr@{K}"] <= 0.5 / 3
    assert s["cold_start"]["booked_cases"] == 0 and s["cold_start"]["booked_rank"] is None


def test_cases_use_the_first_clicks_of_booking_sessions() -> None:
    sessions = Sessions(
        np.array([0, 4, 6]), np.array([1, 2, 3, 4, 5, 6]), np.array([4, -1]), np.array([0, 0])
    )
    c = build_cases(sessions, seed=0)
    assert list(c.booked_query) == [1, 2] and list(c.booked_target) == [4, 4]
    assert c.booked_session is not None and list(c.booked_session) == [0, 0]
    assert list(c.next_query) == [1, 2, 3, 5] and list(c.next_target) == [2, 3, 4, 6]


def test_the_true_similarity_carousel_wins_online() -> None:
    cfg = SimilarListingsConfig(n_regions=2, listings_per_region=40, n_days=2, online_sessions=600)
    world = SimilarListingsWorld("tiny", 0, cfg)
    log = pd.concat(list(world.iter_log()), ignore_index=True)
    pop = RegionPopular().fit(sessions_from_log(log), world.n_listings)
    arms = {"control": ("pop", pop), "treatment": ("oracle", OracleSimilarity().fit(world))}
    res = compute_online(world, arms, seed=0)
    ab = res.ab
    assert ab.arms["treatment"]["carousel_ctr"] > ab.arms["control"]["carousel_ctr"]
    assert not ab.srm.mismatch and res.sessions > 500


class Constant(ListingSimilarity):
    def similarity(self, query: np.ndarray) -> np.ndarray:
        return np.zeros((len(query), 30))


def test_the_paired_rank_difference_averages_per_session() -> None:
    cases = Cases(
        np.array([10, 10, 20]),
        np.array([11, 14, 21]),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.array([0, 0, 1]),
    )
    d = paired_rank_difference(ById(), Constant(), cases, np.zeros(30, np.int64))
    # ById ranks 1.5, 7.5 (session 0) and 1.5 (session 1); all ties rank 15 everywhere
    assert d["sessions"] == 2 and d["diff"] == ((1.5 + 7.5) / 2 - 15 + 1.5 - 15) / 2
    assert d["ci_low"] < d["diff"] < d["ci_high"] and 0.0 < d["p_value"] < 1.0


def test_paired_comparison_averages_per_session_and_orients_the_rank() -> None:
    from mlsd.systems.similar_listings.evaluation_paired import paired_comparison

    region = np.zeros(30, np.int64)
    booked = (np.array([10, 10, 20, 5]), np.array([11, 12, 21, 6]), np.array([0, 0, 1, 2]))
    nxt = (np.array([10, 20, 5, 7]), np.array([11, 21, 6, 8]), np.array([0, 1, 2, 2]))
    out = paired_comparison(ById(), Constant(), booked, nxt, region, k=3)
    assert set(out) == {"booked_rank", "booked_hr@3", "next_hr@3"}
    rank = out["booked_rank"]
    # ById ranks every target at 1.5 (a tie with the other neighbour at distance 1), except
    # 12 at 3.5; Constant ties all 29 others: 15 everywhere; per session then averaged
    assert rank["n_control"] == 3 and rank["control"] == 15.0
    assert rank["treatment"] == ((1.5 + 3.5) / 2 + 1.5 + 1.5) / 3
    assert rank["diff"] < 0 and not rank["higher_is_better"]
    assert out["next_hr@3"]["treatment"] == 1.0 and out["next_hr@3"]["diff"] > 0
