"""Step 5 for video search, online, in the world: the served ranker against text-only search
(BM25), both re-ranked the same way, in an A/B test and by team-draft interleaving.

Searches of the day after the logs; users are randomised by a salted hash of their id. The
A/B test compares click-through rate (primary), watch seconds per search and the time to the
first click, per user (the unit of randomisation; ratios by the delta method). Interleaving
shows every search one merged page (team draft), and a search prefers the ranker whose
results got more clicks. The number of searches each method needed for a significant
decision is read off its p-value as searches accumulate: the smallest count from which it
stays below 0.05.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlsd import experiments as ex
from mlsd.comparisons import compare_means, compare_ratios
from mlsd.experiments import ABResult
from mlsd.interleaving import (
    InterleavingResult,
    interleaving_preference,
    interleaving_test,
    team_draft_interleave,
)
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_search.serving import VideoSearcher
from mlsd.systems.video_search.world import Responses, VideoSearchWorld

ALPHA = 0.05
PAGE = 10
CONTROL = "bm25"
REPLICATES = 16  # simulations of the online day behind the searches-needed figures


@dataclass(frozen=True)
class OnlineTest:
    control: str
    treatment: str
    searches: int
    ab: ABResult
    interleaving: InterleavingResult
    searches_needed: dict[str, int | None]  # the median over the replicates
    curves: dict[str, list[tuple[int, float]]]  # the first replicate's p-values
    needed_runs: dict[str, list[int | None]]  # searches needed in each replicate

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                **self.ab.to_dict(),
                "interleaving": self.interleaving.to_dict(),
                "searches_needed": self.searches_needed,
                "searches_needed_runs": self.needed_runs,
                "curves": self.curves,
            }
        }


def searches_needed(p_values: list[tuple[int, float]], alpha: float = ALPHA) -> int | None:
    """The smallest checkpoint from which the test stays significant (None if it never does)."""
    needed = None
    for n, p in p_values:
        needed = (n if needed is None else needed) if p < alpha else None
    return needed


def search_pages(s: VideoSearcher, texts: list[str], day: int, method: str) -> np.ndarray:
    lists = s.rank_many(texts, np.full(len(texts), day), (method,), k=3 * PAGE)[method]
    out = np.full((len(texts), PAGE), -1, np.int64)
    for i, rows in enumerate(lists):
        top = rows[s.rerank(rows, PAGE)]
        out[i, : len(top)] = top
    return out


def compute_online(
    world: VideoSearchWorld,
    searcher: VideoSearcher,
    served: str,
    n: int,
    seed: int,
    replicates: int = REPLICATES,
) -> OnlineTest:
    """The A/B test and interleaving on ``n`` searches of the day after the logs; the searches
    each method needs are the median over ``replicates`` simulations of the same searches (the
    users' clicks, the arms' salt and the team drafts drawn again), since one simulation's
    figure swings several-fold with the draw."""
    day = world.config.n_days
    q = world.queries(day, n, "online")
    texts = q["text"].tolist()
    intents = q["intent_id"].to_numpy()
    pages = {m: search_pages(searcher, texts, day, m) for m in dict.fromkeys((CONTROL, served))}
    users = q["user_id"].to_numpy()
    sims = [
        _simulate(world, intents, users, pages[served], pages[CONTROL], seed, r)
        for r in range(max(1, replicates))
    ]
    first = sims[0]
    treat, res = first.treat, first.ab
    clicks = res.clicks.sum(axis=1).astype(np.float64)
    watch = res.watch_s.sum(axis=1)
    uids, per_user_clicks = ex.aggregate_per_unit(users, clicks)
    _, per_user_watch = ex.aggregate_per_unit(users, watch)
    _, per_user_searches = ex.aggregate_per_unit(users, np.ones(len(users)))
    ut = ex.assign_arms(uids, salt=first.salt)
    imps = per_user_searches * PAGE
    tests = {
        "ctr": compare_ratios(
            per_user_clicks[~ut], imps[~ut], per_user_clicks[ut], imps[ut], ALPHA, "ctr"
        ),
        "watch_seconds_per_search": compare_ratios(
            per_user_watch[~ut],
            per_user_searches[~ut],
            per_user_watch[ut],
            per_user_searches[ut],
            ALPHA,
            "watch_seconds_per_search",
        ),
    }
    first_click = res.first_click_s
    has = np.isfinite(first_click)
    if (has & ~treat).sum() >= 2 and (has & treat).sum() >= 2:
        tests["time_to_first_click_s"] = compare_means(
            first_click[has & ~treat],
            first_click[has & treat],
            ALPHA,
            "time_to_first_click_s",
            higher_is_better=False,
        )
    ab = ABResult.decided(
        unit="user",
        arms={
            "control": {
                "policy": CONTROL,
                "units": int((~ut).sum()),
                "searches": int((~treat).sum()),
            },
            "treatment": {"policy": served, "units": int(ut.sum()), "searches": int(treat.sum())},
        },
        tests=tests,
        primary="ctr",
        srm=ex.srm_check(int((~ut).sum()), int(ut.sum())),
    )
    runs = {k: [searches_needed(sim.curves[k]) for sim in sims] for k in first.curves}
    return OnlineTest(
        CONTROL,
        served,
        n,
        ab,
        InterleavingResult.from_preferences(served, CONTROL, first.prefs.tolist()),
        {k: median_needed(v, n) for k, v in runs.items()},
        first.curves,
        runs,
    )


@dataclass(frozen=True)
class _Simulation:
    """One draw of the online day: the A/B responses and the interleaved pages' clicks."""

    salt: str
    treat: np.ndarray  # (n,) bool: the search's user is in the treatment arm
    ab: Responses
    prefs: np.ndarray  # (n,) the interleaved search's preference: +1 served, -1 text, 0 tie
    curves: dict[str, list[tuple[int, float]]]  # p-value as the searches accumulate


def _simulate(
    world: VideoSearchWorld,
    intents: np.ndarray,
    users: np.ndarray,
    served: np.ndarray,
    control: np.ndarray,
    seed: int,
    replicate: int,
) -> _Simulation:
    tag = "" if replicate == 0 else f"/{replicate}"
    salt = f"video-search-ab-{seed}" + ("" if replicate == 0 else f"-{replicate}")
    treat = ex.assign_arms(users, salt=salt)
    shown = np.where(treat[:, None], served, control)
    res = world.respond(intents, shown, rng(seed, f"video-search/online-ab{tag}"), users)
    clicks = res.clicks.sum(axis=1).astype(np.float64)
    draft = rng(seed, f"video-search/team-draft{tag}")
    n = len(intents)
    merged = np.full((n, PAGE), -1, np.int64)
    teams = np.full((n, PAGE), "", object)
    for i in range(n):
        m, t = team_draft_interleave(
            [int(x) for x in served[i] if x >= 0],
            [int(x) for x in control[i] if x >= 0],
            PAGE,
            draft,
        )
        merged[i, : len(m)], teams[i, : len(t)] = m, t
    il = world.respond(intents, merged, rng(seed, f"video-search/online-interleaving{tag}"), users)
    prefs = np.array(
        [
            interleaving_preference(il.clicks[i].astype(int).tolist(), teams[i].tolist())
            for i in range(n)
        ]
    )
    # per-search click credit, A (served) minus B (text only): a paired test of the same page
    credit = (il.clicks & (teams == "A")).sum(axis=1) - (il.clicks & (teams == "B")).sum(axis=1)
    curves: dict[str, list[tuple[int, float]]] = {
        "ab_ctr": [],
        "interleaving": [],
        "interleaving_credit": [],
    }
    for c in _checkpoints(n):
        # the A/B test as it would be read after c searches: per user, as randomised
        u, cl = ex.aggregate_per_unit(users[:c], clicks[:c])
        _, ns = ex.aggregate_per_unit(users[:c], np.ones(c))
        arm = ex.assign_arms(u, salt=salt)
        if arm.sum() >= 2 and (~arm).sum() >= 2:
            p = compare_ratios(cl[~arm], ns[~arm], cl[arm], ns[arm]).p_value
            curves["ab_ctr"].append((c, p))
        curves["interleaving"].append((c, interleaving_test(prefs[:c].tolist())["p_value"]))
        curves["interleaving_credit"].append((c, paired_p(credit[:c])))
    return _Simulation(salt, treat, res, prefs, curves)


def median_needed(runs: list[int | None], n: int) -> int | None:
    """The median of the replicates' searches needed, a replicate that never got there counted
    as more than ``n`` (None when the median itself never got there)."""
    if not runs:
        return None
    med = float(np.median([n + 1 if v is None else v for v in runs]))
    return None if med > n else round(med)


def paired_p(diff: np.ndarray) -> float:
    """Two-sided p of a one-sample t-test of per-search credit differences against 0."""
    d = np.asarray(diff, np.float64)
    if d.size < 2 or not d.std(ddof=1):
        return 1.0 if not d.any() else 0.0
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def _checkpoints(n: int) -> list[int]:
    pts = sorted({int(x) for x in np.geomspace(20, n, 25)} | {n})
    return [p for p in pts if p <= n]


def report_online(bp: Blueprint, r: OnlineTest) -> None:
    bp.text(
        f"{r.searches:,} searches of the day after the logs. **A/B test**: users split by a "
        f"salted hash; control **{r.control}** (text only), treatment **{r.treatment}**, both "
        "re-ranked (safety, duplicates) and shown as a page of 10."
    )
    bp.table(["arm", "policy", "users", "searches"], r.ab.arm_rows(["policy", "units", "searches"]))
    bp.table(list(r.ab.TEST_HEADER), r.ab.test_rows())
    bp.text(r.ab.verdict())
    bp.text(
        "**Team-draft interleaving** of the same two rankers on the same searches: each search "
        "sees one merged page; the ranker whose results got more clicks wins the search."
    )
    bp.table(list(InterleavingResult.HEADER), [r.interleaving.row()])
    need = r.searches_needed

    def fmt(v: int | None) -> str:
        return "not reached" if v is None else f"{v:,}"

    def spread(key: str) -> str:
        runs = [r.searches + 1 if v is None else v for v in r.needed_runs.get(key, [])]
        if len(runs) < 2:
            return ""
        lo, hi = (int(v) for v in np.percentile(runs, [25, 75]))
        return f"{fmt(lo if lo <= r.searches else None)}–{fmt(hi if hi <= r.searches else None)}"

    rows = [
        ["A/B test, clicks per search (per user, delta method)", "ab_ctr"],
        ["interleaving, sign test of the searches' preferences", "interleaving"],
        ["interleaving, paired t-test of each search's click credit", "interleaving_credit"],
    ]
    replicates = len(next(iter(r.needed_runs.values()), []))
    bp.table(
        ["decision read from", "searches needed (median)", "interquartile range"],
        [[label, fmt(need.get(key)), spread(key)] for label, key in rows],
        caption=f"searches until p < {ALPHA} holds from then on, over {replicates} simulations "
        "of the same searches (clicks, arm salt and team drafts drawn again)",
    )
    ab, il = need.get("ab_ctr"), need.get("interleaving_credit")
    if ab is not None and il is not None and il < ab:
        bp.text(
            f"Interleaving reached the decision with {ab / il:.1f}× fewer searches than the A/B "
            "test: each search compares both rankers on the same page, so the differences "
            "between users (their click propensity, their queries) cancel instead of adding "
            "variance. One simulation's figure swings several-fold with the draw; the median "
            "is the figure to plan with."
        )
    elif ab is not None and il is not None:
        bp.text(
            f"Here interleaving needed {il / ab:.1f}× the A/B test's searches: its usual "
            "advantage (users' differences cancel within a page) did not outweigh the noise of "
            "crediting clicks on results both rankers share."
        )
