"""Step 5b for visual search, online: an A/B test of the result list in the world (book ch. 2).

The chapter's online metrics are the click-through rate of the results and the time users
spend before they find what they want. In the world, every session is one user uploading a
fresh photo (never seen offline) of an evaluation product. Users are split 50/50 by a hash of
their id; control's results come from the best baseline encoder, treatment's from the
served encoder, both by exact search over the same catalogue.

The simulated user scans the list top-down (position bias): rank ``r`` (1-based) is examined
with probability ``EXAMINE ** (r - 1)``, costs a few seconds to look at, and an examined result
is clicked with a probability set by its true relevance (same product, same category, other).
A session's click-through is whether any result was clicked; its time to first click is the
scanning time up to the first click (sessions with no click have none). The result is an
:class:`mlsd.experiments.ABResult`: CTR is the primary metric, time to first click a guardrail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import experiments as exp
from mlsd.comparisons import compare_means, compare_proportions
from mlsd.experiments import ABResult
from mlsd.index import exact_top_k
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.runner import ProgressFn
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.world import QUERY_PHOTO_BASE, VisualSearchWorld

log = logging.getLogger(__name__)

EXAMINE = 0.8  # P(examine rank r+1 | examined rank r): position bias
P_CLICK = {"product": 0.6, "category": 0.12, "other": 0.02}
SECONDS_PER_RESULT = (2.0, 0.8)  # gamma(shape, scale): time to look at one result
SESSION_PHOTO_BASE = QUERY_PHOTO_BASE + 100_000  # session photos differ from offline queries
ARM_COLUMNS = (
    "model",
    "sessions",
    "ctr",
    "mean_time_to_first_click_s",
    "mean_first_click_rank",
)


@dataclass(frozen=True)
class Sessions:
    clicked: np.ndarray  # bool (S,): any click
    first_click_s: np.ndarray  # float (S,), nan without a click
    first_click_rank: np.ndarray  # int (S,), 0 without a click

    def figures(self, model: str) -> dict[str, Any]:
        return {
            "model": model,
            "sessions": len(self.clicked),
            "ctr": float(self.clicked.mean()),
            "mean_time_to_first_click_s": float(np.nanmean(self.first_click_s)),
            "mean_first_click_rank": float(self.first_click_rank[self.clicked].mean()),
        }


def simulate_sessions(
    top_groups: np.ndarray,
    top_cats: np.ndarray,
    query_groups: np.ndarray,
    query_cats: np.ndarray,
    rng: np.random.Generator,
) -> Sessions:
    """Users scanning result lists ``(S, K)`` (their products and categories) with position bias."""
    s, k = top_groups.shape
    p = np.where(
        top_groups == query_groups[:, None],
        P_CLICK["product"],
        np.where(top_cats == query_cats[:, None], P_CLICK["category"], P_CLICK["other"]),
    )
    examined = np.cumprod(rng.random((s, k)) < EXAMINE, axis=1).astype(bool)
    examined[:, 0] = True  # everyone looks at the first result
    clicks = examined & (rng.random((s, k)) < p)
    any_click: np.ndarray = np.asarray(clicks.any(axis=1))
    first = np.where(any_click, clicks.argmax(axis=1), -1)
    look = rng.gamma(SECONDS_PER_RESULT[0], SECONDS_PER_RESULT[1], size=(s, k))
    elapsed = np.cumsum(look, axis=1)
    t = np.where(any_click, elapsed[np.arange(s), np.maximum(first, 0)], np.nan)
    return Sessions(any_click, t, first + 1)


@dataclass(frozen=True)
class OnlineResult:
    """Step 5b: the A/B test and the click model it ran with."""

    ab: ABResult
    sessions: int

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                **self.ab.to_dict(),
                "sessions": self.sessions,
                "click_model": {"examine": EXAMINE, "p_click": P_CLICK},
            }
        }


def compute_online(
    world: VisualSearchWorld,
    rs: RetrievalSet,
    arms: dict[str, tuple[str, ImageEncoder, np.ndarray]],
    seed: int,
    progress: ProgressFn | None = None,
) -> OnlineResult:
    """``world.config.n_sessions`` sessions split by user between ``arms``: ``control`` and
    ``treatment`` each map to ``(model name, encoder, catalogue embeddings)``."""
    if rs.index_cats is None:
        raise ValueError("the online test needs the world's categories")
    n = world.config.n_sessions
    users = np.arange(n, dtype=np.int64)
    products = rng(seed, "online/session-products").choice(world.product_ids("eval"), size=n)
    photos = world.photos(products, SESSION_PHOTO_BASE + np.arange(n))
    cats = world.category_of(products)
    is_treat = exp.assign_arms(users, salt=f"visual-search-ab-{seed}")
    sessions: dict[str, Sessions] = {}
    for j, (arm, (_, encoder, catalogue)) in enumerate(arms.items()):
        if progress is not None:
            progress(f"sessions of {arm}", j, len(arms))
        mask = is_treat if arm == "treatment" else ~is_treat
        top = rs.index_ids[exact_top_k(catalogue, encoder.encode(photos[mask]), K)[1]]
        sessions[arm] = simulate_sessions(
            rs.index_groups[top],
            rs.index_cats[top],
            products[mask],
            cats[mask],
            rng(seed, f"online/clicks/{arm}"),
        )
    c, t = sessions["control"], sessions["treatment"]
    ctr = compare_proportions(
        int(c.clicked.sum()),
        len(c.clicked),
        int(t.clicked.sum()),
        len(t.clicked),
        metric="result_ctr",
    )
    ttfc = compare_means(
        c.first_click_s[c.clicked],
        t.first_click_s[t.clicked],
        metric="time_to_first_click_s",
        higher_is_better=False,
    )
    ab = ABResult.decided(
        unit="user (one session each, hash of user id)",
        arms={arm: s.figures(arms[arm][0]) for arm, s in sessions.items()},
        tests={ctr.metric: ctr, ttfc.metric: ttfc},
        primary=ctr.metric,
        guardrails=(ttfc.metric,),
        srm=exp.srm_check(len(c.clicked), len(t.clicked)),
    )
    return OnlineResult(ab, n)


def report_online(bp: Blueprint, result: OnlineResult) -> None:
    ab = result.ab
    control, treatment = ab.arms["control"]["model"], ab.arms["treatment"]["model"]
    bp.section("Online evaluation: A/B test")
    bp.text(
        f"{result.sessions:,} search sessions, one user each uploading a new photo of a product, "
        f"split 50/50 by a hash of the user id. Control shows the top {K} of **{control}**, "
        f"treatment of **{treatment}**. Users scan down the list (each next result is "
        f"looked at with probability {EXAMINE}) and click the same product with probability "
        f"{P_CLICK['product']}, the same category {P_CLICK['category']}, else "
        f"{P_CLICK['other']}."
    )
    bp.table(
        [
            "arm",
            "model",
            "sessions",
            "result CTR",
            "time to first click s",
            "rank of first click",
        ],
        ab.arm_rows(ARM_COLUMNS),
    )
    bp.table(
        ABResult.TEST_HEADER,
        ab.test_rows(),
        caption="Result CTR: two-proportion z-test; time to first click (clicked sessions "
        "only): Welch t-test.",
    )
    bp.text(ab.verdict())
