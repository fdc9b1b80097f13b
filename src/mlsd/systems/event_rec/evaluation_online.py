"""Step 5, online: an A/B test in the world of the served ranker against popular-nearby, and
team-draft interleaving of the same two rankers.

The world runs ``ab_days`` more days after the log. Users are split by a salted hash
(:func:`mlsd.experiments.assign_arms`); each session's open events pass the same event filtering,
then the arm's model ranks them and the top ``list_len`` are shown. The world draws clicks,
bookmarks and registrations with its true probabilities and position bias. The unit of
randomisation and of analysis is the user: registrations and revenue per user (Welch), and
click-through and bookmark rates per impression as ratios of per-user sums (delta method).

Interleaving runs the same days again from the same logged state (a parallel world): every
session's list is a team-draft merge (:func:`mlsd.interleaving.team_draft_interleave`) of the
served ranker's list (team A) and popular-nearby's (team B); the team whose events got more
clicks (and, separately, registrations) in a session wins it; a sign test over the sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd.comparisons import compare_means, compare_ratios
from mlsd.experiments import ABResult, aggregate_per_unit, assign_arms, srm_check
from mlsd.interleaving import InterleavingResult, interleaving_preference, team_draft_interleave
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.event_rec.features import Platform, distance_km, in_filter, pair_frame
from mlsd.systems.event_rec.model import score
from mlsd.systems.event_rec.world import EventRecWorld, Log
from mlsd.systems.event_rec.world_config import DAY_S
from mlsd.systems.event_rec.world_state import SocialState

SALT = "event-rec/ab-test"


@dataclass(frozen=True)
class OnlineTest:
    ab: ABResult
    days: tuple[int, ...]
    interleaving: InterleavingResult | None = None  # team A = treatment, credited by clicks
    interleaving_registrations: InterleavingResult | None = None  # the same, by registrations

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.ab.to_dict(), "days": list(self.days)}
        if self.interleaving is not None and self.interleaving_registrations is not None:
            out["interleaving"] = {
                "method": "team-draft",
                "team_a": self.interleaving.a,
                "team_b": self.interleaving.b,
                "by_clicks": self.interleaving.to_dict(),
                "by_registrations": self.interleaving_registrations.to_dict(),
            }
        return {"online": out}


def policy_scorer(platform: Platform) -> Any:
    """``scores(state, candidates, model)``: the serving path's filtering and ranking of
    candidate (user, event) pairs as a policy in the world (the A/B, interleaving, canary)."""
    hood_e = platform.event_hood()

    def scores(state: SocialState, cand: pd.DataFrame, model: Any) -> np.ndarray:
        u = cand["user_id"].to_numpy(np.int64)
        e = cand["event_id"].to_numpy(np.int64)
        ts = cand["ts"].to_numpy(np.int64)
        kept = in_filter(platform, u, e, ts)
        # filtered-out events only fill a short list, nearest first; only the kept are featurised
        s = -1e6 - distance_km(platform, u, e)
        if kept.any():
            X = pair_frame(platform, state, u[kept], e[kept], ts[kept], event_hood=hood_e)
            s[kept] = score(model, X)
        return s

    return scores


def compute_interleaving(
    world: EventRecWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    seed: int,
    progress: Any = None,
) -> tuple[InterleavingResult, InterleavingResult]:
    """Team-draft interleaving of ``treatment`` (team A) and ``control`` (team B) over the A/B
    test's days, from the same logged state: wins by clicks and by registrations."""
    cfg = world.config
    scores = policy_scorer(platform)
    draft = rng(seed, "event-rec/interleaving/draft")
    teams: dict[tuple[int, int, int], str] = {}

    def policy(state: SocialState, cand: pd.DataFrame) -> np.ndarray:
        s_a = scores(state, cand, treatment[1])
        s_b = scores(state, cand, control[1])
        out = np.full(len(cand), -1e12)
        sess = cand["session"].to_numpy()
        ev = cand["event_id"].to_numpy(np.int64)
        day = int(cand["ts"].to_numpy()[0]) // DAY_S
        users = cand["user_id"].to_numpy(np.int64)
        order = np.argsort(sess, kind="stable")
        bounds = np.flatnonzero(np.diff(sess[order])) + 1
        for rows in np.split(order, bounds):
            rank_a = rows[np.argsort(-s_a[rows], kind="stable")]
            rank_b = rows[np.argsort(-s_b[rows], kind="stable")]
            merged, team = team_draft_interleave(
                rank_a.tolist(), rank_b.tolist(), cfg.list_len, draft
            )
            out[merged] = -np.arange(len(merged), dtype=np.float64)
            for i, t in zip(merged, team, strict=True):
                teams[(int(users[i]), int(ev[i]), day)] = t
        return out

    days = range(cfg.n_days, cfg.total_days)
    il_log = world.simulate(
        days, policy, "interleaving", log_.registrations, log_.invites, progress=progress
    )
    imp = il_log.impressions
    team = np.array(
        [
            teams[(int(u), int(e), int(d))]
            for u, e, d in zip(imp["user_id"], imp["event_id"], imp["day"], strict=True)
        ]
    )
    out = []
    for col in ("click", "register"):
        prefs = [
            interleaving_preference(imp[col].to_numpy()[rows].tolist(), team[rows].tolist())
            for rows in imp.groupby("session_id").indices.values()
        ]
        out.append(InterleavingResult.from_preferences(treatment[0], control[0], prefs))
    return out[0], out[1]


def compute_online(
    world: EventRecWorld,
    platform: Platform,
    log_: Log,
    control: tuple[str, Any],
    treatment: tuple[str, Any],
    seed: int = 0,
    progress: Any = None,
    interleave: bool = True,
) -> OnlineTest:
    cfg = world.config
    scores = policy_scorer(platform)

    def policy(state: SocialState, cand: pd.DataFrame) -> np.ndarray:
        treat = assign_arms(cand["user_id"].to_numpy(np.int64), SALT)
        s = np.empty(len(cand))
        s[~treat] = scores(state, cand[~treat], control[1])
        s[treat] = scores(state, cand[treat], treatment[1])
        return s

    days = range(cfg.n_days, cfg.total_days)
    ab_log = world.simulate(
        days, policy, "ab-test", log_.registrations, log_.invites, progress=progress
    )
    imp = ab_log.impressions
    price = platform.events["price"].to_numpy()[imp["event_id"].to_numpy()]
    users, n_imp = aggregate_per_unit(imp["user_id"].to_numpy(), np.ones(len(imp)))
    per_user = {"impressions": n_imp}
    for col in ("click", "register", "bookmark"):
        per_user[col] = aggregate_per_unit(imp["user_id"].to_numpy(), imp[col].to_numpy())[1]
    per_user["revenue"] = aggregate_per_unit(
        imp["user_id"].to_numpy(), imp["register"].to_numpy() * price
    )[1]
    treat = assign_arms(users, SALT)
    arms_mask = {"control": ~treat, "treatment": treat}
    arms = {}
    for arm, m in arms_mask.items():
        policy_name = control[0] if arm == "control" else treatment[0]
        arms[arm] = {
            "policy": policy_name,
            "units": int(m.sum()),
            "impressions": int(per_user["impressions"][m].sum()),
            "ctr": float(per_user["click"][m].sum() / max(per_user["impressions"][m].sum(), 1)),
            "registrations_per_user": float(per_user["register"][m].mean()),
            "bookmark_rate": float(
                per_user["bookmark"][m].sum() / max(per_user["impressions"][m].sum(), 1)
            ),
            "revenue_per_user": float(per_user["revenue"][m].mean()),
        }
    c, t = ~treat, treat
    tests = {
        "registrations_per_user": compare_means(
            per_user["register"][c], per_user["register"][t], metric="registrations per user"
        ),
        "ctr": compare_ratios(
            per_user["click"][c],
            per_user["impressions"][c],
            per_user["click"][t],
            per_user["impressions"][t],
            metric="click-through rate",
        ),
        "bookmark_rate": compare_ratios(
            per_user["bookmark"][c],
            per_user["impressions"][c],
            per_user["bookmark"][t],
            per_user["impressions"][t],
            metric="bookmark rate",
        ),
        "revenue_per_user": compare_means(
            per_user["revenue"][c], per_user["revenue"][t], metric="revenue per user"
        ),
    }
    ab = ABResult.decided(
        unit="user",
        arms=arms,
        tests=tests,
        primary="registrations_per_user",
        guardrails=("ctr",),
        srm=srm_check(int(c.sum()), int(t.sum())),
    )
    il = (
        compute_interleaving(world, platform, log_, control, treatment, seed, progress)
        if interleave
        else (None, None)
    )
    return OnlineTest(ab, tuple(days), il[0], il[1])


def report_online(bp: Blueprint, result: OnlineTest) -> None:
    ab = result.ab
    bp.text(
        f"The world runs {len(result.days)} more days; users are split 50/50 by a salted hash. "
        f"Control: **{ab.arms['control']['policy']}**; treatment: "
        f"**{ab.arms['treatment']['policy']}**. Both rank the same filtered candidates; the "
        "world draws clicks, bookmarks and registrations with position bias. Primary metric: "
        "registrations per user; guardrail: click-through rate."
    )
    bp.table(
        [
            "arm",
            "policy",
            "users",
            "impressions",
            "CTR",
            "registrations/user",
            "bookmark rate",
            "revenue/user",
        ],
        ab.arm_rows(
            [
                "policy",
                "units",
                "impressions",
                "ctr",
                "registrations_per_user",
                "bookmark_rate",
                "revenue_per_user",
            ]
        ),
    )
    bp.table(list(ab.TEST_HEADER), ab.test_rows())
    bp.text(ab.verdict())
    if result.interleaving is None or result.interleaving_registrations is None:
        return
    il, reg = result.interleaving, result.interleaving_registrations
    bp.text(
        f"**Team-draft interleaving** of the same two rankers over the same {len(result.days)} "
        "days, from the same logged state: every session sees one merged list (team A: "
        f"**{il.a}**, team B: **{il.b}**; the team with fewer picks drafts next, a coin flip on "
        "ties); a session is won by the team whose events got more clicks (or registrations). "
        "delta = (A wins - B wins) / sessions; p from a sign test over the decided sessions."
    )
    bp.table(
        ["credited by", *InterleavingResult.HEADER],
        [["clicks", *il.row()], ["registrations", *reg.row()]],
    )
    verdict = il.preferred or "neither"
    bp.text(
        f"Interleaving prefers **{verdict}** by clicks "
        f"(and **{reg.preferred or 'neither'}** by registrations); the A/B test decided "
        f"**{ab.decision}**. Every session compares both rankers, so interleaving needs fewer "
        "users for a preference; it does not measure revenue or registrations per user, which "
        "only the A/B test does."
    )
