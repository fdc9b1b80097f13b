"""Online evaluation in the world (book ch. 6, "Online metrics"): an A/B test and interleaving.

The same two rankers are compared twice. The A/B test splits users by a salted hash; each user
gets ``sessions`` home feeds from their arm, and we compare CTR and watch minutes per user with
confidence intervals. Team-draft interleaving shows every user one merged feed, each video
credited to the ranker that drafted it; the ranker whose videos are watched longer (seconds
watched, the A/B test's primary metric, rather than raw clicks) wins that user. Both are re-run
on growing prefixes of the user stream to show how many users each method needs before its
decision is significant (interleaving usually needs far fewer: Chapelle et al., 2012).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mlsd import experiments as ex
from mlsd import interleaving as il
from mlsd.systems.video_rec.pipeline import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

SLATE = 10


def _checkpoints(n: int) -> list[int]:
    pts = np.unique(np.geomspace(20, n, num=min(24, max(n // 10, 2))).astype(int))
    return [int(p) for p in pts if p >= 20] or [n]


def users_needed(p_values: list[tuple[int, float]], alpha: float = 0.05) -> int | None:
    """The smallest checkpoint from which the test stays significant (None if it never does)."""
    needed = None
    for n, p in p_values:
        needed = (n if needed is None else needed) if p < alpha else None
    return needed


def run_online(
    rec: Recommender,
    world: VideoRecWorld,
    users: np.ndarray,
    control: str,
    treatment: str,
    seed: int,
    sessions: int = 2,
) -> dict[str, Any]:
    """A/B test and team-draft interleaving of ``control`` vs ``treatment`` (pipeline modes)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(users)  # the order users arrive in
    recs = {mode: rec.recommend_users(order, 2 * SLATE, mode).ids for mode in (control, treatment)}
    arm_t = ex.assign_arms(order, salt=f"video-rec-ab-{seed}")
    clicks = np.zeros(len(order))
    minutes = np.zeros(len(order))
    for _ in range(sessions):
        slates = np.stack(
            [
                _pad((recs[treatment] if t else recs[control])[i][:SLATE], world, rng)
                for i, t in enumerate(arm_t)
            ]
        )
        c, m = world.serve(order, slates, rng)
        clicks += c.sum(axis=1)
        minutes += m.sum(axis=1)
    imps = sessions * SLATE
    ctr = ex.compare_proportions(
        int(clicks[~arm_t].sum()),
        int((~arm_t).sum() * imps),
        int(clicks[arm_t].sum()),
        int(arm_t.sum() * imps),
        metric="ctr",
    )
    watch = ex.compare_means(minutes[~arm_t], minutes[arm_t], metric="watch_minutes_per_user")
    srm = ex.srm_check(int((~arm_t).sum()), int(arm_t.sum()))
    decision, reason = ex.decide(watch, srm)  # CTR is reported, not a guardrail

    prefs = np.zeros(len(order), dtype=np.int64)
    for i in range(len(order)):
        merged, teams = il.team_draft_interleave(
            recs[treatment][i].tolist(), recs[control][i].tolist(), SLATE, rng
        )
        slate = _pad(np.asarray(merged), world, rng)[None, :]
        _, m = world.serve(order[i : i + 1], slate, rng)
        # credit = seconds watched: the preference follows the primary metric, not raw clicks
        prefs[i] = il.interleaving_preference((m[0, : len(teams)] * 60).astype(int).tolist(), teams)
    inter = il.interleaving_test(prefs.tolist())

    ab_curve, il_curve = [], []
    for n in _checkpoints(len(order)):
        t = arm_t[:n]
        if t.sum() >= 2 and (~t).sum() >= 2:
            ab_curve.append((n, ex.compare_means(minutes[:n][~t], minutes[:n][t]).p_value))
        il_curve.append((n, il.interleaving_test(prefs[:n].tolist())["p_value"]))
    return {
        "control": control,
        "treatment": treatment,
        "users": len(order),
        "sessions_per_user": sessions,
        "ab": {
            "ctr": ctr.to_dict(),
            "watch_minutes_per_user": watch.to_dict(),
            "srm": srm.to_dict(),
            "decision": str(decision),
            "reason": reason,
        },
        "interleaving": inter,
        "users_needed": {
            "ab_watch_time": users_needed(ab_curve),
            "interleaving": users_needed(il_curve),
        },
        "curves": {"ab": ab_curve, "interleaving": il_curve},
    }


def _pad(slate: np.ndarray, world: VideoRecWorld, rng: np.random.Generator) -> np.ndarray:
    """Fill a short list up to the slate size with random eligible videos."""
    slate = np.asarray(slate, dtype=np.int64)
    if len(slate) >= SLATE:
        return slate[:SLATE]
    pool = np.setdiff1d(world.eligible_videos(), slate)
    return np.concatenate([slate, rng.choice(pool, SLATE - len(slate), replace=False)])
