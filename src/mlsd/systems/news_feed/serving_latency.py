"""Step 6 for the news feed, measured: the served model's artifacts, the latency of each stage of
a request against the budget, and a published post retrievable without a restart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.metrics import latency_summary
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.news_feed.serving import (
    NewsFeedScorer,
    load_scorer,
    save_serving_artifacts,
    world_tables,
)
from mlsd.systems.news_feed.serving_rerank import RerankConfig
from mlsd.systems.news_feed.world import Log, NewsFeedWorld
from mlsd.systems.news_feed.world_config import DAY_S, EngagementWeights


@dataclass(frozen=True)
class ServingChoice:
    chosen: str
    because: str
    latency_ms: dict[str, dict[str, float]]
    budget_ms: float
    clock_ts: int
    candidates: dict[str, float]  # per request: mean, p50, max
    new_post_retrievable: bool
    weights: dict[str, float]
    rerank: dict[str, Any]

    def metrics(self) -> dict[str, Any]:
        return {
            "chosen_model": self.chosen,
            "serving": {
                "because": self.because,
                "latency_ms": self.latency_ms,
                "budget_ms": self.budget_ms,
                "within_budget": self.latency_ms["total"]["p99"] <= self.budget_ms,
                "clock_ts": self.clock_ts,
                "candidates_per_request": self.candidates,
                "new_post_retrievable_without_restart": self.new_post_retrievable,
                "weights": self.weights,
                "rerank": self.rerank,
            },
        }


def new_post_check(scorer: NewsFeedScorer) -> bool:
    """Publish a post by a friend of some user and see it among that user's candidates."""
    friends = scorer.platform.friends
    if len(friends) == 0:
        return False
    user, author = int(friends["user_id"].iloc[0]), int(friends["friend_id"].iloc[0])
    post = scorer.publish(author, 0, 0)
    return bool(post in set(scorer.retrieve(user, scorer.clock_ts + 1).tolist()))


def compute_serving(
    world: NewsFeedWorld,
    lg: Log,
    model: Any,
    chosen: str,
    because: str,
    weights: EngagementWeights,
    rerank: RerankConfig,
    artifacts_dir: Path,
    n_requests: int,
    budget_ms: float,
    seed: int,
) -> ServingChoice:
    """Save the served model's artifacts, load them back as the server does, time
    ``n_requests`` in-process requests and check that a new post is retrievable."""
    cfg = world.config
    clock = cfg.n_days * DAY_S
    tables = world_tables(world, lg.impressions, clock)
    save_serving_artifacts(
        artifacts_dir, model, chosen, tables, clock, weights, rerank, cfg.lookback_h
    )
    scorer = load_scorer(artifacts_dir)
    users = rng(seed, "news-feed/latency-users").integers(0, scorer.n_users, n_requests)
    stages: dict[str, list[float]] = {}
    cands = []
    for u in users:
        feed = scorer.feed(int(u), k=20)
        cands.append(feed.candidates)
        for stage, ms in feed.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    latency = {s: latency_summary(v) for s, v in stages.items()}
    c = np.asarray(cands, np.float64)
    candidates = {"mean": float(c.mean()), "p50": float(np.median(c)), "max": float(c.max())}
    return ServingChoice(
        chosen,
        because,
        latency,
        budget_ms,
        clock,
        candidates,
        new_post_check(scorer),
        weights.to_dict(),
        rerank.to_dict(),
    )


def report_serving(bp: Blueprint, result: ServingChoice, n_requests: int) -> None:
    bp.section("Serving")
    total = result.latency_ms["total"]["p99"]
    bp.text(
        f"Served model: **{result.chosen}**, {result.because}. A request retrieves the user's "
        "unseen posts of friends, followed pages and groups "
        f"({result.candidates['mean']:.0f} candidates on average, at most "
        f"{result.candidates['max']:.0f}), computes their features from the reaction counts as "
        "of the serving clock, scores every head, then re-ranks (freshness, "
        f"demotion of flagged posts, author and media diversity: {result.rerank}). Latency over "
        f"{n_requests} in-process requests (ms); total p99 {total:.1f} ms against a budget of "
        f"{result.budget_ms:.0f} ms ({'within' if total <= result.budget_ms else 'over'} budget)."
    )
    bp.table(
        ["stage", "p50", "p90", "p99"],
        [[s, v.get("p50"), v.get("p90"), v.get("p99")] for s, v in result.latency_ms.items()],
    )
    bp.text(
        "A post published to the running service (by a friend of a user) is "
        + (
            "retrievable at once, without a restart."
            if result.new_post_retrievable
            else "**not** retrievable."
        )
    )
