"""Team-draft interleaving: fair merging and the preference test."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd import interleaving as il


def test_team_draft_interleave() -> None:
    rng = np.random.default_rng(0)
    a, b = [1, 2, 3, 4], [3, 5, 1, 6]
    for _ in range(20):
        merged, teams = il.team_draft_interleave(a, b, 4, rng)
        assert len(merged) == 4 == len(set(merged))
        assert teams.count("A") == teams.count("B") == 2
        # each team's first pick is its top item not already taken
        assert merged[teams.index("A")] in (1, 2)
        assert merged[teams.index("B")] in (3, 5)
    merged, teams = il.team_draft_interleave([1], [2, 3, 4], 4, rng)
    assert sorted(merged) == [1, 2, 3, 4] and teams.count("A") == 1


def test_interleaving_prefers_the_ranker_users_click() -> None:
    rng = np.random.default_rng(1)
    good, bad = [1, 2, 3, 4, 5], [9, 8, 7, 6, 5]
    liked = {1, 2, 3}
    prefs = []
    for _ in range(200):
        merged, teams = il.team_draft_interleave(good, bad, 4, rng)
        clicks = [int(i in liked and rng.random() < 0.5) for i in merged]
        prefs.append(il.interleaving_preference(clicks, teams))
    out = il.interleaving_test(prefs)
    assert out["wins_a"] > out["wins_b"] == 0
    assert out["p_value"] < 1e-6
    assert il.interleaving_preference([0, 1], ["A", "B"]) == -1


def test_interleaving_result_summarises_preferences() -> None:
    from mlsd.interleaving import InterleavingResult

    r = InterleavingResult.from_preferences("new", "old", [1] * 60 + [-1] * 20 + [0] * 20)
    assert (r.wins_a, r.wins_b, r.ties, r.impressions) == (60, 20, 20, 100)
    assert r.delta == pytest.approx(0.4) and r.preferred == "new"
    assert len(r.row()) == len(r.HEADER)
    assert r.to_dict()["preferred"] == "new"
    tie = InterleavingResult.from_preferences("new", "old", [1, -1, 0])
    assert tie.preferred is None
