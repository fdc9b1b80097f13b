"""Step 5, offline: each reaction head on the logged test days, and the feed each ranker would
build, next to the oracle.

* **Per head**: ROC-AUC and PR-AUC of every binary reaction on the logged impressions of the test
  days (the position as logged), dwell-time error in seconds; the oracle is the world's true
  probability times the slot's position bias. The single classifier has one probability, scored
  against every reaction.
* **The feed**: on a sample of test sessions the world labels every retrieved candidate (not
  only the ten the logging policy showed): the expected weighted engagement score at the top slot
  and one draw of the reactions. nDCG@10 of each ranker's order, with gains the drawn weighted
  score (the oracle, ranking by the expected score, is the ceiling) and with gains the expected
  score (the oracle is 1); negative scores count 0.
* **Engagement vs satisfaction**: the expected engagement, dwell and satisfaction value of each
  ranker's top 10, and of the oracles of engagement and of satisfaction.
* Slices: new users (signed up in the last week) and the rare reactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlsd.engine import Engine, LocalEngine
from mlsd.metrics import pr_auc, roc_auc
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.news_feed.features import FeedState, Platform, pair_frame
from mlsd.systems.news_feed.features_retrieval import pair_keys
from mlsd.systems.news_feed.model import MODELS, SINGLE, predict_heads, ranking_score
from mlsd.systems.news_feed.world import Log, NewsFeedWorld, position_bias
from mlsd.systems.news_feed.world_config import (
    BINARY_HEADS,
    DAY_S,
    DEFAULT_WEIGHTS,
    HEADS,
    RARE_HEADS,
    EngagementWeights,
)

K = 10
NEW_USER_DAYS = 7


@dataclass
class EvalSet:
    """Sessions of some days with every retrieved candidate labelled by the world."""

    X: pd.DataFrame
    session: np.ndarray
    true_heads: np.ndarray  # (n, 7) at the top slot
    drawn: np.ndarray  # (n, 7) one draw of the reactions at the top slot
    value: np.ndarray  # satisfaction value
    new_user: np.ndarray


def build_eval_set(
    world: NewsFeedWorld,
    platform: Platform,
    log_: Log,
    days: tuple[int, ...],
    n_sessions: int,
    seed: int,
    purpose: str,
) -> EvalSet:
    imp = log_.impressions
    per_day = max(1, n_sessions // max(len(days), 1))
    parts: list[dict[str, Any]] = []
    offset = 0
    n_posts = len(world.posts)
    for d in days:
        before = imp[imp["day"] < d]
        state = FeedState.build(before, d * DAY_S, platform)
        sess = log_.sessions[log_.sessions["day"] == d]
        take = np.sort(
            rng(seed, f"news-feed/{purpose}/sessions/{d}").permutation(len(sess))[:per_day]
        )
        sess = sess.iloc[take].reset_index(drop=True)
        seen = np.sort(pair_keys(before["user_id"], before["post_id"], n_posts))
        blocks = before[before["block"] == 1]
        blocked = np.sort(pair_keys(blocks["user_id"], blocks["author_id"], world.config.n_authors))
        cand = world.candidates(sess, seen, blocked)
        u, p, ts = (cand[c].to_numpy(np.int64) for c in ("user_id", "post_id", "ts"))
        X = pair_frame(platform, state, u, p, ts)
        drawn = world.draw(rng(seed, f"news-feed/{purpose}/labels/{d}"), u, p, ts, None)
        parts.append(
            {
                "X": X,
                "session": cand["session"].to_numpy() + offset,
                "true_heads": world.true_heads(u, p, ts),
                "drawn": drawn[list(HEADS)].to_numpy(np.float64),
                "value": world.true_value(u, p, ts),
                "new_user": X["d_user_days"].to_numpy() < NEW_USER_DAYS,
            }
        )
        offset += len(sess)
    return EvalSet(
        X=pd.concat([q["X"] for q in parts], ignore_index=True),
        **{
            k: np.concatenate([q[k] for q in parts])
            for k in ("session", "true_heads", "drawn", "value", "new_user")
        },
    )


def ndcg_per_session(
    session: np.ndarray, gain: np.ndarray, score: np.ndarray, k: int = K
) -> pd.Series:
    """nDCG@k per session of the order by ``score`` with ``gain`` (negatives count 0); sessions
    whose gains are all 0 are left out."""
    g = np.maximum(gain, 0.0)
    df = pd.DataFrame({"s": session, "g": g, "score": score})
    disc = 1.0 / np.log2(np.arange(2, k + 2))

    def dcg(frame: pd.DataFrame, by: str) -> pd.Series:
        f = frame.sort_values(["s", by], ascending=[True, False], kind="stable")
        rank = f.groupby("s").cumcount().to_numpy()
        w = np.where(rank < k, disc[np.minimum(rank, k - 1)], 0.0)
        return (f["g"] * w).groupby(f["s"]).sum()

    ideal = dcg(df, "g")
    got = dcg(df, "score")
    keep = ideal > 0
    return (got[keep] / ideal[keep]).rename("ndcg")


def top_k_means(
    session: np.ndarray, score: np.ndarray, values: dict[str, np.ndarray], k: int = K
) -> dict[str, float]:
    """Per session, the mean of each value over the top ``k`` by ``score``; averaged."""
    df = pd.DataFrame({"s": session, "score": score, **values})
    df = df.sort_values(["s", "score"], ascending=[True, False], kind="stable")
    top = df[df.groupby("s").cumcount() < k]
    return {name: float(top.groupby("s")[name].mean().mean()) for name in values}


@dataclass(frozen=True)
class FeedScores:
    """The feed metrics of every ranker (and the oracles) on one evaluation set."""

    ndcg: dict[str, dict[str, float]]  # ranker -> ndcg@10, ndcg@10_expected, new-user slice
    feed: dict[str, dict[str, float]]  # ranker -> top-10 expected engagement, dwell, value
    paired: dict[str, float]  # multi_task - any_engagement, nDCG@10 expected, with 95% CI
    sessions: int
    rows: int


def feed_scores(
    models: dict[str, Any], ev: EvalSet, weights: EngagementWeights = DEFAULT_WEIGHTS
) -> FeedScores:
    expected = weights.score(ev.true_heads)
    realised = weights.score(ev.drawn)
    scores = {n: ranking_score(models[n], ev.X, weights) for n in MODELS}
    scores["oracle"] = expected
    scores["satisfaction oracle"] = ev.value
    values = {"engagement": expected, "dwell_s": ev.true_heads[:, -1], "satisfaction": ev.value}
    ndcg: dict[str, dict[str, float]] = {}
    feed: dict[str, dict[str, float]] = {}
    per: dict[str, pd.Series] = {}
    new_sessions = np.unique(ev.session[ev.new_user])
    for name, s in scores.items():
        real = ndcg_per_session(ev.session, realised, s)
        exp_ = ndcg_per_session(ev.session, expected, s)
        per[name] = exp_
        new = exp_[exp_.index.isin(new_sessions)]
        ndcg[name] = {
            "ndcg@10": float(real.mean()),
            "ndcg@10_expected": float(exp_.mean()),
            "new_users_ndcg@10_expected": float(new.mean()) if len(new) else math.nan,
            "new_user_sessions": len(new),
        }
        feed[name] = top_k_means(ev.session, s, values)
    d = (per["multi_task"] - per[SINGLE].reindex(per["multi_task"].index)).to_numpy()
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else math.nan
    paired = {
        "diff": float(d.mean()),
        "ci_low": float(d.mean() - 1.96 * se),
        "ci_high": float(d.mean() + 1.96 * se),
    }
    return FeedScores(ndcg, feed, paired, len(np.unique(ev.session)), len(ev.session))


def predict_shard(X: pd.DataFrame, model: Any) -> np.ndarray | None:
    """One shard of the batch scoring: one model's heads on ``X`` (None: a single task)."""
    return predict_heads(model, X)


def head_table(
    models: dict[str, Any],
    X: pd.DataFrame,
    Y: np.ndarray,
    oracle: np.ndarray,
    engine: Engine | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """model -> head -> roc_auc / pr_auc (binary heads), mae_s / rmse_s (dwell), on logged
    impressions (``oracle``: the world's expected reactions at their logged slots); the
    models score ``X`` one per shard on ``engine``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    heads = (engine or LocalEngine()).map(predict_shard, list(models.values()), shared=X)
    preds: dict[str, np.ndarray | None] = dict(zip(models, heads, strict=True))
    preds["oracle"] = oracle
    for name, h in preds.items():
        single = np.asarray(models[name].predict_proba(X)[:, 1]) if h is None else None
        rows: dict[str, dict[str, float]] = {}
        for j, head in enumerate(BINARY_HEADS):
            p = h[:, j] if h is not None else np.asarray(single)
            y = Y[:, j] > 0
            ok = 0 < y.sum() < len(y)
            rows[head] = {
                "roc_auc": roc_auc(y, p) if ok else math.nan,
                "pr_auc": pr_auc(y, p) if ok else math.nan,
                "rate": float(y.mean()),
            }
        if h is not None:
            err = h[:, -1] - Y[:, -1]
            rows["dwell"] = {
                "mae_s": float(np.abs(err).mean()),
                "rmse_s": float(np.sqrt((err**2).mean())),
            }
        out[name] = rows
    return out


@dataclass(frozen=True)
class OfflineEvaluation:
    heads: dict[str, dict[str, dict[str, float]]]
    test: FeedScores
    validation: FeedScores
    chosen: str  # the best validation nDCG@10 (expected gains)
    disagreement: dict[str, float]

    def metrics(self) -> dict[str, Any]:
        models = {
            n: {
                "offline": {
                    "heads": self.heads[n],
                    **self.test.ndcg[n],
                    "feed_top10": self.test.feed[n],
                },
                "validation": self.validation.ndcg[n],
            }
            for n in MODELS
        }
        oracle = {
            "offline": {
                "heads": self.heads["oracle"],
                **self.test.ndcg["oracle"],
                "feed_top10": self.test.feed["oracle"],
            },
            "satisfaction_oracle": {
                **self.test.ndcg["satisfaction oracle"],
                "feed_top10": self.test.feed["satisfaction oracle"],
            },
        }
        return {
            "models": models,
            "oracle": oracle,
            "evaluation": {
                "sessions": self.test.sessions,
                "rows": self.test.rows,
                "paired_multi_task_vs_single": self.test.paired,
                "best_on_validation": self.chosen,
                "engagement_vs_satisfaction": self.disagreement,
            },
        }


def disagreement(
    ev: EvalSet, log_: Log, weights: EngagementWeights = DEFAULT_WEIGHTS
) -> dict[str, float]:
    """How far engagement and satisfaction disagree: the rank correlation of the expected
    engagement score and the satisfaction value over the candidates, and of each logged
    session's realised engagement with its survey answer."""
    rho = float(stats.spearmanr(weights.score(ev.true_heads), ev.value).statistic)
    imp = log_.impressions
    realised = weights.score(imp[list(HEADS)].to_numpy(np.float64))
    per_session = pd.Series(realised).groupby(imp["session_id"].to_numpy()).sum()
    sess = log_.sessions.set_index("session_id")
    answered = sess["survey"].dropna()
    eng = per_session.reindex(answered.index).fillna(0.0)
    rho_s = (
        float(stats.spearmanr(eng.to_numpy(), answered.to_numpy()).statistic)
        if len(answered) > 2
        else math.nan
    )
    return {
        "candidates_spearman_engagement_vs_value": rho,
        "sessions_spearman_engagement_vs_survey": rho_s,
        "surveys": len(answered),
    }


def compute_offline(
    models: dict[str, Any],
    world: NewsFeedWorld,
    test_X: pd.DataFrame,
    test_Y: np.ndarray,
    test_imp: pd.DataFrame,
    test_ev: EvalSet,
    valid_ev: EvalSet,
    log_: Log,
    engine: Engine | None = None,
) -> OfflineEvaluation:
    u, p, ts = (test_imp[c].to_numpy(np.int64) for c in ("user_id", "post_id", "ts"))
    bias = position_bias(test_imp["position"].to_numpy())
    oracle = world.true_heads(u, p, ts) * bias[:, None]
    heads = head_table(models, test_X, test_Y, oracle, engine)
    valid = feed_scores(models, valid_ev)
    chosen = max(MODELS, key=lambda n: valid.ndcg[n]["ndcg@10_expected"])
    return OfflineEvaluation(
        heads, feed_scores(models, test_ev), valid, chosen, disagreement(test_ev, log_)
    )


def report_offline(bp: Blueprint, result: OfflineEvaluation) -> None:
    names = [*MODELS, "oracle"]
    bp.text(
        "**Per reaction head**, on the logged impressions of the test days (position as logged; "
        "the oracle is the world's true probability times the slot's position bias). The single "
        "classifier has one probability, scored against every reaction. Rare reactions: "
        f"{', '.join(RARE_HEADS)}."
    )
    rows = []
    for head in BINARY_HEADS:
        rate = result.heads["oracle"][head]["rate"]
        rows.append(
            [
                head,
                rate,
                *(result.heads[n][head]["roc_auc"] for n in names),
                *(result.heads[n][head]["pr_auc"] for n in names),
            ]
        )
    bp.table(
        ["reaction", "rate", *(f"AUC {n}" for n in names), *(f"PR-AUC {n}" for n in names)],
        rows,
        caption="ROC-AUC and PR-AUC per head (multi-task vs single-task)",
    )
    bp.table(
        ["model", "dwell MAE s", "dwell RMSE s"],
        [
            [n, result.heads[n]["dwell"]["mae_s"], result.heads[n]["dwell"]["rmse_s"]]
            for n in names
            if "dwell" in result.heads[n]
        ],
        caption="Dwell-time error (seconds)",
    )
    t = result.test
    bp.text(
        f"**The feed**: {t.sessions:,} test sessions, every retrieved candidate labelled "
        f"({t.rows:,} pairs). nDCG@10 against the weighted engagement score: drawn reactions "
        "(the oracle ranks by the expected score: the ceiling) and expected score (oracle = 1); "
        "new users: signed up in the last week. The satisfaction oracle ranks by what the posts "
        "are worth to the user."
    )
    feed_names = [*names, "satisfaction oracle"]
    bp.table(
        [
            "ranker",
            "nDCG@10",
            "nDCG@10 expected",
            "new users nDCG@10 exp.",
            "top-10 engagement",
            "top-10 dwell s",
            "top-10 satisfaction",
        ],
        [
            [
                n,
                t.ndcg[n]["ndcg@10"],
                t.ndcg[n]["ndcg@10_expected"],
                t.ndcg[n]["new_users_ndcg@10_expected"],
                t.feed[n]["engagement"],
                t.feed[n]["dwell_s"],
                t.feed[n]["satisfaction"],
            ]
            for n in feed_names
        ],
        caption="The feed each ranker builds, test days",
    )
    pd_ = t.paired
    bp.text(
        f"Multi-task minus single classifier, nDCG@10 (expected), paired over sessions: "
        f"{pd_['diff']:+.4f} (95% CI [{pd_['ci_low']:.4f}, {pd_['ci_high']:.4f}]). Served model, "
        f"chosen on the validation days' sessions: **{result.chosen}**."
    )
    d = result.disagreement
    bp.text(
        "**Engagement vs satisfaction.** Over the candidates, the rank correlation of the "
        f"expected engagement score with the satisfaction value is "
        f"{d['candidates_spearman_engagement_vs_value']:.3f}; over the {d['surveys']:,} logged "
        "sessions with a survey answer, realised engagement vs the answer: "
        f"{d['sessions_spearman_engagement_vs_survey']:.3f}. The two oracles' rows above show the "
        "price of each: ranking for engagement gives up satisfaction, and the reverse."
    )
