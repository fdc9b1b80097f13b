"""The A/B test and team-draft interleaving in the world, and the monitoring step, on a short
tiny world."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.event_rec.evaluation_online import compute_interleaving, compute_online
from mlsd.systems.event_rec.features import Platform, daily_states, impression_features
from mlsd.systems.event_rec.model import PopularNearby, ScaledLogistic
from mlsd.systems.event_rec.monitoring import compute_monitoring
from mlsd.systems.event_rec.serving import world_tables
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(n_days=4, test_days=1, ab_days=2)


class _Negated:
    """A ranker that puts ``model``'s best last."""

    def __init__(self, model: ScaledLogistic) -> None:
        self.model = model

    def score(self, X: object) -> np.ndarray:
        return -self.model.predict_proba(X)[:, 1]


@pytest.fixture(scope="module")
def fitted() -> tuple:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    lg = w.log()
    tables = world_tables(w, lg)
    platform = Platform(tables.users, tables.events, tables.hoods)
    states = daily_states(
        platform, lg, list(range(CFG.n_days)), CFG.n_hosts, w.friends, w.follows, CFG.n_slots
    )
    X = impression_features(platform, states, lg.impressions)
    y = lg.impressions["register"].to_numpy(np.int64)
    return w, lg, platform, X, y, ScaledLogistic().fit(X, y)


def test_the_ab_test_runs_after_the_log_and_decides(fitted: tuple) -> None:
    w, lg, platform, _X, _y, lr = fitted
    baseline = PopularNearby().fit(_X)
    out = compute_online(
        w, platform, lg, ("popular_nearby", baseline), ("lr", lr), interleave=False
    )
    d = out.metrics()["online"]
    assert "interleaving" not in d
    assert d["days"] == [4, 5]
    assert d["control"]["policy"] == "popular_nearby" and d["treatment"]["policy"] == "lr"
    assert d["control"]["units"] + d["treatment"]["units"] > 0
    assert set(d["tests"]) == {"registrations_per_user", "ctr", "bookmark_rate", "revenue_per_user"}
    assert d["decision"] and d["srm"]["p_value"] > 0.001
    again = compute_online(
        w, platform, lg, ("popular_nearby", baseline), ("lr", lr), interleave=False
    )
    assert again.metrics()["online"]["tests"] == d["tests"]  # deterministic by seed


def test_interleaving_credits_each_session_to_one_team(fitted: tuple) -> None:
    w, lg, platform, X, _y, lr = fitted
    baseline = PopularNearby().fit(X)
    by_clicks, by_regs = compute_interleaving(
        w, platform, lg, ("popular_nearby", baseline), ("lr", lr), seed=0
    )
    assert by_clicks.a == "lr" and by_clicks.b == "popular_nearby"
    n = by_clicks.impressions
    assert n == by_regs.impressions == 2 * min(CFG.sessions_per_day, CFG.n_users)
    assert by_clicks.wins_a + by_clicks.wins_b + by_clicks.ties == n
    assert by_regs.ties >= by_clicks.ties  # a registration needs a click: fewer decided sessions
    assert 0.0 <= by_clicks.p_value <= 1.0
    # the same ranker on both teams: credit is split by the draft's coin flips, no preference
    same, _ = compute_interleaving(w, platform, lg, ("a", lr), ("b", lr), seed=0)
    assert same.preferred is None and same.wins_a > 0 and same.wins_b > 0


def test_interleaving_prefers_the_oracle_like_ranker_over_its_reverse(fitted: tuple) -> None:
    w, lg, platform, _X, _y, lr = fitted
    worst = _Negated(lr)
    res, _ = compute_interleaving(w, platform, lg, ("reversed", worst), ("lr", lr), seed=0)
    assert res.wins_a > res.wins_b and res.preferred == "lr"


def test_monitoring_compares_later_days_with_the_first(fitted: tuple) -> None:
    _w, lg, _platform, X, y, lr = fitted
    day = lg.impressions["day"].to_numpy()
    mon = compute_monitoring(X, y, day, lr, (0, 1, 2))
    assert mon.reference_days == (0,)
    assert list(mon.daily["day"]) == [1, 2, 3]
    assert {"prediction_psi", "calibration", "nce", "psi_d_dist_km"} <= set(mon.daily.columns)
    assert isinstance(mon.retrain, bool) and mon.reason
