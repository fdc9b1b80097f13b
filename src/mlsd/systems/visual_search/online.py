"""Step 5b for visual search, online: an A/B test of the result list in the world (book ch. 2).

The chapter's online metrics are the click-through rate of the results and the time users
spend before they find what they want. In the world, every session is one user uploading a
fresh photo (never seen offline) of an evaluation product. Users are split 50/50 by a hash of
their id; control's results come from the best baseline encoder, treatment's from the
contrastive encoder, both by exact search over the same catalogue.

The simulated user scans the list top-down (position bias): rank ``r`` (1-based) is examined
with probability ``EXAMINE ** (r - 1)``, costs a few seconds to look at, and an examined result
is clicked with a probability set by its true relevance (same product, same category, other).
A session's click-through is whether any result was clicked; its time to first click is the
scanning time up to the first click (sessions with no click have none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd import experiments as exp
from mlsd.runner import RunContext
from mlsd.systems.visual_search.evaluation import K, RetrievalSet
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.streaming import exact_search
from mlsd.systems.visual_search.world import QUERY_PHOTO_BASE, VisualSearchWorld

log = logging.getLogger(__name__)

EXAMINE = 0.8  # P(examine rank r+1 | examined rank r): position bias
P_CLICK = {"product": 0.6, "category": 0.12, "other": 0.02}
SECONDS_PER_RESULT = (2.0, 0.8)  # gamma(shape, scale): time to look at one result
SESSION_PHOTO_BASE = QUERY_PHOTO_BASE + 100_000  # session photos differ from offline queries


@dataclass(frozen=True)
class Sessions:
    clicked: np.ndarray  # bool (S,): any click
    first_click_s: np.ndarray  # float (S,), nan without a click
    first_click_rank: np.ndarray  # int (S,), 0 without a click


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
    return Sessions(any_click, t, first + 1)  # fmt: skip


def step_online(ctx: RunContext) -> None:
    world: VisualSearchWorld | None = ctx.state.get("world")
    if world is None:
        return
    rs: RetrievalSet = ctx.state["retrieval"]
    assert rs.index_cats is not None
    seed = ctx.options.seed
    n = world.config.n_sessions
    rng = np.random.default_rng(seed + 21)
    users = np.arange(n, dtype=np.int64) + 1_000_000 * (seed + 1)
    products = rng.choice(world.product_ids("eval"), size=n)
    photos = world.photos(products, SESSION_PHOTO_BASE + np.arange(n))
    cats = world.category_of(products)
    is_treat = exp.assign_arms(users, salt=f"visual-search-ab-{seed}")
    arms = {"control": ctx.metrics["best_baseline"], "treatment": ctx.metrics["chosen_model"]}
    encoders: dict[str, ImageEncoder] = ctx.state["encoders"]
    sessions: dict[str, Sessions] = {}
    for j, (arm, model) in enumerate(arms.items()):
        ctx.progress(f"sessions of {arm}", j, 2)
        mask = is_treat if arm == "treatment" else ~is_treat
        top = rs.index_ids[exact_search(ctx.state["embeddings"][model][0],
                                        encoders[model].encode(photos[mask]), K)[1]]  # fmt: skip
        sessions[arm] = simulate_sessions(rs.index_groups[top], rs.index_cats[top],
                                          products[mask], cats[mask],
                                          np.random.default_rng([seed, 31, j]))  # fmt: skip
    c, t = sessions["control"], sessions["treatment"]
    ctr = exp.compare_proportions(int(c.clicked.sum()), len(c.clicked), int(t.clicked.sum()),
                                  len(t.clicked), metric="result_ctr")  # fmt: skip
    ttfc = exp.compare_means(c.first_click_s[c.clicked], t.first_click_s[t.clicked],
                             metric="time_to_first_click_s", higher_is_better=False)  # fmt: skip
    srm = exp.srm_check(len(c.clicked), len(t.clicked))
    decision, reason = exp.decide(ctr, srm, guardrails=[ttfc])
    arm_rows: dict[str, dict[str, Any]] = {
        arm: {"model": arms[arm], "sessions": len(s.clicked), "ctr": float(s.clicked.mean()),
              "mean_time_to_first_click_s": float(np.nanmean(s.first_click_s)),
              "mean_first_click_rank": float(s.first_click_rank[s.clicked].mean())}
        for arm, s in sessions.items()
    }  # fmt: skip
    ctx.metrics["online"] = {
        "sessions": n, "unit": "user (one session each, hash of user id)",
        **arm_rows, "ctr_test": ctr.to_dict(), "time_to_first_click_test": ttfc.to_dict(),
        "srm": srm.to_dict(), "decision": decision, "reason": reason,
        "click_model": {"examine": EXAMINE, "p_click": P_CLICK},
    }  # fmt: skip

    bp = ctx.blueprint
    bp.section("Online evaluation: A/B test")
    bp.text(
        f"{n:,} search sessions, one user each uploading a new photo of a product, split 50/50 "
        f"by a hash of the user id. Control shows the top {K} of **{arms['control']}**, "
        f"treatment of **{arms['treatment']}**. Users scan down the list (each next result is "
        f"looked at with probability {EXAMINE}) and click the same product with probability "
        f"{P_CLICK['product']}, the same category {P_CLICK['category']}, else "
        f"{P_CLICK['other']}."
    )
    bp.table(
        ["arm", "model", "sessions", "result CTR", "time to first click s",
         "rank of first click"],
        [[a, r["model"], r["sessions"], r["ctr"], r["mean_time_to_first_click_s"],
          r["mean_first_click_rank"]] for a, r in arm_rows.items()],
    )  # fmt: skip
    bp.table(
        ["metric", "control", "treatment", "difference", "95% CI", "p-value"],
        [[m.metric, m.control, m.treatment, m.diff, f"[{m.ci_low:.4g}, {m.ci_high:.4g}]",
          m.p_value] for m in (ctr, ttfc)],
        caption="Result CTR: two-proportion z-test; time to first click (clicked sessions "
        "only): Welch t-test.",
    )  # fmt: skip
    bp.text(f"Decision: **{decision}**: {reason}.")
