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
from mlsd.systems.video_search.world import VideoSearchWorld

ALPHA = 0.05
PAGE = 10
CONTROL = "bm25"


@dataclass(frozen=True)
class OnlineTest:
    control: str
    treatment: str
    searches: int
    ab: ABResult
    interleaving: InterleavingResult
    searches_needed: dict[str, int | None]
    curves: dict[str, list[tuple[int, float]]]

    def metrics(self) -> dict[str, Any]:
        return {
            "online": {
                **self.ab.to_dict(),
                "interleaving": self.interleaving.to_dict(),
                "searches_needed": self.searches_needed,
                "curves": self.curves,
            }
        }


def searches_needed(p_values: list[tuple[int, float]], alpha: float = ALPHA) -> int | None:
    """The smallest checkpoint from which the test stays significant (None if it never does)."""
    needed = None
    for n, p in p_values:
        needed = (n if needed is None else needed) if p < alpha else None
    return needed


def _pages(s: VideoSearcher, texts: list[str], day: int, method: str) -> np.ndarray:
    lists = s.rank_many(texts, np.full(len(texts), day), (method,), k=3 * PAGE)[method]
    out = np.full((len(texts), PAGE), -1, np.int64)
    for i, rows in enumerate(lists):
        top = rows[s.rerank(rows, PAGE)]
        out[i, : len(top)] = top
    return out


def compute_online(
    world: VideoSearchWorld, searcher: VideoSearcher, served: str, n: int, seed: int
) -> OnlineTest:
    day = world.config.n_days
    q = world.queries(day, n, "online")
    texts = q["text"].tolist()
    intents = q["intent_id"].to_numpy()
    pages = {m: _pages(searcher, texts, day, m) for m in dict.fromkeys((CONTROL, served))}
    users = q["user_id"].to_numpy()
    treat = ex.assign_arms(users, salt=f"video-search-ab-{seed}")
    shown = np.where(treat[:, None], pages[served], pages[CONTROL])
    res = world.respond(intents, shown, rng(seed, "video-search/online-ab"), users)
    clicks = res.clicks.sum(axis=1).astype(np.float64)
    watch = res.watch_s.sum(axis=1)
    uids, per_user_clicks = ex.aggregate_per_unit(users, clicks)
    _, per_user_watch = ex.aggregate_per_unit(users, watch)
    _, per_user_searches = ex.aggregate_per_unit(users, np.ones(len(users)))
    ut = ex.assign_arms(uids, salt=f"video-search-ab-{seed}")
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
    first = res.first_click_s
    has = np.isfinite(first)
    if (has & ~treat).sum() >= 2 and (has & treat).sum() >= 2:
        tests["time_to_first_click_s"] = compare_means(
            first[has & ~treat],
            first[has & treat],
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
    draft = rng(seed, "video-search/team-draft")
    merged = np.full((n, PAGE), -1, np.int64)
    teams = np.full((n, PAGE), "", object)
    for i in range(n):
        m, t = team_draft_interleave(
            [int(x) for x in pages[served][i] if x >= 0],
            [int(x) for x in pages[CONTROL][i] if x >= 0],
            PAGE,
            draft,
        )
        merged[i, : len(m)], teams[i, : len(t)] = m, t
    il = world.respond(intents, merged, rng(seed, "video-search/online-interleaving"), users)
    prefs = np.array(
        [
            interleaving_preference(il.clicks[i].astype(int).tolist(), teams[i].tolist())
            for i in range(n)
        ]
    )
    # per-search click credit, A (served) minus B (text only): a paired test of the same page
    team_a, team_b = (teams == "A"), (teams == "B")
    credit = (il.clicks & team_a).sum(axis=1) - (il.clicks & team_b).sum(axis=1)
    curves: dict[str, list[tuple[int, float]]] = {
        "ab_ctr": [],
        "interleaving": [],
        "interleaving_credit": [],
    }
    for c in _checkpoints(n):
        # the A/B test as it would be read after c searches: per user, as randomised
        u, cl = ex.aggregate_per_unit(users[:c], clicks[:c])
        _, ns = ex.aggregate_per_unit(users[:c], np.ones(c))
        arm = ex.assign_arms(u, salt=f"video-search-ab-{seed}")
        if arm.sum() >= 2 and (~arm).sum() >= 2:
            p = compare_ratios(cl[~arm], ns[~arm], cl[arm], ns[arm]).p_value
            curves["ab_ctr"].append((c, p))
        curves["interleaving"].append((c, interleaving_test(prefs[:c].tolist())["p_value"]))
        curves["interleaving_credit"].append((c, paired_p(credit[:c])))
    return OnlineTest(
        CONTROL,
        served,
        n,
        ab,
        InterleavingResult.from_preferences(served, CONTROL, prefs.tolist()),
        {k: searches_needed(v) for k, v in curves.items()},
        curves,
    )


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

    bp.text(
        f"Searches needed for a significant decision (p < {ALPHA} from then on): A/B test on "
        f"clicks per search {fmt(need.get('ab_ctr'))}; interleaving, sign test of the "
        f"searches' preferences {fmt(need.get('interleaving'))}, paired t-test of each "
        f"search's click credit (served minus text only) {fmt(need.get('interleaving_credit'))}."
    )
