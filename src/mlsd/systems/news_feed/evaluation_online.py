"""Step 5, online: the A/B test of the multi-task ranker against the single classifier, and the
experiment on the engagement weights.

The world runs ``ab_days`` more days after the log. Every request retrieves its candidates, the
arm's ranker scores them from features of the impressions logged so far (the policy sees the
day's start, as a daily feature pipeline would), the re-ranker applies diversity, freshness and
the demotion of flagged posts, and the world draws the reactions with position bias and the
surveys. The unit of randomisation and analysis is the user (a salted hash): time spent (dwell
seconds) per user is the primary metric; click-through rate (delta method), reactions, hides and
blocks per user (Welch) and the survey's satisfaction (per answering user) are reported, hides
and satisfaction as guardrails.

The **weights experiment** runs the same days once per weight setting, every user on the
multi-task ranker (common random numbers: the same sessions and draws), to show how the weights
move the online metrics, with the oracle (true expected score, default weights) for reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.comparisons import MetricComparison, compare_means, compare_ratios
from mlsd.experiments import ABResult, aggregate_per_unit, assign_arms, srm_check
from mlsd.report import Blueprint
from mlsd.systems.news_feed.features import FeedState, Platform, pair_frame
from mlsd.systems.news_feed.model import ranking_score
from mlsd.systems.news_feed.serving_rerank import RerankConfig, rerank_sessions
from mlsd.systems.news_feed.world import Log, NewsFeedWorld, Policy
from mlsd.systems.news_feed.world_config import (
    DAY_S,
    DEFAULT_WEIGHTS,
    WEIGHT_SETTINGS,
    EngagementWeights,
)

SALT = "news-feed/ab-test"
Scorer = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]  # (features, candidates) -> scores


def reranked_policy(
    world: NewsFeedWorld, platform: Platform, scorer: Scorer, rerank: RerankConfig
) -> Policy:
    """A world policy: features from the impressions before the day, ``scorer``, re-ranking."""
    posts = platform.posts
    author, media = posts["author_id"].to_numpy(), posts["media"].to_numpy()
    created, flagged = posts["created_ts"].to_numpy(), posts["flagged"].to_numpy()

    def policy(cand: pd.DataFrame, history: pd.DataFrame) -> np.ndarray:
        ts = cand["ts"].to_numpy(np.int64)
        state = FeedState.build(history, int(ts.min()) // DAY_S * DAY_S, platform)
        u, p = cand["user_id"].to_numpy(np.int64), cand["post_id"].to_numpy(np.int64)
        X = pair_frame(platform, state, u, p, ts)
        s = scorer(X, cand)
        return rerank_sessions(
            cand,
            s,
            author[p],
            media[p],
            (ts - created[p]) / 3600.0,
            flagged[p] == 1,
            rerank,
            world.config.list_len,
        )

    return policy


@dataclass(frozen=True)
class ArmFigures:
    users: np.ndarray
    per_user: dict[str, np.ndarray]  # impressions, click, reactions, dwell, hide, block
    survey_users: np.ndarray
    survey: np.ndarray  # mean answer per answering user

    def summary(
        self, mask: np.ndarray | None = None, smask: np.ndarray | None = None
    ) -> dict[str, float]:
        m = np.ones(len(self.users), bool) if mask is None else mask
        sm = np.ones(len(self.survey), bool) if smask is None else smask
        pu = self.per_user
        imps = max(float(pu["impressions"][m].sum()), 1.0)
        return {
            "users": int(m.sum()),
            "impressions": int(pu["impressions"][m].sum()),
            "ctr": float(pu["click"][m].sum() / imps),
            "reactions_per_user": float(pu["reactions"][m].mean()),
            "time_spent_s_per_user": float(pu["dwell"][m].mean()),
            "hides_per_user": float(pu["hide"][m].mean()),
            "blocks_per_user": float(pu["block"][m].mean()),
            "satisfaction": float(self.survey[sm].mean()) if sm.any() else float("nan"),
            "surveys": int(sm.sum()),
        }


def arm_figures(lg: Log) -> ArmFigures:
    imp = lg.impressions
    users = imp["user_id"].to_numpy()
    uniq, n = aggregate_per_unit(users, np.ones(len(imp)))
    per_user = {"impressions": n}
    for col in ("click", "dwell", "hide", "block"):
        per_user[col] = aggregate_per_unit(users, imp[col].to_numpy(np.float64))[1]
    reactions = imp[["like", "comment", "share"]].to_numpy(np.float64).sum(axis=1)
    per_user["reactions"] = aggregate_per_unit(users, reactions)[1]
    answered = lg.sessions.dropna(subset=["survey"])
    s_users, s_sum = aggregate_per_unit(
        answered["user_id"].to_numpy(), answered["survey"].to_numpy()
    )
    _, s_n = aggregate_per_unit(answered["user_id"].to_numpy(), np.ones(len(answered)))
    return ArmFigures(uniq, per_user, s_users, s_sum / np.maximum(s_n, 1))


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult
    days: tuple[int, ...]
    weights: dict[str, dict[str, float]]  # setting -> online figures (all users on multi-task)
    weight_values: dict[str, dict[str, float]]

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {**self.ab.to_dict(), "days": list(self.days)},
            "weights_experiment": {
                n: {"weights": self.weight_values.get(n), **f} for n, f in self.weights.items()
            },
        }


def _tests(fig: ArmFigures, treat: np.ndarray, s_treat: np.ndarray) -> dict[str, MetricComparison]:
    pu, c, t = fig.per_user, ~treat, treat
    out = {
        "time_spent_s_per_user": compare_means(
            pu["dwell"][c], pu["dwell"][t], metric="time spent (s) per user"
        ),
        "ctr": compare_ratios(
            pu["click"][c],
            pu["impressions"][c],
            pu["click"][t],
            pu["impressions"][t],
            metric="click-through rate",
        ),
        "reactions_per_user": compare_means(
            pu["reactions"][c], pu["reactions"][t], metric="reactions per user"
        ),
        "hides_per_user": compare_means(
            pu["hide"][c], pu["hide"][t], metric="hides per user", higher_is_better=False
        ),
        "blocks_per_user": compare_means(
            pu["block"][c], pu["block"][t], metric="blocks per user", higher_is_better=False
        ),
    }
    if (~s_treat).sum() >= 2 and s_treat.sum() >= 2:
        out["satisfaction"] = compare_means(
            fig.survey[~s_treat], fig.survey[s_treat], metric="survey satisfaction (1-5)"
        )
    return out


def compute_online(
    world: NewsFeedWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    rerank: RerankConfig,
    progress: Any = None,
) -> OnlineTest:
    cfg = world.config
    days = range(cfg.n_days, cfg.total_days)

    def ab_scorer(X: pd.DataFrame, cand: pd.DataFrame) -> np.ndarray:
        treat = assign_arms(cand["user_id"].to_numpy(), SALT)
        s = np.empty(len(X))
        if (~treat).any():
            s[~treat] = ranking_score(control[1], X[~treat])
        if treat.any():
            s[treat] = ranking_score(treatment[1], X[treat])
        return s

    ab_log = world.simulate(
        days,
        reranked_policy(world, platform, ab_scorer, rerank),
        "ab-test",
        log_.impressions,
        progress,
    )
    fig = arm_figures(ab_log)
    treat = assign_arms(fig.users, SALT)
    s_treat = assign_arms(fig.survey_users, SALT)
    arms = {
        "control": {"policy": control[0], **fig.summary(~treat, ~s_treat)},
        "treatment": {"policy": treatment[0], **fig.summary(treat, s_treat)},
    }
    tests = _tests(fig, treat, s_treat)
    guards = tuple(g for g in ("hides_per_user", "satisfaction") if g in tests)
    ab = ABResult.decided(
        unit="user",
        arms=arms,
        tests=tests,
        primary="time_spent_s_per_user",
        guardrails=guards,
        srm=srm_check(int((~treat).sum()), int(treat.sum())),
    )
    weights = weights_experiment(world, platform, log_, treatment[1], rerank, progress)
    values = {n: w.to_dict() for n, w in WEIGHT_SETTINGS.items()}
    return OnlineTest(ab, tuple(days), weights, values)


def weights_experiment(
    world: NewsFeedWorld,
    platform: Platform,
    log_: Log,
    model: Any,
    rerank: RerankConfig,
    progress: Any = None,
    settings: dict[str, EngagementWeights] | None = None,
) -> dict[str, dict[str, float]]:
    days = range(world.config.n_days, world.config.total_days)
    out = {}
    for name, w in (settings or WEIGHT_SETTINGS).items():

        def scorer(X: pd.DataFrame, cand: pd.DataFrame, w: EngagementWeights = w) -> np.ndarray:
            return ranking_score(model, X, w)

        policy = reranked_policy(world, platform, scorer, rerank)
        lg = world.simulate(days, policy, "weights-experiment", log_.impressions, progress)
        out[name] = arm_figures(lg).summary()
    oracle_lg = world.simulate(
        days, world.oracle_policy(DEFAULT_WEIGHTS), "weights-experiment", log_.impressions, progress
    )
    out["oracle (default weights, no re-ranking)"] = arm_figures(oracle_lg).summary()
    return out


COLUMNS = (
    "users",
    "impressions",
    "ctr",
    "reactions_per_user",
    "time_spent_s_per_user",
    "hides_per_user",
    "blocks_per_user",
    "satisfaction",
)


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    ab = result.ab
    bp.text(
        f"The world runs {len(result.days)} more days; users are split 50/50 by a salted hash. "
        f"Control: **{ab.arms['control']['policy']}** (the single classifier); treatment: "
        f"**{ab.arms['treatment']['policy']}**, by the default weighted engagement score. Both "
        "retrieve the same candidates and share the re-ranker. Primary metric: total time spent "
        "per user; guardrails: hides per user and survey satisfaction."
    )
    bp.table(["arm", "policy", *COLUMNS], ab.arm_rows(["policy", *COLUMNS]))
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
    bp.section("Online: how the engagement weights move the metrics")
    bp.text(
        "The same days once per weight setting, every user on the multi-task ranker (the same "
        "sessions and random draws): the weights are a product decision, and this is its price "
        "list. Settings: "
        + "; ".join(
            f"**{n}** " + ", ".join(f"{k} {v:g}" for k, v in w.items())
            for n, w in result.weight_values.items()
        )
        + "."
    )
    bp.table(
        ["setting", *COLUMNS],
        [[n, *(f.get(c) for c in COLUMNS)] for n, f in result.weights.items()],
    )
    _weights_figure(bp, result)


def _weights_figure(bp: Blueprint, result: OnlineTest) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, f in result.weights.items():
        x, y = f["time_spent_s_per_user"], f["satisfaction"]
        ax.scatter([x], [y])
        ax.annotate(name.split(" (")[0], (x, y), fontsize=8)
    ax.set_xlabel("time spent per user (s)")
    ax.set_ylabel("survey satisfaction (1-5)")
    bp.figure(fig, "weights", "Engagement weights: time spent against satisfaction")
